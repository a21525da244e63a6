"""The one scoring path: ``score(scenario, record, weights) -> Scores``, and the weights.

``score`` is a pure function of the scenario and the episode record: every registered axis
(``agentclinic.scoring.axes``) with its evidence, top-1 and top-k, and the weighted composite.
Model-graded axes (communication, when a grading model is configured) are graded first by
``grade`` (async; it calls the model) and handed to ``score`` as ``graded``; ``score_episode``
does both, and is what the clinic (the Gymnasium reward), the runner and ``rescore`` call.

The composite is the weighted mean of the defined axes, and 0 for an episode that did not end in
a diagnosis (never committed, cut off by a budget, or failed): process axes earn reward only on
an episode that commits to a diagnosis (docs/scoring.md, "Rules").
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ConfigDict, RootModel, ValidationError, model_validator
from pydantic_core import PydanticUndefined

from agentclinic.errors import ConfigError
from agentclinic.runs.record import EpisodeRecord, Scores
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring.axes import AXES, AxisScore, ScoringContext, default_weights
from agentclinic.scoring.diagnosis import rule_judge_for

NO_DIAGNOSIS_NOTE = "no diagnosis: the composite is 0 (process axes earn reward only with a diagnosis)"
NO_END_NOTE = "the conversation did not end (an error): the composite is 0"
SKIPPED = "not scored: left out of score_axes (rescore the run to score it)"


def score_axes(names: Iterable[str] | None) -> tuple[str, ...] | None:
    """A checked subset of the registered axes to score (None: all); a ``ConfigError`` names unknown ones."""
    if names is None:
        return None
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = sorted(set(names) - AXES.keys())
    if unknown or not names:
        raise ConfigError(f"score_axes: unknown axis {', '.join(map(repr, unknown))}; the axes are: {', '.join(AXES)}"
                          if unknown else "score_axes: name at least one axis (None scores them all)")
    return tuple(a for a in AXES if a in names)


class ScoreWeights(RootModel[dict[str, float]]):
    """Weights of the axes in the composite reward; non-negative and finite, at least one positive.

    Given no weights, the defaults apply (each registered axis's default weight). Given some, they are
    the whole set: an axis left out weighs 0 (``ScoreWeights(diagnosis=1)`` rewards the diagnosis only).
    Weights need not sum to 1: the composite divides by the weights of the axes that are defined.
    Saved (run.json) as the mapping of every axis to its weight.
    """

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _complete(cls, data: Any) -> Any:
        if data is PydanticUndefined or data is None:
            data = {}
        if isinstance(data, ScoreWeights):
            data = data.root
        if not isinstance(data, Mapping):
            return data  # the dict type check reports it
        unknown = sorted(str(k) for k in data if k not in AXES)
        if unknown:
            raise ValueError(f"unknown score axis {', '.join(map(repr, unknown))}; the axes are: {', '.join(AXES)}")
        if not data:
            return default_weights()
        return {axis: data.get(axis, 0.0) for axis in AXES}

    @model_validator(mode="after")
    def _valid(self) -> ScoreWeights:
        for axis, weight in self.root.items():
            if not math.isfinite(weight):
                raise ValueError(f"{axis}: the weight must be finite, got {weight}")
            if weight < 0:
                raise ValueError(f"{axis}: the weight must be greater than or equal to 0, got {weight}")
        if not any(w > 0 for w in self.root.values()):
            raise ValueError("at least one score weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        return dict(self.root)

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


def composite(axes: Mapping[str, float | None], weights: ScoreWeights | Mapping[str, Any] | str | None = None,
              *, diagnosed: bool = True) -> float:
    """Weighted mean of the defined axes (None or NaN ones are left out); 0 when no weighted axis is
    defined, and 0 for an episode that did not end in a diagnosis (``diagnosed=False``)."""
    if not diagnosed:
        return 0.0
    w = ScoreWeights.parse(weights).as_dict()
    defined = {a: float(v) for a, v in axes.items() if v is not None and a in w and not math.isnan(float(v))}
    total = sum(w[a] for a in defined)
    if total <= 0:
        return 0.0
    value = sum(w[a] * v for a, v in defined.items()) / total
    return round(value, 4) if math.isfinite(value) else 0.0


def score(scenario: Scenario, record: EpisodeRecord, weights: ScoreWeights | Mapping[str, Any] | str | None = None,
          *, judge: Any = None, prices: PriceTable | None = None,
          graded: Mapping[str, AxisScore] | None = None, axes: Iterable[str] | None = None) -> Scores:
    """Every registered axis with its evidence, top-1 / top-k, and the composite, from the record alone.

    ``judge``: the judge whose rule judge grades the differential (a shared ``RuleJudge`` when None);
    the primary keeps the verdict recorded in the episode. ``prices``: the price table for the cost
    axis (the bundled one when None). ``graded``: axes already graded by a model (``grade``), used
    instead of their functions. ``axes``: score only these (fast training rewards, ``ClinicEnv(score_axes=...)``);
    the others are None with the reason in their details, the composite is over the scored ones, the note
    says so, and without ``differential`` the differential is not judged (top-k then sees the primary only).
    """
    w = ScoreWeights.parse(weights)
    only = score_axes(axes)
    if only is not None and "differential" not in only:
        record = record.model_copy(update={"differential": []})
    context = ScoringContext(scenario, record, prices or price_table(), rule_judge_for(judge), dict(graded or {}))
    skipped = AxisScore(None, {"skipped": SKIPPED})
    results = {name: (((graded or {}).get(name) or axis.function(context)) if only is None or name in only
                      else skipped) if scenario.kind in axis.kinds
               else AxisScore(None) for name, axis in AXES.items()}
    values = {name: result.value for name, result in results.items()}
    ended = record.outcome in ("completed", "ended-by-budget") if scenario.is_station else record.diagnosed
    notes = [] if ended else [NO_END_NOTE if scenario.is_station else NO_DIAGNOSIS_NOTE]
    if only is not None:
        notes.append(f"partial scoring: only {', '.join(only)} (score_axes)")
    return Scores(diagnosis=context.diagnosis, axes=values,
                  details={name: result.details for name, result in results.items() if result.details},
                  composite=composite(values, w, diagnosed=ended), weights=w.as_dict(),
                  note="; ".join(notes) or None)


async def grade(scenario: Scenario, record: EpisodeRecord, model: Any, settings: Any = None,
                axes: Iterable[str] | None = None) -> dict[str, AxisScore]:
    """The axes that have a model grader (of ``axes``; None: all), graded by ``model`` (none when it is None)."""
    if model is None:
        return {}
    only = score_axes(axes)
    context = ScoringContext(scenario, record, price_table())
    return {name: await axis.grader(context, model, settings) for name, axis in AXES.items()
            if axis.grader and scenario.kind in axis.kinds and (only is None or name in only)}


async def score_episode(scenario: Scenario, record: EpisodeRecord,
                        weights: ScoreWeights | Mapping[str, Any] | str | None = None, *, judge: Any = None,
                        prices: PriceTable | None = None, grader: Any = None, grader_settings: Any = None,
                        graded: Mapping[str, AxisScore] | None = None,
                        axes: Iterable[str] | None = None) -> Scores:
    """``grade`` with ``grader`` (a model, or None), then ``score`` (in a worker thread: judging the
    differential may first build the ICD-10-CM index). ``graded`` are earlier model grades to keep;
    ``axes``: score only these (None: all)."""
    fresh = await grade(scenario, record, grader, grader_settings, axes)
    merged = {**(graded or {}), **fresh}
    return await asyncio.to_thread(score, scenario, record, weights, judge=judge, prices=prices, graded=merged,
                                   axes=axes)


def recorded_grades(record: EpisodeRecord) -> dict[str, AxisScore]:
    """The model grades kept in a record's scores (axes with a grader whose evidence says a model graded
    them), so that re-scoring without a model keeps them rather than falling back to the heuristic."""
    if record.scores is None:
        return {}
    out = {}
    for name, axis in AXES.items():
        details = record.scores.details.get(name) or {}
        if axis.grader is not None and details.get("method") == "llm":
            out[name] = AxisScore(record.scores.axes.get(name), details)
    return out
