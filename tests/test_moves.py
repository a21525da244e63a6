"""Recognising learner moves in context (rules plus the shared sentence embeddings)."""

import pytest

from agentclinic.agents.embeddings import default_embedder
from agentclinic.conversation.moves import Context, MoveRecogniser
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios

STATION = load_scenarios(BANK_DIR / "conversations" / "lung-cancer-news.yaml").scenarios[0]


@pytest.fixture(scope="module")
def recogniser():
    return MoveRecogniser(STATION, default_embedder())


@pytest.mark.parametrize("text, move", [
    ("Hello Mr Price, I'm Dr Shah, one of the respiratory doctors.", "introduction"),
    ("Is it okay if we talk here, somewhere quiet?", "check-setting"),
    ("Before I start, what have you been told so far about the scan?", "ask-perception"),
    ("How much detail would you like me to go into today?", "ask-invitation"),
    ("I'm afraid the results are not what we were hoping for.", "warning-shot"),
    ("(pauses)", "silence"),
    ("...", "silence"),
    ("You look really frightened.", "naming-emotion"),
    ("It's completely natural to feel like that.", "understanding-statement"),
    ("You've looked after Jean so well all these years.", "respect-statement"),
    ("We'll go through this together, you won't be on your own.", "support-statement"),
    ("How are you feeling about all this?", "explore-emotion"),
    ("What is worrying you most at the moment?", "ask-concerns"),
    ("Don't worry, everything will be fine.", "false-reassurance"),
    ("This is because you smoked for forty years.", "blaming"),
    ("Calm down, there's no need to get upset.", "dismissing-emotion"),
    ("Can you tell me in your own words what you've understood?", "check-understanding"),
    ("So, to sum up, the scan shows a cancer and tomorrow we take a sample.", "summarise"),
    ("If anything changes, ring the ward any time, day or night.", "safety-net"),
    ("Have you had thoughts of ending your life?", "risk-question"),
])
def test_each_move_is_recognised(recogniser, text, move):
    assert move in recogniser.recognise(text).moves


def test_nothing_is_recognised_in_small_talk(recogniser):
    found = recogniser.recognise("The car park was busy this morning.")
    assert found.moves == [] and found.delivered == []


def test_news_without_preparation_is_blunt_and_with_a_warning_shot_is_not(recogniser):
    news = "The scan shows a growth in your lung that is very likely a cancer, and it has spread to your liver."
    blunt = recogniser.recognise(news, Context(turn=1))
    assert {"deliver-information", "blunt-news"} <= set(blunt.moves) and blunt.delivered == ["diagnosis"]
    warned = recogniser.recognise("I'm afraid it's not good news. " + news, Context(turn=3))
    assert "blunt-news" not in warned.moves and "warning-shot" in warned.moves
    invited = recogniser.recognise(news, Context(turn=3, earlier_moves={"ask-invitation"}))
    assert "blunt-news" not in invited.moves and "plain-language" in invited.moves


def test_harsh_words_are_blunt_whatever_came_before(recogniser):
    found = recogniser.recognise("No time for that, you have cancer everywhere, nothing to be done.",
                                 Context(turn=5, earlier_moves={"warning-shot"}))
    assert {"blunt-news", "dismissing-emotion", "deliver-information"} <= set(found.moves)


def test_jargon_unless_explained(recogniser):
    plain = recogniser.recognise("It has spread to the liver; we call those metastases, which means deposits.")
    assert "jargon" not in plain.moves and "plain-language" in plain.moves and plain.jargon == ["metastases"]
    bare = recogniser.recognise("There are liver metastases from the primary.")
    assert "jargon" in bare.moves and set(bare.jargon) == {"metastases", "primary"}


def test_asking_what_the_person_knows_delivers_nothing(recogniser):
    found = recogniser.recognise("What do you understand about why we did the biopsy?")
    assert found.delivered == [] and "ask-perception" in found.moves


def test_quotes_keep_the_learners_words(recogniser):
    found = recogniser.recognise("Hello. I'm AFRAID it's not good news, Mr Price.")
    assert found.quotes["warning-shot"] == "I'm AFRAID it's not good news, Mr Price."


def test_embeddings_add_paraphrases_the_rules_miss(recogniser):
    found = recogniser.recognise("What's going through your head right now?")  # no rule says "head"
    assert "explore-emotion" in found.moves
    assert "explore-emotion" not in MoveRecogniser(STATION, None).recognise("What's going through your head right now?").moves


def test_recognition_is_deterministic(recogniser):
    text = "I'm so sorry. This must be a shock. What worries you most?"
    assert recogniser.recognise(text).moves == recogniser.recognise(text).moves
