"""Communication stations: recognising the learner's moves, the person's emotional state, rubric grading.

``station_clinic`` builds a clinic for conversation stations (see /work/briefs/api-conversation.md and the
README's section for educators).
"""

from agentclinic.conversation.grading import Feedback, feedback_markdown, grade, grade_transcript
from agentclinic.conversation.tracker import Tracker, Turn, replay

__all__ = ["Feedback", "Tracker", "Turn", "feedback_markdown", "grade", "grade_transcript", "replay",
           "station_clinic"]


def station_clinic(patient: str = "scripted", judge: str | None = None, max_turns: int | None = None, **kwargs):
    """A clinic for playing stations (and diagnostic cases): see ``agentclinic.conversation.play``."""
    from agentclinic.conversation.play import station_clinic as build

    return build(patient=patient, judge=judge, max_turns=max_turns, **kwargs)
