"""Run-level means of the scores: every axis, top-k accuracy, the composite, patient ratings."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from agentclinic.scoring.diagnosis import TOP_K
from agentclinic.scoring.ratings import RATING_KEYS
from agentclinic.scoring.rewards import AXES


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarise_scores(records: Iterable[Any]) -> dict[str, Any]:
    """Means over the records that were scored (``record.scores`` not empty): ``axes`` (each over the
    episodes where it is defined, with ``axes_defined`` counting them), ``top_k`` accuracy,
    ``mean_composite`` and, when any patient rated, ``patient_ratings`` (means of 1-10, and ``rated``)."""
    records = list(records)
    scored = [r for r in records if r.scores and "axes" in r.scores]
    out: dict[str, Any] = {"scored": len(scored)}
    values = {axis: [float(r.scores["axes"][axis]) for r in scored if r.scores["axes"].get(axis) is not None]
              for axis in AXES}
    out["axes"] = {axis: _mean(v) for axis, v in values.items()}
    out["axes_defined"] = {axis: len(v) for axis, v in values.items()}
    out["top_k"] = {f"top{k}": _mean([float(bool(r.scores.get("diagnosis", {}).get("top_k", {}).get(f"top{k}")))
                                      for r in scored]) for k in TOP_K}
    out["mean_composite"] = _mean([float(r.scores["composite"]) for r in scored if "composite" in r.scores])
    rated = [r.patient_ratings for r in records if r.patient_ratings]
    if rated:
        out["patient_ratings"] = {k: _mean([float(p[k]) for p in rated if isinstance(p.get(k), (int, float))])
                                  for k in RATING_KEYS}
        out["patient_ratings"]["rated"] = sum(any(isinstance(p.get(k), (int, float)) for k in RATING_KEYS)
                                              for p in rated)
    return out
