"""What the environment expects of each agent role (Protocols) and what they return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from agentclinic.scenario.schema import Scenario

if TYPE_CHECKING:
    from agentclinic.env.actions import Action

MatchLevel = Literal["exact", "synonym", "broader", "narrower", "wrong", "none"]


class PatientReply(BaseModel):
    """What the patient said, and which facts (ids) that reply disclosed."""

    text: str
    disclosed: list[str] = Field(default_factory=list)


class Finding(BaseModel):
    """One measurement answer: a test or examination result, exactly as the case holds it."""

    request: str
    name: str | None = None  # the canonical name matched, None when not available
    result: str
    available: bool = True
    price_code: str | None = None
    group: str | None = None


class Verdict(BaseModel):
    """The judge's verdict on a diagnosis."""

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
