"""The HTML report: one self-contained page (inline CSS, plots and images as data URLs).

The page holds the report's tables, the plots of ``report_plots`` and a drill-down with one
``<details>`` per episode (verdict, axes, the transcript turn by turn, tool calls, images).
All text from records is escaped; nothing on the page is fetched from elsewhere.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Sequence

from agentclinic.runs.record import EpisodeRecord, Event, ToolCall
from agentclinic.runs.report import (
    Run, RunStats, fmt_num, group_rows, level_rows, summary_rows, top_k_hits)
from agentclinic.runs.report_images import ImageEmbedder
from agentclinic.runs.report_plots import all_plots
from agentclinic.scoring.summary import judges_disagree

JSON_LIMIT = 4000  # characters of a JSON blob (tool data, score details) shown before it is cut

CSS = """
:root { --fg:#1d2430; --muted:#5b6472; --line:#d9dee5; --bg:#f6f7f9; --ok:#1a7f37; --bad:#b42318;
        --warn:#9a6700; --accent:#1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #1f2a3a; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d2de; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0;
      z-index: 2; }
nav a { color: var(--accent); margin-right: 16px; text-decoration: none; font-weight: 600; }
main { padding: 8px 28px 40px; max-width: 1500px; }
section { margin-top: 22px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 10px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
p.note, span.note { color: var(--muted); font-size: 12.5px; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: 8px; max-width: 100%; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-weight: 600; margin-bottom: 4px; }
details.episode { background: #fff; border: 1px solid var(--line); margin: 4px 0; border-radius: 4px; }
details.episode > summary { cursor: pointer; padding: 6px 10px; list-style-position: inside; }
details.episode[open] > summary { border-bottom: 1px solid var(--line); background: #fafbfc; }
.badge { display: inline-block; min-width: 84px; text-align: center; border-radius: 3px; padding: 0 6px;
         color: #fff; font-size: 12px; font-weight: 600; margin-right: 6px; }
.badge.correct { background: var(--ok); } .badge.incorrect { background: var(--bad); }
.badge.no-diagnosis { background: var(--warn); } .badge.error { background: #6e2a8c; }
.episode .body { padding: 8px 14px 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 4px 0 10px; }
dl.facts dt { font-weight: 600; color: var(--muted); } dl.facts dd { margin: 0; }
ol.transcript { list-style: none; padding: 0; margin: 6px 0; }
ol.transcript > li { border-left: 3px solid var(--line); padding: 4px 10px; margin: 6px 0; }
.turn-no { font-size: 12px; color: var(--muted); font-weight: 600; }
.doctor { color: var(--accent); } .doctor b, .reply b { color: var(--fg); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.tool { background: #f3f6fa; border: 1px solid var(--line); padding: 6px 8px; margin-top: 4px; }
pre { background: #f3f4f6; padding: 6px 8px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere;
      margin: 4px 0; font-size: 12px; }
.images { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 4px; align-items: flex-start; }
.images figure { padding: 4px; } .images figcaption { font-weight: 400; margin: 4px 0 0; }
.images img { max-width: 360px; max-height: 360px; min-width: 96px; image-rendering: auto; }
.err { color: var(--bad); }
"""


def e(value: Any) -> str:
    """Escaped text ('' for None)."""
    return "" if value is None else escape(str(value), quote=True)


def _json(value: Any) -> str:
    text = json.dumps(value, indent=1, ensure_ascii=False, default=str)
    if len(text) > JSON_LIMIT:
        text = text[:JSON_LIMIT] + f"\n... ({len(text) - JSON_LIMIT} more characters not shown)"
    return f"<pre>{e(text)}</pre>"


def _table(stats: Sequence[RunStats], first: str, rows: list[tuple[str, list[str]]]) -> str:
    head = "".join(f"<th>{e(s.name)}</th>" for s in stats)
    body = "".join(f"<tr><th>{e(label)}</th>" + "".join(f'<td class="num">{e(c)}</td>' for c in cells) + "</tr>"
                   for label, cells in rows)
    return f"<table><thead><tr><th>{e(first)}</th>{head}</tr></thead><tbody>{body}</tbody></table>"


_CONFIG_KEYS = ("doctor", "patient", "measurement", "judge", "patient_bias", "doctor_bias", "image_policy",
                "episodes", "seed", "max_turns", "max_tests", "max_cost", "scenarios", "embedder")


def _runs_table(runs: Sequence[Run]) -> str:
    rows = [("folder", [str(r.folder) for r in runs])]
    for key in _CONFIG_KEYS:
        if any(r.config.get(key) not in (None, [], "") for r in runs):
            rows.append((key, [_config_value(r.config.get(key)) for r in runs]))
    head = "".join(f"<th>{e(r.name)}</th>" for r in runs)
    body = "".join(f"<tr><th>{e(label)}</th>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"
                   for label, cells in rows)
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _config_value(value: Any) -> str:
    if value in (None, [], ""):
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) if len(value) <= 6 else f"{len(value)} items: {value[0]}, ..."
    return str(value)


def _errors_table(stats: Sequence[RunStats]) -> str:
    rows = [(s.name, err) for s in stats for err in s.errors]
    if not rows:
        return '<p class="note">No episode ended in an error.</p>'
    body = "".join(f"<tr><td>{e(name)}</td><td class='num'>{err.episode}</td><td>{e(err.scenario_id)}</td>"
                   f"<td class='err'>{e(err.message)}</td></tr>" for name, err in rows)
    return ("<table><thead><tr><th>run</th><th>episode</th><th>scenario</th><th>error (first line)</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


# ---------------------------------------------------------------------------------------------- episodes

def _images(images: Sequence[Any], embedder: ImageEmbedder) -> str:
    """Figures for image dicts (id, modality, path) or plain paths; notes for those not embedded."""
    parts = []
    for image in images:
        info = image if isinstance(image, dict) else {"path": image}
        label = " ".join(str(x) for x in (info.get("id"), info.get("modality")) if x) or Path(str(info.get("path")
                                                                                                 or "")).name
        url, note = embedder.embed(info.get("path"))
        if url is None and not info.get("path"):
            note = info.get("reason") or note
        if url:
            parts.append(f'<figure><img src="{url}" alt="{e(label)}"><figcaption class="note">{e(label)} - '
                         f"{e(note)}</figcaption></figure>")
        else:
            parts.append(f'<p class="note">image {e(label)}: {e(note)}</p>')
    return f'<div class="images">{"".join(parts)}</div>' if parts else ""


def _doctor_line(event: Event) -> str:
    action = event.action
    if not action:
        raw = event.doctor if isinstance(event.doctor, str) else json.dumps(event.doctor, ensure_ascii=False)
        return f'<div class="doctor"><b>Doctor (unparsed):</b> <span class="text">{e(raw)}</span></div>'
    kind = action.get("type", "?")
    if kind == "ask":
        what = action.get("text", "")
    elif kind == "diagnose":
        what = action.get("primary") or action.get("diagnosis") or ""
        if action.get("differential"):
            what += f"  (differential: {', '.join(map(str, action['differential']))})"
        if action.get("confidence") is not None:
            what += f"  (confidence {action['confidence']})"
    elif kind == "order_tests":
        what = ", ".join(map(str, action.get("tests") or []))
    else:
        rest = {k: v for k, v in action.items() if k != "type" and v not in (None, [], {}, "")}
        what = json.dumps(rest, ensure_ascii=False) if rest else ""
    return f'<div class="doctor"><b>Doctor [{e(kind)}]:</b> <span class="text">{e(what)}</span></div>'


def _tool_block(tool: ToolCall, embedder: ImageEmbedder) -> str:
    parts = [f"<b>Tool call:</b> {e(tool.name)}"]
    if tool.seconds is not None:
        parts.append(f' <span class="note">({e(tool.seconds)} s)</span>')
    parts.append("<div>arguments:</div>" + _json(tool.arguments))
    if tool.invalid_arguments:
        parts.append('<div class="err">invalid arguments</div>')
    if tool.error:
        parts.append(f'<div class="err">error: {e(tool.error)}</div>')
    if tool.text:
        parts.append(f'<div>result:</div><div class="text">{e(tool.text)}</div>')
    if tool.data:
        parts.append("<div>data:</div>" + _json(tool.data))
    parts.append(_images(tool.images, embedder))
    return f'<div class="tool">{"".join(parts)}</div>'


def _turn(event: Event, embedder: ImageEmbedder) -> str:
    parts = [f'<div class="turn-no">turn {event.turn}</div>', _doctor_line(event),
             f'<div class="reply"><b>Reply:</b> <span class="text">{e(event.observation)}</span></div>']
    if event.disclosed:
        parts.append(f'<div class="note">disclosed facts: {e(", ".join(event.disclosed))}</div>')
    if event.findings:
        parts.append("<details><summary class='note'>findings</summary>"
                     + _json([f.model_dump(exclude_none=True) for f in event.findings]) + "</details>")
    if event.error:
        parts.append(f'<div class="err">error: {e(event.error)}</div>')
    if event.fallback:
        parts.append(f'<div class="err">chosen by the doctor\'s fallback: {e(event.fallback)}</div>')
    parts.append(_images(event.images, embedder))
    if event.tool:
        parts.append(_tool_block(event.tool, embedder))
    return f"<li>{''.join(parts)}</li>"


def _facts(pairs: list[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, "", []))
    return f'<dl class="facts">{items}</dl>'


def episode_html(record: EpisodeRecord, embedder: ImageEmbedder) -> str:
    """One ``<details>`` block: the summary line, verdict, scores and the transcript."""
    verdict = record.verdict
    level = verdict.level if record.diagnosed else "none"
    headline = (f'<span class="badge {e(record.outcome)}">{e(record.outcome)}</span> #{record.episode} '
                f"{e(record.scenario_id)} <span class='note'>({e(record.specialty or 'unknown')})</span> - "
                f"{e(repr(record.diagnosis) if record.diagnosis else 'no diagnosis')} [{e(level)}] - "
                f"{record.turns} turns, {record.tests} tests, {record.tool_calls} tool calls, ${record.cost:.2f}")
    facts = [("diagnosis", e(record.diagnosis)), ("differential", e(", ".join(record.differential))),
             ("match level", e(level)), ("matched", e(verdict and verdict.matched)),
             ("judge", e(verdict and verdict.judge)), ("rule level", e(verdict and verdict.rule_level)),
             ("rationale", e(verdict and verdict.rationale)), ("truncated by", e(record.truncated_by)),
             ("judges disagree", '<span class="err">yes: the model and rule judges differ on correctness</span>'
              if judges_disagree(verdict) else None),
             ("embedder", e(record.embedder)),
             ("fallback actions", e(record.fallbacks) if record.fallbacks else None),
             ("seed", e(record.seed)), ("seconds", e(f"{record.seconds:.2f}")),
             ("tokens", e(f"{record.prompt_tokens} prompt + {record.completion_tokens} completion")
              if record.prompt_tokens or record.completion_tokens else None),
             ("error", f'<span class="err">{e(record.error)}</span>' if record.error else None)]
    scores = record.scores
    hits = top_k_hits(scores)
    if hits:
        facts.append(("top-k", e(", ".join(f"top-{k}: {'yes' if v else 'no'}" for k, v in sorted(hits.items())))))
    if scores is not None:
        facts.append(("composite", e(scores.composite) + (f" <span class='note'>({e(scores.note)})</span>"
                                                          if scores.note else "")))
    parts = [_facts(facts)]
    axes = scores.axes if scores is not None else {}
    if axes:
        rows = "".join(f"<tr><th>{e(k)}</th><td class='num'>{e('n/a' if v is None else fmt_num(v, 3))}</td></tr>"
                       if isinstance(v, (int, float)) or v is None else f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
                       for k, v in axes.items())
        parts.append(f"<table><thead><tr><th>axis</th><th>score</th></tr></thead><tbody>{rows}</tbody></table>")
    for label, value in (("score details", scores and scores.details),
                         ("diagnosis scores", scores and scores.diagnosis.model_dump(exclude_none=True)),
                         ("patient-reported ratings", record.patient_ratings),
                         ("biases", record.extra.get("biases")), ("tool metrics", record.tool_metrics)):
        if value:
            parts.append(f"<details><summary>{e(label)}</summary>{_json(value)}</details>")
    if record.disclosed:
        parts.append(f'<p class="note">disclosed: {e(", ".join(f"{f} (turn {t})" for t, f in record.disclosed))}'
                     "</p>")
    parts.append(_images(record.extra.get("images_upfront") or [], embedder))
    turns = "".join(_turn(event, embedder) for event in record.events)
    parts.append(f'<h4>Transcript</h4><ol class="transcript">{turns}</ol>' if turns
                 else '<p class="note">No turns were recorded.</p>')
    return (f'<details class="episode" id="ep-{e(record.run_id)}-{record.episode}"><summary>{headline}</summary>'
            f'<div class="body">{"".join(parts)}</div></details>')


# ---------------------------------------------------------------------------------------------- page

def render_html(runs: Sequence[Run], stats: Sequence[RunStats], *, image_budget: int | None = None) -> str:
    """The whole page as a string."""
    names = ", ".join(s.name for s in stats)
    plots = "".join(f'<figure><figcaption>{e(title)}</figcaption><img src="{url}" alt="{e(title)}"></figure>'
                    for title, url in all_plots(stats))
    sections = [
        ("runs", "Runs", _runs_table(runs) + '<p class="note">Accuracy, top-k and means are over all the episodes '
         "(an error or a budget cut-off earns no diagnosis credit); accuracy excluding errors is shown beside it. "
         "Intervals are 95% Wilson score intervals.</p>"
         + _table(stats, "", [row for row in summary_rows(stats) if row[0] != "doctor"])),
        ("plots", "Plots", f'<div class="plots">{plots}</div>' if plots else '<p class="note">Nothing to plot.</p>'),
        ("specialty", "Accuracy by specialty", _table(stats, "specialty", group_rows(stats, "by_specialty"))),
        ("bias", "Accuracy by bias", _table(stats, "bias", group_rows(stats, "by_bias"))),
        ("levels", "Match levels", _table(stats, "level", level_rows(stats))),
        ("errors", "Errors", _errors_table(stats)),
    ]
    drill = []
    for run in runs:
        embedder = ImageEmbedder(base=run.folder, **({"budget": image_budget} if image_budget else {}))
        episodes = "".join(episode_html(r, embedder) for r in sorted(run.records, key=lambda r: r.episode))
        drill.append(f"<h3>{e(run.name)} <span class='note'>({len(run.records)} episodes)</span></h3>{episodes}")
    sections.append(("episodes", "Episodes", "".join(drill)))
    nav = "".join(f'<a href="#{key}">{e(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{e(title)}</h2>{html}</section>' for key, title, html in sections)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>agentclinic report: {e(names)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>agentclinic report</h1><p>{e(names)} - generated {e(stamp)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>\n")


def write_html(runs: Sequence[Run], stats: Sequence[RunStats], path: str | Path, **kwargs: Any) -> Path:
    """Write the page to ``path`` (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(runs, stats, **kwargs), encoding="utf-8")
    return path


__all__ = ["render_html", "write_html", "episode_html", "CSS"]
