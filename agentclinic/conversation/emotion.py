"""The person's emotional state (distress, anger, trust, understanding on 0..4) and how a turn changes it.

The rules are deterministic and read only the learner's recognised moves, the station's emotional arc
(which moves escalate it and which settle it) and what was delivered:

- a move the station lists under ``escalates`` makes things worse (see ``ESCALATE``; by default distress +1
  and trust -1); one under ``settles`` makes them better (``SETTLE``; by default trust +1);
- empathy settles only when it answers something: the person's last line or the one before carried an
  emotion or a cue, and the same phrase was not said before (stock phrases change nothing);
- hearing an essential piece of bad news for the first time raises distress by 2; it raises understanding
  when it came in plain words, and jargon left unexplained lowers it; checking understanding or summarising
  raises it.

A turn moves an axis by at most +2 and at most -1 (things get worse faster than they get better).
"""

from __future__ import annotations

from pydantic import Field

from agentclinic.scenario.schema import EMOTION_AXES, Scenario, Strict

EMPATHY = frozenset({"naming-emotion", "understanding-statement", "respect-statement", "support-statement",
                     "explore-emotion", "empathy-statement", "silence"})
ESCALATE: dict[str, dict[str, int]] = {
    "jargon": {"understanding": -1, "trust": -1},
    "blunt-news": {"distress": 2, "trust": -1},
    "false-reassurance": {"trust": -1},
    "dismissing-emotion": {"distress": 1, "anger": 1, "trust": -1},
    "blaming": {"anger": 2, "trust": -1},
    "interrupting": {"anger": 1, "trust": -1},
    "closed-question": {"trust": -1},
}
SETTLE: dict[str, dict[str, int]] = {
    "warning-shot": {"trust": 1},
    "ask-invitation": {"trust": 1},
    "ask-perception": {"trust": 1},
    "apologise": {"anger": -1, "trust": 1},
    "check-understanding": {"understanding": 1},
    "summarise": {"understanding": 1},
    "plain-language": {"understanding": 1},
    "plan": {"distress": -1, "understanding": 1},
}
DEFAULT_ESCALATE = {"distress": 1, "trust": -1}
DEFAULT_SETTLE = {"trust": 1}
EMPATHY_SETTLE = {"distress": -1, "anger": -1, "trust": 1}


class EmotionalState(Strict):
    """Each axis on 0..4."""

    distress: int = Field(2, ge=0, le=4)
    anger: int = Field(0, ge=0, le=4)
    trust: int = Field(2, ge=0, le=4)
    understanding: int = Field(1, ge=0, le=4)

    @classmethod
    def start(cls, scenario: Scenario) -> EmotionalState:
        return cls.model_validate(scenario.conversation.emotion.start.model_dump())

    def moved(self, deltas: dict[str, int]) -> EmotionalState:
        """A copy with ``deltas`` added, each axis kept within 0..4."""
        values = self.model_dump()
        for axis, delta in deltas.items():
            values[axis] = min(4, max(0, values[axis] + delta))
        return EmotionalState(**values)

    def as_dict(self) -> dict[str, int]:
        return {axis: getattr(self, axis) for axis in EMOTION_AXES}


def effects(scenario: Scenario, moves: list[str], *, new_news: bool, responsive: bool,
            repeated: bool) -> dict[str, int]:
    """The change one learner turn makes (summed deltas per axis)."""
    arc = scenario.conversation.emotion
    total: dict[str, int] = {}

    def add(deltas: dict[str, int]) -> None:
        for axis, delta in deltas.items():
            total[axis] = total.get(axis, 0) + delta

    for move in moves:
        if move in arc.escalates:
            add(ESCALATE.get(move, DEFAULT_ESCALATE))
        elif move in EMPATHY:
            if responsive and not repeated and (move in arc.settles or move != "silence"):
                add(EMPATHY_SETTLE if move in arc.settles else {"trust": 1})
        elif move in arc.settles:
            add(SETTLE.get(move, DEFAULT_SETTLE))
        elif move in SETTLE and "understanding" in SETTLE[move]:
            add({"understanding": 1})
        elif move == "jargon":
            add({"understanding": -1})
    if new_news:
        add({"distress": 2})
    return {axis: max(-1, min(2, delta)) for axis, delta in total.items() if delta}


def mood(state: EmotionalState, moves: list[str], *, closing: bool = False, settled: bool = False) -> str:
    """Which of the station's line sets fits the state after a turn (``StationLines`` field name)."""
    if closing:
        return "closing"
    if "jargon" in moves:
        return "confused"
    if state.anger >= 3:
        return "angry"
    if state.distress >= 4 and state.trust <= 1:
        return "withdrawn"
    if state.distress >= 3:
        return "distressed"
    if state.understanding <= 0:
        return "confused"
    if settled and state.trust >= 3:
        return "reassured"
    return "calm"
