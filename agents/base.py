"""What the environment expects of each agent role (Protocols) and what they return."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agentclinic.scenario.schema import Scenario

if TYPE_CHECKING:
    from agentclinic.env.actions import Action

# The one table of diagnosis match levels: best first. The order is the precedence (a judge that finds
# several readings keeps the first) and follows the credit (the diagnosis axis; docs/scoring.md): a
# narrower reading (the right disease, too specific) beats a broader one (a category that contains it).
MatchLevel = Literal["exact", "synonym", "narrower", "broader", "wrong", "none"]
LEVEL_CREDIT: dict[str, float] = {"exact": 1.0, "synonym": 1.0, "narrower": 0.5, "broader": 0.25, "wrong": 0.0,
                                  "none": 0.0}
LEVELS: tuple[str, ...] = tuple(LEVEL_CREDIT)
LEVEL_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}
CORRECT_LEVELS = frozenset({"exact", "synonym"})

# The reasons a doctor chose an action by its own fallback rather than by its model, this turn
# (``note_fallback``); the runner collects them around ``Doctor.act`` into ``Event.fallback``.
FALLBACK_LOG: ContextVar[list[str] | None] = ContextVar("agentclinic_fallback_log", default=None)


def note_fallback(reason: str) -> None:
    """Say that this turn's action comes from the doctor's fallback (recorded in the event, counted in the summary)."""
    log = FALLBACK_LOG.get()
    if log is not None:
        log.append(reason)


class PatientReply(BaseModel):
    """What the patient said, and which facts (ids) that reply disclosed."""

    text: str
    disclosed: list[str] = Field(default_factory=list)
    conversation: dict | None = None  # a station's patient: the moves recognised and the state (emotional_patient)


class Finding(BaseModel):
    """One measurement answer: a test or examination result, exactly as the case holds it."""

    model_config = ConfigDict(extra="forbid")

    request: str
    name: str | None = None  # the canonical name matched, None when not available
    result: str
    available: bool = True
    price_code: str | None = None
    group: str | None = None
    case_result: str | None = None  # the case's exact text, when a model phrased ``result``


class Verdict(BaseModel):
    """The judge's verdict on a diagnosis."""

    model_config = ConfigDict(extra="forbid")

    level: MatchLevel
    correct: bool
    matched: str | None = None  # the name or code it matched
    rationale: str
    score: float | None = None  # similarity, when used
    rule_level: MatchLevel | None = None  # the rule judge's level, kept beside a model judge's verdict
    judge: str | None = None  # who decided: a model name, or "rule" (also when a model reply was not understood)


class Patient(Protocol):
    """Answers the doctor in the first person; records what it disclosed."""

    def reset(self, scenario: Scenario, seed: int | None = None) -> None: ...
    async def reply(self, message: str, turn: int) -> PatientReply: ...


class Measurement(Protocol):
    """Reports examination findings and test results from the case, never inventing them."""

    def reset(self, scenario: Scenario, seed: int | None = None) -> None: ...
    async def examine(self, system: str | None) -> list[Finding]: ...
    async def order(self, test: str) -> Finding: ...


class Judge(Protocol):
    """Decides how a proposed diagnosis matches the case's diagnosis."""

    async def judge(self, proposed: str, scenario: Scenario) -> Verdict: ...


@runtime_checkable
class Doctor(Protocol):
    """Any policy from observations to actions (an Action, or text the parser reads).

    ``images`` are the images that came back with this observation (or with the brief, under the
    'upfront' image policy): dicts with ``id``, ``modality``, ``path`` (local file, or None) and
    ``available``. Doctors that cannot see images accept and ignore them.
    """

    def reset(self, brief: str, seed: int | None = None) -> None: ...
    async def act(self, observation: str, images: list[dict] | None = None) -> Action | str | dict: ...
