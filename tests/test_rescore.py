"""``agentclinic rescore``: re-grading a recorded run without replaying it, and accuracy over all episodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentclinic.agents.base import LEVEL_CREDIT
from agentclinic.cli import app
from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.rescore import default_out, rescore_run
from agentclinic.runs.writer import RunWriter, summarise
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

runner = CliRunner()
CASES = ["cardiology-inferior-stemi", "cardiology-aortic-stenosis", "dermatology-herpes-zoster"]


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Path:
    """A small scripted run, played once for the module: three bank cases, as YAML files of their own."""
    base = tmp_path_factory.mktemp("rescore")
    bank = load_scenarios(BANK_DIR)
    cases = base / "cases"
    cases.mkdir()
    for case_id in CASES:
        data = bank.get(case_id).model_dump(mode="json", exclude_none=True)
        (cases / f"{case_id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    result = runner.invoke(app, ["run", "--scenarios", str(cases), "--doctor", "scripted", "--seed", "0",
                                 "--max-turns", "12", "--out", str(base / "runs"), "--run-id", "played"])
    assert result.exit_code == 0, result.output
    return base / "runs" / "played"


def records(folder: Path) -> dict[int, EpisodeRecord]:
    return {r.episode: r for r in RunWriter(folder).records()}


def copy_run(played: Path, tmp_path: Path) -> Path:
    """The played run, copied with its scenarios (so a test may change them)."""
    shutil.copytree(played.parent.parent / "cases", tmp_path / "cases")
    folder = tmp_path / "played"
    shutil.copytree(played, folder)
    run_json = json.loads((folder / "run.json").read_text())
    run_json["config"]["scenarios"] = [str(tmp_path / "cases")]
    (folder / "run.json").write_text(json.dumps(run_json))
    return folder


def test_the_run_records_its_embedder(played):
    from agentclinic.agents.embeddings import default_embedder

    name = default_embedder().name
    assert json.loads((played / "run.json").read_text())["config"]["embedder"] == name
    assert {r.embedder for r in records(played).values()} == {name}
    assert json.loads((played / "summary.json").read_text())["embedders"] == {name: 3}


def test_rescoring_with_the_runs_own_settings_reproduces_its_scores_exactly(played, tmp_path):
    result = runner.invoke(app, ["rescore", str(played), "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    before, after = records(played), records(tmp_path / "again")
    assert sorted(before) == sorted(after) == [0, 1, 2]
    for episode, record in before.items():
        assert after[episode].scores == record.scores and after[episode].reward == record.reward
        assert after[episode].verdict == record.verdict and after[episode].outcome == record.outcome
        assert after[episode].run_id == "again" and after[episode].events == record.events
    assert json.loads((tmp_path / "again" / "summary.json").read_text()) == \
        json.loads((played / "summary.json").read_text())
    config = json.loads((tmp_path / "again" / "run.json").read_text())["config"]
    rescored = config["rescored_from"]
    assert rescored["run"] == str(played.resolve()) and rescored["judge"] is None
    assert rescored["verdicts"] == "kept from the run" and rescored["weights"] == config["weights"]
    assert rescored["embedder"] == config["embedder"] and rescored["changed_scenarios"] == []


def test_rescoring_with_new_weights_a_new_judge_and_a_new_axis(played, tmp_path):
    folder, summary, _ = rescore_run(played, weights="diagnosis=1", out=tmp_path / "dx")
    for record in records(folder).values():
        level = record.verdict.level if record.diagnosed else "none"
        assert record.reward == record.scores.composite == (LEVEL_CREDIT[level] if record.diagnosed else 0.0)
        assert record.scores.weights["diagnosis"] == 1 and record.scores.weights["coverage"] == 0
    assert json.loads((folder / "run.json").read_text())["config"]["weights"]["coverage"] == 0
    judged, _, _ = rescore_run(played, judge="scripted", out=tmp_path / "judged")
    assert {e: r.verdict for e, r in records(judged).items()} == {e: r.verdict for e, r in records(played).items()}
    assert json.loads((judged / "run.json").read_text())["config"]["rescored_from"]["verdicts"] == "judged again"

    from agentclinic.scoring import Axis, AxisScore, register_axis, unregister_axis

    register_axis(Axis("asked_first", lambda c: AxisScore(float(c.record.events[0].kind == "ask")), 0.05,
                       "the doctor's first action is a question"))
    try:
        axed, summary, _ = rescore_run(played, out=tmp_path / "axed")
    finally:
        unregister_axis("asked_first")
    assert all(r.scores.axes["asked_first"] == 1.0 for r in records(axed).values())
    assert summary["axes"]["asked_first"] == 1.0
    assert default_out(played) == played.with_name("played-rescored-1")


def test_a_scenario_changed_since_the_run_is_refused_unless_allowed(played, tmp_path):
    folder = copy_run(played, tmp_path)
    case = tmp_path / "cases" / f"{CASES[1]}.yaml"
    data = yaml.safe_load(case.read_text())
    data["diagnosis"]["aliases"] = [*data["diagnosis"].get("aliases", []), "AS of the valve"]
    case.write_text(yaml.safe_dump(data, sort_keys=False))
    result = runner.invoke(app, ["rescore", str(folder)])
    assert result.exit_code == 2 and CASES[1] in result.output and "changed since the run" in result.output
    result = runner.invoke(app, ["rescore", str(folder), "--allow-changed-scenarios"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "played-rescored-1" / "run.json").read_text())["config"]
    assert config["rescored_from"]["changed_scenarios"] == [CASES[1]]
    missing = runner.invoke(app, ["rescore", str(folder), "--scenarios", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not in" in missing.output


def test_records_of_the_older_shape_still_load_and_rescore(played, tmp_path):
    folder = copy_run(played, tmp_path)
    lines = (folder / "episodes.jsonl").read_text().splitlines()
    old = json.loads(lines[0])  # as an older version wrote it: no scenario hash, budget, embedder; {} for no scores
    for key in ("scenario_hash", "max_turns", "price_table", "embedder"):
        old.pop(key)
    for event in old["events"]:
        event.pop("fallback")
    old |= {"outcome": "error", "error": "RuntimeError: gone", "scores": {}}
    (folder / "episodes.jsonl").write_text("\n".join([json.dumps(old), *lines[1:]]) + "\n")
    loaded = records(folder)[old["episode"]]
    assert loaded.scores is None and loaded.max_turns is None
    out, summary, _ = rescore_run(folder, out=tmp_path / "fresh")
    fresh = records(out)[old["episode"]]
    assert fresh.max_turns == 12  # from run.json
    assert fresh.scores is not None and fresh.scores.composite == 0.0 and fresh.scores.diagnosis.level == "none"
    assert summary["errors"] == 1 and summary["episodes"] == 3


# --------------------------------------------------------------------------------------------
# Accuracy counts every episode
# --------------------------------------------------------------------------------------------


def test_accuracy_and_every_mean_count_errors_as_misses():
    def record(episode: int, outcome: str, turns: int) -> EpisodeRecord:
        return EpisodeRecord(scenario_id=f"case-{episode}", episode=episode, outcome=outcome, turns=turns,
                             correct=outcome == "correct", error="RuntimeError: x" if outcome == "error" else None)

    runs = [record(0, "correct", 10)] + [record(i, "error", 2) for i in range(1, 10)]
    summary = summarise(runs)
    assert summary["accuracy"] == 0.1 and summary["accuracy_excluding_errors"] == 1.0 and summary["errors"] == 9
    assert summary["mean_turns"] == round((10 + 9 * 2) / 10, 4) and summary["top_k"]["top1"] == 0.0
    assert summary["mean_composite"] == 0.0 and summary["accuracy_by_specialty"] == {"unknown": 0.1}


def test_a_failed_episode_keeps_its_turns_and_is_scored_with_no_diagnosis_credit(tmp_path):
    import asyncio

    from agentclinic.env.gym import scripted_clinic
    from agentclinic.runs.runner import run_episodes

    bank = load_scenarios(BANK_DIR)

    class Crashes:
        """Asks one question, then fails, except on the STEMI case, which it diagnoses at once."""

        def reset(self, brief, seed=None):
            self.brief, self.turn = brief, 0

        async def act(self, observation):
            self.turn += 1
            if "chest pain" in self.brief:
                return "DIAGNOSIS READY: Inferior STEMI"
            if self.turn > 1:
                raise RuntimeError("model server went away")
            return "What brings you in today?"

    writer = RunWriter(tmp_path / "run")
    writer.start({"x": 1}, resume=False)
    others = [s for s in bank.scenarios if "chest pain" not in s.doctor_brief][:3]
    plan = [(i, s, i) for i, s in enumerate([bank.get("cardiology-inferior-stemi"), *others])]
    asyncio.run(run_episodes(plan, scripted_clinic, Crashes, writer=writer, run_id="run", doctor_name="crashes"))
    summary = writer.write_summary()
    writer.close()
    failed = [r for r in writer.records() if r.outcome == "error"]
    assert len(failed) == 3 and all(r.turns == 1 and len(r.events) == 1 for r in failed)
    assert all(r.scores.axes["diagnosis"] == 0.0 and r.scores.composite == 0.0 == r.reward for r in failed)
    assert all(r.scores.axes["coverage"] is not None for r in failed)  # the turns played are scored
    assert summary["accuracy"] == 0.25 and summary["accuracy_excluding_errors"] == 1.0
    assert summary["top_k"]["top1"] == 0.25 and summary["scored"] == 4
