"""A golden episode and the clinic's rules, with the offline scripted agents."""

import asyncio
import json

import pytest

from agentclinic.env.gym import scripted_clinic
from agentclinic.env.ledger import Budget
from agentclinic.errors import AgentClinicError
from agentclinic.runs.runner import tool_metrics
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

BANK = load_scenarios(BANK_DIR)
STEMI = BANK.get("cardiology-inferior-stemi")


def play(clinic, actions):
    return [asyncio.run(clinic.step(a)) for a in actions]


def test_golden_episode():
    clinic = scripted_clinic()
    brief, info = clinic.reset(STEMI, seed=7)
    assert brief == STEMI.doctor_brief and info["ledger"]["turns"] == 0
    greet, smoke, ecg, odd, bad, dx = play(clinic, [
        "Hello, what brings you in today?",
        "Do you smoke cigarettes?",
        "REQUEST TEST: EKG",
        "REQUEST TEST: serum unobtainium",
        '{"type": "diagnose", "primary": }',
        "DIAGNOSIS READY: Inferior STEMI",
    ])
    assert greet.observation.startswith("Patient:") and "crushing" in greet.observation
    assert "pack a day" in smoke.observation
    assert ecg.observation == f"Test results:\n- 12-lead ECG: {STEMI.tests[0].result}"
    assert odd.observation.endswith("- serum unobtainium: Not available for this patient.") and odd.info["ledger"]["tests"] == 1
    assert bad.observation.startswith("Error:") and bad.info["error"] and bad.info["ledger"]["turns"] == 5
    assert dx.terminated and not dx.truncated and dx.info["axes"]["diagnosis"] == 1.0
    assert dx.reward == dx.info["composite"] >= 0.6  # the weighted composite of every axis; diagnosis dominates
    assert dx.info["verdict"]["level"] in ("exact", "synonym") and dx.info["outcome"] == "correct"
    record = clinic.record
    assert clinic.ledger.cost == 16 == record.cost and [e.turn for e in record.events] == [1, 2, 3, 4, 5, 6]
    assert ("1", "chest-pain") not in record.disclosed and (1, "chest-pain") in record.disclosed
    assert (2, "smoking") in record.disclosed and record.turns == 6 and record.tests == 1
    assert record.outcome == "correct" and record.diagnosis == "Inferior STEMI" and record.scores.composite == dx.reward
    with pytest.raises(AgentClinicError, match="reset"):
        asyncio.run(clinic.step("Any questions?"))


def test_wrong_diagnosis_scores_zero():
    clinic = scripted_clinic()
    clinic.reset(STEMI)
    [result] = play(clinic, ["DIAGNOSIS READY: Migraine"])
    assert result.terminated and result.info["axes"]["diagnosis"] == 0.0 and result.info["outcome"] == "incorrect"
    assert result.reward == result.info["composite"] <= 0.4  # only the other axes' weight is left


def test_turn_budget_truncates_with_no_diagnosis():
    clinic = scripted_clinic(Budget(turns=3))
    clinic.reset(STEMI)
    results = play(clinic, ["Any fever?", "Any cough?", "Any rash?"])
    assert [r.truncated for r in results] == [False, False, True]
    assert results[-1].info["outcome"] == "no-diagnosis" and results[-1].info["truncated_by"] == "turns"
    assert not results[-1].terminated and results[-1].info["axes"]["diagnosis"] == 0.0
    assert results[-1].reward == results[-1].info["composite"] == 0.0 and results[0].reward == 0.0  # no diagnosis


def test_test_and_money_budgets_truncate():
    clinic = scripted_clinic(Budget(tests=1))
    clinic.reset(STEMI)
    [result] = play(clinic, ["REQUEST TEST: ECG, troponin"])
    assert result.truncated and result.info["truncated_by"] == "tests" and clinic.ledger.tests == 1
    clinic = scripted_clinic(Budget(money=20))
    clinic.reset(STEMI)
    [result] = play(clinic, ["REQUEST TEST: troponin, ECG"])
    assert result.truncated and result.info["truncated_by"] == "money" and clinic.ledger.cost == 10


def test_examination_images_and_tools():
    clinic = scripted_clinic()
    clinic.reset(STEMI)
    exam, image, unknown, invalid = play(clinic, ["Examine: heart", "REQUEST IMAGES", "CALL TOOL: xray_vision {}",
                                                  "CALL TOOL: segment {}"])
    assert "soft S4" in exam.observation
    assert image.observation.startswith("Error:") and "no images" in image.observation
    assert "unknown tool 'xray_vision'" in unknown.observation and "segment" in unknown.observation
    assert invalid.observation.startswith("Error: invalid arguments for segment") and "image_id" in invalid.observation
    assert clinic.record.events[-1].tool.invalid_arguments and clinic.ledger.tool_calls == 0


def test_tool_calls_are_recorded_and_counted():
    clinic = scripted_clinic()
    clinic.reset(STEMI)
    report = ("FINDINGS: There is a 12 mm nodule in the right upper lobe. No pleural effusion.\n"
              "IMPRESSION: 21 mm nodule in the right upper lobe.")
    [result] = play(clinic, ["CALL TOOL: check_report " + json.dumps({"report": report})])
    tool = clinic.record.events[-1].tool
    assert result.observation.startswith("Tool check_report:") and tool.name == "check_report"
    assert "measurement_change" in {e["type"] for e in tool.data["errors"]} and tool.seconds >= 0
    assert clinic.ledger.tool_calls == 1 == clinic.record.tool_calls and not result.terminated
    metrics = tool_metrics(clinic.record.events, ["check_report", "segment"])
    assert metrics["calls"] == {"check_report": 1} and metrics["invalid_arguments"] == 0
    assert metrics["relevant_used"] is False and tool_metrics(clinic.record.events, ["check_report"])["relevant_used"]


# --------------------------------------------------------------------------------------------
# The record is the hub
# --------------------------------------------------------------------------------------------


def test_the_clinic_state_exists_from_init_and_each_reset_starts_a_fresh_record():
    from agentclinic.agents.base import Finding
    from agentclinic.runs.record import ToolCall

    clinic = scripted_clinic()
    assert clinic.record.events == [] and clinic.ledger.turns == 0 and clinic.record.outcome is None
    with pytest.raises(AgentClinicError, match="reset"):
        asyncio.run(clinic.step("Hello"))
    clinic.reset(STEMI, seed=3)
    play(clinic, ["Examine: heart", "CALL TOOL: segment {}", "DIAGNOSIS READY: Migraine"])
    first = clinic.record
    assert first.seed == 3 and first.outcome == "incorrect" and first.verdict.level == "wrong"
    assert all(isinstance(f, Finding) for f in first.events[0].findings) and first.events[0].findings
    assert isinstance(first.events[1].tool, ToolCall) and first.events[1].tool.invalid_arguments
    assert first.scores.diagnosis.level == "wrong" and first.reward == first.scores.composite
    clinic.reset(STEMI, seed=4)
    assert clinic.record is not first and clinic.record.events == [] and len(first.events) == 3


class RecordOnly:
    """A clinic seen from outside as the runner may see it: reset, step, fail, rate and the record."""

    def __init__(self, clinic):
        object.__setattr__(self, "_clinic", clinic)

    def __getattr__(self, name):
        if name in ("reset", "step", "fail", "rate", "record"):
            return getattr(self._clinic, name)
        raise AssertionError(f"the runner read clinic.{name}")


def test_the_runner_reads_the_record_and_nothing_else_of_the_clinic():
    from agentclinic.agents.doctors import ScriptedDoctor
    from agentclinic.runs.runner import play_episode

    record = asyncio.run(play_episode(RecordOnly(scripted_clinic()), ScriptedDoctor(), STEMI, seed=1, run_id="r",
                                      episode=7, doctor_name="scripted"))
    assert record.error is None and record.outcome in ("correct", "incorrect") and record.episode == 7
    assert record.turns == len(record.events) and record.scores is not None and record.tool_metrics


def test_the_embedder_is_named_in_every_info_and_record():
    from agentclinic.agents.embeddings import default_embedder

    clinic = scripted_clinic()
    _, info = clinic.reset(STEMI)
    name = default_embedder().name
    assert name.startswith("all-MiniLM-L6-v2@") and info["embedder"] == name == clinic.record.embedder
    [result] = play(clinic, ["Any fever?"])
    assert result.info["embedder"] == name
