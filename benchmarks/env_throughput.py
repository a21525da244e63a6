"""Scripted-episode throughput, the environment's own cost per step, and Gymnasium vector-env speed.

    .venv/bin/python benchmarks/env_throughput.py                     # everything (~5 min on 2 cores)
    .venv/bin/python benchmarks/env_throughput.py --parts episodes    # only the scripted-episode figures

Part ``episodes`` prints, after one warm-up pass over the first ``--episodes`` diagnostic cases of the
bank (which loads the embedding model once and embeds their facts once; torch with one thread, as
``ClinicEnv`` sets it):
- scripted episodes per second (scripted doctor, patient, measurement agent, judge);
- mean ms per episode;
- mean ``env.step`` time excluding agent time: parsing + ledger + recording, measured by
  stepping a Clinic whose patient, measurement agent and judge answer instantly;
- the same figure for the full step with the scripted agents, for comparison.

Part ``threads``: ms per text for MiniLM embedding distinct short questions one at a time (as the
scripted patient does), with torch's default threads and with one, each in a fresh process.

Part ``latency``: seconds from a fresh process's start to the end of its first episode (a few questions,
a test, a diagnosis, scored), with MiniLM: with an empty cache folder (cold), with only the concept index
cached (what a process paid before the ICD-10-CM index and the fact embeddings were cached), and with the
cache filled by the earlier runs (warm).

Part ``vector``: ``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv`` over 1, 4 and 8 ``ClinicEnv``s,
MiniLM and lexical, a random menu policy (questions, examinations, tests, a diagnosis after 4-12 turns):
the start-up (creation and first reset) and the steps per second over ``--steps`` steps per sub-env
after it (each new case's fact index and the first diagnosis's judge indexes included, as a training
run pays them; "steady": the second half of the steps only). "before": torch's default threads and only
the concept index on disk (the old defaults); "now": ``torch_threads=1`` (the default) and the disk cache filled. Each
configuration runs in its own process (no in-memory cache carries over). Lexical matching uses no
torch: its two rows differ by the disk cache only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentclinic.agents.base import Finding, PatientReply, Verdict
from agentclinic.agents.doctors import HISTORY_QUESTIONS, ScriptedDoctor
from agentclinic.env.clinic import Clinic
from agentclinic.env.gym import scripted_clinic
from agentclinic.env.speed import limit_threads
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
    limit_threads(clinic, 1)  # as ClinicEnv does by default
    records = []
    t0 = time.perf_counter()
    for i in range(n):
        records.append(await play_episode(clinic, doctor, scenarios[i % len(scenarios)], seed=i))
    wall = time.perf_counter() - t0
    steps = [e.env_ms for r in records for e in r.events]
    turns = statistics.fmean(r.turns for r in records)
    return n / wall, wall / n * 1000, statistics.fmean(steps), turns


# --------------------------------------------------------------------------------------------
# First-episode latency and vector envs: each measurement in a fresh process
# --------------------------------------------------------------------------------------------

FIRST_EPISODE = ["Hello, what brings you in?", "When did this start?", "Do you have a fever?", "Examine",
                 "REQUEST TEST: Complete blood count"]
MENU = [q for _, _, q in HISTORY_QUESTIONS] + [
    "Examine", "Examine: cardiovascular", "Examine: respiratory", "Examine: abdomen",
    "REQUEST TEST: Complete blood count", "REQUEST TEST: ECG", "REQUEST TEST: Chest X-ray",
    "REQUEST TEST: Urinalysis", "REQUEST TEST: Troponin"]
GUESSES = ["pneumonia", "myocardial infarction", "appendicitis", "migraine", "asthma", "gout", "sepsis"]


def embed_texts(threads: int | None, n: int) -> dict:
    """Run in a fresh process: ms per text for MiniLM embedding ``n`` distinct short questions one at a time
    (as the scripted patient does), with torch's default threads (None) or ``threads``."""
    import torch

    from agentclinic.agents.embeddings import embedder_named, limit_torch_threads

    embedder = embedder_named("minilm")
    limit_torch_threads(threads)
    embedder.encode(["warm-up question"])
    texts = [f"{q} (variant {i})" for i, (_, _, q) in enumerate(HISTORY_QUESTIONS * (n // len(HISTORY_QUESTIONS) + 1))]
    t0 = time.perf_counter()
    for text in texts[:n]:
        embedder.encode([text])
    return {"threads": torch.get_num_threads(), "ms_per_text": (time.perf_counter() - t0) / n * 1000}


def threads_part(work: Path, n: int) -> None:
    print(f"\nMiniLM, one short text per call, {n} texts, fresh process each (ms per text)")
    for threads in (None, 1):
        r = in_subprocess(f"embed_texts({threads!r}, {n})", work / "threads", 900)
        label = "torch default threads" if threads is None else f"torch_threads={threads}"
        if "error" in r:
            print(f"  {label:24s} error: {r['error']}")
        else:
            print(f"  {label:24s} ({r['threads']} threads) {r['ms_per_text']:8.1f}", flush=True)


def first_episode(embedder: str) -> dict:
    """Run in a fresh process: seconds to import, create the env and play one scored episode."""
    from agentclinic.env.gym import ClinicEnv

    env = ClinicEnv(embedder=embedder)
    created = time.perf_counter()
    env.reset(seed=0, options={"scenario": env.scenarios[0].id})
    for action in FIRST_EPISODE:
        env.step(action)
    env.step(f"DIAGNOSIS READY: {GUESSES[0]}")
    return {"create_s": created - T_START, "episode_s": time.perf_counter() - created,
            "total_s": time.perf_counter() - T_START}


class MenuPolicy:
    """Random menu actions, a diagnosis after 4-12 turns (per sub-env)."""

    def __init__(self, n: int, seed: int = 0):
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self.left = [self._length() for _ in range(n)]

    def _length(self) -> int:
        return int(self.rng.integers(4, 13))

    def __call__(self, done) -> list[str]:
        actions = []
        for i, finished in enumerate(done):
            if finished:
                self.left[i] = self._length()
            self.left[i] -= 1
            if self.left[i] <= 0:
                actions.append(f"DIAGNOSIS READY: {GUESSES[int(self.rng.integers(len(GUESSES)))]}")
                self.left[i] = self._length()
            else:
                actions.append(MENU[int(self.rng.integers(len(MENU)))])
        return actions


def vector_run(mode: str, n: int, embedder: str, threads: int | None, steps: int, limit_s: float) -> dict:
    """Run in a fresh process: steps/s of a vector env of ``n`` ClinicEnvs, from its creation."""
    import gymnasium

    import agentclinic  # noqa: F401  (registers the ids)
    from agentclinic.env import ENV_ID

    kwargs = {"embedder": embedder, "torch_threads": threads}
    make = lambda: gymnasium.make(ENV_ID, **kwargs)  # noqa: E731
    t0 = time.perf_counter()
    envs = (gymnasium.vector.SyncVectorEnv([make] * n) if mode == "sync"
            else gymnasium.vector.AsyncVectorEnv([make] * n, shared_memory=False))
    try:
        envs.reset(seed=list(range(n)))
        started = time.perf_counter()
        policy, done, taken, episodes = MenuPolicy(n), [False] * n, 0, 0
        half_t, half_steps = None, 0
        while taken < steps * n and time.perf_counter() - started < limit_s:
            _, _, terminated, truncated, _ = envs.step(policy(done))
            done = [bool(a or b) for a, b in zip(terminated, truncated)]
            taken, episodes = taken + n, episodes + sum(done)
            if half_t is None and taken >= steps * n // 2:
                half_t, half_steps = time.perf_counter(), taken
        end = time.perf_counter()
    finally:
        envs.close()
    steady = (taken - half_steps) / (end - half_t) if half_t and taken > half_steps and end > half_t else None
    return {"steps": taken, "episodes": episodes, "startup_s": started - t0, "steps_per_s": taken / (end - started),
            "steady_steps_per_s": steady, "capped": taken < steps * n}


def in_subprocess(call: str, cache: Path, timeout: float) -> dict:
    """``call`` (an expression of this module's functions) in a fresh Python with ``AGENTCLINIC_CACHE=cache``."""
    code = (f"import time; T = time.perf_counter(); import json, sys; sys.path.insert(0, {str(HERE)!r}); "
            f"import env_throughput as b; b.T_START = T; print('RESULT', json.dumps(b.{call}))")
    environment = {**os.environ, "AGENTCLINIC_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}


def concepts_only(source: Path, target: Path) -> Path:
    """A cache folder holding only the concept index (what a process found on disk before this change)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("concepts-*.json"):
        shutil.copy(path, target / path.name)
    return target


def latency(work: Path) -> None:
    """The first episode of a fresh process, cold, with the old cache contents, and warm."""
    cold = work / "cold"
    print("\nfirst episode in a fresh process (MiniLM; seconds: import + create env | first episode | total)")
    for label in ("cold: empty cache folder", "before: concept index only on disk", "warm: cache filled"):
        folder = concepts_only(cold, work / "before-latency") if label.startswith("before") else cold
        r = in_subprocess("first_episode('minilm')", folder, 900)
        if "error" in r:
            print(f"  {label:38s} error: {r['error']}")
        else:
            print(f"  {label:38s} {r['create_s']:6.1f} | {r['episode_s']:6.1f} | {r['total_s']:6.1f}", flush=True)


def vector(work: Path, sizes: list[int], modes: list[str], embedders: list[str], steps: int, limit_s: float) -> None:
    filled = work / "cold"  # filled by the latency part, or here
    if not any(filled.glob("icd-index-*.json")):
        in_subprocess("first_episode('minilm')", filled, 900)
    print(f"\nvector envs: start-up (make + reset, s), then steps/s over {steps} steps per sub-env "
          f"(steady: the second half only; at most {limit_s:.0f} s of steps per row)")
    print(f"  {'mode':5s} {'envs':>4s} {'embedder':8s} {'setting':7s} {'start s':>7s} {'steps/s':>8s} {'steady':>8s}")
    for embedder in embedders:
        for mode in modes:
            for n in sizes:
                for setting in ("before", "now"):
                    threads = None if setting == "before" else 1
                    cache = filled if setting == "now" else concepts_only(filled, work / f"old-{mode}-{n}-{embedder}")
                    call = f"vector_run({mode!r}, {n}, {embedder!r}, {threads!r}, {steps}, {limit_s})"
                    r = in_subprocess(call, cache, limit_s + 300)
                    if "error" in r:
                        print(f"  {mode:5s} {n:4d} {embedder:8s} {setting:7s} error: {r['error']}")
                        continue
                    steady = f"{r['steady_steps_per_s']:8.1f}" if r["steady_steps_per_s"] else f"{'-':>8s}"
                    capped = " (capped)" if r["capped"] else ""
                    print(f"  {mode:5s} {n:4d} {embedder:8s} {setting:7s} {r['startup_s']:7.1f} "
                          f"{r['steps_per_s']:8.1f} {steady}{capped}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="episodes,threads,latency,vector",
                        help="comma-separated: episodes, threads, latency, vector")
    parser.add_argument("--texts", type=int, default=100, help="texts to embed (part threads)")
    parser.add_argument("--episodes", type=int, default=40, help="scripted episodes to time (part episodes)")
    parser.add_argument("--envs", default="1,4,8", help="vector env sizes")
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--embedders", default="minilm,lexical")
    parser.add_argument("--steps", type=int, default=24, help="steps per sub-env (part vector)")
    parser.add_argument("--limit", type=float, default=40, help="seconds at most per vector row")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    import torch

    print(f"cores: {os.cpu_count()}, torch default threads: {torch.get_num_threads()}")
    if "episodes" in parts:
        scenarios = [s for s in load_scenarios(BANK_DIR).scenarios if not s.is_station][: args.episodes]
        t0 = time.perf_counter()
        asyncio.run(episodes(scenarios, len(scenarios)))  # warm-up: model load, fact embeddings
        print(f"warm-up over {len(scenarios)} scenarios: {time.perf_counter() - t0:.1f} s")
        env_ms = asyncio.run(env_only(scenarios, 200))
        rate, per_episode, step_ms, turns = asyncio.run(episodes(scenarios, args.episodes))
        print(f"env.step without agents (parse + ledger + record): {env_ms:.3f} ms")
        print(f"env.step with scripted agents:                     {step_ms:.3f} ms")
        print(f"scripted episodes: {rate:.1f} per second, {per_episode:.1f} ms each, {turns:.1f} turns on average")
    with tempfile.TemporaryDirectory(prefix="agentclinic-bench-") as folder:
        work = Path(folder)
        if "threads" in parts:
            threads_part(work, args.texts)
        if "latency" in parts:
            latency(work)
        if "vector" in parts:
            vector(work, [int(n) for n in args.envs.split(",")], args.modes.split(","), args.embedders.split(","),
                   args.steps, args.limit)


T_START = time.perf_counter()
HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    main()
