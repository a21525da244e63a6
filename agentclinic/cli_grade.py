"""``agentclinic grade``: grade a conversation transcript against a station's rubrics.

The transcript is a JSON list of ``{"role", "text"}`` or the Markdown the TUI exports
(``agentclinic.conversation.transcript``). Exit status: 0 graded, 2 for bad input (an unknown station, a
diagnostic case, an unreadable or malformed transcript, a bad judge spec).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

from agentclinic.errors import AgentClinicError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def grade_command(
    scenario: Annotated[str, typer.Option("--scenario", help="the station's id, e.g. conversation-lung-cancer-news")],
    transcript: Annotated[Path, typer.Option("--transcript", help="JSON list of {role, text}, or the TUI's "
                                                                  "Markdown export (**Clinician:** / **Patient:**)")],
    judge: Annotated[Optional[str], typer.Option("--judge", help="grade with a model too: openai/<model>[@<url>] "
                                                                 "or hf/<path> (the rule grading is kept beside it)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the feedback as JSON (items with evidence, score)")] = False,
    scenarios: Annotated[Optional[list[Path]], typer.Option("--scenarios", help="where to find the station "
                                                            "(default: the bank)")] = None,
) -> None:
    """Grade a conversation transcript against a station's rubrics (SPIKES, NURSE, Calgary-Cambridge)."""
    try:
        feedback = grade_file(scenario, transcript, judge=judge, scenarios=scenarios)
    except AgentClinicError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(feedback.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    from agentclinic.conversation.grading import feedback_markdown

    console.print(Markdown(feedback_markdown(feedback)))


def grade_file(scenario_id: str, transcript: Path, *, judge: str | None = None, scenarios: list[Path] | None = None):
    """The ``Feedback`` on a transcript file for a station of the bank (or of ``scenarios``)."""
    from agentclinic.agents.embeddings import default_embedder
    from agentclinic.conversation.grading import grade, grade_with_model
    from agentclinic.conversation.tracker import replay
    from agentclinic.conversation.transcript import read_transcript
    from agentclinic.scenario.loaders import BANK_DIR, load_scenarios, scenario_files

    where = scenarios or [BANK_DIR]
    station = None
    for root in map(Path, where):  # only files that name the id are read (the bank has many cases)
        files = [f for f in scenario_files(root) if scenario_id in f.read_text(encoding="utf-8", errors="replace")]
        station = station or next((s for s in load_scenarios(files, skip_errors=True) if s.id == scenario_id), None)
    if station is None:
        raise AgentClinicError(f"no scenario {scenario_id!r} under {', '.join(map(str, where))} "
                               "(agentclinic scenarios list shows the ids)")
    if not station.is_station:
        raise AgentClinicError(f"{scenario_id!r} is a diagnostic case: grade transcripts of conversation stations")
    lines = read_transcript(transcript)
    tracker = replay(station, lines, default_embedder())
    if not judge or judge == "scripted":
        return grade(station, tracker)
    from agentclinic.agents.llm_factory import parse_role_spec, role_model

    parsed = parse_role_spec("judge", judge)
    model = role_model(parsed.model, None)
    return asyncio.run(grade_with_model(station, tracker, model))
