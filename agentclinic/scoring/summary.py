"""Run-level means of the scores: every axis, top-k accuracy, the composite, patient ratings.

Over all the episodes: an episode without scores (an error an older version did not score) counts
as a miss for top-k and 0 for the composite; an axis's mean is over the episodes where it is defined.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from agentclinic.agents.base import CORRECT_LEVELS, Verdict
from agentclinic.runs.record import EpisodeRecord
from agentclinic.scoring.axes import AXES
from agentclinic.scoring.diagnosis import TOP_K
from agentclinic.scoring.ratings import RATING_KEYS


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def judges_disagree(verdict: Verdict | None) -> bool | None:
    """Whether a model judge's verdict and the rule judge's kept beside it (``rule_level``) differ on whether
    the diagnosis is correct; None when no model judged (the rule judge alone, or its fallback)."""
    if verdict is None or verdict.judge in (None, "rule") or verdict.rule_level is None:
        return None
    return verdict.correct != (verdict.rule_level in CORRECT_LEVELS)


def judge_disagreements(records: Iterable[EpisodeRecord]) -> int | None:
    """The episodes where the model judge and the rule judge disagree on correctness (``judges_disagree``);
    None when no episode was judged by a model."""
    flags = [flag for r in records if (flag := judges_disagree(r.verdict)) is not None]
    return sum(flags) if flags else None


def summarise_scores(records: Iterable[EpisodeRecord]) -> dict[str, Any]:
    """``axes`` (each axis's mean over the episodes where it is defined, ``axes_defined`` counting them;
    every registered axis and any other the records carry), ``top_k`` accuracy and ``mean_composite`` over
    all the episodes, ``scored`` (episodes with scores) and, when any patient rated, ``patient_ratings``
    (means of 1-10, and ``rated``)."""
    records = list(records)
    scored = [r.scores for r in records if r.scores is not None]
    names = list(dict.fromkeys([*AXES, *(a for s in scored for a in s.axes)]))
    values = {axis: [float(s.axes[axis]) for s in scored if s.axes.get(axis) is not None] for axis in names}
    out: dict[str, Any] = {"scored": len(scored)}
    out["axes"] = {axis: _mean(v) for axis, v in values.items()}
    out["axes_defined"] = {axis: len(v) for axis, v in values.items()}
    out["top_k"] = {f"top{k}": _mean([float(bool(r.scores and r.scores.diagnosis.top_k.get(f"top{k}")))
                                      for r in records]) for k in TOP_K}
    out["mean_composite"] = _mean([r.scores.composite if r.scores else 0.0 for r in records])
    out["judge_disagreements"] = judge_disagreements(records)  # model judge vs rule judge; None: no model judged
    rated = [r.patient_ratings for r in records if r.patient_ratings]
    if rated:
        out["patient_ratings"] = {k: _mean([float(p[k]) for p in rated if isinstance(p.get(k), (int, float))])
                                  for k in RATING_KEYS}
        out["patient_ratings"]["rated"] = sum(any(isinstance(p.get(k), (int, float)) for k in RATING_KEYS)
                                              for p in rated)
    return out
