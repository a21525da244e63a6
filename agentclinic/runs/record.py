"""What a run saves: one typed event per turn and one typed record per episode.

The clinic owns the record of the episode it plays and appends to it (events, tool calls,
findings, the verdict, the scores); everything else (the runner, scoring, the report,
``rescore``) reads the record and nothing else. Records written by older versions, whose scores,
verdicts, tool calls and findings were plain dicts of the same shape, still load.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentclinic.agents.base import Finding, MatchLevel, Verdict

Outcome = Literal["correct", "incorrect", "no-diagnosis", "error", "completed", "ended-by-budget"]
"""A diagnostic case ends correct, incorrect or with no diagnosis; a conversation station ends "completed" (the
learner closed it) or "ended-by-budget" (its turn or time budget ran out); either kind may end in an error."""


class Saved(BaseModel):
    """Base of the saved models: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class ToolCall(Saved):
    """One expert-tool call: what was asked, and the result or the error."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    text: str | None = None  # what the doctor was told
    data: dict[str, Any] | None = None  # the structured result
    images: list[str] = Field(default_factory=list)  # paths of the files the tool wrote (overlays, masks)
    seconds: float | None = None
    error: str | None = None
    invalid_arguments: bool = False  # an unknown tool or arguments that did not validate (not charged)


class Event(Saved):
    """One turn: what the doctor said, how it was read, and what came back."""

    turn: int
    doctor: Any = None  # the raw doctor output (text, or the action as JSON)
    action: dict[str, Any] | None = None  # the parsed action, None when it did not parse
    observation: str
    disclosed: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    images: list[dict[str, Any]] = Field(default_factory=list)
    tool: ToolCall | None = None
    model_calls: list[dict[str, Any]] = Field(default_factory=list)  # every model call this turn (doctor's included)
    fallback: str | None = None  # why the doctor's fallback, not its model, chose this action (None: it did not)
    error: str | None = None
    moves: list[str] = Field(default_factory=list)  # a station: the learner moves recognised this turn
    emotion: dict[str, int] | None = None  # a station: the person's state after this turn (distress, anger, ...)
    ledger: dict[str, Any] = Field(default_factory=dict)
    env_ms: float = 0.0
    doctor_ms: float = 0.0

    @property
    def kind(self) -> str | None:
        """The parsed action's type ('ask', 'examine', 'order_tests', ...), None when it did not parse."""
        return self.action.get("type") if self.action else None


class RankedDiagnosis(Saved):
    """One item of the doctor's primary + differential, judged."""

    rank: int
    name: str
    level: MatchLevel
    correct: bool
    judge: str
    rule_level: MatchLevel | None = None


class DiagnosisScores(Saved):
    """Top-1 and top-k: the primary's verdict as recorded, each further item by the rule judge."""

    level: MatchLevel = "none"
    correct: bool = False
    judge: str | None = None
    rule_level: MatchLevel | None = None
    verdict: Verdict | None = None
    ranked: list[RankedDiagnosis] = Field(default_factory=list)
    best_level: MatchLevel = "none"
    first_correct_rank: int | None = None
    top_k: dict[str, bool] = Field(default_factory=dict)  # {"top1": ..., "top3": ..., "top5": ...}


class Scores(Saved):
    """Every axis (value in [0, 1], None where the case leaves it undefined), its evidence, the composite."""

    diagnosis: DiagnosisScores = Field(default_factory=DiagnosisScores)
    axes: dict[str, float | None] = Field(default_factory=dict)
    details: dict[str, dict[str, Any]] = Field(default_factory=dict)
    composite: float = 0.0
    weights: dict[str, float] = Field(default_factory=dict)
    note: str | None = None  # why the composite is what it is, when a rule set it (no diagnosis: 0)


class EpisodeRecord(Saved):
    """One complete episode, appended to ``episodes.jsonl`` as one line.

    ``outcome`` is None only while the episode is being played. ``max_turns`` and ``price_table``
    are what the scorers need beyond the events (the turn budget for efficiency, the prices used).
    """

    run_id: str = ""
    episode: int = 0
    scenario_id: str
    kind: Literal["diagnostic", "conversation"] = "diagnostic"  # the scenario's: stations have no diagnosis
    scenario_hash: str | None = None  # of the scenario as played (rescoring checks it is unchanged)
    specialty: str | None = None
    seed: int | None = None
    doctor: str = ""
    outcome: Outcome | None = None
    truncated_by: str | None = None
    diagnosis: str | None = None
    differential: list[str] = Field(default_factory=list)
    verdict: Verdict | None = None
    reward: float = 0.0
    correct: bool = False
    turns: int = 0
    tests: int = 0
    tool_calls: int = 0
    cost: float = 0.0
    max_turns: int | None = None
    price_table: str | None = None
    embedder: str | None = None  # the sentence embedder the environment's agents used: name@version, or "lexical"
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
    scores: Scores | None = None  # diagnosis verdicts, dialogue axes, composite reward
    patient_ratings: dict[str, Any] | None = None  # simulated patient-reported ratings (LLM patients)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _kind_of_older_records(cls, data: Any) -> Any:
        """Records written before ``kind`` was recorded: a station's ends as completed or by its budget."""
        if isinstance(data, dict) and "kind" not in data and (
                data.get("outcome") in ("completed", "ended-by-budget") or "feedback" in (data.get("extra") or {})):
            data = {**data, "kind": "conversation"}
        return data

    @field_validator("scores", mode="before")
    @classmethod
    def _no_scores(cls, value: Any) -> Any:
        return None if value == {} else value  # older records wrote {} for "not scored"

    # -- what the doctor did (the scorers' view) ------------------------------------------------

    @property
    def diagnosed(self) -> bool:
        """Whether the episode ended in a diagnosis (an error or a budget cut-off did not)."""
        return bool(self.diagnosis) and self.verdict is not None and self.outcome in ("correct", "incorrect")

    @property
    def fallbacks(self) -> int:
        """Turns whose action the doctor's fallback chose."""
        return sum(e.fallback is not None for e in self.events)

    def actions(self, kind: str) -> list[tuple[Event, dict[str, Any]]]:
        """(event, parsed action) for every action of type ``kind`` ('ask', 'examine', 'order_tests', ...)."""
        return [(e, e.action) for e in self.events if e.action and e.action.get("type") == kind]

    def utterances(self) -> list[tuple[int, str]]:
        """(turn, text) of everything the doctor said to the patient."""
        return [(e.turn, str(a.get("text") or "")) for e, a in self.actions("ask") if a.get("text")]

    def first_disclosure(self) -> dict[str, int]:
        """Fact id -> the turn it was first disclosed."""
        first: dict[str, int] = {}
        for turn, fact_id in self.disclosed:
            first.setdefault(fact_id, turn)
        return first
