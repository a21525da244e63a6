"""TRL's ``GRPOTrainer`` with agentclinic episodes as multi-turn rollouts (``pip install agentclinic[rl]``).

``GRPOTrainer(..., rollout_func=EpisodeRollout(env_factory, rows), reward_funcs=reward_functions())`` trains a
causal LM as the doctor. For each prompt row (``agentclinic.env.dataset.scenario_rows``: the first turn's chat
messages and the scenario id) a rollout plays a whole consultation: the model writes a turn, the environment's
reply goes back as the next user message, until a diagnosis or a budget ends it.

Token layout (one sequence per episode, as TRL trains it): ``prompt_ids`` are the chat-templated first turn;
``completion_ids`` are every doctor turn as sampled, each followed by the template text that closes it and opens
the next turn around the environment's reply. ``env_mask`` (TRL's name for the loss mask of a custom rollout) is 1
on the sampled tokens and 0 on the environment's, so only the doctor's own tokens are trained on; ``logprobs`` are
the sampling log-probabilities (0 on the environment's tokens). The model always continues from exactly these
tokens, so what it is trained on is what it saw.

Rewards: each rollout hands the reward functions ``episode_return`` (the sum of the environment's rewards: the
terminal composite of the scoring axes plus any per-turn shaping the environment was built with), ``composite``,
``axes`` (every axis, NaN where undefined), ``outcome`` and ``turns``. ``reward_functions()`` gives the return; add
``axis_reward(name)`` for any axis (logged, or weighted with ``GRPOConfig.reward_weights``). An episode stops
unfinished when its next reply and turn would not fit ``max_completion_tokens``: no diagnosis, no terminal reward
(its return is the shaping earned so far, 0 without shaping), axes left undefined.

Generation: in process with the trainer's own model (``HFGenerator``), or with TRL's vLLM engine when the trainer
was configured with ``use_vllm=True`` (``VLLMGenerator``); each turn is one batched call over the live episodes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym

Messages = list[dict[str, Any]]
SENTINEL = "@@agentclinic-doctor-turn@@"  # stands for a doctor turn when the template's turn boundary is read


def prompt_key(messages: Sequence[Mapping[str, Any]]) -> str:
    """A key for a prompt's messages (a rollout receives prompts, not rows: the key finds the row)."""
    data = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass
class Generated:
    """One sampled turn: token ids (the stop token included when it came) and their log-probabilities (None
    where the engine could not give one; TRL leaves those out of its importance-sampling correction)."""

    ids: list[int]
    logprobs: list[float | None]


class Generator(Protocol):
    def __call__(self, sequences: list[list[int]]) -> list[Generated]: ...


class HFGenerator:
    """Samples one turn per sequence with a transformers causal LM, batched and left-padded; stops at the
    tokenizer's end-of-turn ids. Log-probabilities are of the sampling distribution (logits / temperature)."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 96, temperature: float = 1.0,
                 top_p: float = 1.0, stop_ids: Sequence[int] | None = None):
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if temperature <= 0:
            raise ValueError("temperature must be positive (sampling)")
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.stop_ids = set(stop_ids if stop_ids is not None else stop_token_ids(tokenizer))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stop_ids)

    def __call__(self, sequences: list[list[int]]) -> list[Generated]:
        import torch

        if not sequences:
            return []
        width = max(len(s) for s in sequences)
        input_ids = torch.tensor([[self.pad_id] * (width - len(s)) + s for s in sequences])
        attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
        device = next(self.model.parameters()).device
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device), do_sample=True,
                    temperature=self.temperature, top_p=self.top_p, top_k=0, max_new_tokens=self.max_new_tokens,
                    eos_token_id=sorted(self.stop_ids), pad_token_id=self.pad_id, output_logits=True,
                    return_dict_in_generate=True)
        finally:
            self.model.train(training)
        new = out.sequences[:, width:].tolist()
        logits = torch.stack(out.logits, dim=1).float() / self.temperature  # batch x new tokens x vocab
        logps = torch.log_softmax(logits, dim=-1)
        turns = []
        for b, ids in enumerate(new):
            ids = ids[:turn_end(ids, self.stop_ids)]
            turns.append(Generated(ids, [float(logps[b, i, t]) for i, t in enumerate(ids)]))
        return turns


class VLLMGenerator:
    """Samples through the trainer's vLLM engine (``GRPOConfig(use_vllm=True)``), one completion per sequence, as
    TRL's own tool loop does; a turn is cut at ``max_new_tokens`` (vLLM's own cap is ``max_completion_length``).
    Its contract with TRL is unit-tested against a stand-in engine; it has not been run on a GPU here."""

    def __init__(self, trainer, *, max_new_tokens: int = 96):
        self.trainer, self.max_new_tokens = trainer, max_new_tokens
        self.stop_ids = set(stop_token_ids(trainer.processing_class))

    def __call__(self, sequences: list[list[int]]) -> list[Generated]:
        _, ids, logprobs, _ = self.trainer.vllm_generation.generate(prompts=sequences, images=None,
                                                                    num_generations=1)
        turns = []
        for seq, lps in zip(ids, logprobs):
            end = min(turn_end(seq, self.stop_ids), self.max_new_tokens)
            turns.append(Generated(list(seq[:end]), [lp[0] for lp in lps[:end]]))  # None: unknown (TRL: NaN)
        return turns


def turn_end(ids: Sequence[int], stop_ids: set[int]) -> int:
    """Where a sampled turn ends: just after its first stop token, else at its end."""
    return next((i + 1 for i, t in enumerate(ids) if t in stop_ids), len(ids))


def stop_token_ids(tokenizer) -> list[int]:
    """The ids that end a doctor's turn: the end-of-sequence token and the chat template's end-of-turn token
    (the text that closes an assistant message, when it is one token)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    closing = turn_text(tokenizer, "x", closed=False).lstrip(" ").split("\n", 1)[0].strip()
    if closing:
        encoded = tokenizer(closing, add_special_tokens=False).input_ids
        if len(encoded) == 1:
            ids.add(encoded[0])
    if not ids:
        raise ValueError("the tokenizer has no end-of-sequence token, so a doctor's turn could never end")
    return sorted(ids)


def render_prompt_ids(tokenizer, messages: Messages) -> list[int]:
    """The first turn's token ids: the chat template with the generation prompt."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


def turn_text(tokenizer, observation: str, *, closed: bool, stop_text: str = "") -> str:
    """The chat-template text between a doctor's turn and the next: what closes the assistant message (left out
    when the turn already ended with ``stop_text``, the sampled stop token), the environment's reply as a user
    message, and the header that opens the next assistant message."""
    messages = [{"role": "user", "content": "."}, {"role": "assistant", "content": SENTINEL},
                {"role": "user", "content": observation}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    at = text.find(SENTINEL)
    if at < 0:
        raise ValueError("the chat template drops the assistant's message; it cannot render a multi-turn episode")
    tail = text[at + len(SENTINEL):]
    if closed and stop_text and tail.lstrip(" ").startswith(stop_text):
        tail = tail.lstrip(" ")[len(stop_text):]
    return tail


def observation_text(observation: Any) -> str:
    """The environment's reply as text: a text observation, or the last message of a messages observation."""
    if isinstance(observation, str):
        return observation
    messages = list(observation)
    return str(messages[-1]["content"]) if messages else ""


@dataclass
class Episode:
    """One rollout: the token streams TRL trains on and what the reward functions read."""

    scenario_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    turns: int = 0
    episode_return: float = 0.0
    composite: float = 0.0
    axes: dict[str, float] = field(default_factory=dict)
    outcome: str = "unfinished"
    done: bool = False
    texts: list[str] = field(default_factory=list)  # the doctor's turns, decoded

    def add(self, ids: list[int], logprobs: list[float | None] | None, mask: int) -> None:
        self.completion_ids += ids
        self.env_mask += [mask] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


class EpisodeRollout:
    """A ``rollout_func`` for ``GRPOTrainer``: plays one consultation per prompt (see the module docstring).

    ``env_factory()`` makes a Gymnasium env (``ClinicEnv`` or a wrapper of it; one per concurrent episode, reused);
    ``rows`` are the dataset rows (``prompt`` and ``scenario_id``) whose prompts the trainer will pass. Every
    completion of a prompt in one training step plays its scenario with the same environment seed (GRPO compares
    them with each other). ``max_turns`` caps the doctor's turns, ``max_completion_tokens`` the whole completion
    (an episode that reaches it stops unfinished).
    """

    def __init__(self, env_factory: Callable[[], gym.Env], rows: Sequence[Mapping[str, Any]], *,
                 max_turns: int = 20, max_new_tokens: int = 96, max_completion_tokens: int = 2048,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 generator: Callable[[Any], Generator] | None = None):
        if max_turns < 1 or max_new_tokens < 1 or max_completion_tokens < max_new_tokens:
            raise ValueError("need max_turns >= 1, max_new_tokens >= 1, max_completion_tokens >= max_new_tokens")
        self.env_factory = env_factory
        self.scenario_of: dict[str, str] = {}
        for i, row in enumerate(rows):
            if "prompt" not in row or "scenario_id" not in row:
                raise ValueError(f"row {i}: a rollout row needs 'prompt' and 'scenario_id'; got {sorted(row)}")
            self.scenario_of[prompt_key(row["prompt"])] = row["scenario_id"]
        self.max_turns, self.max_new_tokens = max_turns, max_new_tokens
        self.max_completion_tokens = max_completion_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.make_generator = generator
        self.envs: list[gym.Env] = []

    def __call__(self, prompts: list[Messages], trainer) -> dict[str, list]:
        tokenizer = trainer.processing_class
        step = int(getattr(getattr(trainer, "state", None), "global_step", 0) or 0)
        episodes = self.play(prompts, tokenizer, self.generator_for(trainer), seed=self.seed + step)
        return rollout_fields(episodes)

    def generator_for(self, trainer) -> Generator:
        if self.make_generator is not None:
            return self.make_generator(trainer)
        if getattr(trainer, "use_vllm", False):
            return VLLMGenerator(trainer, max_new_tokens=self.max_new_tokens)
        model = trainer.accelerator.unwrap_model(trainer.model)
        return HFGenerator(model, trainer.processing_class, max_new_tokens=self.max_new_tokens,
                           temperature=self.temperature, top_p=self.top_p)

    def play(self, prompts: list[Messages], tokenizer, generate: Generator, seed: int = 0) -> list[Episode]:
        """Play one episode per prompt, the live ones' turns generated in one batch per turn."""
        while len(self.envs) < len(prompts):
            self.envs.append(self.env_factory())
        stop_texts = {t: tokenizer.decode([t]) for t in stop_token_ids(tokenizer)}
        episodes = []
        for i, messages in enumerate(prompts):
            scenario = self.scenario_of.get(prompt_key(messages))
            if scenario is None:
                raise KeyError(f"prompt {i} is not one of the rollout's rows (build EpisodeRollout with the "
                               "dataset's rows)")
            self.envs[i].reset(seed=seed, options={"scenario": scenario})
            episodes.append(Episode(scenario, render_prompt_ids(tokenizer, messages)))
        for _ in range(self.max_turns):
            live = [i for i, e in enumerate(episodes) if not e.done]
            if not live:
                break
            turns = generate([episodes[i].prompt_ids + episodes[i].completion_ids for i in live])
            for i, turn in zip(live, turns):
                self._advance(episodes[i], self.envs[i], turn, tokenizer, stop_texts)
        for episode in episodes:
            episode.done = True
        return episodes

    def _advance(self, episode: Episode, env: gym.Env, turn: Generated, tokenizer, stop_texts: dict[int, str]) -> None:
        """Play a sampled turn; append the environment's reply unless the episode ends or the reply and a next
        turn would not fit the token budget (the episode then stops unfinished)."""
        episode.add(turn.ids, turn.logprobs, 1)
        text = tokenizer.decode(turn.ids, skip_special_tokens=True).strip() or "..."
        episode.texts.append(text)
        episode.turns += 1
        observation, reward, terminated, truncated, info = env.step(text)
        episode.episode_return += float(reward)
        if terminated or truncated:
            episode.done = True
            episode.outcome = info.get("outcome") or "no-diagnosis"
            episode.composite = float(info.get("composite", 0.0) or 0.0)
            episode.axes = {k: float("nan") if v is None else float(v) for k, v in (info.get("axes") or {}).items()}
            return
        closed = bool(turn.ids) and turn.ids[-1] in stop_texts
        stop_text = stop_texts.get(turn.ids[-1], "") if closed else ""
        between = turn_text(tokenizer, observation_text(observation), closed=closed, stop_text=stop_text)
        ids = tokenizer(between, add_special_tokens=False).input_ids
        if len(episode.completion_ids) + len(ids) + self.max_new_tokens > self.max_completion_tokens:
            episode.done = True
            return
        episode.add(ids, None, 0)


def rollout_fields(episodes: list[Episode]) -> dict[str, list]:
    """What ``GRPOTrainer`` takes from a rollout function: the token streams, ``env_mask`` and the fields the
    reward functions read."""
    return {"prompt_ids": [e.prompt_ids for e in episodes], "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes], "env_mask": [e.env_mask for e in episodes],
            "episode_return": [e.episode_return for e in episodes], "composite": [e.composite for e in episodes],
            "axes": [e.axes for e in episodes], "outcome": [e.outcome for e in episodes],
            "turns": [e.turns for e in episodes], "scenario_id": [e.scenario_id for e in episodes]}


# ------------------------------------------------------------------------------------------- reward functions


def episode_return(completions: list, episode_return: list[float], **_: Any) -> list[float]:
    """The environment's return: the terminal composite plus any per-turn shaping (0 without a diagnosis)."""
    return [float(r) for r in episode_return]


def composite_reward(completions: list, composite: list[float], **_: Any) -> list[float]:
    """The terminal composite of the scoring axes alone (0 without a diagnosis)."""
    return [float(c) for c in composite]


def axis_reward(axis: str) -> Callable[..., list[float | None]]:
    """A reward function for one scoring axis (``agentclinic.scoring.AXES``): its value in [0, 1], or None (left
    out of the sum) where the episode leaves it undefined or never reached scoring."""
    from agentclinic.scoring.axes import AXES

    if axis not in AXES:
        raise ValueError(f"unknown score axis {axis!r}; the axes are: {', '.join(AXES)}")

    def reward(completions: list, axes: list[dict[str, float]], **_: Any) -> list[float | None]:
        values = [a.get(axis) for a in axes]
        return [None if v is None or math.isnan(v) else float(v) for v in values]

    reward.__name__ = f"{axis}_reward"
    reward.__doc__ = f"The {axis!r} axis of each scored episode (None where undefined)."
    return reward


def reward_functions(*axes: str) -> list[Callable[..., list]]:
    """``episode_return`` and, for logging or weighting (``GRPOConfig.reward_weights``), the given axes."""
    return [episode_return, *(axis_reward(a) for a in axes)]
