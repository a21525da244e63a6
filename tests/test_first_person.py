"""Case-file wording rewritten in the first person, and onset / duration / severity / course split off."""

from __future__ import annotations

import pytest

from agentclinic.scenario.first_person import first_person, is_no_information, timing_facts


@pytest.mark.parametrize("note, said", [
    ("The patient reports a 1-month history of double vision.", "I've had double vision for about a month."),
    ("The patient presents with a 2-day history of fever and confusion.", "I've had fever and confusion for 2 days."),
    ("She presents to the clinic with complaints of itchy eyes.", "I've had itchy eyes."),
    ("He complains of pain in his left knee.", "I've had pain in my left knee."),
    ("She notes that these symptoms get worse after exercise.", "The symptoms get worse after exercise."),
    ("She reports pain with urination.", "I've had pain with urination."),
    ("Patient denies experiencing any chest pain or palpitations.", "I haven't had any chest pain or palpitations."),
    ("Denies fever, cough, or recent travel.", "I haven't had any fever, cough, or recent travel."),
    ("He has a history of hypertension.", "I have a history of hypertension."),
    ("She was told at her last visit that her blood pressure was high.",
     "I was told at my last visit that my blood pressure was high."),
    ("Has smoked 2 packs of cigarettes per day since he was 25.",
     "I have smoked 2 packs of cigarettes per day since I was 25."),
    ("Works as a graphic designer.", "I work as a graphic designer."),
    ("Non-smoker.", "I don't smoke."),
    ("Significant for Lyme disease.", "I've had lyme disease."),
    ("No significant past medical history.", "I haven't had any significant past medical history."),
])
def test_notes_become_first_person(note, said):
    assert first_person(note) == said


@pytest.mark.parametrize("fragment, category, said", [
    ("Double vision", "hpi", "I've had double vision."),
    ("No recent trauma", "hpi", "I haven't had any recent trauma."),
    ("Worse in cold weather", "hpi", "It's worse in cold weather."),
    ("Improvement of symptoms after rest", "hpi", "It gets better with rest."),
    ("History of kidney stones", "pmh", "I've had kidney stones before."),
    ("Metformin 500 mg twice daily", "medications", "I take metformin 500 mg twice daily."),
    ("Penicillin", "allergies", "I'm allergic to penicillin."),
])
def test_list_fragments_become_sentences(fragment, category, said):
    assert first_person(fragment, fragment=True, category=category) == said


def test_a_parent_speaking_keeps_the_child_in_the_third_person():
    assert first_person("He has had a fever for 3 days.", speaker_is_patient=False) == "He has had a fever for 3 days."
    assert first_person("The patient is feeding poorly.", speaker_is_patient=False) == "My child is feeding poorly."


@pytest.mark.parametrize("note, expected", [
    ("The patient reports a 1-month history of double vision.", [("onset", "It started about 1 month ago.")]),
    ("She has had a cough for the past 3 weeks that is getting worse.",
     [("onset", "It's been going on for 3 weeks."), ("course", "It's been getting worse.")]),
    ("Sudden-onset severe headache, 9/10.", [("onset", "It came on suddenly."), ("severity", "It's about 9 out of 10.")]),
    ("The pain comes and goes since yesterday.", [("course", "It comes and goes."), ("onset", "It started yesterday.")]),
    ("Denies fever for 2 weeks.", []),  # what did not happen has no onset
    ("She works as a teacher.", []),
])
def test_timing_is_split_off(note, expected):
    assert timing_facts(note) == expected


@pytest.mark.parametrize("text", ["Information not provided.", "Not provided", "N/A", "None.",
                                  "No information provided."])
def test_fields_that_say_nothing_was_given(text):
    assert is_no_information(text)


def test_real_content_is_not_taken_for_no_information():
    assert not is_no_information("No history of smoking.") and not is_no_information("None of the above helped.")
