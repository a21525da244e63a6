"""``ClinicEnv``: the Gymnasium face of the clinic, synchronous over the async core.

Observations and actions are text (``gymnasium.spaces.Text``; an action may also be a JSON action, a tool
call or an ``Action``, and anything else is an ``Error: ...`` observation that spends the turn, never an
exception; actions over the space's ``max_length`` are errors too); observations are folded to
the space's charset (accents and symbols such as ``°`` or ``µ`` spelled in ASCII) and cut
to its length, so ``check_env`` holds. ``info`` carries the ledger, the parsed action type,
errors, the images that came with the step (local paths; see ``agentclinic.env.clinic``) and, at
the end, the judge's verdict and the scores.

Reward: 0 until the episode ends; then the weighted composite of every scoring axis
(``weights=``, default: each axis's default weight, ``agentclinic.scoring.default_weights()``; diagnosis
dominates), 0 for an episode that ends without a diagnosis. The final ``info`` carries ``axes`` (every
axis, value in [0, 1], NaN where the case leaves it undefined) and ``composite``; the evidence is in
``env.unwrapped.clinic.record.scores``, and ``info["embedder"]`` names the embedder the agents match text
with. ``RewardWeights(env, weights)`` re-weights the terminal reward from ``info``;
``RewardWeights(env, {"diagnosis": 1})`` gives the plain 1 / 0 for a correct / wrong diagnosis
(0.5 narrower, 0.25 broader).

``info`` is kept batchable by vector envs (same type for a key in every env, or the key absent):
the verdict is absent until there is one, and a verdict's empty fields are left out.
"""

from __future__ import annotations

import asyncio
import string
import unicodedata
from pathlib import Path

import gymnasium as gym
from gymnasium import spaces

from agentclinic.env.actions import MAX_ACTION_CHARS
from agentclinic.env.clinic import Clinic
from agentclinic.env.ledger import Budget
from agentclinic.scenario.loaders import BANK_DIR, ScenarioSet, load_scenarios
from agentclinic.scenario.schema import Scenario
from agentclinic.scoring.rewards import ScoreWeights, composite

CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"
MAX_OBSERVATION = 8192
SPELLED = {"°": "deg", "µ": "u", "μ": "u", "×": "x", "–": "-", "—": "-", "’": "'", "‘": "'", "“": '"', "”": '"',
           "≥": ">=", "≤": "<=", "±": "+/-", "…": "...", "→": "->", "\t": " ", "½": "1/2", "²": "^2", "³": "^3"}


def to_charset(text: str, max_length: int = MAX_OBSERVATION) -> str:
    """``text`` in the observation charset: symbols spelled out, accents dropped, the rest removed."""
    text = "".join(SPELLED.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if ch in CHARSET) or "."
    marker = " [truncated]"
    return text if len(text) <= max_length else text[: max_length - len(marker)] + marker


def scripted_clinic(budget: Budget | None = None, image_policy: str = "on-request") -> Clinic:
    """A clinic with the offline scripted agents (shared embedding model)."""
    from agentclinic.agents.judge import RuleJudge
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient

    return Clinic(ScriptedPatient(), ScriptedMeasurement(), RuleJudge(), budget=budget, image_policy=image_policy)


def model_clinic(*, patient: str = "scripted", measurement: str = "scripted", judge: str = "scripted",
                 settings=None, patient_bias=None, image_policy: str = "on-request", budget: Budget | None = None,
                 cache: str | Path | None = None) -> Clinic:
    """A clinic whose roles are given by specs ('scripted', 'openai/<model>[@<url>]', 'hf/<path>'),
    e.g. an LLM patient for an RL doctor: ``ClinicEnv(clinic=model_clinic(patient="openai/..."))``."""
    from agentclinic.agents.llm_factory import build_clinic

    return build_clinic(patient=patient, measurement=measurement, judge=judge, settings=settings,
                        patient_bias=patient_bias, image_policy=image_policy, budget=budget, cache=cache)


def batchable(info: dict) -> dict:
    """``info`` as vector envs can stack it: no ``verdict`` until there is one and no empty verdict
    fields, undefined axes as NaN, the scores' evidence left out (it is on ``clinic.record.scores``)."""
    info = dict(info)
    verdict = info.pop("verdict", None)
    if verdict is not None:
        info["verdict"] = {k: v for k, v in verdict.items() if v is not None}
    info.pop("scores", None)
    if "axes" in info:
        info["axes"] = {k: float("nan") if v is None else float(v) for k, v in info["axes"].items()}
    return info


class ClinicEnv(gym.Env):
    """A consultation per episode; ``reset(seed=..., options={"scenario": id})`` picks the case."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, scenarios: str | Path | list[Scenario] | ScenarioSet | None = None,
                 max_turns: int = 20, budget: Budget | None = None, clinic: Clinic | None = None,
                 render_mode: str | None = None, image_policy: str = "on-request",
                 weights: ScoreWeights | dict | str | None = None):
        if isinstance(scenarios, (str, Path)) or scenarios is None:
            scenarios = load_scenarios(scenarios or BANK_DIR)
        self.scenarios = list(scenarios)
        if not self.scenarios:
            raise ValueError("ClinicEnv needs at least one scenario")
        self.by_id = {s.id: s for s in self.scenarios}
        self.clinic = clinic or scripted_clinic(budget or Budget(turns=max_turns), image_policy=image_policy)
        if weights is not None:
            self.clinic.weights = ScoreWeights.parse(weights)
        self.observation_space = spaces.Text(MAX_OBSERVATION, min_length=1, charset=CHARSET)
        self.action_space = spaces.Text(MAX_ACTION_CHARS, min_length=1, charset=CHARSET)
        self.render_mode = render_mode
        self._loop = asyncio.new_event_loop()
        self._last = ""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        wanted = (options or {}).get("scenario")
        if wanted is not None:
            if wanted not in self.by_id:
                raise KeyError(f"no scenario {wanted!r}; known: {', '.join(sorted(self.by_id)[:10])}...")
            scenario = self.by_id[wanted]
        else:
            scenario = self.scenarios[int(self.np_random.integers(len(self.scenarios)))]
        episode_seed = int(self.np_random.integers(2**31 - 1))
        observation, info = self.clinic.reset(scenario, episode_seed)
        self._last = to_charset(observation)
        return self._last, batchable(info)

    def step(self, action):
        result = self._loop.run_until_complete(self.clinic.step(action))
        self._last = to_charset(result.observation)
        return self._last, result.reward, result.terminated, result.truncated, batchable(result.info)

    def render(self):
        if self.render_mode == "ansi":
            return self._last
        return None

    def close(self):
        if not self._loop.is_closed():
            self._loop.close()


class RewardWeights(gym.Wrapper):
    """Recomputes the terminal reward as the composite of ``info["axes"]`` under ``weights``
    (a ``ScoreWeights``, a mapping, or text such as ``"diagnosis=0.8,coverage=0.2"``; axes left
    out weigh 0). Other steps' rewards pass through; ``info["reweighted"]`` holds the new reward."""

    def __init__(self, env: gym.Env, weights: ScoreWeights | dict | str):
        super().__init__(env)
        self.weights = ScoreWeights.parse(weights)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and info.get("axes") is not None:
            reward = composite(info["axes"], self.weights, diagnosed=info.get("outcome") in ("correct", "incorrect"))
            info = {**info, "reweighted": reward}
        return observation, reward, terminated, truncated, info
