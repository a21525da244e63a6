"""Scripted-episode throughput and the environment's own cost per step.

    .venv/bin/python benchmarks/env_throughput.py [--episodes 200]

Prints, after one warm-up pass over the bank (which loads the embedding model once and
embeds every scenario's facts once):
- scripted episodes per second (scripted doctor, patient, measurement agent, judge);
- mean ms per 20-turn episode;
- mean ``env.step`` time excluding agent time: parsing + ledger + recording, measured by
  stepping a Clinic whose patient, measurement agent and judge answer instantly;
- the same figure for the full step with the scripted agents, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agentclinic.agents.base import Finding, PatientReply, Verdict
from agentclinic.agents.doctors import ScriptedDoctor
from agentclinic.env.clinic import Clinic
from agentclinic.env.gym import scripted_clinic
from agentclinic.runs.runner import play_episode
from agentclinic.scenario.loaders import BANK_DIR, load_scenarios


class InstantPatient:
    def reset(self, scenario, seed=None): pass
    async def reply(self, message, turn): return PatientReply(text="I don't know.")


class InstantMeasurement:
    def reset(self, scenario, seed=None): pass
    async def examine(self, system): return [Finding(request="all", name="General", result="Well.")]
    async def order(self, test): return Finding(request=test, name=test, result="Normal.", price_code="cbc")


class InstantJudge:
    async def judge(self, proposed, scenario): return Verdict(level="wrong", correct=False, rationale="-")


ACTIONS = ["Hello, what brings you in?", "REQUEST TEST: CBC", "Examine: cardiovascular", "Any fever?",
           '{"type": "order_tests", "tests": ["ECG", "troponin"]}', "REQUEST IMAGES", "blah"] * 3


async def env_only(scenarios, rounds: int) -> float:
    clinic = Clinic(InstantPatient(), InstantMeasurement(), InstantJudge())
    times = []
    for i in range(rounds):
        clinic.reset(scenarios[i % len(scenarios)], seed=i)
        for action in ACTIONS[:19]:
            t0 = time.perf_counter()
            await clinic.step(action)
            times.append(time.perf_counter() - t0)
    return statistics.fmean(times) * 1000


async def episodes(scenarios, n: int) -> tuple[float, float, float, float]:
    clinic, doctor = scripted_clinic(), ScriptedDoctor()
    records = []
    t0 = time.perf_counter()
    for i in range(n):
        records.append(await play_episode(clinic, doctor, scenarios[i % len(scenarios)], seed=i))
    wall = time.perf_counter() - t0
    steps = [e.env_ms for r in records for e in r.events]
    turns = statistics.fmean(r.turns for r in records)
    return n / wall, wall / n * 1000, statistics.fmean(steps), turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    scenarios = load_scenarios(BANK_DIR).scenarios
    t0 = time.perf_counter()
    asyncio.run(episodes(scenarios, len(scenarios)))  # warm-up: model load, fact embeddings
    print(f"warm-up over {len(scenarios)} scenarios: {time.perf_counter() - t0:.1f} s")
    env_ms = asyncio.run(env_only(scenarios, 200))
    rate, per_episode, step_ms, turns = asyncio.run(episodes(scenarios, args.episodes))
    print(f"env.step without agents (parse + ledger + record): {env_ms:.3f} ms")
    print(f"env.step with scripted agents:                     {step_ms:.3f} ms")
    print(f"scripted episodes: {rate:.1f} per second, {per_episode:.1f} ms each, {turns:.1f} turns on average")


if __name__ == "__main__":
    main()
