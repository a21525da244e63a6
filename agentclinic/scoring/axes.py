"""The one registry of scoring axes: name, function, default weight, description (and a model grader).

An axis function maps a ``ScoringContext`` (the scenario, the episode record, the price table and
the rule judge) to an ``AxisScore``: a value in [0, 1], or None where the case leaves the axis
undefined, with its evidence. It is pure: it reads the record and nothing else. An axis may also
have a ``grader``, an async function that grades it with a model when one is configured
(communication); without a model, its function grades it.

Adding an axis is one call: ``register_axis(Axis("name", function, weight, "description"))``;
scores, weights, the summary and the report then carry it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentclinic.errors import ConfigError
from agentclinic.runs.record import DiagnosisScores, EpisodeRecord
from agentclinic.scenario.prices import PriceTable
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring import dialogue, rubric
from agentclinic.scoring.diagnosis import diagnosis_scores, diagnosis_value, differential_value
from agentclinic.scoring.dialogue import AxisScore


@dataclass
class ScoringContext:
    """What an axis function reads: the scenario, the record, the prices, and the rule judge that judges
    the differential. ``diagnosis`` (top-1 and top-k) is computed once, on first use."""

    scenario: Scenario
    record: EpisodeRecord
    prices: PriceTable
    judge: Any = None
    graded: dict[str, AxisScore] = field(default_factory=dict)  # axes a model graded (``rewards.grade``)
    _diagnosis: DiagnosisScores | None = field(default=None, repr=False)
    _feedback: Any = field(default=None, repr=False)

    @property
    def diagnosis(self) -> DiagnosisScores:
        """Top-1 and top-k (empty for a conversation station, which has no diagnosis)."""
        if self._diagnosis is None:
            self._diagnosis = (DiagnosisScores() if self.scenario.is_station
                               else diagnosis_scores(self.scenario, self.record, self.judge))
        return self._diagnosis

    @property
    def station(self) -> bool:
        return self.scenario.is_station

    @property
    def feedback(self):
        """A station's ``Feedback`` (agentclinic.conversation.grading): the model's when one graded it, else
        the rules' over the record's conversation; computed once."""
        if self._feedback is None:
            from agentclinic.conversation.grading import Feedback, grade_transcript
            from agentclinic.conversation.transcript import record_lines

            model = (self.graded.get("conversation") or AxisScore(None)).details.get("feedback")
            if model is not None:
                self._feedback = Feedback.model_validate(model)
            else:
                from agentclinic.agents.embeddings import default_embedder

                self._feedback = grade_transcript(self.scenario, record_lines(self.record), default_embedder())
        return self._feedback


AxisFunction = Callable[[ScoringContext], AxisScore]
AxisGrader = Callable[[ScoringContext, Any, Any], Awaitable[AxisScore]]  # (context, model, settings)


@dataclass(frozen=True)
class Axis:
    """One scoring axis: its function, its default weight in the composite, what it measures, and
    optionally a grader that uses a model (given the model and its decoding settings)."""

    name: str
    function: AxisFunction
    weight: float
    description: str
    grader: AxisGrader | None = None
    kinds: tuple[str, ...] = ("diagnostic",)  # the scenario kinds it is defined for (None for the others)


AXES: dict[str, Axis] = {}  # in registration order; the order of scores, weights and tables


def register_axis(axis: Axis) -> Axis:
    """Add an axis; a ``ConfigError`` when its name is taken or malformed, or its weight is not a finite
    non-negative number."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", axis.name):
        raise ConfigError(f"axis name {axis.name!r}: use lower-case letters, digits and '_'")
    if axis.name in AXES:
        raise ConfigError(f"an axis named {axis.name!r} is already registered")
    if not (isinstance(axis.weight, (int, float)) and math.isfinite(axis.weight) and axis.weight >= 0):
        raise ConfigError(f"axis {axis.name!r}: the default weight must be a finite number >= 0, got {axis.weight!r}")
    AXES[axis.name] = axis
    return axis


def unregister_axis(name: str) -> None:
    """Remove an axis (for plugins and tests); unknown names are ignored."""
    AXES.pop(name, None)


def default_weights() -> dict[str, float]:
    """Each registered axis's default weight."""
    return {name: axis.weight for name, axis in AXES.items()}


def _dialogue(function: Callable[[Scenario, EpisodeRecord], AxisScore]) -> AxisFunction:
    return lambda c: function(c.scenario, c.record)


async def _grade_communication(context: ScoringContext, model: Any, settings: Any) -> AxisScore:
    return await rubric.grade_with_model(context.record, model, settings)


for _axis in (
    Axis("diagnosis", lambda c: AxisScore(diagnosis_value(c.diagnosis)), 0.6,
         "credit of the primary diagnosis's match level: exact or synonym 1, narrower 0.5, broader 0.25, "
         "wrong 0; 0 without a diagnosis (never given, budget cut-off, error)"),
    Axis("differential", lambda c: AxisScore(differential_value(c.diagnosis)), 0.05,
         "1 / rank of the first correct item of primary + differential (top 5), else 0"),
    Axis("coverage", _dialogue(dialogue.coverage), 0.1,
         "important facts disclosed / important facts the patient can say"),
    Axis("history", _dialogue(dialogue.history), 0.05,
         "parts of the history (HPI, past, medications, allergies, social, family, systems) asked or elicited"),
    Axis("examination", _dialogue(dialogue.examination), 0.025,
         "abnormal examination findings seen / abnormal findings in the case"),
    Axis("tests", _dialogue(dialogue.tests), 0.05, "F1 of the relevant tests ordered"),
    Axis("cost", lambda c: dialogue.cost(c.scenario, c.record, c.prices), 0.025,
         "1 within the cost of the relevant tests, then reference / spent"),
    Axis("efficiency", _dialogue(dialogue.efficiency), 0.025,
         "1 - (turns - 1) / (budget - 1) for a diagnosis; 0 without one"),
    Axis("communication", lambda c: rubric.heuristic(c.record), 0.025,
         "communication and empathy rubric (six items; a model grades it when one is configured)",
         grader=_grade_communication),
    Axis("safety", _dialogue(dialogue.safety), 0.05,
         "red flags covered / red flags, minus 0.5 per harmful test ordered"),
):
    register_axis(_axis)


# -- conversation stations (agentclinic.conversation.grading) ------------------------------------------------


def _rubric_axis(rubric_id: str) -> AxisFunction:
    def value(c: ScoringContext) -> AxisScore:
        if not c.station:
            return AxisScore(None)
        feedback = c.feedback
        if rubric_id not in feedback.rubrics:
            return AxisScore(None, {"note": f"the station is not graded on {rubric_id}"})
        items = [i.model_dump() for i in feedback.items if i.rubric == rubric_id]
        return AxisScore(feedback.rubrics[rubric_id], {"method": feedback.method, "items": items})
    return value


def _red_lines(c: ScoringContext) -> AxisScore:
    if not c.station:
        return AxisScore(None)
    feedback = c.feedback
    listed = len(c.scenario.conversation.red_lines)
    if not listed:
        return AxisScore(None, {"note": "the station lists no red lines"})
    return AxisScore(round(1 - len(feedback.red_lines) / listed, 4),
                     {"crossed": [h.model_dump() for h in feedback.red_lines], "listed": listed})


def _conversation(c: ScoringContext) -> AxisScore:
    if not c.station:
        return AxisScore(None)
    feedback = c.feedback
    return AxisScore(feedback.score, {"method": feedback.method, "feedback": feedback.model_dump(mode="json")})


async def _grade_conversation(context: ScoringContext, model: Any, settings: Any) -> AxisScore:
    from agentclinic.agents.embeddings import default_embedder
    from agentclinic.conversation.grading import grade_with_model
    from agentclinic.conversation.tracker import replay
    from agentclinic.conversation.transcript import record_lines

    tracker = replay(context.scenario, record_lines(context.record), default_embedder())
    feedback = await grade_with_model(context.scenario, tracker, model, settings)
    return AxisScore(feedback.score, {"method": feedback.method, "feedback": feedback.model_dump(mode="json")})


for _axis in (
    Axis("spikes", _rubric_axis("spikes"), 0.15, "SPIKES items met (breaking bad news; order and context checked)",
         kinds=("conversation",)),
    Axis("nurse", _rubric_axis("nurse"), 0.15, "NURSE empathy items met, each only in response to a cue",
         kinds=("conversation",)),
    Axis("calgary_cambridge", _rubric_axis("calgary-cambridge"), 0.15, "Calgary-Cambridge consultation items met",
         kinds=("conversation",)),
    Axis("red_lines", _red_lines, 0.15, "1 - red lines crossed / red lines the station lists", kinds=("conversation",)),
    Axis("conversation", _conversation, 0.4, "overall conversation feedback score (rubrics, information delivered, "
         "penalties); a model grades it when a judge is configured", grader=_grade_conversation,
         kinds=("conversation",)),
):
    register_axis(_axis)
