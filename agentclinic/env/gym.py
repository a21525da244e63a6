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

Observation modes (``obs_mode``): ``"text"`` (the latest observation, ``Text``) or ``"messages"`` (the whole
consultation as chat messages: a tuple of ``{"role", "content"}`` dicts, ``Sequence(Dict(Text, Text))``).
The messages are what ``agentclinic run --doctor openai/<model>`` sends a text-mode LLM doctor: the system
message is the doctor's action protocol (``agents/prompts/doctor_text.md``), the first user message the case
brief, each assistant message an action as the doctor sent it, each user message an observation; the user
messages before an action carry the turn counter. A policy trained on them meets the same prompt when it is
evaluated with the CLI. The episode's last step's ``info`` holds ``transcript`` (those messages, in either
mode) and ``record`` (the ``EpisodeRecord`` object; ``.model_dump(mode="json")`` gives a dict. An object,
not a dict, so that vector envs keep it whole rather than splitting its fields into arrays).

Scenarios: ``split=`` ("train" / "validation" / "test", or a ``Split``) restricts the cases ``reset`` samples
to one split (``agentclinic.scenario.splits``); ``kinds=`` the scenario kinds played (diagnostic only by
default: conversation stations have no diagnosis). ``reset(options={"scenario": id_or_Scenario})`` plays a
given case (any case of the allowed kinds, whatever the split); without it, the next item of
``env.scenario_queue`` when there is one, else a case of the split drawn with the env's RNG. In vector envs,
``envs.set_attr("scenario_queue", [[...], [...]])`` gives each sub-env its own queue (a list: one per
sub-env), which autoresets follow too; ``envs.reset(options=...)`` would give every sub-env the same options.

Pickling: the env pickles mid-episode: the default scripted clinic is rebuilt from the env's constructor
arguments in the new process and the episode's actions are replayed (the clinic is deterministic). An env
given its own clinic (``clinic=``) refuses to pickle, with a ``TypeError`` saying so (its agents hold models).
"""

from __future__ import annotations

import asyncio
import json
import string
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import gymnasium as gym
from gymnasium import spaces

from agentclinic.env.actions import MAX_ACTION_CHARS, raw_output
from agentclinic.env.clinic import Clinic
from agentclinic.env.ledger import Budget
from agentclinic.env.shaping import shape_step, shaper_for
from agentclinic.env.speed import checked_axes, limit_threads
from agentclinic.scenario.loaders import BANK_DIR, ScenarioSet, load_scenarios
from agentclinic.scenario.schema import Scenario
from agentclinic.scenario.splits import Split, split_scenarios
from agentclinic.scoring.rewards import ScoreWeights, composite

CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"
MAX_OBSERVATION = 8192
ObsMode = Literal["text", "messages"]
OBS_MODES = ("text", "messages")
SPELLED = {"°": "deg", "µ": "u", "μ": "u", "×": "x", "–": "-", "—": "-", "’": "'", "‘": "'", "“": '"', "”": '"',
           "≥": ">=", "≤": "<=", "±": "+/-", "…": "...", "→": "->", "\t": " ", "½": "1/2", "²": "^2", "³": "^3"}


def to_charset(text: str, max_length: int = MAX_OBSERVATION) -> str:
    """``text`` in the observation charset: symbols spelled out, accents dropped, the rest removed."""
    text = "".join(SPELLED.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if ch in CHARSET) or "."
    marker = " [truncated]"
    return text if len(text) <= max_length else text[: max_length - len(marker)] + marker


def scripted_clinic(budget: Budget | None = None, image_policy: str = "on-request", embedder=None) -> Clinic:
    """A clinic with the offline scripted agents; ``embedder``: "minilm", "lexical", an ``Embedder``, or None
    (the process's default, ``AGENTCLINIC_EMBEDDINGS``), one shared instance per process."""
    from agentclinic.agents.embeddings import embedder_named
    from agentclinic.agents.judge import RuleJudge
    from agentclinic.agents.measurement import ScriptedMeasurement
    from agentclinic.agents.patient import ScriptedPatient

    chosen = embedder_named(embedder)
    return Clinic(ScriptedPatient(chosen), ScriptedMeasurement(), RuleJudge(embedder=chosen), budget=budget,
                  image_policy=image_policy)


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


def message_space() -> spaces.Sequence:
    """The ``messages`` observation space: a tuple of {"role", "content"} dicts of text."""
    return spaces.Sequence(spaces.Dict({"role": spaces.Text(9, charset=string.ascii_lowercase),
                                        "content": spaces.Text(MAX_OBSERVATION, min_length=1, charset=CHARSET)}))


def system_prompt(max_turns: int) -> str:
    """The doctor's action protocol: the system message of the ``messages`` mode (the CLI's text-mode LLM
    doctor's, ``agents/prompts/doctor_text.md``)."""
    from agentclinic.agents.llm import render_prompt

    return render_prompt("doctor_text", max_turns=max_turns, bias="")


def turn_counter(turn: int, max_turns: int) -> str:
    """The line that ends each user message before an action, as the CLI's LLM doctor sees it."""
    from agentclinic.agents.llm import render_prompt

    return render_prompt("doctor_turn", turn=turn, max_turns=max_turns, left=max(0, max_turns - turn))


def chat_message(role: str, text: str) -> dict[str, str]:
    return {"role": role, "content": to_charset(text)}


def first_messages(brief: str, max_turns: int) -> list[dict[str, str]]:
    """The ``messages`` observation at reset: the system prompt, then the brief with the first turn's counter."""
    return [chat_message("system", system_prompt(max_turns)),
            chat_message("user", f"Case brief: {brief}\n\n{turn_counter(1, max_turns)}")]


def action_text(action: object) -> str:
    """A doctor's action as the assistant message of a transcript: text as sent, anything else as JSON."""
    raw = raw_output(action)
    return raw if isinstance(raw, str) else json.dumps(raw)


class ClinicEnv(gym.Env):
    """A consultation per episode; ``reset(seed=..., options={"scenario": id})`` picks the case."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, scenarios: str | Path | list[Scenario] | ScenarioSet | None = None,
                 max_turns: int = 20, budget: Budget | None = None, clinic: Clinic | None = None,
                 render_mode: str | None = None, image_policy: str = "on-request",
                 weights: ScoreWeights | dict | str | None = None, *,
                 split: str | Split | None = None, obs_mode: ObsMode = "text",
                 kinds: Iterable[str] = ("diagnostic",), embedder=None, torch_threads: int | None = 1,
                 score_axes: Iterable[str] | None = None, shaping=None):
        self._init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}  # for pickling
        if obs_mode not in OBS_MODES:
            raise ValueError(f"unknown obs_mode {obs_mode!r}; expected one of: {', '.join(OBS_MODES)}")
        if isinstance(scenarios, (str, Path)) or scenarios is None:
            scenarios = load_scenarios(scenarios or BANK_DIR)
        kinds = tuple(kinds)
        if obs_mode == "messages" and set(kinds) - {"diagnostic"}:
            raise ValueError("obs_mode='messages' sends the diagnostic doctor's action protocol; play conversation "
                             "stations with obs_mode='text'")
        self.pool = [s for s in scenarios if s.kind in kinds]  # every case reset may play when asked
        self.split = Split.parse(split)
        self.scenarios = split_scenarios(self.pool, self.split) if self.split else list(self.pool)  # sampled
        if not self.scenarios:
            where = f" in the {self.split.name} split" if self.split else ""
            raise ValueError(f"ClinicEnv needs at least one scenario of kind {' or '.join(kinds)}{where}")
        self.by_id = {s.id: s for s in self.pool}
        self.scenario_queue: list[str | Scenario] = []  # played in order by resets without options["scenario"]
        if clinic is not None and embedder is not None:
            raise ValueError("embedder= sets the scripted clinic's agents; a given clinic keeps its agents' embedders")
        self.clinic = clinic or scripted_clinic(budget or Budget(turns=max_turns), image_policy=image_policy,
                                                embedder=embedder)
        self.clinic.score_axes = checked_axes(score_axes)  # None: every axis (see agentclinic.env.speed)
        limit_threads(self.clinic, torch_threads)
        self.shaper = shaper_for(shaping, self.clinic.prices)  # None: no shaping (agentclinic.env.shaping)
        if weights is not None:
            self.clinic.weights = ScoreWeights.parse(weights)
        self.obs_mode = obs_mode
        self.observation_space = (spaces.Text(MAX_OBSERVATION, min_length=1, charset=CHARSET) if obs_mode == "text"
                                  else message_space())
        self.action_space = spaces.Text(MAX_ACTION_CHARS, min_length=1, charset=CHARSET)
        self.render_mode = render_mode
        self._loop = asyncio.new_event_loop()
        self._last = ""
        self.messages: list[dict[str, str]] = []  # the consultation as chat messages
        self._episode: dict | None = None  # scenario, seed and actions of the episode in play (for pickling)

    def _scenario(self, wanted: str | Scenario | None) -> Scenario:
        if isinstance(wanted, Scenario):
            return wanted
        if wanted is None:
            return self.scenarios[int(self.np_random.integers(len(self.scenarios)))]
        if wanted not in self.by_id:
            raise KeyError(f"no scenario {wanted!r} of kind {' or '.join(self._init_kwargs['kinds'])} here; "
                           f"known: {', '.join(sorted(self.by_id)[:10])}...")
        return self.by_id[wanted]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        wanted = (options or {}).get("scenario")
        if wanted is None and self.scenario_queue:
            wanted = self.scenario_queue.pop(0)
        scenario = self._scenario(wanted)
        observation, info = self._begin(scenario, int(self.np_random.integers(2**31 - 1)))
        return self._observation(), batchable(info)

    def _begin(self, scenario: Scenario, episode_seed: int) -> tuple[str, dict]:
        """Start the clinic's episode and the transcript."""
        observation, info = self.clinic.reset(scenario, episode_seed)
        self._episode = {"scenario": scenario, "seed": episode_seed, "actions": []}
        if self.shaper is not None:
            self.shaper.reset(scenario)
        self._last = to_charset(observation)
        self.messages = first_messages(observation, self.clinic.budget.turns)
        return observation, info

    def step(self, action):
        result = self._loop.run_until_complete(self.clinic.step(action))
        self._episode["actions"].append(action)
        self._last = to_charset(result.observation)
        done = result.terminated or result.truncated
        turns = self.clinic.budget.turns
        counter = "" if done else "\n\n" + turn_counter(self.clinic.ledger.turns + 1, turns)
        self.messages += [chat_message("assistant", action_text(action)),
                          chat_message("user", result.observation + counter)]
        info = batchable(result.info)
        if done:
            info |= {"transcript": [dict(m) for m in self.messages], "record": self.clinic.record}
        reward, info = shape_step(self.shaper, self.clinic.record, result.reward, done, info)
        return self._observation(), reward, result.terminated, result.truncated, info

    def _observation(self):
        return self._last if self.obs_mode == "text" else tuple(dict(m) for m in self.messages)

    def render(self):
        if self.render_mode == "ansi":
            return self._last
        return None

    def close(self):
        if not self._loop.is_closed():
            self._loop.close()

    def __getstate__(self) -> dict:
        if self._init_kwargs["clinic"] is not None:
            raise TypeError("a ClinicEnv given its own clinic (clinic=...) cannot be pickled: its agents hold "
                            "models and locks; pickling rebuilds the default scripted clinic from the env's "
                            "arguments (embedder=, max_turns=, budget=, ...) and replays the episode")
        return {"init": self._init_kwargs, "np_random": self._np_random, "np_random_seed": self._np_random_seed,
                "queue": list(self.scenario_queue), "episode": self._episode}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["init"])
        self.scenario_queue = state["queue"]
        episode = state["episode"]
        if episode is not None:  # the rebuilt clinic replays the episode in play (it is deterministic)
            self._begin(episode["scenario"], episode["seed"])
            for action in episode["actions"]:
                self.step(action)
        self._np_random, self._np_random_seed = state["np_random"], state["np_random_seed"]


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
