"""The diagnosis axes: the judge's top-1 verdict, and top-k over the doctor's differential.

The primary diagnosis keeps the verdict of the clinic's configured judge (a model judge's
verdict carries the rule judge's level beside it, ``rule_level``). Each further item of the
differential is judged by the rule judge, which is cheap and deterministic. An episode that did
not end in a diagnosis (never committed, cut off by a budget, or failed) has level ``none``.
The match levels, their precedence and their credit are one table: ``agentclinic.agents.base``.
"""

from __future__ import annotations

from typing import Any

from agentclinic.agents.base import LEVEL_CREDIT, LEVEL_RANK
from agentclinic.runs.record import DiagnosisScores, EpisodeRecord, RankedDiagnosis
from agentclinic.scenario.schema import Scenario

TOP_K = (1, 3, 5)

_RULE_JUDGE = None


def rule_judge_for(judge: Any = None):
    """The rule judge to use beside ``judge``: itself when it is one, its ``rule`` attribute, else a shared one."""
    from agentclinic.agents.judge import RuleJudge

    global _RULE_JUDGE
    if isinstance(judge, RuleJudge):
        return judge
    if isinstance(getattr(judge, "rule", None), RuleJudge):
        return judge.rule
    if _RULE_JUDGE is None:
        _RULE_JUDGE = RuleJudge()
    return _RULE_JUDGE


def _key(name: str) -> str:
    from agentclinic.agents.judge import normalise

    return normalise(name)


def diagnosis_scores(scenario: Scenario, record: EpisodeRecord, rule_judge: Any = None) -> DiagnosisScores:
    """Top-1 verdict and top-k over primary + differential (ranks from 1; repeats after normalisation dropped)."""
    verdict = record.verdict if record.diagnosed else None
    ranked: list[RankedDiagnosis] = []
    if verdict is not None:
        ranked.append(RankedDiagnosis(rank=1, name=record.diagnosis, level=verdict.level, correct=verdict.correct,
                                      judge=verdict.judge or "rule", rule_level=verdict.rule_level))
        seen = {_key(record.diagnosis)}
        rule = rule_judge_for(rule_judge) if record.differential else None
        for name in record.differential:
            key = _key(name)
            if not key or key in seen:
                continue
            seen.add(key)
            item = rule.judge_sync(name, scenario)
            ranked.append(RankedDiagnosis(rank=len(ranked) + 1, name=name, level=item.level, correct=item.correct,
                                          judge="rule"))
    first = next((item.rank for item in ranked if item.correct), None)
    return DiagnosisScores(
        level=verdict.level if verdict is not None else "none",
        correct=bool(verdict is not None and verdict.correct),
        judge=(verdict.judge or "rule") if verdict is not None else None,
        rule_level=verdict.rule_level if verdict is not None else None,
        verdict=verdict, ranked=ranked,
        best_level=min((item.level for item in ranked), key=LEVEL_RANK.__getitem__, default="none"),
        first_correct_rank=first,
        top_k={f"top{k}": first is not None and first <= k for k in TOP_K})


def diagnosis_value(scores: DiagnosisScores) -> float:
    """The ``diagnosis`` axis: the credit of the primary's match level (``LEVEL_CREDIT``; 0 without a diagnosis)."""
    return LEVEL_CREDIT[scores.level]


def differential_value(scores: DiagnosisScores, k: int = max(TOP_K)) -> float:
    """The ``differential`` axis: 1 / rank of the first correct item within the top ``k``, else 0."""
    first = scores.first_correct_rank
    return 1.0 / first if first is not None and first <= k else 0.0
