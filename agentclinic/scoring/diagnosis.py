"""The diagnosis axis: the judge's top-1 verdict, and top-k over the doctor's differential.

The primary diagnosis keeps the verdict of the clinic's configured judge (a model judge's
verdict carries the rule judge's level beside it, ``rule_level``). Each further item of the
differential is judged by the rule judge, which is cheap and deterministic.
"""

from __future__ import annotations

from typing import Any

from agentclinic.scenario.schema import Scenario
from agentclinic.scoring.state import EpisodeState

# Credit for the primary diagnosis by match level (docs/scoring.md).
LEVEL_CREDIT: dict[str, float] = {"exact": 1.0, "synonym": 1.0, "narrower": 0.5, "broader": 0.25,
                                  "wrong": 0.0, "none": 0.0}
LEVEL_RANK: dict[str, int] = {"exact": 0, "synonym": 1, "broader": 2, "narrower": 3, "wrong": 4, "none": 5}
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


def diagnosis_scores(scenario: Scenario, state: EpisodeState, rule_judge: Any = None) -> dict[str, Any]:
    """Top-1 verdict and top-k over primary + differential (ranks from 1; duplicates dropped).

    Returns ``level``, ``correct``, ``judge``, ``rule_level``, ``verdict`` (as recorded), ``ranked``
    (each item's name, rank, level, correctness and who judged it), ``best_level``,
    ``first_correct_rank`` (None when none is correct) and ``top_k`` (``{"top1": bool, "top3": ..., "top5": ...}``).
    """
    verdict = state.verdict
    ranked: list[dict[str, Any]] = []
    if state.diagnosis and verdict is not None:
        ranked.append({"rank": 1, "name": state.diagnosis, "level": verdict.level, "correct": verdict.correct,
                       "judge": verdict.judge or "rule", "rule_level": verdict.rule_level})
        seen = {_key(state.diagnosis)}
        rule = rule_judge_for(rule_judge) if state.differential else None
        for name in state.differential:
            key = _key(name)
            if not key or key in seen:
                continue
            seen.add(key)
            item = rule.judge_sync(name, scenario)
            ranked.append({"rank": len(ranked) + 1, "name": name, "level": item.level, "correct": item.correct,
                           "judge": "rule"})
    first = next((item["rank"] for item in ranked if item["correct"]), None)
    level = verdict.level if verdict is not None and state.diagnosis else "none"
    return {
        "level": level,
        "correct": bool(verdict is not None and verdict.correct and state.diagnosis),
        "judge": (verdict.judge or "rule") if verdict is not None else None,
        "rule_level": verdict.rule_level if verdict is not None else None,
        "verdict": verdict.model_dump() if verdict is not None else None,
        "ranked": ranked,
        "best_level": min((item["level"] for item in ranked), key=LEVEL_RANK.__getitem__, default="none"),
        "first_correct_rank": first,
        "top_k": {f"top{k}": first is not None and first <= k for k in TOP_K},
    }


def diagnosis_value(scores: dict[str, Any]) -> float:
    """The ``diagnosis`` axis: the credit of the primary's match level (``LEVEL_CREDIT``)."""
    return LEVEL_CREDIT.get(scores["level"], 0.0)


def differential_value(scores: dict[str, Any], k: int = max(TOP_K)) -> float:
    """The ``differential`` axis: 1 / rank of the first correct item within the top ``k``, else 0."""
    first = scores["first_correct_rank"]
    return 1.0 / first if first is not None and first <= k else 0.0
