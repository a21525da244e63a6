"""What a run saves: one event per turn and one record per episode."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Outcome = Literal["correct", "incorrect", "no-diagnosis", "error"]


class Event(BaseModel):
    """One turn: what the doctor said, how it was read, and what came back."""

    turn: int
    doctor: str | dict | None  # the raw doctor output (text or action as JSON)
    action: dict | None = None  # the parsed action, None when it did not parse
    observation: str
    disclosed: list[str] = Field(default_factory=list)
    findings: list[dict] = Field(default_factory=list)
    images: list[dict] = Field(default_factory=list)
    tool: dict | None = None  # name, arguments, text, data, images, seconds, error, invalid_arguments
    model_calls: list[dict] = Field(default_factory=list)  # every model call this turn (doctor's included)
    error: str | None = None
    ledger: dict = Field(default_factory=dict)
    env_ms: float = 0.0
    doctor_ms: float = 0.0


class EpisodeRecord(BaseModel):
    """One complete episode, appended to ``episodes.jsonl`` as one line."""

    run_id: str
    episode: int
    scenario_id: str
    specialty: str | None = None
    seed: int | None = None
    doctor: str
    outcome: Outcome
    truncated_by: str | None = None
    diagnosis: str | None = None
    differential: list[str] = Field(default_factory=list)
    verdict: dict | None = None
    reward: float = 0.0
    correct: bool = False
    turns: int = 0
    tests: int = 0
    tool_calls: int = 0
    cost: float = 0.0
    disclosed: list[tuple[int, str]] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    started_at: str | None = None
    seconds: float = 0.0
    doctor_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    error: str | None = None
    tool_metrics: dict[str, Any] = Field(default_factory=dict)  # calls per tool, invalid arguments, errors, ...
    scores: dict[str, Any] = Field(default_factory=dict)  # diagnosis verdicts, dialogue axes, composite reward
    patient_ratings: dict[str, Any] | None = None  # simulated patient-reported ratings (LLM patients)
    extra: dict[str, Any] = Field(default_factory=dict)
