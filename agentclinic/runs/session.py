"""A whole run: resolve the config, plan the episodes, play them with a progress bar, summarise."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

from pydantic import Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentclinic.env.gym import scripted_clinic
from agentclinic.env.ledger import Budget
from agentclinic.errors import ConfigError
from agentclinic.runs.runner import run_episodes
from agentclinic.runs.writer import RunWriter
from agentclinic.scenario.loaders import load_scenarios
from agentclinic.scenario.schema import Strict


class RunConfig(Strict):
    """Everything that decides what a run plays (saved in run.json, checked on resume)."""

    scenarios: list[str]
    format: str | None = None
    doctor: str = "scripted"
    episodes: int | None = Field(None, ge=1)
    seed: int = 0
    concurrency: int = Field(1, ge=1)
    max_turns: int = Field(20, ge=1)
    max_tests: int | None = Field(None, ge=0)
    max_cost: float | None = Field(None, ge=0)


def run_session(config: RunConfig, *, out: Path, run_id: str | None = None, resume: bool = False,
                console: Console | None = None) -> tuple[Path, dict]:
    """Play the run described by ``config`` into ``out/run_id``; returns the folder and its summary."""
    from agentclinic.agents.doctors import make_doctor

    if resume and not run_id:
        raise ConfigError("--resume needs the --run-id of the run to continue")
    try:
        make_doctor(config.doctor)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    scenarios = load_scenarios(config.scenarios, format=config.format, skip_errors=True)
    if not scenarios.scenarios:
        raise ConfigError(f"no scenario could be loaded from {', '.join(config.scenarios)}"
                          + (f" (first error: {scenarios.errors[0]})" if scenarios.errors else ""))
    if console and scenarios.errors:
        console.print(f"[yellow]{len(scenarios.errors)} scenario records skipped[/yellow] (first: {scenarios.errors[0]})")
    run_id = run_id or f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{config.doctor}"
    writer = RunWriter(out / run_id)
    episodes = config.episodes or len(scenarios)
    saved = config.model_dump() | {"episodes": episodes, "scenario_ids": scenarios.ids()}
    done = writer.start(saved, resume=resume)
    plan = [(i, scenarios.scenarios[i % len(scenarios)], config.seed + i) for i in range(episodes) if i not in done]
    budget = Budget(turns=config.max_turns, tests=config.max_tests, money=config.max_cost)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=console is None or config.doctor.startswith("human"))
    with progress:
        task = progress.add_task(f"{config.doctor} doctor", total=episodes, completed=len(done))
        asyncio.run(run_episodes(plan, lambda: scripted_clinic(budget), lambda: make_doctor(config.doctor),
                                 writer=writer, run_id=run_id, doctor_name=config.doctor,
                                 concurrency=config.concurrency, on_done=lambda _: progress.advance(task)))
    return writer.folder, writer.write_summary()
