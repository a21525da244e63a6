"""Both training examples, end to end in a tiny configuration: they learn on the train split only, evaluate on
the test split only, log what they did and write their files. Plus the action menu they build on."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agentclinic.env.gym import ClinicEnv  # noqa: E402
from agentclinic.env.menu import INDEX, MENU, ActionMenu, feature_names  # noqa: E402
from agentclinic.scenario import load_scenarios  # noqa: E402
from agentclinic.scenario.loaders import BANK_DIR  # noqa: E402
from agentclinic.scenario.splits import split_of  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# committed cases, four of the train split and three of the test split (by the default hash split)
CASES = [str(BANK_DIR / c) for c in (
    "cardiology/aortic-stenosis.yaml", "cardiology/inferior-stemi.yaml", "gastroenterology/coeliac-disease.yaml",
    "nephrology/iga-nephropathy.yaml", "cardiology/infective-endocarditis.yaml",
    "neurology/myasthenia-gravis.yaml", "paediatrics/intussusception.yaml")]


def example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def splits_of(ids) -> set[str]:
    return {split_of(i) for i in ids}


def test_the_fixture_cases_span_both_splits():
    ids = [s.id for s in load_scenarios(CASES)]
    assert sorted(split_of(i) for i in ids) == ["test"] * 3 + ["train"] * 4


@pytest.mark.slow  # the first ranking builds the knowledge-base index (~20-40 s on a busy 2-core machine)
def test_action_menu_plays_a_case_through_its_menu():
    scenarios = load_scenarios(CASES).scenarios
    env = ActionMenu(ClinicEnv(scenarios, embedder="lexical"), embedder="lexical")
    observation, info = env.reset(seed=1, options={"scenario": scenarios[0].id})
    assert observation.shape == (len(feature_names()),) and observation in env.observation_space
    assert env.action_space.n == len(MENU) and info["action_mask"].sum() >= len(MENU) - 1
    for name in ("ask:presenting complaint", "examine", "tests:differential"):
        observation, reward, terminated, truncated, info = env.step(INDEX[name])
        assert not terminated and info["action_mask"][INDEX[name]] == 0 and observation in env.observation_space
    assert info["text"].startswith("Test results:")
    taken = {n: observation[feature_names().index(f"taken:{n}")] for n in ("examine", "images")}
    assert taken == {"examine": 1.0, "images": 0.0}
    observation, reward, terminated, truncated, info = env.step(INDEX["examine"])  # again: an error turn
    assert info["error"] and not terminated
    observation, reward, terminated, truncated, info = env.step(INDEX["diagnose:1"])
    assert terminated and info["action"] == "diagnose" and reward == info["composite"]
    with pytest.raises(ValueError, match="outside"):
        env.step(len(MENU))


@pytest.mark.slow  # about a minute on 2 cores
def test_reinforce_example_trains_on_train_and_evaluates_on_test(tmp_path):
    module = example("train_reinforce")
    result = module.main(["--scenarios", *CASES, "--episodes", "4", "--batch", "2", "--group", "2", "--seeds", "2",
                          "--embedder", "lexical", "--out", str(tmp_path), "--run-id", "tiny"])
    folder = tmp_path / "tiny"
    assert (folder / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((folder / "results.json").read_text())
    assert saved["improvement_return"]["difference"] == result["improvement_return"]["difference"]
    assert [p["episodes"] for p in saved["curve"]] == [2, 4] and all("loss" in p for p in saved["curve"])
    assert splits_of(saved["train_scenarios"]) == {"train"}
    assert splits_of(saved["test_scenarios"]) == {"test"} and len(saved["test_scenarios"]) == 3
    assert saved["before"]["episodes"] == saved["after"]["episodes"] == 6  # 3 test scenarios x 2 seeds
    low, high = saved["improvement_return"]["difference_ci"]
    assert low <= saved["improvement_return"]["difference"] <= high
    for name in ("eval-before", "eval-after"):  # the evaluations are run folders of test episodes
        records = [json.loads(line) for line in (folder / name / "episodes.jsonl").read_text().splitlines()]
        assert len(records) == 6 and splits_of(r["scenario_id"] for r in records) == {"test"}
    weights = torch.load(folder / "policy.pt")["weights"]
    assert weights.shape == (len(MENU), len(feature_names())) and float(weights.abs().sum()) > 0  # it updated


def test_grpo_example_logs_loss_and_reward_and_keeps_test_out_of_training(tmp_path):
    pytest.importorskip("trl")
    pytest.importorskip("datasets")
    module = example("train_grpo")
    result = module.main(["--model", "tiny", "--scenarios", *CASES, "--steps", "2", "--prompts", "1",
                          "--generations", "2", "--max-turns", "2", "--max-new-tokens", "8", "--eval-limit", "2",
                          "--shaping", "dense", "--out", str(tmp_path), "--run-id", "tiny"])
    folder = tmp_path / "tiny"
    assert (folder / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((folder / "results.json").read_text())
    steps = [h for h in saved["log_history"] if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2]
    assert all("reward" in h and "rewards/diagnosis_reward/mean" in h and np.isfinite(h["loss"]) for h in steps)
    assert saved["train_scenarios_played"] and splits_of(saved["train_scenarios_played"]) == {"train"}
    assert splits_of(saved["test_scenarios"]) == {"test"} and len(saved["test_scenarios"]) == 2
    assert saved["before"]["episodes"] == saved["after"]["episodes"] == 2
    assert {e["scenario"] for e in saved["episodes_after"]} == set(saved["test_scenarios"])
    assert result["model"].startswith("tiny random") and saved["config"]["shaping"] == "dense"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
