"""One conversation, turn by turn: the learner's moves in context and the person's emotional state.

The tracker is the single state machine behind a station: the scripted emotional patient reads it to
choose its lines, an LLM patient is told its state, the clinic records its moves and state per turn, and
the grader replays a transcript through it (so a live session and a pasted transcript are read alike).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from agentclinic.agents.embeddings import Embedder
from agentclinic.conversation.emotion import EMPATHY, EmotionalState, effects, mood
from agentclinic.conversation.moves import Context, MoveRecogniser, clean
from agentclinic.scenario.schema import Scenario

EMOTION_WORDS = re.compile(
    r"\b(scared|afraid|frightened|terrified|worried|worry|anxious|upset|angry|furious|cry|crying|tears|shaking|"
    r"can't (believe|think|cope|take)|oh god|oh no|how long|die|dying|why me|not fair|what about (my|me|the)|"
    r"don't know (how|what) (i'll|i will|i'm going to)|who('s| is| will) (going to )?look after|alone|"
    r"devastated|shock|numb|guilt|my fault|point of it)\b")
RESPONSIVE_WINDOW = 2  # empathy counts as a response when the person showed emotion this many lines back at most


class Turn(BaseModel):
    """One learner turn as the tracker read it, and the person's reply."""

    turn: int
    text: str
    moves: list[str] = Field(default_factory=list)
    quotes: dict[str, str] = Field(default_factory=dict)
    delivered: list[str] = Field(default_factory=list)  # information items mentioned this turn
    new_information: list[str] = Field(default_factory=list)  # ... for the first time
    jargon: list[str] = Field(default_factory=list)
    explained: bool = False
    responsive: bool = False  # the person's last line or the one before carried an emotion or a cue
    repeated: bool = False  # an empathy phrase said before, word for word
    state: dict[str, int] = Field(default_factory=dict)  # after the turn
    mood: str = "calm"
    reply: str | None = None
    reply_emotional: bool = False


class Tracker:
    """Feeds learner and patient lines in order; keeps the moves, what was delivered, and the state."""

    def __init__(self, scenario: Scenario, embedder: Embedder | None = None):
        self.scenario = scenario
        self.recogniser = MoveRecogniser(scenario, embedder)
        self.state = EmotionalState.start(scenario)
        self.start = self.state
        self.turns: list[Turn] = []
        self.delivered: dict[str, int] = {}  # item id -> first turn
        self.moves_so_far: set[str] = set()
        self.empathy_said: set[str] = set()
        self.explained: set[str] = set()  # jargon the learner has explained
        start = scenario.conversation.emotion.start  # someone already upset or angry is an emotion to answer
        self._since_emotion = 0 if max(start.distress, start.anger) >= 3 else 99  # person's lines since the last emotional one
        conversation = scenario.conversation
        self._emotional_texts = [clean(t) for t in (
            *(c.cue for c in conversation.concerns if c.cue), *(c.text for c in conversation.concerns),
            *(r for i in conversation.information for r in i.reaction), *conversation.lines.distressed,
            *conversation.lines.angry, *conversation.lines.withdrawn)]

    def learner(self, text: str, turn: int | None = None) -> Turn:
        """Read one learner utterance; update the state; return the turn (its reply is filled in later)."""
        turn = turn if turn is not None else len(self.turns) + 1
        responsive = self._since_emotion < RESPONSIVE_WINDOW
        found = self.recogniser.recognise(text, Context(turn=turn, delivered=set(self.delivered),
                                                        earlier_moves=set(self.moves_so_far),
                                                        patient_emotional=responsive))
        if found.explained:
            self.explained |= set(found.jargon)
        elif found.jargon and set(found.jargon) <= self.explained:  # explained in an earlier turn
            found.moves = [m for m in found.moves if m != "jargon"]
            found.quotes.pop("jargon", None)
        new = [i for i in found.delivered if i not in self.delivered]
        essential = set(self.recogniser.essential)
        empathy_phrases = {found.quotes[m] for m in found.moves if m in EMPATHY and m != "silence"}
        repeated = bool(empathy_phrases) and empathy_phrases <= self.empathy_said
        deltas = effects(self.scenario, found.moves, new_news=bool(set(new) & essential), responsive=responsive,
                         repeated=repeated)
        self.state = self.state.moved(deltas)
        for item in new:
            self.delivered[item] = turn
        self.moves_so_far |= set(found.moves)
        self.empathy_said |= empathy_phrases
        settled = any(m in EMPATHY or m in ("plan", "summarise", "check-understanding") for m in found.moves) \
            and responsive
        record = Turn(turn=turn, text=text, moves=found.moves, quotes=found.quotes, delivered=found.delivered,
                      new_information=new, jargon=found.jargon, explained=found.explained, responsive=responsive,
                      repeated=repeated, state=self.state.as_dict(),
                      mood=mood(self.state, found.moves, closing="close" in found.moves, settled=settled))
        self.turns.append(record)
        return record

    def patient(self, text: str) -> bool:
        """Read the person's line; returns whether it carried an emotion or a cue."""
        emotional = self.emotional(text)
        self._since_emotion = 0 if emotional else self._since_emotion + 1
        if self.turns and self.turns[-1].reply is None:
            self.turns[-1].reply, self.turns[-1].reply_emotional = text, emotional
        return emotional

    def emotional(self, text: str) -> bool:
        """Whether a line of the person's shows an emotion or drops a cue (one of the station's emotional lines,
        or words of feeling)."""
        line = clean(text)
        if not line:
            return False
        if any(t and (t in line or line in t) and len(line) >= 8 for t in self._emotional_texts):
            return True
        return EMOTION_WORDS.search(line) is not None or "..." in line

    def arc(self) -> list[dict[str, int]]:
        """The state at the start (turn 0) and after each learner turn."""
        return [{"turn": 0, **self.start.as_dict()}, *({"turn": t.turn, **t.state} for t in self.turns)]


def replay(scenario: Scenario, lines: list[tuple[str, str, int | None]], embedder: Embedder | None = None) -> Tracker:
    """A tracker fed with a transcript: (role, text, turn) in order; role 'clinician' is the learner,
    anything else is the person (or someone with them)."""
    tracker = Tracker(scenario, embedder)
    for role, text, turn in lines:
        if role == "clinician":
            tracker.learner(text, turn)
        else:
            tracker.patient(text)
    return tracker
