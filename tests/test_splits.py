"""Scenario splits (stable hash, opt-in stratified), selecting them from the CLI and Python, and the dataset view."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.env.dataset import case_brief, scenario_dataset, scenario_rows
from agentclinic.env.gym import to_charset
from agentclinic.errors import ConfigError
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR
from agentclinic.scenario.splits import (
    SPLITS, Split, assign_splits, split_counts, split_hash, split_of, split_scenarios)

BANK = load_scenarios(BANK_DIR)


class Case:
    """The two fields a split reads."""

    def __init__(self, id, specialty):
        self.id, self.specialty = id, specialty


def cases(n, prefix="case", specialties=("cardiology", "neurology", "dermatology", "psychiatry")):
    return [Case(f"{prefix}-{i}", specialties[i % len(specialties)]) for i in range(n)]


def test_the_hash_is_blake2b_of_seed_and_id():
    digest = hashlib.blake2b(b"7:cardiology-aortic-stenosis", digest_size=8).digest()
    assert split_hash("cardiology-aortic-stenosis", 7) == int.from_bytes(digest, "big") / 2**64
    u = split_hash("cardiology-aortic-stenosis", 0)
    assert split_of("cardiology-aortic-stenosis") == ("train" if u < 0.6 else "validation" if u < 0.8 else "test")


def test_adding_cases_never_moves_an_old_one():
    old = cases(200)
    before = assign_splits(old)
    after = assign_splits(old + cases(300, prefix="new"))
    assert all(after[k] == v for k, v in before.items())
    assert assign_splits(old[::-1]) == before  # nor does the order
    assert assign_splits(old[:50]) == {k: before[k] for k in [c.id for c in old[:50]]}  # a subset splits alike


def test_fractions_seed_and_bad_input():
    many = cases(4000)
    default = assign_splits(many)
    shares = {name: list(default.values()).count(name) / len(many) for name in SPLITS}
    assert abs(shares["train"] - 0.6) < 0.03 and abs(shares["validation"] - 0.2) < 0.03
    other = assign_splits(many, seed=1)
    assert sum(other[c.id] != default[c.id] for c in many) > 1000  # another seed, another cut
    assert set(assign_splits(many, fractions=(0.5, 0, 0.5)).values()) == {"train", "test"}
    for fractions in [(0.5, 0.5, 0.5), (0.9, 0.2, -0.1), (1.0, 0.0)]:
        with pytest.raises(ConfigError, match="fractions"):
            assign_splits(many, fractions=fractions)
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        split_scenarios(many, "dev")
    with pytest.raises(ConfigError, match="method"):
        assign_splits(many, method="random")


def test_stratified_balances_every_specialty_but_is_opt_in():
    group = cases(50, specialties=("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"))  # 5 cases each
    counts = split_counts(group, method="stratified")
    assert counts["all"] == {"train": 30, "validation": 10, "test": 10}
    for specialty, row in counts.items():
        if specialty != "all":
            assert row["train"] >= 2 and sum(row.values()) == 5
    hashed = split_counts(group)
    assert sum(hashed["all"].values()) == 50
    assert set(hashed) == set(counts)


def test_the_bank_is_partitioned_and_the_python_api_agrees():
    parts = {name: BANK.split(name) for name in SPLITS}
    ids = [i for part in parts.values() for i in part.ids()]
    assert sorted(ids) == sorted(BANK.ids()) and len(set(ids)) == len(ids)
    assert parts["test"].ids() == [s.id for s in split_scenarios(BANK, "test")]
    assert parts["test"].ids() == [s.id for s in split_scenarios(BANK, Split(name="test"))]
    assert all(split_of(i) == "test" for i in parts["test"].ids())
    assert BANK.split("test", seed=3).ids() != parts["test"].ids()


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    """Twelve diagnostic cases of the bank as native files (the bank itself grows while tests run)."""
    folder = tmp_path_factory.mktemp("cases")
    chosen = [s for s in BANK if getattr(s, "kind", "diagnostic") == "diagnostic" and not s.images][:12]
    for s in chosen:
        (folder / f"{s.id}.json").write_text(s.model_dump_json(exclude_none=True))
    return folder, chosen


def test_cli_list_shows_and_filters_the_split(small_bank):
    folder, chosen = small_bank
    runner = CliRunner()
    out = runner.invoke(app, ["scenarios", "list", str(folder), "--json"])
    rows = json.loads(out.stdout)["scenarios"]
    assert {row["id"]: row["split"] for row in rows} == {s.id: split_of(s.id) for s in chosen}
    out = runner.invoke(app, ["scenarios", "list", str(folder), "--json", "--split", "validation", "--split-seed", "4"])
    rows = json.loads(out.stdout)["scenarios"]
    assert sorted(r["id"] for r in rows) == sorted(s.id for s in chosen if split_of(s.id, 4) == "validation")
    out = runner.invoke(app, ["scenarios", "list", str(folder), "--split", "dev"])
    assert out.exit_code == 2 and "unknown split 'dev'" in out.stderr


def test_cli_run_plays_one_split_and_records_it(small_bank, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")
    folder, chosen = small_bank
    runner = CliRunner()
    out = runner.invoke(app, ["run", "--scenarios", str(folder), "--split", "test", "--split-seed", "2",
                              "--out", str(tmp_path / "runs"), "--run-id", "t"])
    assert out.exit_code == 0, out.output
    config = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())["config"]
    expected = sorted(s.id for s in chosen if split_of(s.id, seed=2) == "test")
    assert config["split"] == {"name": "test", "seed": 2, "fractions": [0.6, 0.2, 0.2], "method": "hash"}
    assert sorted(config["scenario_ids"]) == expected
    assert config["split_assignment"] == {s.id: split_of(s.id, 2) for s in chosen}
    played = [json.loads(line)["scenario_id"] for line in (tmp_path / "runs" / "t" / "episodes.jsonl").open()]
    assert sorted(played) == expected


def test_dataset_rows_are_the_messages_envs_first_observation(monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")
    from agentclinic.env.gym import ClinicEnv

    rows = scenario_rows(BANK)
    env = ClinicEnv(BANK, obs_mode="messages")
    assert [r["scenario_id"] for r in rows] == [s.id for s in env.pool]  # diagnostic cases only
    for row in rows:
        obs, _ = env.reset(options={"scenario": row["scenario_id"]})
        assert row["prompt"] == list(obs)
        assert row["split"] == split_of(row["scenario_id"])
        case = env.unwrapped.by_id[row["scenario_id"]]
        assert row["prompt"][1]["content"].startswith("Case brief: " + to_charset(case_brief(case)))
        assert set(row) == {"prompt", "scenario_id", "split", "specialty", "difficulty", "max_turns"}
    env.close()
    remote = [s for s in BANK if any(image.remote for image in s.images)]
    if remote:
        assert "remote and unavailable offline" in case_brief(remote[0])
    test_rows = scenario_rows(BANK, "test", max_turns=8)
    assert [r["scenario_id"] for r in test_rows] == [r["scenario_id"] for r in rows if r["split"] == "test"]
    assert "[Turn 1 of 8; 7 left after this one.]" in test_rows[0]["prompt"][1]["content"]


def test_dataset_never_shows_the_diagnosis():
    by_id = {s.id: s for s in BANK}  # (ids often name the diagnosis: the id is a column, never in the prompt)
    rows = scenario_rows(BANK)
    assert rows and all(row["prompt"] for row in rows)  # a dataset with no rows (or no prompts) would pass below
    for row in rows:
        prompt = json.dumps(row["prompt"]).lower()
        assert by_id[row["scenario_id"]].diagnosis.name.lower() not in prompt and row["scenario_id"] not in prompt


def test_dataset_as_a_datasets_dataset():
    pytest.importorskip("datasets")
    data = scenario_dataset(BANK, "train")
    assert len(data) == len(scenario_rows(BANK, "train")) and set(data["split"]) == {"train"}
    assert data[0]["prompt"][0]["role"] == "system" and data.column_names[:2] == ["prompt", "scenario_id"]


def test_the_split_from_a_config_file_and_flags(tmp_path):
    from agentclinic.runs.session import resolve_config

    toml = tmp_path / "run.toml"
    toml.write_text('split = "validation"\nsplit_seed = 3\n')
    config, _ = resolve_config({}, toml)
    assert config.split == Split(name="validation", seed=3)
    flagged, _ = resolve_config({"split": "test"}, toml)
    assert flagged.split == Split(name="test", seed=3)
    assert resolve_config({}, None)[0].split is None
    toml.write_text('split = "dev"\n')
    with pytest.raises(ConfigError, match="split"):
        resolve_config({}, toml)
