"""Disk caches that survive the process (ICD-10-CM index, fact embeddings), and the environment's speed settings."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agentclinic.agents.disk_cache import cached_array, cached_json, digest
from agentclinic.agents.embeddings import Embedder, default_embedder, embedder_named
from agentclinic.errors import ConfigError
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, cache: Path, **env: str) -> str:
    environment = {**os.environ, "AGENTCLINIC_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=REPO,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


ICD_PROBE = """
import sys
from agentclinic.agents.judge import icd_cache_path, icd_index
index = icd_index()
print(icd_cache_path().name, 'simple_icd_10_cm' in sys.modules, sorted(index.lookup('gout unspecified')))
"""


def test_the_icd_index_is_built_once_and_read_by_later_processes_a_damaged_file_is_rebuilt(tmp_path):
    name, built, codes = run_python(ICD_PROBE, tmp_path).split(" ", 2)
    assert built == "True" and (tmp_path / name).is_file()  # the first process builds it from the package
    name2, imported, codes2 = run_python(ICD_PROBE, tmp_path).split(" ", 2)
    assert (name2, imported, codes2) == (name, "False", codes)  # read from disk: the package is not even imported
    assert "M10.9" in codes
    (tmp_path / name).write_text('{"exact": {"gout": ["M10')  # a truncated file
    _, rebuilt, codes3 = run_python(ICD_PROBE, tmp_path).split(" ", 2)
    assert rebuilt == "True" and codes3 == codes
    assert "M10.9" in json.loads((tmp_path / name).read_text())["exact"]["gout unspecified"]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


@pytest.fixture
def model_embedder():
    embedder = default_embedder()
    if not embedder.available:
        pytest.skip("the embedding model is not installed (lexical matching has no vectors to cache)")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one short text per pass: one thread is fastest (README); restored after
    yield embedder
    torch.set_num_threads(threads)


class CountingModel:
    """The real model, counting the texts it embeds."""

    def __init__(self, model):
        self.model, self.texts = model, 0

    def encode(self, texts, **kwargs):
        self.texts += len(texts)
        return self.model.encode(texts, **kwargs)


def test_scenario_fact_embeddings_are_read_from_disk_by_a_fresh_embedder(tmp_path, monkeypatch, model_embedder):
    from agentclinic.agents.patient import ScriptedPatient

    monkeypatch.setenv("AGENTCLINIC_CACHE", str(tmp_path))
    scenario = load_scenarios(BANK_DIR).scenarios[0]
    first = Embedder(CountingModel(model_embedder.model), name=model_embedder.name)  # a new process's embedder
    patient = ScriptedPatient(first)
    patient.reset(scenario)
    views = len(set(patient.index.views))
    assert first.model.texts == views > 0 and len(list(tmp_path.glob("embeddings-*.npy"))) == 1
    fresh = Embedder(CountingModel(model_embedder.model), name=model_embedder.name)
    again = ScriptedPatient(fresh)
    again.reset(scenario)
    assert fresh.model.texts == 0  # every view's vector came from the disk
    expected = np.stack([model_embedder.model.encode([v], batch_size=1, normalize_embeddings=True,
                                                     convert_to_numpy=True, show_progress_bar=False)[0]
                         for v in patient.index.views[:5]])
    assert np.allclose(again.index.matrix.T[:5], expected, atol=1e-6)  # the vectors `encode` gives, one text a pass
    [path] = tmp_path.glob("embeddings-*.npy")
    path.write_bytes(b"\x93NUMPY garbage")  # damaged: rebuilt, not read
    third = Embedder(CountingModel(model_embedder.model), name=model_embedder.name)
    ScriptedPatient(third).reset(scenario)
    assert third.model.texts == views and np.load(path).shape == (len(patient.index.views), 384)
    other = Embedder(CountingModel(model_embedder.model), name="another-model@1")  # another embedder: another file
    ScriptedPatient(other).reset(scenario)
    assert other.model.texts > 0 and len(list(tmp_path.glob("embeddings-*.npy"))) == 2


def _write_entry(args: tuple[str, int]) -> list[int]:
    folder, worker = args
    path = Path(folder) / "entry.json"
    values = []
    for _ in range(20):
        value = cached_json(path, lambda: {"rows": list(range(20_000)), "by": "everyone"}, lambda v: v, lambda d: d)
        values.append(len(value["rows"]))
        if worker % 2:
            path.unlink(missing_ok=True)  # half the workers keep forcing rebuilds while others read
    return values


def test_concurrent_writers_never_leave_or_read_a_partial_file(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.map(_write_entry, [(str(tmp_path), w) for w in range(4)])
    assert all(n == 20_000 for values in results for n in values)
    assert not list(tmp_path.glob(".*.tmp"))


def test_generic_cache_entries_rebuild_on_damage_and_shape(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return np.ones((3, 4))

    path = tmp_path / "a.npy"
    assert cached_array(path, build, rows=3).dtype == np.float32 and len(calls) == 1
    assert cached_array(path, build, rows=3).shape == (3, 4) and len(calls) == 1
    cached_array(path, build, rows=5)  # the wrong number of rows: rebuilt
    path.write_bytes(b"not an array")
    cached_array(path, build, rows=3)
    assert len(calls) == 3
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # pickles are never loaded
    cached_array(path, build, rows=3)
    assert len(calls) == 4
    assert digest("ab", "c") != digest("a", "bc") and len(digest("x")) == 24
    readonly = tmp_path / "ro"
    readonly.write_text("a file where a folder should be")
    assert cached_json(readonly / "x.json", lambda: {"ok": 1}, lambda v: v, lambda d: d) == {"ok": 1}  # unwritable


# --------------------------------------------------------------------------------------------
# Speed settings of the environment
# --------------------------------------------------------------------------------------------

THREADS_PROBE = """
import torch
torch.set_num_threads(2)
from agentclinic.env.gym import ClinicEnv
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR
cases = load_scenarios(BANK_DIR).scenarios[:2]
ClinicEnv(cases, embedder="lexical")
lexical = torch.get_num_threads()
ClinicEnv(cases, embedder="minilm", torch_threads=None)
untouched = torch.get_num_threads()
env = ClinicEnv(cases, embedder="minilm")
print(lexical, untouched, torch.get_num_threads(), env.clinic.embedder)
"""


def test_torch_threads_are_limited_only_by_an_env_that_embeds_with_a_model(tmp_path, model_embedder):
    lexical, untouched, limited, name = run_python(THREADS_PROBE, tmp_path).split()
    assert (lexical, untouched, limited) == ("2", "2", "1") and name.startswith("all-MiniLM-L6-v2@")


def test_embedders_by_name():
    assert embedder_named("lexical").name == "lexical" and embedder_named("lexical") is embedder_named("LEXICAL")
    assert embedder_named(None) is default_embedder()
    mine = Embedder(None, name="lexical")
    assert embedder_named(mine) is mine
    with pytest.raises(ConfigError, match="expected one of minilm, lexical"):
        embedder_named("bert")
    from agentclinic.agents.embeddings import limit_torch_threads

    assert limit_torch_threads(None) is None
    with pytest.raises(ConfigError, match="torch_threads must be >= 1"):
        limit_torch_threads(0)


def test_score_axes_scores_only_those_and_says_so():
    from agentclinic.env.gym import ClinicEnv

    case = load_scenarios(BANK_DIR).scenarios[0]
    env = ClinicEnv([case], embedder="lexical", score_axes=("diagnosis", "coverage"))
    env.reset(seed=0)
    env.step("Hello, what brings you in?")
    _, reward, terminated, _, info = env.step({"type": "diagnose", "primary": case.diagnosis.name,
                                                 "differential": ["influenza"]})
    scores = env.clinic.record.scores
    assert terminated and info["axes"]["diagnosis"] == 1.0 and 0 <= info["axes"]["coverage"] <= 1
    assert all(np.isnan(v) for k, v in info["axes"].items() if k not in ("diagnosis", "coverage"))
    assert scores.details["tests"]["skipped"].startswith("not scored") and "partial scoring" in scores.note
    assert len(scores.diagnosis.ranked) == 1  # the differential was not judged
    expected = (0.6 * 1.0 + 0.1 * info["axes"]["coverage"]) / 0.7
    assert reward == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ConfigError, match="unknown axis 'speed'"):
        ClinicEnv([case], embedder="lexical", score_axes=["speed"])
    with pytest.raises(ValueError, match="a given clinic keeps"):
        ClinicEnv([case], clinic=env.clinic, embedder="lexical")
    env.close()
