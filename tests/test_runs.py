"""Runs: records, summary, concurrency, failures, the CLI and resuming after SIGKILL."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.env.gym import scripted_clinic
from agentclinic.runs.runner import run_episodes
from agentclinic.runs.session import RunConfig, run_session
from agentclinic.runs.writer import RunWriter
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

runner = CliRunner()
BANK = load_scenarios(BANK_DIR)
CASES = BANK.scenarios[:3]


def write_cases(tmp_path: Path) -> Path:
    folder = tmp_path / "cases"
    folder.mkdir()
    for s in CASES:
        (folder / f"{s.id}.json").write_text(s.model_dump_json())
    return folder


def test_cli_run_writes_records_and_summary(tmp_path):
    cases = write_cases(tmp_path)
    result = runner.invoke(app, ["run", "--scenarios", str(cases), "--doctor", "scripted", "--seed", "5",
                                 "--concurrency", "2", "--out", str(tmp_path / "runs"), "--run-id", "r1"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "r1"
    config = json.loads((folder / "run.json").read_text())
    assert config["config"]["seed"] == 5 and "pydantic" in config["versions"]
    records = [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["episode"] for r in records) == [0, 1, 2]
    first = records[0]
    assert first["events"] and first["events"][0]["turn"] == 1 and "ledger" in first["events"][0]
    assert first["outcome"] in ("correct", "incorrect", "no-diagnosis") and first["turns"] <= 20
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("episodes", "accuracy", "mean_turns", "mean_tests", "mean_cost", "errors"):
        assert key in summary
    assert summary["episodes"] == 3 and summary["errors"] == 0
    again = runner.invoke(app, ["run", "--scenarios", str(cases), "--out", str(tmp_path / "runs"), "--run-id", "r1"])
    assert again.exit_code == 2 and "--resume" in again.output


def test_a_failing_episode_is_recorded_and_the_run_goes_on(tmp_path):
    class Flaky:
        def reset(self, brief, seed=None):
            self.brief = brief

        async def act(self, observation):
            if "chest pain" in self.brief:
                raise RuntimeError("model server went away")
            return "DIAGNOSIS READY: Migraine"

    writer = RunWriter(tmp_path / "run")
    writer.start({"x": 1}, resume=False)
    plan = [(i, s, i) for i, s in enumerate([BANK.get("cardiology-inferior-stemi"), *CASES[:2]])]
    asyncio.run(run_episodes(plan, scripted_clinic, Flaky, writer=writer, run_id="run", doctor_name="flaky"))
    records = {r.episode: r for r in writer.records()}
    assert len(records) == 3 and records[0].outcome == "error" and "model server went away" in records[0].error
    assert all(r.outcome == "incorrect" for r in list(records.values())[1:])
    assert writer.write_summary()["errors"] == 1

    class Recovered(Flaky):
        async def act(self, observation):
            return "DIAGNOSIS READY: Migraine"

    writer.close()  # releases the folder's lock, as the end of a run does
    writer = RunWriter(tmp_path / "run")
    done = writer.start({"x": 1}, resume=True)
    assert done == {1, 2}  # a resumed run plays the failed episode again
    again = [item for item in plan if item[0] not in done]
    asyncio.run(run_episodes(again, scripted_clinic, Recovered, writer=writer, run_id="run", doctor_name="flaky"))
    latest = {r.episode: r for r in writer.records()}
    assert latest[0].outcome == "incorrect" and latest[0].error is None and len(latest) == 3
    lines = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["outcome"] == "error"  # the failed record is kept
    assert writer.write_summary()["errors"] == 0


def test_resume_after_sigkill(tmp_path):
    cases = write_cases(tmp_path)
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "agentclinic.cli", "run", "--scenarios", str(cases), "--episodes", "40",
               "--doctor", "random", "--out", str(out), "--run-id", "killed"]
    env = {**os.environ, "AGENTCLINIC_EMBEDDINGS": "lexical"}
    episodes = out / "killed" / "episodes.jsonl"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not episodes.exists() or episodes.read_text().count("\n") < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = episodes.read_text().count("\n")
    assert 3 <= done_before < 40
    with episodes.open("a") as handle:  # a torn last line, as a kill in mid-write would leave
        handle.write('{"run_id": "killed", "episo')
    subprocess.run([*command, "--resume"], env=env, check=True, capture_output=True)
    lines = episodes.read_text().splitlines()
    numbers = [json.loads(line)["episode"] for line in lines]
    assert sorted(numbers) == list(range(40))
    assert json.loads((out / "killed" / "summary.json").read_text())["episodes"] == 40


def test_episodes_are_deterministic_under_a_seed():
    from agentclinic.agents.doctors import ScriptedDoctor
    from agentclinic.runs.runner import play_episode

    def transcript(seed):
        record = asyncio.run(play_episode(scripted_clinic(), ScriptedDoctor(), CASES[0], seed=seed))
        return [(e.action, e.observation, e.disclosed) for e in record.events], record.diagnosis

    first = transcript(11)
    assert first == transcript(11) and len(first[0]) > 5


def test_a_run_plays_diagnostic_cases_unless_asked_for_stations(tmp_path):
    import shutil

    from agentclinic.errors import ConfigError

    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(BANK_DIR / "cardiology" / "inferior-stemi.yaml", cases / "stemi.yaml")
    shutil.copy(BANK_DIR / "conversations" / "lung-cancer-news.yaml", cases / "news.yaml")
    saved = {}
    for kind in ("diagnostic", "all"):
        config = RunConfig(scenarios=[str(cases)], kind=kind, episodes=1)
        folder, _ = run_session(config, out=tmp_path / "runs", run_id=kind)
        saved[kind] = sorted(json.loads((folder / "run.json").read_text())["config"]["scenario_ids"])
    assert saved == {"diagnostic": ["cardiology-inferior-stemi"],
                     "all": ["cardiology-inferior-stemi", "conversation-lung-cancer-news"]}
    only_stemi = tmp_path / "only"
    only_stemi.mkdir()
    shutil.copy(BANK_DIR / "cardiology" / "inferior-stemi.yaml", only_stemi / "stemi.yaml")
    with pytest.raises(ConfigError, match="no conversation scenario"):
        run_session(RunConfig(scenarios=[str(only_stemi)], kind="conversation"), out=tmp_path / "runs", run_id="c")
