"""Shaped per-turn rewards for the Gymnasium environment (the terms: ``agentclinic.scoring.shaping``).

Two ways to turn them on, one computation: ``ClinicEnv(shaping="potential")`` (or a mapping of term
weights, or a ``Shaping``), or ``ShapedReward(env, shaping)`` around any environment whose unwrapped
env is a ``ClinicEnv`` (e.g. one made by ``gymnasium.make``). Either way each step's reward is the
environment's (0 until the terminal composite) plus the turn's shaped reward, and ``info["shaping"]``
holds ``{"reward": shaped, "terms": {term: weighted value}}``, so ``reward - info["shaping"]["reward"]``
is the unshaped reward.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym

from agentclinic.scenario.prices import PriceTable
from agentclinic.scoring.shaping import Shaper, Shaping


def shaper_for(shaping: Shaping | Mapping | str | None, prices: PriceTable | None = None) -> Shaper | None:
    """A ``Shaper`` for a shaping setting (None when it is off)."""
    config = Shaping.parse(shaping)
    return Shaper(config, prices) if config is not None else None


def shape_step(shaper: Shaper | None, record, reward: float, done: bool, info: dict) -> tuple[float, dict]:
    """A step's reward and info with the turn's shaped reward added (unchanged when ``shaper`` is None)."""
    if shaper is None:
        return reward, info
    shaped, terms = shaper.step(record, done)
    return float(reward) + shaped, {**info, "shaping": {"reward": shaped, "terms": terms}}


class ShapedReward(gym.Wrapper):
    """Adds the shaped reward of each turn to a ``ClinicEnv``'s reward (see the module doc)."""

    def __init__(self, env: gym.Env, shaping: Shaping | Mapping | str):
        super().__init__(env)
        clinic = env.unwrapped.clinic
        self.shaper = shaper_for(shaping, clinic.prices)
        if self.shaper is None:
            raise ValueError("ShapedReward needs a shaping (a preset name, term weights or a Shaping), not 'off'")

    def reset(self, *, seed=None, options=None):
        observation, info = self.env.reset(seed=seed, options=options)
        self.shaper.reset(self.env.unwrapped.clinic.scenario)
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        reward, info = shape_step(self.shaper, self.env.unwrapped.clinic.record, reward, terminated or truncated, info)
        return observation, reward, terminated, truncated, info
