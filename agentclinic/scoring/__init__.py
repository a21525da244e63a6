"""Scoring: the diagnosis verdict, the dialogue axes, rewards (formulas in ``docs/scoring.md``).

``score_episode(scenario, EpisodeState.from_clinic(clinic))`` gives every axis with its evidence
and the weighted composite; ``REWARD_FUNCTIONS`` has each axis as ``(scenario, state) -> value``.
"""

from agentclinic.scoring.diagnosis import LEVEL_CREDIT, TOP_K, diagnosis_scores
from agentclinic.scoring.dialogue import (
    AxisScore, coverage, cost, efficiency, examination, history, reference_cost, safety, tests)
from agentclinic.scoring.ratings import RATING_KEYS, parse_ratings, patient_ratings
from agentclinic.scoring.rewards import (
    AXES, DEFAULT_WEIGHTS, REWARD_FUNCTIONS, ScoreWeights, composite, score_episode, score_episode_sync)
from agentclinic.scoring.rubric import ITEMS as RUBRIC_ITEMS
from agentclinic.scoring.rubric import grade_with_model, heuristic as communication_heuristic, parse_rubric
from agentclinic.scoring.state import EpisodeState

__all__ = ["AXES", "DEFAULT_WEIGHTS", "REWARD_FUNCTIONS", "ScoreWeights", "composite", "score_episode",
           "score_episode_sync", "EpisodeState", "AxisScore", "diagnosis_scores", "LEVEL_CREDIT", "TOP_K",
           "coverage", "history", "examination", "tests", "cost", "efficiency", "safety", "reference_cost",
           "RUBRIC_ITEMS", "communication_heuristic", "grade_with_model", "parse_rubric", "RATING_KEYS",
           "parse_ratings", "patient_ratings"]
