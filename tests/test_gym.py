import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agentclinic  # noqa: F401  (registers the environment)
from agentclinic.env import ENV_ID
from agentclinic.env.gym import ClinicEnv, to_charset
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.loaders import BANK_DIR

SCENARIOS = load_scenarios(BANK_DIR).scenarios[:4]


def test_check_env_passes():
    env = ClinicEnv(SCENARIOS)
    check_env(env, skip_render_check=True)
    env.close()


def test_importing_agentclinic_registers_the_env():
    import subprocess
    import sys

    code = "import gymnasium, agentclinic; print('agentclinic/Clinic-v0' in gymnasium.registry)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_registered_and_seeded():
    env = gymnasium.make(ENV_ID, scenarios=SCENARIOS)
    a, info_a = env.reset(seed=3)
    b, info_b = env.reset(seed=3)
    assert a == b and info_a["scenario"] == info_b["scenario"]
    obs, info = env.reset(options={"scenario": SCENARIOS[1].id})
    assert info["scenario"] == SCENARIOS[1].id and obs in env.observation_space
    obs, reward, terminated, truncated, info = env.step("Hello, what brings you in?")
    assert obs.startswith("Patient:") and not terminated and info["action"] == "ask"
    obs, reward, terminated, truncated, info = env.step(f"DIAGNOSIS READY: {SCENARIOS[1].diagnosis.name}")
    assert terminated and info["axes"]["diagnosis"] == 1.0 and reward == info["composite"] >= 0.6
    with pytest.raises(KeyError, match="no scenario"):
        env.reset(options={"scenario": "nope"})
    env.close()


def test_observations_fit_the_charset():
    text = to_charset("Temp 38.5 °C, Na⁺ 140 µmol/L – café ≥ 3")
    assert text == "Temp 38.5 degC, Na+ 140 umol/L - cafe >= 3"
    assert len(to_charset("x" * 10_000)) == 8192


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_vector_envs(vector, monkeypatch):
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")  # keeps the worker processes light
    make = lambda: gymnasium.make(ENV_ID, scenarios=SCENARIOS)  # noqa: E731
    if vector == "sync":
        envs = gymnasium.vector.SyncVectorEnv([make, make])
    else:  # gymnasium reads non-array observations from shared memory only once: pass them by pipe
        envs = gymnasium.vector.AsyncVectorEnv([make, make], shared_memory=False)
    obs, infos = envs.reset(seed=[1, 2])
    assert len(obs) == 2
    obs, rewards, terminated, truncated, infos = envs.step(["Hello, what brings you in?", "REQUEST TEST: CBC"])
    assert obs[0].startswith("Patient:") and obs[1].startswith("Test results:")
    envs.close()


def test_any_doctor_output_is_an_observation_and_a_turn():
    from agentclinic.env.actions import MAX_ACTION_CHARS

    env = ClinicEnv(SCENARIOS[:1])
    env.reset(seed=0)
    assert env.action_space.max_length == MAX_ACTION_CHARS == 2048
    bad = [42, None, "[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000,
           {"name": "ask", "arguments": "null"}, {"name": "ask", "arguments": [1, 2]}, 1.5, [1, 2], b"hi", object(),
           "x" * (MAX_ACTION_CHARS + 1)]
    for turn, output in enumerate(bad, start=1):
        obs, reward, terminated, truncated, info = env.step(output)
        assert obs.startswith("Error:") and info["error"] and info["turn"] == turn == len(env.clinic.record.events)
        assert not terminated and (truncated == (turn == 20))
    events = env.clinic.record.events
    assert "expected text" in events[0].observation and "2048" in events[-1].observation
    call = {"id": "call_1", "type": "function", "function": {"name": "ask", "arguments": '{"text": "hi"}'}}
    obs, reward, terminated, truncated, info = env.step(call)
    assert obs.startswith("Patient:") and info["action"] == "ask" and env.clinic.record.events[-1].doctor == call
    env.close()
