"""Every axis as a reward function, the weighted composite, and the scoring of a whole episode.

A reward function maps ``(scenario, episode state)`` to a value in [0, 1], or None where the axis
is undefined for the case. The composite is the weighted mean over the axes that are defined
(weights from ``ScoreWeights``; diagnosis dominates by default). ``score_episode`` returns every
axis with its evidence, which is what ``EpisodeRecord.scores`` and the env's final ``info`` hold.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentclinic.errors import ConfigError
from agentclinic.scenario.prices import PriceTable
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring import dialogue, rubric
from agentclinic.scoring.diagnosis import LEVEL_CREDIT, diagnosis_scores, diagnosis_value, differential_value
from agentclinic.scoring.dialogue import AxisScore
from agentclinic.scoring.state import EpisodeState

AXES: tuple[str, ...] = ("diagnosis", "differential", "coverage", "history", "examination", "tests", "cost",
                         "efficiency", "communication", "safety")
DEFAULT_WEIGHTS: dict[str, float] = {"diagnosis": 0.6, "differential": 0.05, "coverage": 0.1, "history": 0.05,
                                     "examination": 0.025, "tests": 0.05, "cost": 0.025, "efficiency": 0.025,
                                     "communication": 0.025, "safety": 0.05}


class ScoreWeights(BaseModel):
    """Weights of the axes in the composite reward; non-negative, at least one positive.

    Given no weights, the defaults apply (``DEFAULT_WEIGHTS``, summing to 1). Given some, they are the
    whole set: an axis left out weighs 0 (``ScoreWeights(diagnosis=1)`` rewards the diagnosis only).
    Weights need not sum to 1: the composite divides by the weights of the axes that are defined.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    diagnosis: float = Field(DEFAULT_WEIGHTS["diagnosis"], ge=0, allow_inf_nan=False)
    differential: float = Field(DEFAULT_WEIGHTS["differential"], ge=0, allow_inf_nan=False)
    coverage: float = Field(DEFAULT_WEIGHTS["coverage"], ge=0, allow_inf_nan=False)
    history: float = Field(DEFAULT_WEIGHTS["history"], ge=0, allow_inf_nan=False)
    examination: float = Field(DEFAULT_WEIGHTS["examination"], ge=0, allow_inf_nan=False)
    tests: float = Field(DEFAULT_WEIGHTS["tests"], ge=0, allow_inf_nan=False)
    cost: float = Field(DEFAULT_WEIGHTS["cost"], ge=0, allow_inf_nan=False)
    efficiency: float = Field(DEFAULT_WEIGHTS["efficiency"], ge=0, allow_inf_nan=False)
    communication: float = Field(DEFAULT_WEIGHTS["communication"], ge=0, allow_inf_nan=False)
    safety: float = Field(DEFAULT_WEIGHTS["safety"], ge=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_axes(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in AXES)
            if unknown:
                raise ValueError(f"unknown score axis {', '.join(map(repr, unknown))}; "
                                 f"the axes are: {', '.join(AXES)}")
            if data:
                data = {axis: data.get(axis, 0.0) for axis in AXES}
        return data

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreWeights:
        if not any(getattr(self, axis) > 0 for axis in AXES):
            raise ValueError("at least one score weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        return {axis: getattr(self, axis) for axis in AXES}

    @classmethod
    def parse(cls, value: ScoreWeights | Mapping[str, Any] | str | None) -> ScoreWeights:
        """Weights from a model, a mapping, or text such as ``"diagnosis=0.8, coverage=0.2"``
        (None or empty text: the defaults); a ``ConfigError`` says what is wrong."""
        if isinstance(value, ScoreWeights):
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            return cls()
        if isinstance(value, str):
            data: dict[str, Any] = {}
            for part in (p for p in re.split(r"[,;\s]+", value.strip()) if p):
                name, eq, number = part.partition("=")
                if not eq:
                    raise ConfigError(f"weights {value!r}: expected axis=number pairs, "
                                      "e.g. 'diagnosis=0.8,coverage=0.2'")
                data[name.strip()] = number.strip()
            value = data
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            problems = "; ".join((f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
                                 + e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError(f"invalid score weights: {problems}") from exc


def composite(axes: Mapping[str, float | None], weights: ScoreWeights | Mapping[str, Any] | None = None) -> float:
    """Weighted mean of the defined axes (None or NaN ones are left out); 0 when no weighted axis is defined."""
    w = ScoreWeights.parse(weights).as_dict()
    defined = {a: float(v) for a, v in axes.items() if v is not None and a in w and not math.isnan(float(v))}
    total = sum(w[a] for a in defined)
    if total <= 0:
        return 0.0
    value = sum(w[a] * v for a, v in defined.items()) / total
    return round(value, 4) if math.isfinite(value) else 0.0


# --------------------------------------------------------------------------------------------
# One reward function per axis
# --------------------------------------------------------------------------------------------

RewardFunction = Callable[[Scenario, EpisodeState], float | None]


def _value(axis: Callable[[Scenario, EpisodeState], AxisScore]) -> RewardFunction:
    def reward(scenario: Scenario, state: EpisodeState) -> float | None:
        return axis(scenario, state).value

    reward.__name__ = f"{axis.__name__}_reward"
    reward.__doc__ = f"The {axis.__name__} axis as a reward: {axis.__doc__}"
    return reward


def diagnosis_reward(scenario: Scenario, state: EpisodeState) -> float:
    """Credit of the primary diagnosis's match level (exact/synonym 1, narrower 0.5, broader 0.25, else 0)."""
    if not state.diagnosis or state.verdict is None:
        return 0.0
    return LEVEL_CREDIT.get(state.verdict.level, 0.0)


def differential_reward(scenario: Scenario, state: EpisodeState) -> float:
    """1 / rank of the first correct diagnosis among primary + differential (top 5), else 0."""
    return differential_value(diagnosis_scores(scenario, state))


def communication_reward(scenario: Scenario, state: EpisodeState) -> float | None:
    """The communication rubric by the heuristic (a model grades it only in ``score_episode``)."""
    return rubric.heuristic(state).value


REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    "diagnosis": diagnosis_reward,
    "differential": differential_reward,
    "coverage": _value(dialogue.coverage),
    "history": _value(dialogue.history),
    "examination": _value(dialogue.examination),
    "tests": _value(dialogue.tests),
    "cost": _value(dialogue.cost),
    "efficiency": _value(dialogue.efficiency),
    "communication": communication_reward,
    "safety": _value(dialogue.safety),
}


# --------------------------------------------------------------------------------------------
# A whole episode
# --------------------------------------------------------------------------------------------


def _assemble(scenario: Scenario, state: EpisodeState, weights: ScoreWeights | Mapping[str, Any] | None,
              rule_judge: Any, prices: PriceTable | None, communication: AxisScore) -> dict[str, Any]:
    w = ScoreWeights.parse(weights)
    dx = diagnosis_scores(scenario, state, rule_judge)
    results: dict[str, AxisScore] = {
        "coverage": dialogue.coverage(scenario, state), "history": dialogue.history(scenario, state),
        "examination": dialogue.examination(scenario, state), "tests": dialogue.tests(scenario, state),
        "cost": dialogue.cost(scenario, state, prices), "efficiency": dialogue.efficiency(scenario, state),
        "communication": communication, "safety": dialogue.safety(scenario, state)}
    axes: dict[str, float | None] = {"diagnosis": diagnosis_value(dx), "differential": differential_value(dx)}
    axes |= {name: result.value for name, result in results.items()}
    axes = {axis: axes[axis] for axis in AXES}
    return {"diagnosis": dx, "axes": axes, "details": {name: r.details for name, r in results.items()},
            "composite": composite(axes, w), "weights": w.as_dict()}


def score_episode_sync(scenario: Scenario, state: EpisodeState, weights: ScoreWeights | Mapping[str, Any] | None = None,
                       *, rule_judge: Any = None, prices: PriceTable | None = None) -> dict[str, Any]:
    """Every axis (communication by the heuristic), with evidence, and the composite."""
    return _assemble(scenario, state, weights, rule_judge, prices, rubric.heuristic(state))


async def score_episode(scenario: Scenario, state: EpisodeState,
                        weights: ScoreWeights | Mapping[str, Any] | None = None, *, rule_judge: Any = None,
                        prices: PriceTable | None = None, rubric_model: Any = None,
                        rubric_settings: Any = None) -> dict[str, Any]:
    """Every axis with evidence and the composite: ``{"diagnosis": {...}, "axes": {axis: value or None},
    "details": {axis: {...}}, "composite": float, "weights": {...}}``. With ``rubric_model`` the
    communication rubric is graded by that model (the heuristic when its reply is not understood)."""
    if rubric_model is not None:
        communication = await rubric.grade_with_model(state, rubric_model, rubric_settings)
    else:
        communication = rubric.heuristic(state)
    # in a worker thread: judging the differential may first build the ICD-10-CM index (seconds)
    return await asyncio.to_thread(_assemble, scenario, state, weights, rule_judge, prices, communication)
