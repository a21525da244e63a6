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
    assert "not available" in odd.observation and odd.info["ledger"]["tests"] == 1
    assert bad.observation.startswith("Error:") and bad.info["error"] and bad.info["ledger"]["turns"] == 5
    assert dx.terminated and not dx.truncated and dx.info["axes"]["diagnosis"] == 1.0
    assert dx.reward == dx.info["composite"] >= 0.6  # the weighted composite of every axis; diagnosis dominates
    assert dx.info["verdict"]["level"] in ("exact", "synonym") and dx.info["outcome"] == "correct"
    assert clinic.ledger.cost == 16 and [e.turn for e in clinic.events] == [1, 2, 3, 4, 5, 6]
    assert ("1", "chest-pain") not in clinic.disclosed and (1, "chest-pain") in clinic.disclosed
    assert (2, "smoking") in clinic.disclosed
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
    assert results[-1].reward == results[-1].info["composite"] <= 0.4 and results[0].reward == 0.0


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
    assert clinic.events[-1].tool["invalid_arguments"] and clinic.ledger.tool_calls == 0


def test_tool_calls_are_recorded_and_counted():
    clinic = scripted_clinic()
    clinic.reset(STEMI)
    report = ("FINDINGS: There is a 12 mm nodule in the right upper lobe. No pleural effusion.\n"
              "IMPRESSION: 21 mm nodule in the right upper lobe.")
    [result] = play(clinic, ["CALL TOOL: check_report " + json.dumps({"report": report})])
    tool = clinic.events[-1].tool
    assert result.observation.startswith("Tool check_report:") and tool["name"] == "check_report"
    assert "measurement_change" in {e["type"] for e in tool["data"]["errors"]} and tool["seconds"] >= 0
    assert clinic.ledger.tool_calls == 1 and not result.terminated
    metrics = tool_metrics(clinic.events, ["check_report", "segment"])
    assert metrics["calls"] == {"check_report": 1} and metrics["invalid_arguments"] == 0
    assert metrics["relevant_used"] is False and tool_metrics(clinic.events, ["check_report"])["relevant_used"]
