"""The person in a conversation station: a scripted emotional patient (offline), or a language model with
the same state machine beside it.

Both read every learner line through the station's ``Tracker`` (agentclinic.conversation.tracker): the
moves it recognises change an emotional state (distress, anger, trust, understanding, 0..4), and each
reply reports the moves and the state (``PatientReply.conversation``), which the clinic records per turn.

The scripted ``EmotionalPatient`` answers from the station's written lines, deterministically under a seed:
- the first reply is an ``opening`` line; hearing an information item for the first time gets one of its
  ``reaction`` lines (jargon gets a ``confused`` one instead); closing gets a ``closing`` line;
- a hidden concern is said only when the learner invites it (asks about it by name, asks about concerns,
  explores the emotion, or asks an open question: in a bad-news station once the news is out); its ``cue``
  is dropped unprompted once the news is out
  (from the third turn in a station with nothing to deliver), one cue at a time and not two turns running;
- a background question is answered from the case's facts with the scripted patient's matching;
- anything else gets a line for the current state (``calm``, ``distressed``, ``angry``, ``withdrawn``,
  ``confused``, ``reassured``), and ``unknown`` only when the learner said nothing the person can
  respond to.
"""

from __future__ import annotations

import random
import re

from agentclinic.agents.base import PatientReply
from agentclinic.agents.embeddings import Embedder, default_embedder
from agentclinic.agents.patient import ScriptedPatient
from agentclinic.conversation.moves import contains
from agentclinic.conversation.tracker import Tracker, Turn
from agentclinic.scenario.schema import Scenario

INVITING = frozenset({"ask-concerns", "open-question", "explore-emotion"})
FEELING = frozenset({"explore-emotion", "naming-emotion", "empathy-statement", "understanding-statement", "silence",
                     "support-statement", "respect-statement", "ask-concerns"})
RESPONDS_TO = FEELING | {"warning-shot", "ask-perception", "ask-invitation", "check-setting", "introduction", "plan",
                         "summarise", "check-understanding", "false-reassurance", "blunt-news", "blaming",
                         "dismissing-emotion", "interrupting", "apologise", "jargon", "safety-net", "deliver-information"}
CUE_FROM_TURN = 3
SPEAKERS = {"patient": "Patient", "relative": "Relative", "interpreter": "Interpreter"}


def speaker_label(scenario: Scenario) -> str:
    """How the clinic labels the person's replies ("Patient", "Relative", "Interpreter")."""
    if scenario.conversation is None:
        return "Patient"
    return SPEAKERS[scenario.conversation.speaker.role]


class ConversationPatient:
    """What both station patients share: the tracker, the concerns revealed, an instructor's override."""

    name = "conversation"

    def __init__(self, embedder: Embedder | None = None):
        self.embedder = embedder if embedder is not None else default_embedder()
        self.scenario: Scenario | None = None
        self.tracker: Tracker | None = None
        self.seed = 0
        self.revealed: list[str] = []  # concern ids, in the order said
        self.cues: list[str] = []  # concern ids whose cue was dropped
        self.disclosures: list[tuple[int, str]] = []
        self._override: str | None = None

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        if scenario.conversation is None:
            raise ValueError(f"{scenario.id} is not a conversation station")
        self.scenario, self.seed = scenario, 0 if seed is None else int(seed)
        self.tracker = Tracker(scenario, self.embedder)
        self.revealed, self.cues, self.disclosures, self._override = [], [], [], None

    def set_next_reply(self, text: str) -> None:
        """An instructor's words for the next reply (the state machine still reads the learner's line)."""
        self._override = text.strip() or None

    def _finish(self, turn: Turn, text: str, disclosed: list[str], cue: str | None) -> PatientReply:
        if self._override is not None:
            text, disclosed, cue, self._override = self._override, [], None, None
        self.tracker.patient(text)
        for fact_id in disclosed:
            if fact_id not in {f for _, f in self.disclosures}:
                self.disclosures.append((turn.turn, fact_id))
        return PatientReply(text=text, disclosed=disclosed, conversation={
            "moves": list(turn.moves), "emotion": dict(turn.state), "mood": turn.mood,
            "delivered": sorted(self.tracker.delivered), "concerns": list(self.revealed), "cue": cue})

    def _invited_concern(self, turn: Turn, message: str):
        """The concern an invitation reaches: one named in the message, else one whose cue was dropped,
        else the first still hidden (None when the learner did not invite one or none is left). A question
        that names the worry reaches it; asking about concerns or exploring the emotion invites one; so does a
        plain open question (in a bad-news station once the news is out), never one about what the person knows
        or wants to know."""
        moves = set(turn.moves)
        hidden = [c for c in self.scenario.conversation.concerns if c.id not in self.revealed]
        text = message.lower()
        named = [c for c in hidden if any(contains(text, k) for k in c.keywords)]
        asking = moves & {"open-question", "closed-question", "risk-question"} or message.rstrip().endswith("?")
        if named and asking and not moves & {"ask-perception", "ask-invitation"}:
            return named[0]  # a question about the worry itself ("Have you had thoughts of ending your life?")
        asked = moves & {"ask-concerns", "explore-emotion"}
        opened = "open-question" in moves and not moves & {"ask-perception", "ask-invitation", "check-understanding"} \
            and (self.tracker.delivered or not self.tracker.recogniser.bad_news)
        if not (asked or opened) or not hidden:
            return None
        cued = [c for c in hidden if c.id in self.cues]
        return (named or cued or hidden)[0]


class EmotionalPatient(ConversationPatient):
    """The scripted person of a station: written lines chosen by state, concerns, reactions and facts."""

    name = "emotional"

    def __init__(self, embedder: Embedder | None = None):
        super().__init__(embedder)
        self.facts = ScriptedPatient(self.embedder)
        self._last_cue_turn = -9
        self._last_line: str | None = None

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        super().reset(scenario, seed)
        self.facts.reset(scenario, seed)
        self._last_cue_turn, self._last_line = -9, None

    async def reply(self, message: str, turn: int) -> PatientReply:
        return self.respond(message, turn)

    def respond(self, message: str, turn: int) -> PatientReply:
        if self.tracker is None:
            raise RuntimeError("EmotionalPatient.reply called before reset(scenario)")
        first = not self.tracker.turns
        t = self.tracker.learner(message, turn)
        conversation = self.scenario.conversation
        lines = conversation.lines
        moves = set(t.moves)
        parts: list[str] = []
        disclosed: list[str] = []
        concern = self._invited_concern(t, message)
        reacting = [i for i in conversation.information if i.id in t.new_information and i.reaction]
        if "close" in moves and not t.new_information and concern is None:
            parts.append(self._pick(lines.closing, turn, "closing"))
        elif "jargon" in moves:
            parts.append(self._pick(lines.confused, turn, "confused"))
        elif reacting:
            parts.append(self._pick(reacting[0].reaction, turn, "reaction"))
        elif concern is not None:
            self.revealed.append(concern.id)
            parts.append(concern.text)
        elif first and not moves & (FEELING - {"introduction"}):
            parts.append(self._pick(lines.opening, turn, "opening"))
        elif moves & FEELING:
            parts.append(self._mood_line(t, turn))
        elif facts := self._facts(message):
            disclosed = facts
            parts += [self.scenario.fact(f).text for f in facts]
        elif moves & RESPONDS_TO or t.delivered:
            parts.append(self._mood_line(t, turn))
        else:
            parts.append(self._pick(lines.unknown, turn, "unknown"))
        cue = self._cue(t, turn, concern is not None or bool(moves & {"close", "jargon"}))  # not while lost
        if cue is not None:
            parts.append(cue.cue)
        text = " ".join(parts)
        self._last_line = text
        return self._finish(t, text, disclosed, cue.cue if cue else None)

    def _mood_line(self, t: Turn, turn: int) -> str:
        return self._pick(getattr(self.scenario.conversation.lines, t.mood), turn, t.mood)

    def _pick(self, options: list[str], turn: int, salt: str) -> str:
        rng = random.Random(f"{self.seed}:{turn}:{salt}")
        choices = [o for o in options if o != self._last_line] or list(options)
        return choices[rng.randrange(len(choices))]

    def _facts(self, message: str) -> list[str]:
        """Facts a background question reaches (questions only; the scripted patient's matching)."""
        found: list[str] = []
        for sentence in re.split(r"(?<=[?.!])\s+", message):
            if sentence.strip().endswith("?") or re.match(r"\s*(tell me|talk me through) about\b", sentence, re.I):
                found += [f for f, _ in self.facts.match(sentence) if f not in found]
        return found[:2]

    def _cue(self, t: Turn, turn: int, busy: bool):
        """The concern whose cue to drop this turn, if any (unprompted, one at a time, not twice running)."""
        if busy or turn - self._last_cue_turn < 2:
            return None
        news = bool(self.tracker.delivered) or (not self.scenario.conversation.information and turn >= CUE_FROM_TURN)
        pending = [c for c in self.scenario.conversation.concerns
                   if c.cue and c.id not in self.revealed and c.id not in self.cues]
        if not news or not pending:
            return None
        self.cues.append(pending[0].id)
        self._last_cue_turn = turn
        return pending[0]


class LLMConversationPatient(ConversationPatient):
    """A station's person played by a language model, told the persona, the situation, the concerns and its
    current emotional state each turn; the tracker runs beside it so the record sees the same state."""

    name = "llm-conversation"

    def __init__(self, model, settings=None, embedder: Embedder | None = None):
        from agentclinic.backends.base import Settings

        super().__init__(embedder)
        self.model = model
        self.settings = settings or Settings()
        self.history: list = []

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        super().reset(scenario, seed)
        self.history = []

    def system_prompt(self, t: Turn, concern) -> str:
        from agentclinic.agents.llm import render_prompt

        scenario = self.scenario
        conversation, patient = scenario.conversation, scenario.patient
        speaker = conversation.speaker
        concerns = "\n".join(f"- {c.text}" + (f" (a hint you may drop: {c.cue})" if c.cue else "")
                             for c in conversation.concerns if c.id not in self.revealed) or "- (none left)"
        information = "\n".join(f"- {i.plain} (when you hear this, you might say something like: "
                                f"{i.reaction[0] if i.reaction else 'react as you would'})"
                                for i in conversation.information)
        state = ", ".join(f"{k} {v}/4" for k, v in t.state.items())
        invite = (f"The clinician has just invited you to share a worry: say this one in your own words: {concern.text}"
                  if concern else "Do not state your worries outright unless the clinician asks about them; "
                                  "you may hint at them.")
        return render_prompt(
            "conversation_patient", name=speaker.name, role=speaker.role,
            who=f"{patient.describe()}" + (f", {patient.occupation}" if patient.occupation else ""),
            persona=patient.persona.description or "", setting=conversation.setting, concerns=concerns,
            information=information, state=state, mood=t.mood, invite=invite,
            example="\n".join(f"- {line}" for line in getattr(conversation.lines, t.mood)))

    async def reply(self, message: str, turn: int) -> PatientReply:
        from agentclinic.agents.llm import call_model, clean_reply
        from agentclinic.backends.base import Message

        if self.tracker is None:
            raise RuntimeError("LLMConversationPatient.reply called before reset(scenario)")
        t = self.tracker.learner(message, turn)
        concern = self._invited_concern(t, message)
        if concern is not None:
            self.revealed.append(concern.id)
        user = Message(role="user", content=message)
        messages = [Message(role="system", content=self.system_prompt(t, concern)), *self.history[-20:], user]
        result = await call_model(self.model, messages, self.settings, role="patient")
        text = clean_reply(result.text) or self.scenario.conversation.lines.unknown[0]
        self.history += [user, Message(role="assistant", content=text)]
        return self._finish(t, text, [], None)


def conversation_patient_for(patient) -> ConversationPatient:
    """The station patient that stands in for a clinic's patient: the scripted emotional patient for the
    scripted one (same embedder), an LLM conversation patient for an LLM patient (same model and settings)."""
    if isinstance(patient, ConversationPatient):
        return patient
    model = getattr(patient, "model", None)
    embedder = getattr(patient, "embedder", None)
    embedder = embedder if isinstance(embedder, Embedder) else None
    if model is not None:
        return LLMConversationPatient(model, getattr(patient, "settings", None), embedder)
    return EmotionalPatient(embedder)
