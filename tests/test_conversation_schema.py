"""Conversation stations in the scenario model: kind, optional diagnosis, the conversation block, quality gates,
and that a station never reaches a diagnostic path (scores, list)."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.runs.record import EpisodeRecord, Event
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
from agentclinic.scenario.quality import check_scenarios
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring.axes import AXES
from agentclinic.scoring.rewards import score

from conftest import MINIMAL

STATION_FILE = BANK_DIR / "conversations" / "lung-cancer-news.yaml"
STATION = yaml.safe_load(STATION_FILE.read_text())


def station(**changes) -> dict:
    data = copy.deepcopy(STATION)
    for dotted, value in changes.items():
        target = data
        *path, last = dotted.split(".")
        for key in path:
            target = target[key]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return data


def test_the_station_loads_and_old_cases_stay_diagnostic():
    s = Scenario.model_validate(STATION)
    assert s.kind == "conversation" and s.is_station and s.diagnosis is None
    assert s.conversation.situation == "breaking-bad-news" and s.conversation.speaker.name == "Mr Alan Price"
    assert [i.id for i in s.conversation.information if i.essential] == ["diagnosis", "not-curable", "biopsy-next"]
    case = Scenario.model_validate(MINIMAL)
    assert case.kind == "diagnostic" and not case.is_station and case.conversation is None


@pytest.mark.parametrize("data, message", [
    ({k: v for k, v in MINIMAL.items() if k != "diagnosis"}, "a diagnostic case needs a 'diagnosis'"),
    (station(conversation=None), "a conversation station needs a 'conversation' block"),
    (station(kind="diagnostic"), "a diagnostic case needs a 'diagnosis'"),
    (station(**{"conversation.mood": "sad"}), "mood"),  # unknown keys are rejected
    (station(**{"conversation.emotion.escalates": ["shouting"]}), "escalates"),  # moves come from MOVES
    (station(**{"conversation.red_lines": [{"id": "rudeness"}]}), "red_lines"),
    (station(**{"conversation.situation": "small-talk"}), "situation"),
    (station(**{"conversation.emotion.start": {"distress": 5}}), "distress"),
    (station(**{"conversation.lines.angry": []}), "angry"),
    (station(**{"conversation.concerns": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}), "duplicate concern"),
])
def test_bad_stations_are_errors_that_name_the_field(data, message):
    with pytest.raises(ValidationError, match=message):
        Scenario.model_validate(data)


def test_a_diagnostic_case_cannot_carry_a_conversation_block():
    with pytest.raises(ValidationError, match="set 'kind: conversation'"):
        Scenario.model_validate(MINIMAL | {"conversation": STATION["conversation"]})


def gates(data: dict) -> dict[str, str]:
    return {i.code: i.severity for i in check_scenarios([Scenario.model_validate(data)])}


def test_quality_gates_pass_the_station_and_skip_diagnostic_gates():
    issues = gates(STATION)
    assert issues == {}, issues  # no "no-icd10", "no-tests", "nothing-volunteered" for a station


@pytest.mark.parametrize("change, code", [
    ({"conversation.concerns": [{"id": "wife", "text": "I worry about Jean.", "keywords": ["wife"]}]}, "no-cue"),
    ({"conversation.lines.calm": ["Right."]}, "too-few-lines"),
    ({"conversation.rubric": ["spikes", "osce-2000"]}, "unknown-rubric"),
    ({"provenance": {"source": "a hospital", "synthetic": False, "licence": "none"}}, "provenance"),
    ({"conversation.lines.unknown": ["As an AI language model, I cannot help with that request.", "Hmm."]},
     "refusal-text"),
])
def test_quality_gates_catch_broken_stations(change, code):
    assert gates(station(**change)).get(code) == "error"


def test_information_must_be_recognisable_and_plain():
    items = copy.deepcopy(STATION["conversation"]["information"])
    items[0]["keywords"] = []
    items[1]["plain"] = items[1]["text"]
    issues = gates(station(**{"conversation.information": items}))
    assert issues["no-keywords"] == "error" and issues["plain-not-plain"] == "error"


def test_scores_of_a_station_leave_diagnostic_axes_undefined_and_the_reverse():
    s = Scenario.model_validate(STATION)
    record = EpisodeRecord(scenario_id=s.id, outcome="completed", events=[
        Event(turn=1, action={"type": "ask", "text": "Hello, I'm Dr Shah. What have you been told so far?"},
              observation="Patient: Just that there was a shadow.")])
    scores = score(s, record)
    station_axes = {name for name, axis in AXES.items() if "conversation" in axis.kinds}
    assert station_axes == {"spikes", "nurse", "calgary_cambridge", "red_lines", "conversation"}
    assert all(scores.axes[a] is None for a in AXES if a not in station_axes)
    assert all(scores.axes[a] is not None for a in station_axes)
    assert scores.composite > 0 and scores.diagnosis.level == "none"
    diagnostic = score(Scenario.model_validate(MINIMAL), EpisodeRecord(scenario_id="test-case"))
    assert all(diagnostic.axes[a] is None for a in station_axes)


def test_scenarios_list_shows_kind_and_situation():
    result = CliRunner().invoke(app, ["scenarios", "list", str(STATION_FILE), "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)["scenarios"]
    assert row["kind"] == "conversation" and row["diagnosis"] is None and row["situation"] == "breaking-bad-news"


def test_every_station_in_the_bank_passes_the_gates():
    stations = [s for s in load_scenarios(BANK_DIR / "conversations") if s.is_station]
    assert stations
    errors = [str(i) for i in check_scenarios(stations) if i.severity == "error"]
    assert errors == []
