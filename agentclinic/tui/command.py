"""``agentclinic tui``: the command body (textual is imported only when the command runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from agentclinic.errors import AgentClinicError


def tui_command(
    scenarios: Annotated[Optional[list[Path]], typer.Option("--scenarios", help="scenario files or folders "
                                                            "(default: the bank, stations included)")] = None,
    out: Annotated[Path, typer.Option(help="folder that holds runs")] = Path("runs"),
    run_id: Annotated[Optional[str], typer.Option(help="run folder name (default: tui-<time>)")] = None,
    patient: Annotated[str, typer.Option(help="the person: scripted (offline) or openai/<model>[@<url>], "
                                              "hf/<path>")] = "scripted",
    judge: Annotated[Optional[str], typer.Option(help="a model grader (openai/..., hf/...); the rule grading is "
                                                      "always kept")] = None,
    instructor: Annotated[bool, typer.Option("--instructor", help="instructor mode: the person's state on "
                                             "screen, Ctrl+T takes over the next reply")] = False,
    play_patient: Annotated[bool, typer.Option("--play-patient", help="instructor writes every reply of the "
                                               "person (with --instructor)")] = False,
    doctor: Annotated[str, typer.Option(help="with --instructor: a model doctor (openai/..., hf/...) the "
                                             "instructor plays the patient against")] = "human",
    show_emotion: Annotated[Optional[bool], typer.Option("--show-emotion/--hide-emotion", help="show the "
                                                         "person's emotional state (default: in instructor "
                                                         "mode only)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the first session (each next one adds 1)")] = 0,
    max_turns: Annotated[Optional[int], typer.Option(help="turn budget of diagnostic cases (stations use "
                                                          "their own)")] = None,
) -> None:
    """Practise consultations and difficult conversations in the terminal, then read the debrief.

    Every session is an episode in OUT/RUN_ID/ (``agentclinic report`` reads it)."""
    from agentclinic.tui.app import make_app

    err = Console(stderr=True, soft_wrap=True)
    try:
        app = make_app(scenarios, out=out, run_id=run_id, patient=patient, judge=judge, doctor=doctor,
                       instructor=instructor, play_patient=play_patient, show_emotion=show_emotion, seed=seed,
                       max_turns=max_turns)
    except AgentClinicError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    message = app.run()
    unfinished = [s for s in app.sessions if not s.finished and s.episode >= 0]
    if unfinished:  # the app closed under a session (a lost terminal): end, grade and record it
        import asyncio

        for session in unfinished:
            asyncio.run(session.end())
        app.recorder.close()
    if message:
        Console(soft_wrap=True).print(escape(str(message)), highlight=False)
    if app.sessions:
        finished = [s for s in app.sessions if s.finished]
        Console(soft_wrap=True).print(f"{len(finished)} session(s) recorded in {escape(str(app.recorder.folder))}",
                                      highlight=False)
