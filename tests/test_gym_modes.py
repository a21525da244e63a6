"""Every registered id: check_env, determinism, pickling; observation modes; per-sub-env scenarios and the
final info through vector envs in both autoreset modes."""

import json
import math
import pickle

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

import agentclinic  # noqa: F401  (registers the environments)
from agentclinic.env import ENV_ID, ENV_IDS, MESSAGES_ENV_ID
from agentclinic.env.gym import ClinicEnv
from agentclinic.runs.record import EpisodeRecord
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

BANK = load_scenarios(BANK_DIR)
DIAGNOSTIC = [s for s in BANK if getattr(s, "kind", "diagnostic") == "diagnostic"]
SCENARIOS = DIAGNOSTIC[:4]
ACTIONS = ["Hello, what brings you in?", "EXAMINE: general", "REQUEST TEST: full blood count",
           "When did it start?"]
WALL_CLOCK = {"env_ms", "doctor_ms", "seconds", "doctor_seconds", "model_seconds", "started_at", "latency_s"}


@pytest.fixture(autouse=True)
def lexical(monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")  # light worker processes; the same code paths


def comparable(value):
    """A step's output as JSON text, without the record's wall-clock timings (they differ run to run)."""
    def strip(v):
        if isinstance(v, EpisodeRecord):
            v = v.model_dump(mode="json")
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in WALL_CLOCK}
        if isinstance(v, (list, tuple)):
            return [strip(x) for x in v]
        return v
    return json.dumps(strip(value), sort_keys=True, default=repr)


def play(env, seed, actions):
    """Reset with ``seed`` and play ``actions``, then a diagnosis; every step's output."""
    out = [env.reset(seed=seed)]
    case = env.unwrapped.clinic.scenario
    for action in [*actions, f"DIAGNOSIS READY: {case.diagnosis.name}"]:
        out.append(env.step(action))
        if out[-1][2] or out[-1][3]:
            break
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_every_registered_id(env_id):
    env = gymnasium.make(env_id, scenarios=SCENARIOS)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_actions_same_everything(env_id):
    runs = []
    for _ in range(2):
        env = gymnasium.make(env_id, scenarios=SCENARIOS)
        runs.append([comparable(step) for step in play(env, 7, ACTIONS)])
        env.close()
    assert runs[0] == runs[1] and len(runs[0]) == len(ACTIONS) + 2
    final = json.loads(runs[0][-1])
    assert final[2] is True and final[4]["record"]["outcome"] == "correct"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_mid_episode(env_id):
    env = gymnasium.make(env_id, scenarios=SCENARIOS)
    pickle.loads(pickle.dumps(env)).close()  # before any reset
    env.reset(seed=3)
    for action in ACTIONS[:2]:
        env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.unwrapped.clinic.record.events[-1].observation == env.unwrapped.clinic.record.events[-1].observation
    for action in ACTIONS[2:] + ["DIAGNOSIS READY: pneumonia"]:
        assert comparable(copy.step(action)) == comparable(env.step(action))
    assert comparable(copy.reset()) == comparable(env.reset())  # the RNG travelled too
    env.close()
    copy.close()


def test_messages_mode_is_the_cli_doctors_conversation():
    env = ClinicEnv(SCENARIOS, obs_mode="messages", max_turns=5)
    obs, info = env.reset(seed=0, options={"scenario": SCENARIOS[0].id})
    assert isinstance(obs, tuple) and [m["role"] for m in obs] == ["system", "user"]
    assert "DIAGNOSIS READY" in obs[0]["content"] and "5 turns" in obs[0]["content"]
    assert obs[1]["content"].startswith("Case brief: ") and "[Turn 1 of 5; 4 left after this one.]" in obs[1]["content"]
    obs, *_ = env.step("Hello, what brings you in?")
    assert [m["role"] for m in obs] == ["system", "user", "assistant", "user"]
    assert obs[2]["content"] == "Hello, what brings you in?" and obs[3]["content"].startswith("Patient:")
    assert obs[3]["content"].endswith("[Turn 2 of 5; 3 left after this one.]") and obs in env.observation_space
    obs, *_ = env.step({"type": "examine", "system": "general"})  # a JSON action: its JSON as the message
    assert json.loads(obs[4]["content"]) == {"type": "examine", "system": "general"}
    obs, reward, terminated, truncated, info = env.step("DIAGNOSIS READY: " + SCENARIOS[0].diagnosis.name)
    assert terminated and obs[-1]["content"] == "Diagnosis recorded: " + SCENARIOS[0].diagnosis.name  # no counter
    assert info["transcript"] == list(obs) and info["record"].scenario_id == SCENARIOS[0].id
    assert info["record"].events[-1].kind == "diagnose" and info["record"].reward == reward
    env.close()


def test_text_mode_final_info_has_transcript_and_record():
    env = ClinicEnv(SCENARIOS, max_turns=2)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("Hello")
    assert "transcript" not in info and "record" not in info
    obs, reward, terminated, truncated, info = env.step("Anything else?")
    assert truncated and not terminated and info["record"].outcome == "no-diagnosis"
    assert [m["role"] for m in info["transcript"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "budget is used up" in info["transcript"][-1]["content"]
    env.close()


def test_scenario_option_queue_split_and_kinds():
    env = ClinicEnv(BANK, split="test")
    assert env.split.name == "test" and {s.id for s in env.scenarios} < {s.id for s in env.pool}
    from agentclinic.scenario.splits import split_of

    assert all(split_of(s.id) == "test" for s in env.scenarios)
    assert all(getattr(s, "kind", "diagnostic") == "diagnostic" for s in env.pool)  # no conversation stations
    seen = {env.reset(seed=i)[1]["scenario"] for i in range(30)}
    assert seen <= {s.id for s in env.scenarios}
    train_case = next(s for s in env.pool if split_of(s.id) == "train")
    assert env.reset(options={"scenario": train_case})[1]["scenario"] == train_case.id  # an explicit case plays
    env.scenario_queue = [SCENARIOS[2].id, SCENARIOS[1]]
    assert [env.reset()[1]["scenario"] for _ in range(2)] == [SCENARIOS[2].id, SCENARIOS[1].id]
    assert env.scenario_queue == []
    stations = [s for s in BANK if getattr(s, "kind", "diagnostic") != "diagnostic"]
    if stations:
        with pytest.raises(KeyError, match="no scenario"):
            env.reset(options={"scenario": stations[0].id})
    with pytest.raises(ValueError, match="obs_mode"):
        ClinicEnv(SCENARIOS, obs_mode="pixels")
    with pytest.raises(ValueError, match="conversation stations with obs_mode='text'"):
        ClinicEnv(BANK, obs_mode="messages", kinds=("diagnostic", "conversation"))
    env.close()


def finals(envs, queues, autoreset):
    """Step a vector env (each sub-env asking, then diagnosing) until every queued case has ended; the final
    infos of sub-env i, in order, as (scenario id, transcript length, record)."""
    envs.set_attr("scenario_queue", [list(q) for q in queues])
    _, infos = envs.reset(seed=0)
    name = {s.id: s.diagnosis.name for s in SCENARIOS}
    got: list[list] = [[] for _ in queues]
    steps = [0] * len(queues)
    for _ in range(40):
        cases = list(infos["scenario"])  # the case each sub-env is playing
        actions = ["Hello, what brings you in?" if steps[i] % 2 == 0 else
                   f"DIAGNOSIS READY: {name[cases[i]]}" for i in range(len(queues))]
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        final = infos.get("final_info", {}) if autoreset is AutoresetMode.SAME_STEP else infos
        for i in range(len(queues)):
            steps[i] += 1
            if terminated[i] or truncated[i]:
                assert final["_record"][i] and final["_transcript"][i]
                record = final["record"][i]
                got[i].append((record.scenario_id, len(final["transcript"][i]), record))
                if autoreset is AutoresetMode.NEXT_STEP:
                    steps[i] = -1  # the next step only resets this sub-env
        if all(len(g) >= len(q) for g, q in zip(got, queues)):
            break
    return got


@pytest.mark.parametrize("autoreset", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("vector", ["sync", "async"])
def test_vector_envs_keep_the_final_info_and_follow_per_env_queues(vector, autoreset):
    queues = [[SCENARIOS[0].id, SCENARIOS[1].id], [SCENARIOS[2].id, SCENARIOS[3].id]]
    make = lambda: gymnasium.make(ENV_ID, scenarios=SCENARIOS)  # noqa: E731
    if vector == "sync":
        envs = SyncVectorEnv([make, make], autoreset_mode=autoreset)
    else:
        envs = AsyncVectorEnv([make, make], autoreset_mode=autoreset, shared_memory=False)
    try:
        got = finals(envs, queues, autoreset)
    finally:
        envs.close()
    for queue, ended in zip(queues, got):
        assert [scenario for scenario, _, _ in ended[:2]] == queue
        for _, length, record in ended[:2]:
            assert length == 6 and record.outcome == "correct" and len(record.events) == 2


def test_make_vec_messages_mode():
    envs = gymnasium.make_vec(MESSAGES_ENV_ID, num_envs=2, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, scenarios=SCENARIOS)
    queues = [[SCENARIOS[1].id], [SCENARIOS[3].id]]
    envs.set_attr("scenario_queue", [list(q) for q in queues])
    obs, infos = envs.reset(seed=1)
    assert [o[1]["role"] for o in obs] == ["user", "user"] and list(infos["scenario"]) == [q[0] for q in queues]
    obs, *_ = envs.step(["Hello", "Hello"])
    assert all(len(o) == 4 for o in obs)
    names = [c.scenario.diagnosis.name for c in envs.get_attr("clinic")]  # sync: the sub-envs' own objects
    obs, rewards, terminated, truncated, infos = envs.step([f"DIAGNOSIS READY: {n}" for n in names])
    assert terminated.all() and all(len(o) == 2 for o in obs)  # already the next episodes' first messages
    records = infos["final_info"]["record"]
    assert [r.scenario_id for r in records] == [q[0] for q in queues] and all(r.correct for r in records)
    assert all(not math.isnan(x) for x in rewards)
    envs.close()


class Scripted:
    """A fixed policy: greet, examine, then name the case's diagnosis (or a wrong one)."""

    def __init__(self, right=True):
        self.right, self.resets = right, 0

    def reset(self, observation, info):
        self.resets, self.turn, self.case = self.resets + 1, 0, info["scenario"]

    def __call__(self, observation, info):
        self.turn += 1
        if self.turn == 1:
            return "Hello, what brings you in?"
        name = {s.id: s.diagnosis.name for s in DIAGNOSTIC}[self.case]
        return f"DIAGNOSIS READY: {name if self.right else 'tension headache'}"


def test_evaluate_plays_every_case_of_the_split_once_per_seed():
    from agentclinic.env.evaluation import compare, eval_plan, evaluate, summarise
    from agentclinic.scenario.splits import split_scenarios

    cases = DIAGNOSTIC[:12]
    env = ClinicEnv(cases, split="train")  # the env samples train; evaluation asks for test explicitly
    test = split_scenarios(cases, "test")
    assert test, "the fixture needs a test case"
    policy = Scripted()
    results = evaluate(policy, env, split="test", seeds=2)
    assert [(r["scenario"], r["seed"]) for r in results] == [(s.id, k) for s in test for k in (0, 1)]
    assert policy.resets == len(results) and all(r["split"] == "test" and r["correct"] for r in results)
    assert all(r["record"].scenario_id == r["scenario"] and r["turns"] == 2 for r in results)
    assert evaluate(Scripted(), env, split="test", seeds=2)[0]["record"].events[0].observation == \
        results[0]["record"].events[0].observation  # an item replays exactly
    wrong = evaluate(Scripted(right=False), lambda: ClinicEnv(cases), split="test", seeds=2)  # a factory
    summary = summarise(results)
    assert summary["episodes"] == 2 * len(test) and summary["scenarios"] == len(test) and summary["accuracy"] == 1.0
    assert summarise(wrong)["accuracy"] == 0.0
    diff = compare(wrong, results)
    assert diff["scenarios"] == len(test) and diff["difference"] == pytest.approx(diff["after"] - diff["before"])
    assert diff["difference"] > 0
    if len(test) > 1:
        low, high = diff["difference_ci"]
        assert low <= diff["difference"] <= high
    assert [(s.id, seed) for s, seed in eval_plan(test, seeds=1, base_seed=5)] == [(s.id, 5) for s in test]
    with pytest.raises(ValueError):
        eval_plan(test, seeds=0)
    env.close()


def test_a_doctor_through_the_gym_plays_as_through_the_runner():
    import asyncio

    from agentclinic.agents.doctors import make_doctor
    from agentclinic.env.evaluation import DoctorPolicy, evaluate
    from agentclinic.env.gym import scripted_clinic
    from agentclinic.env.ledger import Budget
    from agentclinic.runs.runner import play_episode

    cases = DIAGNOSTIC[:3]
    policy = DoctorPolicy(make_doctor("scripted", max_turns=20))
    results = evaluate(policy, ClinicEnv(cases), split=None, scenarios=cases)
    policy.close()
    for case, result in zip(cases, results):
        gym_record = result["record"]
        doctor = make_doctor("scripted", max_turns=20)
        runner_record = asyncio.run(play_episode(scripted_clinic(Budget(turns=20)), doctor, case, seed=gym_record.seed))
        assert [e.doctor for e in gym_record.events] == [e.doctor for e in runner_record.events]
        assert [e.observation for e in gym_record.events] == [e.observation for e in runner_record.events]
        assert gym_record.outcome == runner_record.outcome and gym_record.reward == runner_record.reward
        assert len(gym_record.events) > 3  # a real consultation, not an instant guess
    with pytest.raises(TypeError, match="text"):
        DoctorPolicy(make_doctor("scripted"))(("messages",), {})


def test_an_env_with_its_own_clinic_says_why_it_does_not_pickle():
    from agentclinic.env.gym import scripted_clinic

    env = ClinicEnv(SCENARIOS, clinic=scripted_clinic())
    with pytest.raises(TypeError, match="clinic=.*cannot be pickled"):
        pickle.dumps(env)
    env.close()
