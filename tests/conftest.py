"""Shared fixtures: small scenario files written by the tests themselves."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from llama_server import llama_server, llama_server_process  # noqa: F401  (the real-server fixtures, for every module)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets" / "agentclinic"

MINIMAL = {
    "id": "test-case",
    "title": "Cough and fever",
    "specialty": "Pulmonology",
    "provenance": {"source": "synthetic", "synthetic": True, "licence": "CC-BY-4.0"},
    "doctor_brief": "A 40-year-old woman with a cough. Assess and diagnose.",
    "patient": {"age": 40, "sex": "female"},
    "facts": [
        {"id": "cough", "category": "hpi", "text": "I've had a cough for five days.", "disclosure": "volunteer",
         "important": True},
        {"category": "hpi", "text": "I've had fevers up to 39 degrees.", "important": True},
        {"category": "social", "text": "I don't smoke.", "important": True},
    ],
    "examination": [{"system": "respiratory", "result": "Bronchial breathing at the right base."}],
    "tests": [{"name": "Chest X-ray", "group": "Imaging", "synonyms": ["CXR"],
               "result": "Right lower lobe consolidation.", "price_code": "chest-xray", "relevant": True}],
    "diagnosis": {"name": "Community-acquired pneumonia", "aliases": ["CAP"], "icd10": "J18.9"},
    "differential": [{"name": "Acute bronchitis", "icd10": "J20.9"}],
}


@pytest.fixture
def scenario_data() -> dict:
    """A fresh copy of a minimal valid scenario mapping."""
    return copy.deepcopy(MINIMAL)


@pytest.fixture
def write_yaml(tmp_path: Path):
    def write(data: object, name: str = "case.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path
    return write


MEDQA_ROWS = [
    {"OSCE_Examination": {
        "Objective_for_Doctor": "Assess the patient presenting with drooping eyelids and fatigue.",
        "Patient_Actor": {
            "Demographics": "41-year-old woman",
            "History": "The patient has had drooping eyelids for two months. It is worse in the evening.",
            "Symptoms": {"Primary_Symptom": "Drooping eyelids", "Secondary_Symptoms": ["Tired jaw when chewing"]},
            "Past_Medical_History": "Hypothyroidism.",
            "Social_History": "Teacher, does not smoke.",
            "Review_of_Systems": {"Respiratory": "No shortness of breath"},
            "Current_Medications": ["Levothyroxine 50 mcg"],
        },
        "Physical_Examination_Findings": {
            "Vital_Signs": {"Heart_Rate": "70 bpm", "Blood_Pressure": "120/75 mmHg"},
            "Neurological_Examination": {"Eyelids": "Ptosis that worsens on sustained upgaze."},
        },
        "Test_Results": {
            "Blood_Tests": {"Acetylcholine_Receptor_Antibodies": "Positive",
                            "Complete_Blood_Count": {"WBC": "6,500/mm3", "Hemoglobin": "13.1 g/dL"}},
            "Imaging": {"Chest_CT": {"Findings": "Anterior mediastinal soft-tissue mass, 3 cm."}},
            "Serum_Potassium": "4.2 mEq/L",
        },
        "Correct_Diagnosis": "Myasthenia gravis",
    }},
    {"OSCE_Examination": {
        "Objective_for_Doctor": "Evaluate the patient with wrist pain after a fall.",
        "Patient_Actor": {"Demographics": "Newborn, male", "History": "Fell on an outstretched hand.",
                          "Symptoms": {"Primary_Symptom": "Wrist pain", "Secondary_Symptoms": []},
                          "Past_Medical_History": "None", "Social_History": "None", "Review_of_Systems": "None"},
        "Physical_Examination_Findings": {"Wrist": "Tenderness in the anatomical snuffbox."},
        "Test_Results": {"Wrist_Xray": {"Findings": "Scaphoid fracture is visible."}},
        "Correct_Diagnosis": "Scaphoid fracture",
    }},
]

NEJM_ROWS = [
    {"image_url": "https://images.example.org/case-1.jpg",
     "question": "A 60-year-old man presented with a rash on his hands. What is the most likely diagnosis?",
     "patient_info": "For your role as a patient, here's what you need to know: - You are a 60-year-old man. "
                     "- You have had a rash on your hands for a month. - It itches at night.",
     "physical_exams": "The information includes: 1. Skin scraping results: Mites seen under the microscope. "
                       "2. Complete blood count: Normal.",
     "answers": [{"text": "Contact dermatitis", "correct": False}, {"text": "Scabies", "correct": True},
                 {"text": "Psoriasis", "correct": False}]},
]


@pytest.fixture
def medqa_file(tmp_path: Path) -> Path:
    path = tmp_path / "medqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in MEDQA_ROWS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def nejm_file(tmp_path: Path) -> Path:
    path = tmp_path / "nejm.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in NEJM_ROWS) + "\n", encoding="utf-8")
    return path


def write_case_with_image(tmp_path: Path, remote: bool = False):
    """A one-image case (an 8x8 PNG beside it, plus a remote image with ``remote``), loaded."""
    from PIL import Image

    from agentclinic.scenario import load_scenarios

    folder = tmp_path / "case"
    folder.mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "cxr.png")
    data = copy.deepcopy(MINIMAL)
    data["images"] = [{"id": "cxr", "asset": "cxr.png", "modality": "X-ray",
                       "description": "Right lower lobe opacity."}]
    if remote:
        data["images"].append({"id": "web", "asset": "https://example.org/x.jpg", "modality": "photo"})
    (folder / "case.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_scenarios(folder / "case.yaml").scenarios[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that used the llama.cpp server and failed while the server was dead gets the server's exit
    code and log tail in its report (not only a client's "connection refused")."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "llama_server_process", None)
    if server is not None and report.failed and (problem := server.dead()):
        report.sections.append(("llama.cpp test server", problem))


def call_while_ticking(name: str, arguments: dict, ticked) -> tuple:
    """Call tool ``name`` while a ticker on the event loop ticks every 10 ms; ``ticked`` (a threading.Event)
    is set after 20 ticks. Returns the result and the number of ticks: a tool that held the loop sees none."""
    import asyncio

    from agentclinic.tools.registry import call_tool

    async def main():
        ticks, done = [], asyncio.Event()

        async def ticker():
            while not done.is_set():
                await asyncio.sleep(0.01)
                ticks.append(1)
                if len(ticks) >= 20:
                    ticked.set()

        task = asyncio.create_task(ticker())
        result, _ = await call_tool(name, arguments)
        done.set()
        await task
        return result, len(ticks)

    return asyncio.run(main())
