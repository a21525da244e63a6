"""RecordEpisodes writes gym episodes as a run folder that `agentclinic report` reads; RunRecorder for vector envs."""

import json

import gymnasium
import pytest
from typer.testing import CliRunner

import agentclinic  # noqa: F401  (registers the environments)
from agentclinic.cli import app
from agentclinic.env import ENV_ID
from agentclinic.env.gym import ClinicEnv
from agentclinic.env.wrappers import RecordEpisodes, RunRecorder
from agentclinic.runs.writer import RunFolderError, RunWriter
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR
from agentclinic.scenario.splits import split_of

SCENARIOS = [s for s in load_scenarios(BANK_DIR) if getattr(s, "kind", "diagnostic") == "diagnostic"][:5]


@pytest.fixture(autouse=True)
def lexical(monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")


def test_three_recorded_episodes_are_a_run_the_report_reads(tmp_path):
    env = RecordEpisodes(gymnasium.make(ENV_ID, scenarios=SCENARIOS, split=None, max_turns=3),
                         out=tmp_path, run_id="rl-eval", doctor="my-policy")
    plays = [(SCENARIOS[0], [f"DIAGNOSIS READY: {SCENARIOS[0].diagnosis.name}"]),  # correct
             (SCENARIOS[1], ["Hello", "EXAMINE: general", "DIAGNOSIS READY: migraine"]),  # wrong, at the last turn
             (SCENARIOS[2], ["Hello", "Where is the pain?", "Anything else?"])]  # the turn budget runs out
    env.reset(seed=0, options={"scenario": SCENARIOS[3].id})
    env.step("Hello")  # abandoned by the next reset: not written
    for scenario, actions in plays:
        env.reset(seed=1, options={"scenario": scenario.id})
        for action in actions:
            *_, terminated, truncated, info = env.step(action)
        assert terminated or truncated
    with pytest.raises(RunFolderError, match="in use by another run"):  # the folder is locked while recording
        RunWriter(tmp_path / "rl-eval").start({"scenarios": []}, resume=True)
    env.close()

    records = RunWriter(tmp_path / "rl-eval").records()
    assert [(r.episode, r.scenario_id, r.outcome) for r in records] == [
        (0, SCENARIOS[0].id, "correct"), (1, SCENARIOS[1].id, "incorrect"), (2, SCENARIOS[2].id, "no-diagnosis")]
    assert all(r.run_id == "rl-eval" and r.doctor == "my-policy" and r.scores is not None for r in records)
    assert [len(r.events) for r in records] == [1, 3, 3] and records[0].tool_metrics["total"] == 0
    assert records[1].seconds >= records[1].doctor_seconds >= 0 and records[1].started_at
    summary = json.loads((tmp_path / "rl-eval" / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["correct"] == 1 and summary["no_diagnosis"] == 1
    config = json.loads((tmp_path / "rl-eval" / "run.json").read_text())["config"]
    assert config["source"] == "gym" and config["env_id"] == ENV_ID and config["doctor"] == "my-policy"
    assert config["scenario_ids"] == [s.id for s in SCENARIOS] and config["max_turns"] == 3
    assert all(path.endswith((".yaml", ".yml", ".json")) for path in config["scenarios"])

    result = CliRunner().invoke(app, ["report", str(tmp_path / "rl-eval")])
    assert result.exit_code == 0, result.output
    assert "rl-eval" in result.output and (tmp_path / "rl-eval" / "report.html").is_file()
    html = (tmp_path / "rl-eval" / "report.html").read_text()
    assert SCENARIOS[1].id in html or "my-policy" in html


def test_split_recorded_and_resume_appends(tmp_path):
    env = RecordEpisodes(ClinicEnv(SCENARIOS, split="train"), out=tmp_path, run_id="r")
    env.reset(seed=0)
    env.step("DIAGNOSIS READY: pneumonia")
    env.close()
    config = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert config["split"] == {"name": "train", "seed": 0, "fractions": [0.6, 0.2, 0.2], "method": "hash"}
    assert config["split_assignment"] == {s.id: split_of(s.id) for s in SCENARIOS}  # as `run --split` records it
    with pytest.raises(RunFolderError, match="already holds a run"):
        RecordEpisodes(ClinicEnv(SCENARIOS, split="train"), out=tmp_path, run_id="r")
    with pytest.raises(RunFolderError, match="settings differ"):
        RecordEpisodes(ClinicEnv(SCENARIOS, split="test"), out=tmp_path, run_id="r", resume=True)
    env = RecordEpisodes(ClinicEnv(SCENARIOS, split="train"), out=tmp_path, run_id="r", resume=True)
    env.reset(seed=5)
    env.step("DIAGNOSIS READY: pneumonia")
    env.close()
    assert [r.episode for r in RunWriter(tmp_path / "r").records()] == [0, 1]


def test_run_recorder_takes_records_from_vector_final_infos(tmp_path):
    make = lambda: gymnasium.make(ENV_ID, scenarios=SCENARIOS)  # noqa: E731
    envs = gymnasium.vector.SyncVectorEnv([make, make])
    recorder = RunRecorder.for_env(envs.envs[0], out=tmp_path, run_id="vec", doctor="batched")
    envs.set_attr("scenario_queue", [[SCENARIOS[0].id], [SCENARIOS[1].id]])
    envs.reset(seed=0)
    *_, terminated, truncated, infos = envs.step(["DIAGNOSIS READY: x", "DIAGNOSIS READY: y"])
    for i in range(2):
        if infos["_record"][i]:
            recorder.add(infos["record"][i])
    with pytest.raises(ValueError, match="has not ended"):
        recorder.add(envs.envs[0].unwrapped.clinic.record.model_copy(update={"outcome": None}))
    summary = recorder.close()
    envs.close()
    assert summary["episodes"] == 2 and recorder.close() == summary
    assert [r.scenario_id for r in RunWriter(tmp_path / "vec").records()] == [SCENARIOS[0].id, SCENARIOS[1].id]
