"""The TRL adapter: multi-turn rollouts whose environment tokens are masked out of the loss, our scores as
reward functions, and a real GRPOTrainer step on a tiny random Llama."""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from agentclinic.env.gym import ClinicEnv  # noqa: E402
from agentclinic.scenario import load_scenarios  # noqa: E402
from agentclinic.scenario.loaders import BANK_DIR  # noqa: E402
from agentclinic.train.tiny import tiny_llama, tiny_tokenizer  # noqa: E402
from agentclinic.train.trl_grpo import (  # noqa: E402
    EpisodeRollout, Generated, HFGenerator, axis_reward, composite_reward, episode_return, render_prompt_ids,
    reward_functions, rollout_fields, stop_token_ids, turn_text)

CASES = ("cardiology/aortic-stenosis.yaml", "neurology/myasthenia-gravis.yaml", "paediatrics/intussusception.yaml")
SCENARIOS = load_scenarios([BANK_DIR / case for case in CASES]).scenarios


@pytest.fixture(autouse=True)
def light(monkeypatch):
    """Lexical matching and one torch thread (two threads on a busy 2-core machine are 60x slower)."""
    monkeypatch.setenv("AGENTCLINIC_EMBEDDINGS", "lexical")
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def rows():
    return [{"prompt": [{"role": "system", "content": "You are the doctor."},
                        {"role": "user", "content": f"Case brief: {s.doctor_brief}"}],
             "scenario_id": s.id} for s in SCENARIOS]


class Script:
    """A neighbour's stand-in for the model: episode ``e`` (its place in the first batch) says ``lines[e]`` in turn,
    each ended by the end-of-turn token, with made-up log-probabilities. A later sequence is matched to its
    episode by prefix, which also checks that every turn continues from exactly the tokens before it."""

    def __init__(self, tokenizer, lines: list[list[str]], logprob: float = -0.5):
        self.tokenizer, self.lines, self.logprob = tokenizer, lines, logprob
        self.clear()

    def clear(self) -> None:
        self.prefix: list[list[int]] = []  # per episode: its last sequence plus the turn it was given
        self.turns: list[int] = []

    def __call__(self, sequences):
        first = not self.prefix
        out = []
        for n, seq in enumerate(sequences):
            if first:
                self.prefix.append([])
                self.turns.append(0)
                episode = n
            else:
                [episode] = [e for e, p in enumerate(self.prefix) if seq[:len(p)] == p]
            lines = self.lines[episode]
            line = lines[min(self.turns[episode], len(lines) - 1)]
            ids = self.tokenizer(line, add_special_tokens=False).input_ids + [self.tokenizer.eos_token_id]
            self.prefix[episode] = list(seq) + ids
            self.turns[episode] += 1
            out.append(Generated(ids, [self.logprob] * len(ids)))
        return out


def segments(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """Runs of equal mask: (mask value, token ids)."""
    runs: list[tuple[int, list[int]]] = []
    for token, m in zip(ids, mask):
        if runs and runs[-1][0] == m:
            runs[-1][1].append(token)
        else:
            runs.append((m, [token]))
    return runs


def test_turn_text_closes_the_turn_and_opens_the_next(tokenizer):
    text = turn_text(tokenizer, "Patient: it hurts", closed=False)
    assert text == "<|im_end|>\n<|im_start|>user\nPatient: it hurts<|im_end|>\n<|im_start|>assistant\n"
    assert turn_text(tokenizer, "Patient: it hurts", closed=True, stop_text="<|im_end|>") == text[len("<|im_end|>"):]
    assert stop_token_ids(tokenizer) == [tokenizer.eos_token_id]


def test_environment_tokens_are_masked_and_the_doctor_tokens_are_kept(tokenizer):
    case = SCENARIOS[0]
    lines = [["What brings you in today?", "EXAMINE", f"DIAGNOSIS READY: {case.diagnosis.name}"]]
    rollout = EpisodeRollout(lambda: ClinicEnv(SCENARIOS), rows(), max_turns=5)
    [episode] = rollout.play([rows()[0]["prompt"]], tokenizer, Script(tokenizer, lines))

    assert episode.prompt_ids == render_prompt_ids(tokenizer, rows()[0]["prompt"])
    assert len(episode.completion_ids) == len(episode.env_mask) == len(episode.logprobs)
    runs = segments(episode.completion_ids, episode.env_mask)
    assert [m for m, _ in runs] == [1, 0, 1, 0, 1]  # doctor, environment, doctor, environment, doctor
    doctor = [tokenizer.decode(ids) for m, ids in runs if m == 1]
    assert doctor == [line + "<|im_end|>" for line in lines[0]]
    environment = [tokenizer.decode(ids) for m, ids in runs if m == 0]
    assert environment[0].startswith("\n<|im_start|>user\nPatient: ")
    assert environment[1].startswith("\n<|im_start|>user\nExamination:")
    assert all(text.endswith("<|im_end|>\n<|im_start|>assistant\n") for text in environment)
    # sampled tokens keep their log-probabilities; the environment's are 0 (never used: masked)
    assert {lp for lp, m in zip(episode.logprobs, episode.env_mask) if m == 1} == {-0.5}
    assert {lp for lp, m in zip(episode.logprobs, episode.env_mask) if m == 0} == {0.0}
    assert episode.outcome == "correct" and episode.turns == 3
    assert episode.axes["diagnosis"] == 1.0 and episode.composite > 0.5
    assert episode.composite == pytest.approx(episode.episode_return)


def test_rollout_shape_and_reward_functions(tokenizer):
    case = SCENARIOS[1]
    lines = [[f"DIAGNOSIS READY: {case.diagnosis.name}"], ["DIAGNOSIS READY: common cold"],
             ["Tell me more.", "And then?"]]
    rollout = EpisodeRollout(lambda: ClinicEnv(SCENARIOS, max_turns=2), rows(), max_turns=4)
    prompts = [rows()[1]["prompt"]] * 3
    script = Script(tokenizer, lines)
    episodes = rollout.play(prompts, tokenizer, script)
    fields = rollout_fields(episodes)
    assert {k: len(v) for k, v in fields.items()} == {k: 3 for k in fields}
    assert fields["outcome"] == ["correct", "incorrect", "no-diagnosis"]
    assert fields["turns"] == [1, 1, 2]  # the third is cut off by the environment's 2-turn budget
    returns = episode_return([None] * 3, **fields)
    assert returns[0] > returns[1] and returns[2] == 0.0
    assert composite_reward([None] * 3, **fields) == pytest.approx(returns)
    assert axis_reward("diagnosis")([None] * 3, **fields)[:2] == [1.0, 0.0]
    assert [f.__name__ for f in reward_functions("diagnosis", "cost")] == ["episode_return", "diagnosis_reward",
                                                                         "cost_reward"]
    with pytest.raises(ValueError, match="unknown score axis"):
        axis_reward("charm")


def test_token_budget_leaves_an_episode_unfinished(tokenizer):
    rollout = EpisodeRollout(lambda: ClinicEnv(SCENARIOS), rows(), max_turns=20, max_new_tokens=40,
                             max_completion_tokens=200)
    [episode] = rollout.play([rows()[2]["prompt"]], tokenizer, Script(tokenizer, [["How are you feeling?"]]))
    assert episode.outcome == "unfinished" and episode.episode_return == 0.0 and episode.axes == {}
    assert len(episode.completion_ids) <= 200 and episode.env_mask[-1] == 1  # stopped after a doctor's turn
    assert axis_reward("diagnosis")([None], axes=[episode.axes]) == [None]


def test_a_prompt_that_is_not_a_row_is_refused(tokenizer):
    rollout = EpisodeRollout(lambda: ClinicEnv(SCENARIOS), rows())
    with pytest.raises(KeyError, match="not one of the rollout's rows"):
        rollout.play([[{"role": "user", "content": "something else"}]], tokenizer, Script(tokenizer, [["x"]]))
    with pytest.raises(ValueError, match="row 0"):
        EpisodeRollout(lambda: ClinicEnv(SCENARIOS), [{"prompt": []}])


def test_hf_generator_samples_a_turn_with_its_logprobs(tokenizer):
    model = tiny_llama(tokenizer)
    generate = HFGenerator(model, tokenizer, max_new_tokens=6, temperature=1.0)
    turns = generate([render_prompt_ids(tokenizer, rows()[0]["prompt"]), [5, 6, 7]])
    assert len(turns) == 2
    for turn in turns:
        assert 1 <= len(turn.ids) <= 6 and len(turn.logprobs) == len(turn.ids)
        assert all(lp <= 0 and math.isfinite(lp) for lp in turn.logprobs)
        assert tokenizer.eos_token_id not in turn.ids[:-1]  # the turn ends at its first end-of-turn token
    assert model.training  # the generator restores the model's mode


def test_grpo_trainer_takes_the_mask_and_trains(tokenizer, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    case = SCENARIOS[0]
    good, bad = f"DIAGNOSIS READY: {case.diagnosis.name}", "DIAGNOSIS READY: common cold"
    script = Script(tokenizer, [["What brings you in?", good], ["How can I help?", bad]])

    def fresh_script(trainer):
        script.clear()
        return script

    data = rows()[:1]
    rollout = EpisodeRollout(lambda: ClinicEnv(SCENARIOS), data, max_turns=3, generator=fresh_script)
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_steps=1,
                      logging_steps=1, report_to="none", use_cpu=True, max_completion_length=512,
                      learning_rate=1e-3, save_strategy="no", bf16=False)
    trainer = GRPOTrainer(model=tiny_llama(tokenizer), processing_class=tokenizer, args=args, rollout_func=rollout,
                          reward_funcs=reward_functions("diagnosis"), train_dataset=datasets.Dataset.from_list(data))

    batch = trainer._generate_and_score_completions([dict(data[0]), dict(data[0])])
    script.clear()
    expected = rollout.play([data[0]["prompt"]] * 2, tokenizer, script)
    for row, episode in zip(batch["tool_mask"].tolist(), expected):  # TRL's loss mask is our env_mask (padded)
        assert row[:len(episode.env_mask)] == episode.env_mask
    assert batch["advantages"].tolist()[0] > 0 > batch["advantages"].tolist()[1]  # right beats wrong

    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["rewards/diagnosis_reward/mean"] == 0.5 and logged["reward_std"] > 0
    assert "loss" in logged and logged["grad_norm"] > 0
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_vllm_generator_cuts_each_turn_at_its_stop_token(tokenizer):
    """The call TRL's own tool loop makes (one completion per sequence), against a stand-in for TRL's engine."""
    from agentclinic.train.trl_grpo import VLLMGenerator

    eos = tokenizer.eos_token_id

    class Engine:
        def generate(self, prompts, images, num_generations):
            assert images is None and num_generations == 1
            ids = [[10, 11, eos, 12], [20, 21, 22, 23, 24]]
            logprobs = [[[-0.1], [-0.2], [-0.3], [-0.4]], [[-1.0], [None], [-1.0], [-1.0], [-1.0]]]
            return prompts, ids[:len(prompts)], logprobs[:len(prompts)], None

    class Trainer:
        processing_class = tokenizer
        vllm_generation = Engine()

    turns = VLLMGenerator(Trainer(), max_new_tokens=4)([[1, 2], [3]])
    assert [t.ids for t in turns] == [[10, 11, eos], [20, 21, 22, 23]]
    assert turns[0].logprobs == [-0.1, -0.2, -0.3] and turns[1].logprobs == [-1.0, None, -1.0, -1.0]
