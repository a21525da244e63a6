"""Grading a conversation: order, context, stock phrases, information, red lines, evidence, the model grader."""

import asyncio
import json

import pytest

from agentclinic.agents.embeddings import default_embedder
from agentclinic.backends.base import ChatResult
from agentclinic.conversation.grading import Feedback, feedback_markdown, grade_with_model, grade_transcript
from agentclinic.conversation.tracker import replay
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios

STATION = load_scenarios(BANK_DIR / "conversations" / "lung-cancer-news.yaml").scenarios[0]
NEWS = "The scan shows a growth in your lung that is very likely a cancer, and it has spread to your liver."
REST = ("Because it has spread, we can't make it go away, but treatment can often hold it back. Tomorrow we take a "
        "small sample with a camera test so we know what type it is.")
CUE = "I don't know how I'm going to tell Jean..."
REACTION = "Cancer. Right. I think I knew, to be honest. I just didn't want to hear it."


def convo(*pairs) -> list:
    """(clinician, person) pairs as transcript lines."""
    lines, turn = [], 0
    for clinician, person in pairs:
        turn += 1
        lines.append(("clinician", clinician, turn))
        if person:
            lines.append(("patient", person, None))
    return lines


def graded(lines) -> Feedback:
    return grade_transcript(STATION, lines, default_embedder())


def item(feedback: Feedback, key: str):
    rubric, item_id = key.split("/")
    return next(i for i in feedback.items if i.rubric == rubric and i.id == item_id)


CAREFUL = convo(
    ("Hello Mr Price, I'm Dr Shah, one of the respiratory doctors. Is it okay to talk here?", "Go on then."),
    ("What have you been told so far about the scan?", "Just that there was a shadow."),
    ("How much detail would you like me to go into?", "Tell me straight."),
    ("I'm afraid it's not the news we were hoping for. " + NEWS, REACTION + " " + CUE),
    ("(pauses)", "Sorry. Give me a minute."),
    ("This must be a real shock. You mentioned Jean: what worries you most?",
     "What I'm really worried about is Jean. She's got MS."),
    ("You've looked after her so well. We'll make sure you both get support, and our nurse will see you today.",
     "Thank you."),
    (REST, "The camera test tomorrow."),
    ("Can you tell me in your own words what you've taken in?", "It's cancer, it's spread, there's a test tomorrow."),
    ("So the plan is the test tomorrow, then we meet to talk about treatment. If you're worried, ring the nurse any "
     "time. Is there anything else?", "No. Thank you."),
)
BLUNT = convo(
    ("Right, no time for that, you have cancer everywhere, nothing to be done.", REACTION),
    ("The metastases are in the liver. We'll do a bronchoscopy tomorrow.", "Sorry, I don't follow."),
    ("Don't worry, it will be fine. Anything else?", "No."),
)


def test_the_blunt_learner_of_the_issue_scores_lower_overall_and_on_spikes():
    careful, blunt = graded(CAREFUL), graded(BLUNT)
    assert blunt.score < careful.score and blunt.rubrics["spikes"] < careful.rubrics["spikes"]
    assert {h.id for h in blunt.red_lines} == {"false-reassurance", "jargon-unexplained", "dismissing-emotion"}
    assert careful.red_lines == [] and careful.score >= 0.8 and blunt.score <= 0.2
    assert any("bluntly" in p for p in blunt.penalties)


def test_a_phrase_sprayer_scores_lower_than_a_genuinely_empathic_learner():
    # the same information and the same structure; only the empathy differs
    spray = "I understand how you feel. I'm so sorry. This must be so hard."
    sprayer = graded(convo(
        (spray + " I'm Dr Shah.", "Go on then."),
        (spray + " What have you been told so far?", "Just that there was a shadow."),
        (spray + " I'm afraid it's not good news. " + NEWS, REACTION + " " + CUE),
        (spray + " " + REST, "What I'm really worried about is Jean."),
        (spray + " Is there anything else?", "No."),
    ))
    empathic = graded(convo(
        ("Hello, I'm Dr Shah.", "Go on then."),
        ("What have you been told so far?", "Just that there was a shadow."),
        ("I'm afraid it's not good news. " + NEWS, REACTION + " " + CUE),
        ("This is a big shock. You mentioned Jean: tell me more about what worries you. " + REST,
         "What I'm really worried about is Jean."),
        ("Of course you're worried about her; you've looked after her for years. Is there anything else?", "No."),
    ))
    assert sprayer.score < empathic.score and sprayer.rubrics["nurse"] < empathic.rubrics["nurse"]
    stock = item(sprayer, "nurse/understand")
    assert stock.status != "met" and stock.note  # the reason is given
    assert any(p.startswith("repeated stock phrase") for p in sprayer.penalties)


def test_order_matters_an_invitation_after_the_news_is_only_partly():
    late = graded(convo(("I'm afraid it's bad news. " + NEWS, REACTION),
                        ("How much detail would you like me to go into?", "Tell me.")))
    early = graded(convo(("How much detail would you like me to go into?", "Tell me."),
                         ("I'm afraid it's bad news. " + NEWS, REACTION)))
    assert item(early, "spikes/invitation").status == "met"
    assert item(late, "spikes/invitation").status == "partly" and "after the news" in item(late, "spikes/invitation").note


def test_empathy_pasted_at_the_start_is_not_credited():
    pasted = graded(convo(("You seem frightened. I'm Dr Shah.", "Hello, doctor."),
                          ("I'm afraid it's bad news. " + NEWS, REACTION + " " + CUE),
                          ("Anyway, tomorrow we take a sample.", "Right.")))
    name = item(pasted, "nurse/name")
    assert name.status == "missed" and "not in response to an emotion or cue" in name.note
    answered = graded(convo(("I'm Dr Shah.", "Hello, doctor."),
                            ("I'm afraid it's bad news. " + NEWS, REACTION + " " + CUE),
                            ("You seem frightened.", "I am.")))
    assert item(answered, "nurse/name").status == "met"


def test_the_information_must_be_delivered():
    chatty = graded(convo(("Hello, I'm Dr Shah. How are you feeling today?", "Worried."),
                          ("That must be worrying. What worries you most?", "What the scan showed."),
                          ("I can see you're anxious. Is there anything else?", "No.")))
    assert item(chatty, "spikes/knowledge").status == "missed"
    assert all(i.delivered_turn is None for i in chatty.information) and chatty.score < graded(CAREFUL).score / 2
    assert any("get across" in s for s in chatty.suggestions)


def test_evidence_quotes_the_learner_at_the_turn_it_names():
    feedback = graded(CAREFUL)
    said = {turn: text for role, text, turn in CAREFUL if role == "clinician"}
    evidence = [e for i in feedback.items for e in i.evidence]
    assert evidence and all(e.quote in said[e.turn] for e in evidence)
    assert item(feedback, "spikes/perception").evidence[0].turn == 2
    assert [p["turn"] for p in feedback.arc] == list(range(len(said) + 1))
    text = feedback_markdown(feedback)
    assert "SPIKES" in text and "turn 2: \"What have you been told so far about the scan?\"" in text
    per_item = [[line for line in part.splitlines() if line.startswith("  - turn ")] for part in text.split("\n- [")]
    assert any(per_item) and all(len(set(q)) == len(q) for q in per_item)  # a quote once per item


def test_a_diagnostic_case_cannot_be_graded():
    from conftest import MINIMAL
    from agentclinic.scenario.schema import Scenario

    with pytest.raises(ValueError, match="not a conversation station"):
        grade_transcript(Scenario.model_validate(MINIMAL), CAREFUL)


class FakeModel:
    """A unit-test neighbour for ChatModel: a fixed reply."""

    name = "fake-grader"
    supports_images = False

    def __init__(self, reply):
        self.reply = reply

    async def chat(self, messages, settings, *, tools=None, json_schema=None):
        return ChatResult(text=self.reply)


def test_the_model_grader_keeps_the_rules_beside_it_and_drops_invented_quotes():
    tracker = replay(STATION, BLUNT, default_embedder())
    reply = json.dumps({"items": [
        {"item": "spikes/setting", "status": "met", "evidence": [{"turn": 1, "quote": "Hello, I am your doctor"}]},
        {"item": "spikes/knowledge", "status": "partly",
         "evidence": [{"turn": 1, "quote": "you have cancer everywhere"}]}]})
    feedback = asyncio.run(grade_with_model(STATION, tracker, FakeModel(reply)))
    assert feedback.method == "llm" and feedback.grader == "fake-grader" and feedback.rules.method == "rules"
    setting = item(feedback, "spikes/setting")
    assert setting.status == "met" and setting.evidence == []  # the invented quote is dropped
    assert any("dropped a quote" in p for p in feedback.penalties)
    assert item(feedback, "spikes/knowledge").evidence[0].quote == "you have cancer everywhere"
    assert item(feedback, "nurse/name").note.endswith("model gave no grade: rule")
    fenced = asyncio.run(grade_with_model(STATION, tracker, FakeModel(f"Grades:\n```json\n{reply}\n```\n{{done}}")))
    assert fenced.method == "llm" and item(fenced, "spikes/setting").status == "met"  # prose around the JSON
    garbled = asyncio.run(grade_with_model(STATION, tracker, FakeModel("I think they did fine.")))
    assert garbled.method == "rules" and any("not understood" in p for p in garbled.penalties)
