"""Run reports: figures per run (accuracy with a Wilson interval, top-k, axes, costs), rich tables.

``load_run`` reads a run folder, ``run_stats`` turns its records into ``RunStats`` and
``print_report`` prints the tables, one column per run; ``report_html.write_html`` renders the
same figures as one self-contained HTML page.

Accuracy, top-k and the means of turns, tests, cost, tool calls and the composite are taken over
all the episodes, as ``summary.json`` does: an error or a budget cut-off is an episode without a
diagnosis and counts as a miss. The accuracy over the episodes that did not fail is shown beside
it as "accuracy excluding errors"; errors are also listed apart. Axes are whatever
``record.scores.axes`` holds, the union over the records; an axis that is ``None`` for an
episode (not applicable) is left out of that axis's mean.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentclinic.agents.base import LEVEL_RANK
from agentclinic.errors import AgentClinicError
from agentclinic.runs.record import EpisodeRecord, Scores
from agentclinic.runs.writer import RunFolderError, RunWriter
from agentclinic.scoring.summary import judge_disagreements

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


class ReportError(AgentClinicError):
    """A run folder that cannot be reported on (missing, or records that do not parse)."""


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``k`` successes in ``n`` trials (None when n == 0).

    centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    """
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class Rate(BaseModel):
    """k of n, with its proportion and 95 % Wilson interval."""

    k: int = 0
    n: int = 0

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.k, self.n)

    def add(self, hit: bool) -> None:
        self.k += int(bool(hit))
        self.n += 1


class AxisMean(BaseModel):
    mean: float | None = None
    n: int = 0  # episodes where the axis had a value


class ErrorRow(BaseModel):
    episode: int
    scenario_id: str
    message: str  # the first line of the error


class Run(BaseModel):
    """A loaded run folder."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    folder: Path
    config: dict[str, Any] = Field(default_factory=dict)
    records: list[EpisodeRecord] = Field(default_factory=list)


class RunStats(BaseModel):
    """Every figure the report shows for one run."""

    name: str
    doctor: str | None = None
    episodes: int = 0
    accuracy: Rate = Field(default_factory=Rate)  # over all the episodes
    accuracy_excluding_errors: Rate = Field(default_factory=Rate)
    top_k: dict[int, Rate] = Field(default_factory=dict)
    axes: dict[str, AxisMean] = Field(default_factory=dict)
    composite: AxisMean = Field(default_factory=AxisMean)
    mean_turns: float | None = None
    mean_tests: float | None = None
    mean_cost: float | None = None
    mean_tool_calls: float | None = None
    fallbacks: int = 0  # actions a doctor's fallback chose instead of its model
    judge_disagreements: int | None = None  # episodes the model and rule judges call differently; None: no model
    outcomes: dict[str, int] = Field(default_factory=dict)
    errors: list[ErrorRow] = Field(default_factory=list)
    by_specialty: dict[str, Rate] = Field(default_factory=dict)
    by_bias: dict[str, Rate] = Field(default_factory=dict)
    match_levels: dict[str, int] = Field(default_factory=dict)
    turns: list[int] = Field(default_factory=list)  # per finished episode, for histograms
    axis_values: dict[str, list[float]] = Field(default_factory=dict)  # per axis, the values present
    conversations: list[dict[str, Any]] = Field(default_factory=list)  # per station episode: its feedback in brief


# ---------------------------------------------------------------------------------------------- loading

def load_run(folder: str | Path) -> Run:
    """Read ``run.json`` (optional) and ``episodes.jsonl``; a ``ReportError`` names the bad path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such run folder")
    episodes = folder / "episodes.jsonl"
    if not episodes.is_file():
        raise ReportError(f"{episodes}: missing (is {folder} a run folder?)")
    config: dict[str, Any] = {}
    run_json = folder / "run.json"
    if run_json.is_file():
        try:
            config = json.loads(run_json.read_text(encoding="utf-8")).get("config", {}) or {}
        except (OSError, ValueError, AttributeError) as exc:
            raise ReportError(f"{run_json}: unreadable ({exc})") from exc
    try:
        records = RunWriter(folder).records()
    except RunFolderError as exc:  # names the file and line, and how to repair it
        raise ReportError(str(exc)) from exc
    except OSError as exc:
        raise ReportError(f"{episodes}: unreadable ({exc.strerror or exc})") from exc
    return Run(name=folder.name, folder=folder, config=config, records=records)


def load_runs(folders: Sequence[str | Path]) -> list[Run]:
    """Load several runs; runs whose folder names clash are named parent/name."""
    runs = [load_run(f) for f in folders]
    counts = Counter(r.name for r in runs)
    for run in runs:
        if counts[run.name] > 1:
            run.name = f"{run.folder.resolve().parent.name}/{run.folder.name}"
    return runs


# ---------------------------------------------------------------------------------------------- figures

def top_k_hits(scores: Scores | None) -> dict[int, bool]:
    """``{k: hit}`` from a record's scores (``{}`` when it has none)."""
    if scores is None:
        return {}
    return {int(key.removeprefix("top")): bool(hit) for key, hit in scores.diagnosis.top_k.items()}


def bias_keys(record: EpisodeRecord) -> list[str]:
    """The bias groups an episode belongs to: ``role:name`` (``(ignored)`` when not applied), or ``none``."""
    keys = []
    biases = record.extra.get("biases") or {}
    if isinstance(biases, dict):
        for role, info in sorted(biases.items()):
            if not isinstance(info, dict):
                continue
            suffix = "" if info.get("applied", True) else " (ignored)"
            keys += [f"{role}:{name}{suffix}" for name in info.get("names") or []]
    return keys or ["none"]


def _axes(record: EpisodeRecord) -> dict[str, Any]:
    return dict(record.scores.axes) if record.scores is not None else {}


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def run_stats(run: Run) -> RunStats:
    """Figures for one run (see the module doc for what is averaged over what)."""
    records = run.records
    scored = any(r.scores is not None for r in records)  # else an older run without scores: no top-k, no composite
    stats = RunStats(name=run.name, episodes=len(records),
                     doctor=run.config.get("doctor") or (records[0].doctor if records else None))
    stats.outcomes = dict(Counter(r.outcome for r in records))
    axis_names: list[str] = []
    for r in records:
        for name in _axes(r):
            if name not in axis_names:
                axis_names.append(name)
    stats.axis_values = {name: [] for name in axis_names}
    ks = sorted({k for r in records for k in top_k_hits(r.scores)})
    composites: list[float] = []
    for r in records:
        if r.kind == "diagnostic":  # accuracy and match levels are not defined for conversation stations
            stats.accuracy.add(r.correct)
            if r.outcome != "error":
                stats.accuracy_excluding_errors.add(r.correct)
            hits = top_k_hits(r.scores)
            for k in ks:
                stats.top_k.setdefault(k, Rate()).add(hits.get(k, False))
            stats.by_specialty.setdefault(r.specialty or "unknown", Rate()).add(r.correct)
            for key in bias_keys(r):
                stats.by_bias.setdefault(key, Rate()).add(r.correct)
            level = r.verdict.level if r.diagnosed else "none"
            stats.match_levels[level] = stats.match_levels.get(level, 0) + 1
        for name, value in _axes(r).items():
            number = _number(value)
            if number is not None:
                stats.axis_values[name].append(number)
        if scored:
            composites.append(r.scores.composite if r.scores is not None else 0.0)
        stats.turns.append(r.turns)
        stats.fallbacks += r.fallbacks
    stats.top_k = dict(sorted(stats.top_k.items()))
    stats.by_specialty = dict(sorted(stats.by_specialty.items()))
    stats.by_bias = dict(sorted(stats.by_bias.items(), key=lambda kv: (kv[0] != "none", kv[0])))
    stats.match_levels = dict(sorted(stats.match_levels.items(), key=lambda kv: LEVEL_RANK.get(kv[0], 9)))
    stats.axes = {name: AxisMean(mean=_mean(v), n=len(v)) for name, v in stats.axis_values.items()}
    stats.composite = AxisMean(mean=_mean(composites), n=len(composites))
    stats.mean_turns = _mean([r.turns for r in records])
    stats.mean_tests = _mean([r.tests for r in records])
    stats.mean_cost = _mean([r.cost for r in records])
    stats.mean_tool_calls = _mean([r.tool_calls for r in records])
    stats.judge_disagreements = judge_disagreements(records)
    stats.errors = [ErrorRow(episode=r.episode, scenario_id=r.scenario_id, message=first_line(r.error))
                    for r in records if r.outcome == "error" or r.error]
    stats.conversations = [{"episode": r.episode, "scenario": r.scenario_id, "outcome": r.outcome,
                            "score": fb.get("score"), "rubrics": fb.get("rubrics", {}),
                            "red_lines": [h.get("id") for h in fb.get("red_lines", [])],
                            "missed": len(fb.get("missed", []))}
                           for r in records if (fb := r.extra.get("feedback"))]
    return stats


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return "(no message)"


# ---------------------------------------------------------------------------------------------- text

def fmt_rate(rate: Rate | None, ci: bool = True) -> str:
    """``0.467 [0.33, 0.61] (21/45)``, or ``-`` when there is nothing to rate."""
    if rate is None or not rate.n:
        return "-"
    text = f"{rate.value:.3f}"
    if ci:
        lo, hi = rate.ci
        text += f" [{lo:.2f}, {hi:.2f}]"
    return f"{text} ({rate.k}/{rate.n})"


def fmt_num(value: float | None, digits: int = 2, prefix: str = "") -> str:
    return "-" if value is None else f"{prefix}{value:.{digits}f}"


def fmt_axis(axis: AxisMean | None) -> str:
    return "-" if axis is None or axis.mean is None else f"{axis.mean:.3f} (n={axis.n})"


def summary_rows(stats: Sequence[RunStats]) -> list[tuple[str, list[str]]]:
    """The per-run table: (label, one cell per run)."""
    rows: list[tuple[str, list[str]]] = [
        ("doctor", [s.doctor or "-" for s in stats]),
        ("episodes", [str(s.episodes) for s in stats]),
        ("accuracy [95% CI]", [fmt_rate(s.accuracy) for s in stats]),
        ("accuracy excluding errors [95% CI]", [fmt_rate(s.accuracy_excluding_errors) for s in stats]),
    ]
    for k in sorted({k for s in stats for k in s.top_k}):
        rows.append((f"top-{k} [95% CI]", [fmt_rate(s.top_k.get(k)) for s in stats]))
    for name in axis_union(stats):
        rows.append((f"axis: {name}", [fmt_axis(s.axes.get(name)) for s in stats]))
    if any(s.composite.n for s in stats):
        rows.append(("composite", [fmt_axis(s.composite) for s in stats]))
    rows += [
        ("mean turns", [fmt_num(s.mean_turns) for s in stats]),
        ("mean tests", [fmt_num(s.mean_tests) for s in stats]),
        ("mean cost (USD)", [fmt_num(s.mean_cost, 2, "$") for s in stats]),
        ("mean tool calls", [fmt_num(s.mean_tool_calls) for s in stats]),
        ("no diagnosis", [str(s.outcomes.get("no-diagnosis", 0)) for s in stats]),
        ("errors", [str(s.outcomes.get("error", 0)) for s in stats]),
        ("fallback actions", [str(s.fallbacks) for s in stats]),
        ("judge disagreements (model vs rule)", [fmt_num(s.judge_disagreements, 0) for s in stats]),
    ]
    return rows


def axis_union(stats: Sequence[RunStats]) -> list[str]:
    names: list[str] = []
    for s in stats:
        names += [n for n in s.axes if n not in names]
    return names


def group_rows(stats: Sequence[RunStats], attr: str) -> list[tuple[str, list[str]]]:
    """Rows of a by-specialty / by-bias table: the group, then ``fmt_rate`` per run."""
    keys: list[str] = []
    for s in stats:
        keys += [k for k in getattr(s, attr) if k not in keys]
    if attr == "by_specialty":
        keys.sort()
    return [(key, [fmt_rate(getattr(s, attr).get(key)) for s in stats]) for key in keys]


def level_rows(stats: Sequence[RunStats]) -> list[tuple[str, list[str]]]:
    levels = sorted({lv for s in stats for lv in s.match_levels}, key=lambda lv: LEVEL_RANK.get(lv, 9))
    return [(lv, [str(s.match_levels.get(lv, 0)) for s in stats]) for lv in levels]


def _table(title: str, first: str, stats: Sequence[RunStats], rows: list[tuple[str, list[str]]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first, style="bold")
    for s in stats:
        table.add_column(escape(s.name), justify="right")
    for label, cells in rows:  # run names, specialties, biases: user text, never markup
        table.add_row(escape(label), *map(escape, cells))
    return table


def print_report(stats: Sequence[RunStats], console: Console) -> None:
    """Print the tables: runs, by specialty, by bias, match levels, errors."""
    console.print(_table("Runs (accuracy and means over all episodes: an error or a cut-off is a miss)", "", stats,
                         summary_rows(stats)))
    console.print(_table("Accuracy by specialty [95% CI] (correct/n)", "specialty", stats,
                         group_rows(stats, "by_specialty")))
    console.print(_table("Accuracy by bias [95% CI] (correct/n)", "bias", stats, group_rows(stats, "by_bias")))
    console.print(_table("Match levels", "level", stats, level_rows(stats)))
    conversations = [(s.name, c) for s in stats for c in s.conversations]
    if conversations:  # stations: the feedback in brief (the full items and quotes are in each record)
        table = Table(title="Conversation stations (feedback score, rubric scores, red lines crossed)",
                      title_justify="left")
        for column in ("run", "episode", "station", "outcome", "score", "rubrics", "missed items", "red lines"):
            table.add_column(column, overflow="fold")
        for name, c in conversations:
            rubrics = ", ".join(f"{k} {v:.2f}" for k, v in c["rubrics"].items())
            table.add_row(*map(escape, (name, str(c["episode"]), c["scenario"], str(c["outcome"]),
                                        fmt_num(c["score"]), rubrics, str(c["missed"]), ", ".join(c["red_lines"]) or "-")))
        console.print(table)
    errors = [(s.name, e) for s in stats for e in s.errors]
    if errors:
        table = Table(title="Errors", title_justify="left")
        for column in ("run", "episode", "scenario", "error"):
            table.add_column(column, overflow="fold")
        for name, e in errors:
            table.add_row(*map(escape, (name, str(e.episode), e.scenario_id, e.message)))
        console.print(table)
    else:
        console.print("no errors")


__all__ = ["ReportError", "Rate", "AxisMean", "ErrorRow", "Run", "RunStats", "wilson", "load_run", "load_runs",
           "run_stats", "top_k_hits", "bias_keys", "summary_rows", "group_rows", "level_rows", "axis_union",
           "print_report", "fmt_rate", "fmt_num", "first_line"]
