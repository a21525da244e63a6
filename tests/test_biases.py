"""Patient and doctor biases: names, rendering per case, anchoring from the differential, prompts."""

from __future__ import annotations

import asyncio
import copy

import pytest

from agentclinic.agents.biases import (
    DOCTOR_BIASES, PATIENT_BIASES, anchor_for, check_biases, not_applied, render_bias, render_biases)
from agentclinic.agents.embeddings import Embedder
from agentclinic.agents.llm import LLMDoctor, LLMPatient
from agentclinic.errors import ConfigError
from agentclinic.runs.runner import reset_doctor
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR
from agentclinic.scenario.schema import Scenario

from conftest import MINIMAL
from test_llm_agents import FakeChatModel

BANK = load_scenarios(BANK_DIR)
STEMI = BANK.get("cardiology-inferior-stemi")  # differential: dissection, PE, pericarditis, unstable angina

AGENTCLINIC_PATIENT = {"recency", "frequency", "false_consensus", "self_diagnosis", "gender", "race",
                       "sexual_orientation", "cultural", "education", "religion", "socioeconomic"}
AGENTCLINIC_DOCTOR = (AGENTCLINIC_PATIENT - {"self_diagnosis"}) | {"confirmation", "status_quo"}


def test_the_eleven_patient_and_twelve_doctor_biases():
    assert set(PATIENT_BIASES) == AGENTCLINIC_PATIENT and len(PATIENT_BIASES) == 11
    assert set(DOCTOR_BIASES) == AGENTCLINIC_DOCTOR and len(DOCTOR_BIASES) == 12


ALL_BIASES = [("patient", n) for n in PATIENT_BIASES] + [("doctor", n) for n in DOCTOR_BIASES]


@pytest.mark.parametrize("role, name", ALL_BIASES)
def test_every_bias_renders_for_a_case(role, name):
    text = render_bias(role, name, STEMI, seed=0)
    assert text and "$" not in text and "{" not in text and len(text.split()) >= 15
    assert STEMI.diagnosis.name.lower() not in text.lower() and "STEMI" not in text
    if "$anchor" in (PATIENT_BIASES if role == "patient" else DOCTOR_BIASES)[name]:
        assert anchor_for(STEMI, 0) in text


def test_the_anchor_comes_from_the_differential_chosen_by_seed():
    names = [c.name for c in STEMI.differential]
    anchors = [anchor_for(STEMI, seed) for seed in range(40)]
    assert set(anchors) <= set(names) and len(set(anchors)) >= 3  # not always the same, never "cancer"
    assert anchors == [anchor_for(STEMI, seed) for seed in range(40)]  # deterministic
    for case in (c for c in BANK if c.kind == "diagnostic"):  # stations have no differential
        anchor = anchor_for(case, 1)
        assert anchor in [c.name for c in case.differential] and anchor != case.diagnosis.name


def test_a_case_without_a_differential_anchors_on_another_disease_of_its_specialty():
    data = copy.deepcopy(MINIMAL)
    data["differential"] = []
    case = Scenario.model_validate(data)
    anchor = anchor_for(case, 0)
    assert anchor and "pneumonia" not in anchor.lower()
    assert anchor == anchor_for(case, 0)


def test_doctor_social_biases_name_the_patients_group():
    assert "a man" in render_bias("doctor", "gender", STEMI)
    assert "warehouse supervisor" in render_bias("doctor", "socioeconomic", STEMI)


def test_names_are_normalised_split_and_checked():
    assert check_biases("patient", ["Self-Diagnosis", "recency, gender", "none", "recency"]) == [
        "self_diagnosis", "recency", "gender"]
    assert check_biases("doctor", None) == [] and check_biases("doctor", "none") == []
    with pytest.raises(ConfigError, match="known patient biases: recency, frequency"):
        check_biases("patient", ["anchoring"])
    with pytest.raises(ConfigError, match="'confirmation' is a doctor bias"):
        check_biases("patient", ["confirmation"])
    with pytest.raises(ConfigError, match="'self_diagnosis' is a patient bias"):
        check_biases("doctor", "self_diagnosis")


def test_biases_compose_into_one_paragraph_each():
    applied = render_biases("doctor", ["recency", "status_quo"], STEMI, seed=2)
    assert applied.names == ["recency", "status_quo"] and applied.anchor == anchor_for(STEMI, 2)
    assert applied.text.count("\n\n") == 1 and applied.anchor in applied.text
    assert render_biases("doctor", [], STEMI) is None
    assert render_biases("doctor", ["status_quo"], STEMI).anchor is None  # no anchor used, none recorded


def test_the_llm_patient_prompt_carries_its_biases():
    model = FakeChatModel(["I think it might be my heart lining, doctor."])
    patient = LLMPatient(model, biases=["self_diagnosis", "education"], embedder=Embedder(None))
    patient.reset(STEMI, seed=5)
    asyncio.run(patient.reply("Hello", 1))
    prompt = model.sent()[0].text()
    anchor = anchor_for(STEMI, 5)
    assert anchor in prompt and "poor medical school" in prompt
    assert patient.bias_info == {"role": "patient", "names": ["self_diagnosis", "education"], "anchor": anchor,
                                 "text": render_biases("patient", ["self_diagnosis", "education"], STEMI, 5).text,
                                 "applied": True}
    unbiased = LLMPatient(FakeChatModel(), embedder=Embedder(None))
    unbiased.reset(STEMI, seed=5)
    assert anchor not in unbiased.system_prompt() and unbiased.bias_info is None


def test_the_llm_doctor_prompt_carries_its_biases_and_others_ignore_them():
    doctor = LLMDoctor(FakeChatModel(["Hello"]))
    record = reset_doctor(doctor, STEMI.doctor_brief, 3, STEMI, ["confirmation"])
    assert record["applied"] and record["anchor"] == anchor_for(STEMI, 3)
    asyncio.run(doctor.act(STEMI.doctor_brief))
    assert record["anchor"] in doctor.model.sent()[0].text()
    doctor.reset(STEMI.doctor_brief, 3)
    assert record["anchor"] not in doctor.system.text()

    class Plain:
        name = "scripted"

        def reset(self, brief, seed=None):
            self.brief = brief

    ignored = reset_doctor(Plain(), STEMI.doctor_brief, 3, STEMI, ["confirmation"])
    assert ignored == {"role": "doctor", "names": ["confirmation"], "text": "", "applied": False,
                       "note": "the scripted doctor ignores biases"}
    assert not_applied("doctor", [], "scripted") is None


def test_the_scripted_patient_ignores_biases():
    from agentclinic.agents.llm_factory import make_patient
    from agentclinic.agents.patient import ScriptedPatient

    patient = make_patient("scripted", biases=["recency"])
    assert isinstance(patient, ScriptedPatient) and not hasattr(patient, "bias_info")
    with pytest.raises(ConfigError, match="known patient biases"):
        make_patient("scripted", biases=["optimism"])
