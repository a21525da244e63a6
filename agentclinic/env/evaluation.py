"""Evaluation that plays every scenario of a split exactly once per seed (as opposed to sampling cases).

``evaluate(policy, env, split="test", seeds=3)`` resets the env on each (scenario, seed) of
``eval_plan`` in turn (``reset(seed=seed, options={"scenario": scenario})``, so an item replays exactly)
and lets ``policy(observation, info) -> action`` play it to the end; a policy with a ``reset(observation,
info)`` method is told each new episode. The split is cut with the env's own split settings (seed,
fractions, method) when it has them. Results are plain dicts, one per episode; ``summarise`` gives the mean
return and accuracy with a bootstrap confidence interval over scenarios, and ``compare`` the paired
difference of two evaluations on the same plan (e.g. before and after training). ``DoctorPolicy`` makes any
agentclinic doctor (``make_doctor("scripted")``, an LLM doctor) such a policy, for baselines.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agentclinic.scenario.schema import Scenario
from agentclinic.scenario.splits import Split, assign_splits, split_scenarios

Policy = Callable[[Any, dict], Any]


class DoctorPolicy:
    """An agentclinic doctor as a policy on a text-mode env: reset with the brief (and ``seed`` + the episode's
    number, for doctors that draw), then the doctor's ``act`` on each observation with the images that came
    with it, as the CLI's runner plays it."""

    def __init__(self, doctor, seed: int = 0):
        self.doctor, self.seed, self.episodes = doctor, seed, 0
        self._loop = asyncio.new_event_loop()

    def reset(self, observation: str, info: dict) -> None:
        self.doctor.reset(observation, self.seed + self.episodes)
        self.episodes += 1

    def __call__(self, observation: str, info: dict):
        from agentclinic.runs.runner import doctor_act

        if not isinstance(observation, str):
            raise TypeError("DoctorPolicy plays text observations: use obs_mode='text'")
        return self._loop.run_until_complete(doctor_act(self.doctor, observation, info.get("images") or None))

    def close(self) -> None:
        self._loop.close()


def eval_plan(scenarios: Iterable[Scenario], seeds: int = 1, base_seed: int = 0) -> list[tuple[Scenario, int]]:
    """Every scenario once per seed: (scenario, base_seed + k) for k < seeds, scenario by scenario."""
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    return [(s, base_seed + k) for s in scenarios for k in range(seeds)]


def split_of_env(env: gym.Env, split: str | Split | None) -> tuple[list[Scenario], Split | None]:
    """The scenarios of ``split`` among the env's cases, cut with the env's own split settings if it has them."""
    base = env.unwrapped
    if split is None:
        return list(base.pool), None
    own = base.split
    spec = (Split.parse(split, seed=own.seed, fractions=own.fractions, method=own.method) if own and
            isinstance(split, str) else Split.parse(split))
    return split_scenarios(base.pool, spec), spec


def play(policy: Policy, env: gym.Env, scenario: Scenario, seed: int, max_steps: int | None = None) -> dict:
    """One episode of ``scenario`` with ``seed`` to its end; its result."""
    observation, info = env.reset(seed=seed, options={"scenario": scenario})
    if hasattr(policy, "reset"):
        policy.reset(observation, info)
    total, steps = 0.0, 0
    limit = max_steps or env.unwrapped.clinic.budget.turns + 1  # the env ends an episode at its turn budget
    while True:
        observation, reward, terminated, truncated, info = env.step(policy(observation, info))
        total, steps = total + float(reward), steps + 1
        if terminated or truncated:
            break
        if steps >= limit:
            raise RuntimeError(f"episode of {scenario.id!r} did not end within {limit} steps")
    record = info.get("record")
    return {"scenario": scenario.id, "specialty": scenario.specialty, "seed": seed, "return": total,
            "turns": steps, "outcome": info.get("outcome"), "correct": info.get("outcome") == "correct",
            "composite": info.get("composite"), "axes": dict(info.get("axes") or {}), "record": record}


def evaluate(policy: Policy, env: gym.Env | Callable[[], gym.Env], *, split: str | Split | None = "test",
             seeds: int = 1, base_seed: int = 0, scenarios: Sequence[Scenario] | None = None,
             max_steps: int | None = None) -> list[dict]:
    """Play ``policy`` on every scenario of ``split`` (or the given ``scenarios``) once per seed.

    ``env`` is a ClinicEnv (wrapped or not: a ``RecordEpisodes`` wrapper records the evaluation) or a
    function that makes one (made once, closed at the end). Each result: scenario, specialty, seed, split,
    return, turns, outcome, correct, composite, axes and the ``EpisodeRecord``.
    """
    made = not isinstance(env, gym.Env)
    env = env() if made else env
    try:
        spec = None
        if scenarios is None:
            scenarios, spec = split_of_env(env, split)
        names = assign_splits(env.unwrapped.pool, spec.seed, spec.fractions, spec.method) if spec else {}
        results = []
        for scenario, seed in eval_plan(scenarios, seeds, base_seed):
            result = play(policy, env, scenario, seed, max_steps)
            results.append(result | {"split": names.get(scenario.id)})
        return results
    finally:
        if made:
            env.close()


def _bootstrap(per_scenario: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over scenarios."""
    if len(per_scenario) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = per_scenario[rng.integers(0, len(per_scenario), (resamples, len(per_scenario)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _per_scenario(results: Iterable[dict], key: str) -> dict[str, float]:
    """Scenario -> the mean of ``key`` over its seeds."""
    values: dict[str, list[float]] = {}
    for r in results:
        values.setdefault(r["scenario"], []).append(float(r[key]))
    return {k: float(np.mean(v)) for k, v in values.items()}


def summarise(results: Sequence[dict], confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict:
    """Episodes, scenarios, mean return and accuracy, each with a bootstrap interval over scenarios (the seeds
    of a scenario are averaged first: scenarios, not episodes, are the independent units)."""
    out: dict[str, Any] = {"episodes": len(results), "scenarios": len({r["scenario"] for r in results})}
    for key, name in (("return", "mean_return"), ("correct", "accuracy")):
        per = np.array(list(_per_scenario(results, key).values()))
        out[name] = float(per.mean()) if len(per) else math.nan
        out[f"{name}_ci"] = _bootstrap(per, confidence, resamples, seed)
    out["confidence"] = confidence
    return out


def compare(before: Sequence[dict], after: Sequence[dict], key: str = "return", confidence: float = 0.95,
            resamples: int = 2000, seed: int = 0) -> dict:
    """The paired difference after - before of ``key`` ("return" or "correct") over the scenarios both played:
    its mean and bootstrap interval over scenarios."""
    a, b = _per_scenario(before, key), _per_scenario(after, key)
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two evaluations share no scenario")
    diff = np.array([b[s] - a[s] for s in common])
    return {"scenarios": len(common), "before": float(np.mean([a[s] for s in common])),
            "after": float(np.mean([b[s] for s in common])), "difference": float(diff.mean()),
            "difference_ci": _bootstrap(diff, confidence, resamples, seed), "confidence": confidence}
