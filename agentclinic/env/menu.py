"""``ActionMenu``: the clinic as a small discrete-action problem, for policies that choose *what to do next* while
a built-in reasoner (the scripted doctor's ranking, ``agents/doctors.py``) turns the choice into a concrete action.

Actions (``Discrete(len(MENU))``; ``MENU[i].name`` names action ``i``):

====================  ======================================================================================
``ask:<topic>``       one history question per topic of ``HISTORY_QUESTIONS`` (presenting complaint, onset,
                      character, location, ... review of systems), asked as the scripted doctor words it
``ask:targeted``      ask about the most specific symptoms of the two leading hypotheses not heard yet
``examine``           a full examination
``tests:differential``  up to 4 typical tests of the 3 leading hypotheses (tests several share come first)
``tests:leader``      up to 2 typical tests of the leading hypothesis not ordered yet
``images``            request the case's images (their reports come back)
``retrieve``          look the positive findings up with the retrieval tool (fused into the ranking after)
``diagnose:1``        diagnose the leading disease of the current ranking (ends the episode)
``diagnose:2``        diagnose the runner-up (ends the episode)
====================  ======================================================================================

Each action can be taken once per episode (``diagnose:*`` end it anyway); ``info["action_mask"]`` (int8, 1 =
allowed) says which are left, and an action no longer allowed is played as the wrapped env's error turn (it costs
the turn). The episode ends as the wrapped env's does (a diagnosis, or the turn budget).

Observation: a ``Box`` feature vector that describes the consultation's *state*, never the case: the turn and
turns left, which actions were taken, how much was heard (statements, abnormal results), and the ranking's shape
(the leader's score, its margin over the runner-up, whether the leader changed). Names in ``feature_names()``. The
text the wrapped env returned is in ``info["text"]``. Reward and the final ``info`` are the wrapped env's.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agentclinic.agents.doctors import HISTORY_QUESTIONS, ScriptedDoctor
from agentclinic.env.actions import Action, Ask, CallTool, Diagnose, Examine, OrderTests, RequestImage


@dataclass(frozen=True)
class MenuItem:
    name: str
    description: str


def _menu() -> tuple[MenuItem, ...]:
    asks = [MenuItem(f"ask:{topic}", question) for _, topic, question in HISTORY_QUESTIONS]
    return (*asks,
            MenuItem("ask:targeted", "ask about the leading hypotheses' most specific symptoms not heard yet"),
            MenuItem("examine", "a full examination"),
            MenuItem("tests:differential", "up to 4 typical tests of the 3 leading hypotheses"),
            MenuItem("tests:leader", "up to 2 typical tests of the leading hypothesis"),
            MenuItem("images", "request the case's images"),
            MenuItem("retrieve", "look the positive findings up with the retrieval tool"),
            MenuItem("diagnose:1", "diagnose the leading disease"),
            MenuItem("diagnose:2", "diagnose the runner-up"))


MENU: tuple[MenuItem, ...] = _menu()
INDEX = {item.name: i for i, item in enumerate(MENU)}
TOPIC = {i: topic for i, (_, topic, _) in enumerate(HISTORY_QUESTIONS)}
SCALE_STATEMENTS, SCALE_RESULTS = 30.0, 8.0


def feature_names() -> list[str]:
    """The observation's components, in order."""
    return (["bias", "turn", "turns_left", "statements", "abnormal_results", "leader_score", "leader_margin",
             "leader_changed", "brief_mentions_images"] + [f"taken:{item.name}" for item in MENU])


class MenuDoctor(ScriptedDoctor):
    """The scripted doctor's reasoning without its plan: it reads every observation and ranks the diseases;
    the menu decides what to do."""

    def observe(self, observation: str, images: list[dict] | None = None) -> None:
        self.turn += 1
        self._note_images(images)
        if observation and not (self.turn == 1 and observation.strip() == self.brief.strip()):
            if not self._absorb_tool(observation):
                self._absorb(observation)

    def action_for(self, name: str) -> Action | None:
        """The concrete action for a menu item, or None when it has nothing to do (e.g. no tests left)."""
        self.topic = None
        if name.startswith("ask:") and name != "ask:targeted":
            topic = name.removeprefix("ask:")
            question = next(q for _, t, q in HISTORY_QUESTIONS if t == topic)
            self.topic = topic
            return Ask(text=question)
        if name == "ask:targeted":
            question = self._targeted_question()
            self.topic = "targeted"
            return Ask(text=question) if question else None
        if name == "examine":
            return Examine()
        if name.startswith("tests:"):
            ranking = self.rank()
            wide = name == "tests:differential"
            tests = self._tests_for(ranking.top(self.hypotheses if wide else 1), self.max_tests if wide else 2)
            self.pending = list(tests)
            return OrderTests(tests=tests) if tests else None
        if name == "images":
            self.images_requested = True
            return RequestImage()
        if name == "retrieve":
            if not (self.clinical or self.results) or not self._has_tool("retrieve"):
                return None
            return self._retrieve()
        if name.startswith("diagnose:"):
            ranking = self._fused(self.rank())
            pick = int(name.split(":")[1]) - 1
            names = [d.name for d in ranking.diseases]
            primary = names[min(pick, len(names) - 1)]
            return Diagnose(primary=primary, differential=[n for n in names[:1 + self.differential] if n != primary])
        raise ValueError(f"unknown menu item {name!r}")


class ActionMenu(gym.Wrapper):
    """The clinic over a discrete menu of actions (see the module docstring). Wraps a text-mode ``ClinicEnv``
    (or a wrapper of one); ``embedder`` is what the built-in ranking matches text with: "minilm", "lexical", an
    ``Embedder``, or None for the process's default (``agentclinic.agents.embeddings.embedder_named``)."""

    def __init__(self, env: gym.Env, embedder=None, max_turns: int | None = None):
        from agentclinic.agents.embeddings import embedder_named

        super().__init__(env)
        if getattr(env.unwrapped, "obs_mode", "text") != "text":
            raise ValueError("ActionMenu wraps a text-mode ClinicEnv (obs_mode='text')")
        embedder = embedder_named(embedder)
        budget = getattr(env.unwrapped.clinic.budget, "turns", None)
        self.max_turns = max_turns or budget or 20
        self.doctor = MenuDoctor(embedder=embedder, max_turns=self.max_turns)
        self.action_space = spaces.Discrete(len(MENU))
        n = len(feature_names())
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=(n,), dtype=np.float32)
        self.taken = np.zeros(len(MENU), np.int8)
        self._leader: str | None = None
        self._changed = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        text, info = self.env.reset(seed=seed, options=options)
        self.doctor.reset(text, seed)
        self.taken[:] = 0
        self._leader, self._changed = None, 0.0
        return self._features(), self._info(info, text)

    def step(self, action):
        index = int(action)
        if not 0 <= index < len(MENU):
            raise ValueError(f"menu action {action!r} is outside 0..{len(MENU) - 1}")
        name = MENU[index].name
        concrete = self.doctor.action_for(name) if not self.taken[index] else None
        self.taken[index] = 1
        if isinstance(concrete, CallTool):
            self.doctor.awaiting_tool = concrete.name
            self.doctor.tool_log.append({"turn": self.doctor.turn + 1, "tool": concrete.name,
                                         "arguments": dict(concrete.arguments)})
        if concrete is None:  # nothing to do for it (taken before, no tests left...): an error turn
            concrete = {"type": "menu", "item": name}
        text, reward, terminated, truncated, info = self.env.step(concrete)
        self.doctor.observe(text, info.get("images"))
        return self._features(), reward, terminated, truncated, self._info(info, text)

    def action_mask(self) -> np.ndarray:
        mask = (1 - self.taken).astype(np.int8)
        if not self.doctor.wants_images:
            mask[INDEX["images"]] = 0
        return mask

    def _info(self, info: dict, text: str) -> dict:
        return {**info, "text": text, "action_mask": self.action_mask()}

    def _features(self) -> np.ndarray:
        doctor = self.doctor
        ranking = doctor.rank() if doctor.clinical or doctor.results else None
        if ranking is not None and ranking.scores and ranking.scores[0] > 0:
            top, second = ranking.scores[0], ranking.scores[1] if len(ranking.scores) > 1 else 0.0
            leader, score, margin = ranking.diseases[0].name, min(top, 1.0), (top - second) / top
        else:
            leader, score, margin = None, 0.0, 0.0
        self._changed = float(leader != self._leader and self._leader is not None)
        self._leader = leader
        turn = doctor.turn / self.max_turns
        values = [1.0, turn, 1.0 - turn, min(len(doctor.clinical) / SCALE_STATEMENTS, 1.0),
                  min(len(doctor.results) / SCALE_RESULTS, 1.0), score, margin, self._changed,
                  float(doctor.wants_images)]
        return np.clip(np.array(values + self.taken.astype(np.float32).tolist(), np.float32), -1.0, 1.0)
