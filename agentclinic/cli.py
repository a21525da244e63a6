"""The command line: ``agentclinic run``, ``report``, ``rescore`` and ``scenarios list|show|validate|import``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentclinic.errors import AgentClinicError
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.quality import validate_paths

app = typer.Typer(help="agentclinic: an agentic clinical simulation environment.", no_args_is_help=True)
scenarios_app = typer.Typer(help="List, show, validate and import scenarios.", no_args_is_help=True)
app.add_typer(scenarios_app, name="scenarios")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

Paths = Annotated[Optional[list[Path]], typer.Argument(help="scenario files or folders (default: the bank)")]
Format = Annotated[Optional[str], typer.Option("--format", help="loader name; default: by file shape")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _fail(exc: AgentClinicError) -> None:
    err_console.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(2)


@scenarios_app.command("list")
def list_scenarios(paths: Paths = None, format: Format = None, as_json: AsJson = False,
                   skip_errors: Annotated[bool, typer.Option(help="load what can be loaded")] = True,
                   split: Annotated[Optional[str], typer.Option(help="only this split: train, validation "
                                                                     "or test")] = None,
                   split_seed: Annotated[int, typer.Option(help="seed of the split's hash")] = 0) -> None:
    """List scenarios: id, split, specialty, difficulty, counts and diagnosis."""
    from agentclinic.scenario.splits import Split, assign_splits

    try:
        loaded = load_scenarios(paths or [BANK_DIR], format=format, skip_errors=skip_errors)
        wanted = Split.parse(split, seed=split_seed)
    except AgentClinicError as exc:
        _fail(exc)
    splits = assign_splits(loaded, split_seed)
    loaded.scenarios = [s for s in loaded if wanted is None or splits[s.id] == wanted.name]
    rows = [{"id": s.id, "split": splits[s.id], "title": s.title, "specialty": s.specialty, "difficulty": s.difficulty,
             "facts": len(s.facts), "tests": len(s.tests), "images": len(s.images),
             "kind": s.kind, "diagnosis": s.diagnosis.name if s.diagnosis else None,
             "icd10": s.diagnosis.icd10 if s.diagnosis else None,
             "situation": s.conversation.situation if s.conversation else None} for s in loaded]
    if as_json:
        print(json.dumps({"scenarios": rows, "errors": [str(e) for e in loaded.errors]}, indent=2))
        return
    table = Table(title=f"{len(rows)} scenarios")
    columns = ("id", "split", "kind", "specialty", "difficulty", "facts", "tests", "images", "diagnosis", "icd10")
    for column in columns:
        table.add_column(column, no_wrap=column != "diagnosis")
    for row in rows:
        row = row | ({"diagnosis": row["situation"]} if row["kind"] == "conversation" else {})  # a station's situation
        table.add_row(*(escape(str(row[c])) if row[c] is not None else "" for c in columns))
    console.print(table)
    for error in loaded.errors:
        err_console.print(f"[red]error:[/red] {escape(str(error))}")


@scenarios_app.command("show")
def show(scenario_id: Annotated[str, typer.Argument(help="scenario id")],
         source: Annotated[Optional[list[Path]], typer.Option("--from", help="where to look (default: the bank)")] = None,
         format: Format = None, as_json: AsJson = False) -> None:
    """Print one scenario in the native format (YAML, or JSON with --json)."""
    try:
        scenario = load_scenarios(source or [BANK_DIR], format=format, skip_errors=True).get(scenario_id)
    except KeyError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.args[0])}")
        raise typer.Exit(2) from None
    except AgentClinicError as exc:
        _fail(exc)
    data = scenario.model_dump(mode="json", exclude_none=True)
    print(json.dumps(data, indent=2, ensure_ascii=False) if as_json
          else yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


@scenarios_app.command("validate")
def validate(paths: Paths = None, format: Format = None, as_json: AsJson = False,
             prices: Annotated[Optional[Path], typer.Option(help="price table (default: the bundled one)")] = None,
             ) -> None:
    """Run the quality gates; exit status 1 when any error is found."""
    try:
        table = PriceTable.load(prices) if prices else price_table()
    except AgentClinicError as exc:
        _fail(exc)
    _, report = validate_paths(paths or [BANK_DIR], format=format, prices=table)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        for issue in report.errors:
            console.print(f"[red]error[/red] [dim]{issue.code}[/dim] {escape(str(issue))}", highlight=False,
                          soft_wrap=True)
        for issue in report.warnings:
            console.print(f"[yellow]warning[/yellow] [dim]{issue.code}[/dim] {escape(str(issue))}", highlight=False,
                          soft_wrap=True)
        kinds = ", ".join(f"{n} {KIND_NAMES.get(kind, kind)}" for kind, n in report.kinds.items())
        console.print(f"{report.scenarios} scenarios ({kinds}) in {len(report.specialties)} specialties: "
                      f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    raise typer.Exit(1 if report.errors else 0)


@scenarios_app.command("import")
def import_scenarios(source: Annotated[Path, typer.Argument(help="a file in any known format")],
                     out: Annotated[Path, typer.Option("--out", help="folder for the native YAML files")],
                     format: Format = None) -> None:
    """Convert scenarios (e.g. AgentClinic JSONL) to native YAML files, one per scenario."""
    try:
        loaded = load_scenarios(source, format=format, skip_errors=True)
    except AgentClinicError as exc:
        _fail(exc)
    out.mkdir(parents=True, exist_ok=True)
    for scenario in loaded:
        data = scenario.model_dump(mode="json", exclude_none=True)
        (out / f"{scenario.id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                                 encoding="utf-8")
    for error in loaded.errors:
        err_console.print(f"[red]skipped:[/red] {escape(str(error))}")
    console.print(f"wrote {len(loaded)} scenarios to {escape(str(out))}")


Spec = Optional[str]
KIND_NAMES = {"diagnostic": "diagnostic cases", "conversation": "conversation stations"}


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with these settings (keys as the "
                                                   "flags with underscores; per-role tables named doctor, "
                                                   "patient, measurement, judge); flags override it")] = None,
    scenarios: Annotated[Optional[list[Path]], typer.Option("--scenarios", help="scenario files or folders "
                                                            "(default: the bank)")] = None,
    format: Format = None,
    doctor: Annotated[Spec, typer.Option(help="doctor: scripted, random, human, openai/<model>[@<url>] or hf/<path>, "
                                              "model specs with ?mode=text|tools|graph|graph-text (default: scripted)")] = None,
    patient: Annotated[Spec, typer.Option(help="patient: scripted, openai/<model>[@<url>] or hf/<path> "
                                               "(default: scripted)")] = None,
    measurement: Annotated[Spec, typer.Option(help="measurement agent: scripted, openai/... or hf/... "
                                                   "(a model only phrases the exact results)")] = None,
    judge: Annotated[Spec, typer.Option(help="diagnosis judge: scripted (rules), openai/... or hf/...")] = None,
    patient_bias: Annotated[Optional[list[str]], typer.Option("--patient-bias", help="patient bias (repeat or "
                                                              "comma-separate; LLM patients only)")] = None,
    doctor_bias: Annotated[Optional[list[str]], typer.Option("--doctor-bias", help="doctor bias (repeat or "
                                                             "comma-separate; LLM doctors only)")] = None,
    image_policy: Annotated[Optional[str], typer.Option(help="on-request (default): images when the doctor asks; "
                                                             "upfront: images come with the brief")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="replay cache (SQLite) wrapping every model")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="sampling temperature, every role (default 0)")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="max tokens per model reply, every role "
                                                           "(default 256)")] = None,
    model_seed: Annotated[Optional[int], typer.Option(help="sampling seed sent to models, every role (default 0; "
                                                           "negative: none)")] = None,
    episodes: Annotated[Optional[int], typer.Option(help="episodes to play (default: one per scenario)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="base seed; episode i uses seed + i (default 0)")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="episodes played at once (local: in one event loop; "
                                                           "ray: across the cluster)")] = None,
    executor: Annotated[Optional[str], typer.Option(help="local (default): one process; ray: Ray actors, "
                                                        "pip install 'agentclinic[ray]'")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: start a local one)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Ray actors (default: one per CPU of the cluster, at most "
                                                       "--concurrency)")] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="GPUs each Ray actor requests (in-process "
                                                                 "hf/ models)")] = None,
    max_turns: Annotated[Optional[int], typer.Option(help="turn budget (AgentClinic: 20)")] = None,
    max_tests: Annotated[Optional[int], typer.Option(help="test budget")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="money budget, US dollars")] = None,
    split: Annotated[Optional[str], typer.Option(help="play one split of the scenarios: train, validation or test "
                                                     "(by a stable hash of each id; recorded in run.json)")] = None,
    split_seed: Annotated[Optional[int], typer.Option(help="seed of the split's hash (default 0)")] = None,
    weights: Annotated[Optional[str], typer.Option(help="score axis weights of the composite reward, e.g. "
                                                       "'diagnosis=0.8,coverage=0.2' (axes left out weigh 0; "
                                                       "default: docs/scoring.md)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="folder that holds runs (default: runs)")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="run folder name (default: time and doctor)")] = None,
    scenario: Annotated[Optional[list[str]], typer.Option("--scenario", help="play only this scenario id (repeat "
                                                          "for several), e.g. conversation-lung-cancer-news")] = None,
    kind: Annotated[Optional[str], typer.Option(help="which scenarios of the set to play: diagnostic (default), "
                                                    "conversation (stations) or all; --scenario overrides it")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --run-id where it stopped (refused when "
                                              "there is none, or while another process holds it)")] = False,
    allow_errors: Annotated[bool, typer.Option("--allow-errors", help="exit 0 even when episodes ended in an "
                                               "error (default: exit status 3)")] = False,
) -> None:
    """Play doctor episodes over scenarios and record them in OUT/RUN_ID/.

    Exit status: 0 when every episode ended without an error, 3 when some did (0 with --allow-errors),
    2 when the run could not start or its folder could not be written."""
    from agentclinic.runs.session import resolve_config, run_session

    flags = dict(scenarios=[str(p) for p in scenarios] if scenarios else None, format=format, doctor=doctor,
                 patient=patient, measurement=measurement, judge=judge, patient_bias=patient_bias,
                 doctor_bias=doctor_bias, image_policy=image_policy, cache=str(cache) if cache else None,
                 temperature=temperature, max_tokens=max_tokens, model_seed=model_seed, episodes=episodes, seed=seed,
                 concurrency=concurrency, executor=executor, ray_address=ray_address, workers=workers,
                 gpus_per_worker=gpus_per_worker, max_turns=max_turns, max_tests=max_tests, max_cost=max_cost, weights=weights,
                 split=split, split_seed=split_seed, out=str(out) if out else None, run_id=run_id, only=scenario,
                 kind=kind)
    try:
        resolved, other = resolve_config(flags, config)
        folder, summary = run_session(resolved, out=Path(other["out"] or "runs"), run_id=other["run_id"],
                                      resume=resume, console=console)
    except AgentClinicError as exc:
        _fail(exc)
    table = Table(title=f"run {escape(folder.name)}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, key in (("episodes", "episodes"), ("accuracy (all episodes)", "accuracy"),
                       ("accuracy excluding errors", "accuracy_excluding_errors"), ("correct", "correct"),
                       ("incorrect", "incorrect"), ("no diagnosis", "no_diagnosis"), ("errors", "errors"),
                       ("mean turns", "mean_turns"), ("mean tests", "mean_tests"), ("mean cost (USD)", "mean_cost"),
                       ("mean composite score", "mean_composite"), ("mean tool calls", "mean_tool_calls"), ("relevant tools used", "relevant_tools_used"),
                       ("tool errors", "tool_errors")):
        value = summary.get(key)
        table.add_row(label, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
    for name, count in summary.get("tool_calls", {}).items():
        table.add_row(f"  {escape(name)} calls", str(count))
    console.print(table)
    console.print(f"records: {escape(str(folder / 'episodes.jsonl'))}")
    if resolved.doctor.startswith("human"):  # a person played: show them the stations' feedback
        from agentclinic.conversation.grading import Feedback, feedback_markdown
        from rich.markdown import Markdown

        for line in (folder / "episodes.jsonl").read_text(encoding="utf-8").splitlines():
            if feedback := json.loads(line).get("extra", {}).get("feedback"):
                console.print(Markdown(feedback_markdown(Feedback.model_validate(feedback))))
    failed = summary.get("errors", 0)
    console.print(f"{summary.get('episodes', 0)} episodes, {failed} failed"
                  + (" (exit status 3; --allow-errors: 0)" if failed and not allow_errors else ""), highlight=False)
    if failed and not allow_errors:
        raise typer.Exit(3)


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="run folders (runs/<run-id>); several are compared")],
    html: Annotated[Optional[Path], typer.Option("--html", help="HTML page to write "
                                                 "(default: <first run>/report.html)")] = None,
    no_html: Annotated[bool, typer.Option("--no-html", help="print the tables only")] = False,
) -> None:
    """Print tables for one or more runs and write a self-contained HTML report with plots."""
    from agentclinic.runs.report import load_runs, print_report, run_stats

    try:
        loaded = load_runs(runs)
    except AgentClinicError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    stats = [run_stats(r) for r in loaded]
    print_report(stats, console)
    if not no_html:
        from agentclinic.runs.report_html import write_html

        path = write_html(loaded, stats, html or loaded[0].folder / "report.html")
        console.print(f"report: {escape(str(path))}")


@app.command()
def rescore(
    run_folder: Annotated[Path, typer.Argument(metavar="RUN", help="the run folder to re-grade (runs/<run-id>)")],
    judge: Annotated[Optional[str], typer.Option("--judge", help="judge every primary diagnosis again: scripted "
                                                 "(rules), openai/... or hf/... (default: keep the run's verdicts)")
                     ] = None,
    weights: Annotated[Optional[str], typer.Option(help="score axis weights, e.g. 'diagnosis=0.8,coverage=0.2' "
                                                       "(default: the run's)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="the new run folder (default: RUN-rescored-N "
                                                "beside RUN)")] = None,
    scenarios: Annotated[Optional[list[Path]], typer.Option("--scenarios", help="where the run's scenarios are "
                                                            "(default: the paths in its run.json)")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="replay cache (SQLite) for a model judge")] = None,
    allow_changed_scenarios: Annotated[bool, typer.Option(help="rescore even if scenarios changed since the run "
                                                          "(recorded in run.json)")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="records scored at once")] = 4,
) -> None:
    """Re-grade a recorded run without replaying it (new judge, weights or axes) into a new run folder."""
    from agentclinic.runs.report import load_run, print_report, run_stats
    from agentclinic.runs.rescore import rescore_run

    try:
        folder, _, warnings = rescore_run(
            run_folder, judge=judge, weights=weights, out=out, scenarios=[str(p) for p in scenarios or []] or None,
            cache=str(cache) if cache else None, allow_changed_scenarios=allow_changed_scenarios,
            concurrency=concurrency)
        print_report([run_stats(load_run(folder))], console)
    except AgentClinicError as exc:
        _fail(exc)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    console.print(f"rescored {escape(str(run_folder))} into {escape(str(folder))} (summary.json, episodes.jsonl)")


judge_app = typer.Typer(help="Diagnosis judge tools.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@judge_app.command("audit")
def judge_audit(
    judge: Annotated[str, typer.Option("--judge", help="judge spec: scripted (rules), openai/... or hf/...")
                     ] = "scripted",
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="labelled pairs (default: the bundled "
                                                  "agentclinic/scoring/judge_audit.yaml)")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="replay cache (SQLite) for a model judge")] = None,
    as_json: AsJson = False,
) -> None:
    """Measure a judge against hand-labelled diagnosis pairs: accuracy, Cohen's kappa, disagreements."""
    from agentclinic.agents.llm_factory import make_judge
    from agentclinic.scoring.audit import AUDIT_FILE, audit, load_pairs, print_audit

    try:
        labelled = load_pairs(pairs or AUDIT_FILE)
        result = audit(make_judge(judge, cache=cache), labelled, name="rule" if judge == "scripted" else judge)
    except AgentClinicError as exc:
        _fail(exc)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        print_audit(result, console)


from agentclinic.cli_tools import kb_app, tool_command  # noqa: E402
from agentclinic.tui.command import tui_command  # noqa: E402  (textual is imported when the command runs)

app.add_typer(kb_app, name="kb")
app.command("tool")(tool_command)
app.command("tui")(tui_command)
app.command("grade")(__import__("agentclinic.cli_grade", fromlist=["grade_command"]).grade_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
