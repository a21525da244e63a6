"""A station played in the TUI: the clinic, the learner's clock, and the run folder it is recorded in.

Nothing here imports textual: the screens drive a ``TuiSession``, and so can the tests. Every
session ends the same way (the learner ends it, the budget runs out, Ctrl+C / Ctrl+D, an agent
fails): the clinic closes and grades the episode, and its record is appended to ``runs/<id>/``
by the run writer (locked, ``run.json``, ``summary.json``), so ``agentclinic report`` reads it.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentclinic.agents.emotional_patient import SPEAKERS as SPEAKER_LABELS
from agentclinic.env.clinic import Clinic, StepResult
from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.writer import RunFolderError, RunWriter, check_run_id
from agentclinic.scenario.schema import Scenario

SPEAKERS = tuple(SPEAKER_LABELS.values())
"""Observation prefixes that are a person speaking (the rest are the clinic's: examination, results...)."""

Clock = Callable[[], float]


def situation_of(scenario: Scenario) -> str | None:
    """A station's situation slug (e.g. 'breaking-bad-news'); None for a diagnostic case."""
    return scenario.conversation.situation if scenario.conversation is not None else None


@dataclass
class Line:
    """One utterance or result in the chat pane."""

    role: str  # clinician | patient | relative | interpreter | clinic | note
    text: str
    turn: int
    instructor: bool = False  # the instructor wrote this patient reply


def observation_lines(observation: str, turn: int) -> list[Line]:
    """The clinic's reply as chat lines: 'Patient: ...' is the person speaking, the rest is the clinic."""
    head, colon, rest = observation.partition(":")
    if colon and head in SPEAKERS:
        return [Line(head.lower(), rest.strip(), turn)]
    return [Line("clinic", observation.strip(), turn)]


class RunRecorder:
    """The app's run folder ``out/run_id``: created and locked at the first episode, held until ``close``."""

    def __init__(self, out: str | Path, run_id: str | None, config: dict[str, Any]):
        self.run_id = check_run_id(run_id) if run_id else f"tui-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        self.writer = RunWriter(Path(out) / self.run_id)
        self.config = config
        self.episodes = 0
        self._open = False

    @property
    def folder(self) -> Path:
        return self.writer.folder

    def open(self) -> None:
        """Create and lock the run folder (a folder that already holds a run is refused, naming it)."""
        if not self._open:
            self.writer.start(self.config, resume=False)
            self._open = True

    def next_episode(self) -> int:
        self.open()
        number = self.episodes
        self.episodes += 1
        return number

    def append(self, record: EpisodeRecord) -> None:
        """Append a finished episode and refresh ``summary.json``."""
        self.open()
        self.writer.append(record)
        self.writer.write_summary()

    def artifacts(self, episode: int) -> Path:
        return self.folder / "artifacts" / f"episode-{episode:05d}"

    def save_draft(self, episode: int, name: str, text: str) -> Path:
        """Write ``text`` to the episode's artifacts folder (atomically); returns the path."""
        folder = self.artifacts(episode)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise RunFolderError(f"cannot save {folder / name}: {exc.strerror or exc}") from exc
        return path

    def close(self) -> None:
        self.writer.close()


@dataclass
class TuiSession:
    """One station in play. ``start``, then ``send`` the learner's words (or actions), then ``end``."""

    scenario: Scenario
    clinic: Clinic
    recorder: RunRecorder
    seed: int = 0
    doctor: str = "human:tui"
    clock: Clock = time.monotonic
    notes: str = ""
    lines: list[Line] = field(default_factory=list)
    brief: str = ""
    record: EpisodeRecord | None = None  # the finished record, once ended
    error: str | None = None  # why the record could not be saved, or why the episode failed
    episode: int = -1
    _started: float = 0.0
    _paused_at: float | None = None
    _paused_total: float = 0.0
    _started_at: str = ""
    _instructor_turns: list[int] = field(default_factory=list)
    _take_over: str | None = None

    # -- the clock ---------------------------------------------------------------------------------

    def start(self) -> str:
        """Open the episode (the run folder too, at the first one); returns the learner's brief."""
        self.episode = self.recorder.next_episode()
        self.brief, _ = self.clinic.reset(self.scenario, self.seed, out_dir=self.recorder.artifacts(self.episode))
        self._started, self._started_at = self.clock(), datetime.now(timezone.utc).isoformat(timespec="seconds")
        return self.brief

    @property
    def kind(self) -> str:
        return self.scenario.kind

    @property
    def finished(self) -> bool:
        return self.record is not None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self.clock()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._paused_total += self.clock() - self._paused_at
            self._paused_at = None

    def elapsed(self) -> float:
        """Seconds played, pauses excluded."""
        now = self._paused_at if self._paused_at is not None else self.clock()
        return max(0.0, now - self._started - self._paused_total)

    @property
    def minutes(self) -> float | None:
        """The station's time budget in minutes (None: no time limit)."""
        conversation = self.scenario.conversation
        return conversation.budget.minutes if conversation is not None else None

    @property
    def time_up(self) -> bool:
        return self.minutes is not None and self.elapsed() >= self.minutes * 60

    @property
    def turn(self) -> int:
        return self.clinic.ledger.turns

    @property
    def max_turns(self) -> int | None:
        """This episode's turn budget (a station's own, or the diagnostic cases')."""
        return self.clinic.record.max_turns

    def emotion(self) -> dict[str, int] | None:
        """The person's emotional state after the last turn (the station's start before any), or None."""
        for event in reversed(self.clinic.record.events):
            if event.emotion:
                return dict(event.emotion)
        conversation = self.scenario.conversation
        return conversation.emotion.start.model_dump() if conversation is not None else None

    # -- playing -----------------------------------------------------------------------------------

    def take_over(self, reply: str) -> None:
        """The instructor writes the person's next reply (the state machine still runs)."""
        self._take_over = reply

    async def send(self, message: Any, shown: str | None = None) -> StepResult | None:
        """Play one turn: the learner's words (text) or an action (a dict). Returns the step, or None when
        the episode failed (an agent raised: it is recorded as an error and ended)."""
        if self.finished:
            raise RuntimeError("the session is over")
        turn = self.turn + 1
        self.lines.append(Line("clinician", shown or (message if isinstance(message, str) else str(message)), turn))
        instructor = self._take_over is not None
        try:
            if instructor:
                self.clinic.set_next_patient_reply(self._take_over)
                self._instructor_turns.append(turn)
            self._take_over = None
            result = await self.clinic.step(message)
        except Exception as exc:  # noqa: BLE001 - an agent failed: the episode is recorded as an error
            self.error = f"{type(exc).__name__}: {exc}"
            await self.clinic.fail(f"{self.error}\n{traceback.format_exc(limit=5)}")
            await self._finish()
            return None
        for line in observation_lines(result.observation, turn):
            line.instructor = instructor and line.role != "clinic"
            self.lines.append(line)
        if result.terminated or result.truncated:
            await self._finish()
        return result

    async def end(self, reason: str | None = None) -> EpisodeRecord:
        """End the session (the learner, the clock, Ctrl+C / Ctrl+D): graded and recorded. Idempotent."""
        if self.record is None:
            if not self.clinic.done:
                try:
                    await self.clinic.end(reason=reason)
                except Exception as exc:  # noqa: BLE001 - grading failed: still recorded, as an error
                    self.error = f"{type(exc).__name__}: {exc}"
                    await self.clinic.fail(f"{self.error}\n{traceback.format_exc(limit=5)}")
            await self._finish()
        return self.record

    async def _finish(self) -> None:
        """The finished record, with what only the TUI knows, appended to the run folder."""
        clinic = self.clinic
        if clinic.record.outcome != "error":
            await clinic.rate()
        extra = dict(clinic.record.extra) | {"interface": "tui", "notes": self.notes,
                                             "elapsed_s": round(self.elapsed(), 1)}
        if self._instructor_turns:
            extra["instructor_turns"] = list(self._instructor_turns)
        self.record = clinic.record.model_copy(update=dict(
            run_id=self.recorder.run_id, episode=self.episode, doctor=self.doctor, started_at=self._started_at,
            seconds=round(self.elapsed(), 4), extra=extra))
        try:
            self.recorder.append(self.record)
        except RunFolderError as exc:  # the writer saved it to a fallback file and says where
            self.error = str(exc)

    def save(self) -> Path:
        """Save the session so far (transcript and notes) to the episode's artifacts; returns the file."""
        from agentclinic.tui.export import session_markdown

        return self.recorder.save_draft(self.episode, "session-draft.md", session_markdown(self))

    def feedback(self) -> dict | None:
        """The station's feedback (``Feedback.model_dump()``), once ended; None for a diagnostic case."""
        return self.record.extra.get("feedback") if self.record is not None else None
