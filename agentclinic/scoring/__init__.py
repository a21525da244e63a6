"""Scoring: one pure ``score(scenario, record, weights)`` over a registry of axes (formulas in ``docs/scoring.md``).

``score`` reads an ``EpisodeRecord`` and nothing else; ``score_episode`` first grades the model-graded
axes when a grading model is given. ``AXES`` is the registry (``register_axis`` adds one).
"""

from agentclinic.scoring.axes import AXES, Axis, ScoringContext, default_weights, register_axis, unregister_axis
from agentclinic.scoring.diagnosis import TOP_K, diagnosis_scores
from agentclinic.scoring.dialogue import (
    AxisScore, coverage, cost, efficiency, examination, history, reference_cost, safety, tests)
from agentclinic.scoring.ratings import RATING_KEYS, parse_ratings, patient_ratings
from agentclinic.scoring.rewards import ScoreWeights, composite, grade, score, score_episode
from agentclinic.scoring.rubric import ITEMS as RUBRIC_ITEMS
from agentclinic.scoring.rubric import grade_with_model, heuristic as communication_heuristic, parse_rubric

__all__ = ["AXES", "Axis", "ScoringContext", "default_weights", "register_axis", "unregister_axis", "ScoreWeights",
           "composite", "grade", "score", "score_episode", "AxisScore", "diagnosis_scores", "TOP_K", "coverage",
           "history", "examination", "tests", "cost", "efficiency", "safety", "reference_cost", "RUBRIC_ITEMS",
           "communication_heuristic", "grade_with_model", "parse_rubric", "RATING_KEYS", "parse_ratings",
           "patient_ratings"]
