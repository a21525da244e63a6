"""The person in a station: the scripted emotional patient, the LLM conversation patient, and the clinic that
plays stations (END CONVERSATION, budgets, moves and emotion recorded per turn)."""

import asyncio
import json

import pytest

from agentclinic.agents.embeddings import default_embedder
from agentclinic.agents.emotional_patient import EmotionalPatient, LLMConversationPatient, conversation_patient_for
from agentclinic.agents.llm import LLMPatient
from agentclinic.agents.patient import ScriptedPatient
from agentclinic.backends.base import ChatResult
from agentclinic.conversation import station_clinic
from agentclinic.runs.record import EpisodeRecord
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios

STATION = load_scenarios(BANK_DIR / "conversations" / "lung-cancer-news.yaml").scenarios[0]
LINES = STATION.conversation.lines
NEWS = "I'm afraid it's not good news. The scan shows a cancer in your lung, and it has spread to your liver."


@pytest.fixture()
def patient():
    p = EmotionalPatient(default_embedder())
    p.reset(STATION, seed=3)
    return p


def say(p, *lines):
    return [p.respond(text, turn) for turn, text in enumerate(lines, 1)]


def test_how_are_you_feeling_gets_an_emotional_reply_not_unsure(patient):
    replies = say(patient, "Hello Mr Price, I'm Dr Shah.", NEWS, "How are you feeling about all this?")
    feeling = replies[-1]
    assert feeling.text not in LINES.unknown and "not sure" not in feeling.text.lower()
    assert patient.tracker.emotional(feeling.text)
    assert "explore-emotion" in feeling.conversation["moves"]


def test_telling_the_news_gets_a_reaction_not_a_fact(patient):
    reply = say(patient, "Hello Mr Price.", NEWS)[-1]
    reactions = STATION.conversation.information[0].reaction
    assert any(reply.text.startswith(r) for r in reactions), reply.text
    assert reply.disclosed == [] and not any(f.text in reply.text for f in STATION.facts)
    assert reply.conversation["delivered"] == ["diagnosis"]
    assert reply.conversation["emotion"]["distress"] > STATION.conversation.emotion.start.distress


def test_concerns_surface_only_when_invited_and_cues_come_unprompted(patient):
    wife = STATION.conversation.concerns[0]
    replies = say(patient, "Hello, I'm Dr Shah.", "Can I check your date of birth?", NEWS, "Okay.", "Right.")
    said = " ".join(r.text for r in replies)
    assert wife.text not in said  # never invited
    assert wife.cue in said  # but the cue was dropped after the news
    invited = patient.respond("You mentioned Jean. What worries you most?", 6)
    assert invited.text.startswith(wife.text) and invited.conversation["concerns"] == ["wife"]


def test_background_questions_are_answered_from_the_facts(patient):
    reply = say(patient, "Hello.", "Did you ever smoke?")[-1]
    assert reply.disclosed == ["smoking"] and "forty years" in reply.text


def test_jargon_confuses_and_closing_closes(patient):
    confused = say(patient, "Hello.", "The CT shows a primary with liver metastases.")[-1]
    assert confused.text in LINES.confused and "jargon" in confused.conversation["moves"]
    closing = patient.respond("Thank you for your time, take care. Goodbye.", 3)
    assert closing.text in LINES.closing


def test_a_blunt_learner_makes_things_worse_than_a_careful_one():
    def final(lines):
        p = EmotionalPatient(default_embedder())
        p.reset(STATION, seed=0)
        return say(p, *lines)[-1].conversation["emotion"]

    blunt = final(["No time for that, you have cancer everywhere, nothing to be done.", "Calm down.",
                   "Don't worry, it will be fine."])
    careful = final(["Hello, I'm Dr Shah. What have you been told so far?", NEWS, "(pauses)",
                     "This must be a real shock. What worries you most?"])
    assert blunt["trust"] < careful["trust"] and blunt["distress"] >= careful["distress"]


def test_deterministic_under_a_seed():
    def play(seed):
        p = EmotionalPatient(default_embedder())
        p.reset(STATION, seed=seed)
        return [r.text for r in say(p, "Hello.", "Okay.", NEWS, "Right.", "How are you feeling?", "Okay.")]

    assert play(1) == play(1)
    assert len({tuple(play(s)) for s in range(6)}) > 1  # the seed picks among the written lines


def test_the_instructor_can_take_over_the_next_reply(patient):
    patient.set_next_reply("I'd rather you spoke to my daughter.")
    reply = patient.respond(NEWS, 1)
    assert reply.text == "I'd rather you spoke to my daughter." and reply.conversation["delivered"] == ["diagnosis"]
    assert patient.respond("Okay.", 2).text != reply.text


def test_the_station_patient_follows_the_configured_one():
    assert isinstance(conversation_patient_for(ScriptedPatient(default_embedder())), EmotionalPatient)


class FakeModel:
    """A unit-test neighbour for ChatModel: fixed reply, records what it was sent."""

    name = "fake"
    supports_images = False

    def __init__(self, reply="Cancer? Oh no."):
        self.reply, self.calls = reply, []

    async def chat(self, messages, settings, *, tools=None, json_schema=None):
        self.calls.append(messages)
        return ChatResult(text=self.reply)


def test_llm_patient_is_told_state_and_concerns_and_the_state_machine_runs_beside_it():
    model = FakeModel()
    p = conversation_patient_for(LLMPatient(model, embedder=default_embedder()))
    assert isinstance(p, LLMConversationPatient)
    p.reset(STATION, seed=0)
    reply = asyncio.run(p.reply(NEWS, 1))
    system = model.calls[0][0].content
    assert reply.text == "Cancer? Oh no." and "distress" in system and "never coach" in system
    assert "Jean" in system and STATION.conversation.setting in system
    assert reply.conversation["delivered"] == ["diagnosis"] and "warning-shot" in reply.conversation["moves"]
    invited = asyncio.run(p.reply("What worries you most?", 2))
    assert "say this one in your own words" in model.calls[1][0].content and invited.conversation["concerns"]


def play(lines, **kwargs):
    async def run():
        clinic = station_clinic(**kwargs)
        brief, info = clinic.reset(STATION, seed=0)
        results = [await clinic.step(line) for line in lines]
        return clinic, brief, info, results
    return asyncio.run(run())


def test_the_clinic_plays_a_station_and_records_moves_and_emotion():
    clinic, brief, info, results = play(["Hello Mr Price, I'm Dr Shah.", NEWS, "END CONVERSATION"])
    assert "Your task:" in brief and "END CONVERSATION" in brief and info["conversation"]["emotion"]["trust"] == 2
    assert results[1].observation.startswith("Patient: ") and results[1].info["conversation"]["delivered"] == ["diagnosis"]
    record = clinic.record
    assert results[-1].terminated and record.outcome == "completed" and record.error is None
    assert record.events[1].moves[:2] == ["warning-shot", "deliver-information"]
    assert record.events[1].emotion["distress"] >= 3
    feedback = record.extra["feedback"]
    assert feedback["score"] == record.scores.axes["conversation"] and results[-1].info["feedback"] == feedback
    assert record.scores.axes["diagnosis"] is None and record.reward == record.scores.composite > 0
    again = EpisodeRecord.model_validate_json(record.model_dump_json())
    assert again.events[1].moves == record.events[1].moves and again.extra["feedback"] == feedback


def test_the_turn_budget_ends_a_station_as_an_outcome_not_an_error():
    clinic, _, _, results = play(["Hello.", "Okay.", "Right."], max_turns=3)
    assert results[-1].truncated and clinic.record.outcome == "ended-by-budget" and clinic.record.error is None
    assert clinic.record.scores is not None and "feedback" in clinic.record.extra


def test_time_budget_and_other_actions():
    async def run():
        clinic = station_clinic()
        clinic.reset(STATION, seed=0)
        wrong = await clinic.step("REQUEST TEST: CT chest")
        await clinic.step("Hello.")
        ended = await clinic.end(reason="time")
        return clinic, wrong, ended
    clinic, wrong, ended = asyncio.run(run())
    assert wrong.observation.startswith("Error: this is a conversation station") and not wrong.terminated
    assert ended.truncated and clinic.record.outcome == "ended-by-budget" and clinic.record.truncated_by == "time"
    assert json.loads(clinic.record.model_dump_json())["extra"]["feedback"]["station"] == STATION.id
