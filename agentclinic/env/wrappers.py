"""Recording gym episodes as a run folder, so ``agentclinic report runs/<id>`` reads an RL evaluation.

``RecordEpisodes(env, out="runs", run_id=...)`` wraps a ``ClinicEnv`` (made directly or by
``gymnasium.make``): each episode that ends (terminated or truncated) is appended to
``runs/<run_id>/episodes.jsonl`` by the CLI's writer (``agentclinic.runs.writer.RunWriter``: the folder
is locked from the wrapper's creation to ``close()``, each record appended whole and fsynced), and
``close()`` writes ``summary.json``. An episode abandoned by a reset before it ends is not written.
``run.json`` records the env (id, observation mode, scenario files, the scenarios it samples, the split and
every scenario's assignment, weights, turn budget, embedder).

Vector envs: a recorder per sub-env would fight over the folder's lock. Record in the driver instead, from
the final infos (``info["record"]``; ``infos["final_info"]["record"]`` under same-step autoreset), with one
``RunRecorder``::

    recorder = RunRecorder.for_env(envs.envs[0], out="runs", run_id="eval")   # or a config dict
    ... recorder.add(record) for each finished episode ...
    recorder.close()
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import gymnasium as gym

from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.runner import tool_metrics
from agentclinic.runs.writer import RunWriter, check_run_id
from agentclinic.scenario.loaders import BANK_DIR, source_of
from agentclinic.scenario.splits import split_record


def env_config(env: gym.Env, doctor: str = "gym-policy") -> dict:
    """What run.json records about a ClinicEnv (wrapped or not) and the policy that plays it."""
    base = env.unwrapped
    given = base._init_kwargs["scenarios"]
    if given is None or isinstance(given, (str, Path)):
        paths = [str(given or BANK_DIR)]
    else:  # scenarios passed as objects: the files they were read from
        paths = sorted({str(src.path) for s in base.pool if (src := source_of(s)) is not None})
    spec = getattr(env, "spec", None)
    return {"source": "gym", "env_id": spec.id if spec else None, "obs_mode": base.obs_mode, "scenarios": paths,
            "format": None, "doctor": doctor, "episodes": None, "seed": None,
            "max_turns": base.clinic.budget.turns, "image_policy": base.clinic.image_policy,
            "weights": base.clinic.weights.as_dict(), "scenario_ids": [s.id for s in base.scenarios],
            "split": base.split.model_dump(mode="json") if base.split else None,
            "embedder": base.clinic.embedder} | (  # as `agentclinic run --split` records it
        {"split_assignment": split_record(base.pool, base.split).assignment} if base.split else {})


class RunRecorder:
    """The single writer of one run folder for gym episodes: ``add(record)`` for each finished episode,
    ``close()`` for the summary (and to release the lock)."""

    def __init__(self, out: str | Path, run_id: str | None, config: dict, *, resume: bool = False):
        run_id = check_run_id(run_id) if run_id else f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-gym"
        self.writer = RunWriter(Path(out) / run_id)
        self.run_id = run_id
        self.doctor = str(config.get("doctor") or "gym-policy")
        self.writer.start(config, resume=resume)
        self._open = True
        self.episodes = max((r.episode for r in self.writer.records()), default=-1) + 1  # the next number
        self.summary: dict | None = None

    @classmethod
    def for_env(cls, env: gym.Env, out: str | Path = "runs", run_id: str | None = None, *,
                doctor: str = "gym-policy", resume: bool = False) -> RunRecorder:
        return cls(out, run_id, env_config(env, doctor), resume=resume)

    @property
    def folder(self) -> Path:
        return self.writer.folder

    def add(self, record: EpisodeRecord, **updates) -> EpisodeRecord:
        """Append a finished episode's record (numbered in order, with this run's id); returns it as saved."""
        if record.outcome is None:
            raise ValueError(f"episode of {record.scenario_id!r} has not ended; only finished episodes are recorded")
        saved = record.model_copy(update={"run_id": self.run_id, "episode": self.episodes, "doctor": self.doctor}
                                  | updates)
        self.writer.append(saved)
        self.episodes += 1
        return saved

    def close(self) -> dict | None:
        """Write summary.json and release the folder; returns the summary (None if already closed)."""
        if not self._open:
            return self.summary
        try:
            self.summary = self.writer.write_summary()
        finally:
            self.writer.close()
            self._open = False
        return self.summary


class RecordEpisodes(gym.Wrapper):
    """Writes each finished episode's ``EpisodeRecord`` to ``out/run_id`` as the CLI does; ``close()`` writes
    the summary. ``doctor`` names the policy in the records; ``resume=True`` appends to an existing run of the
    same settings."""

    def __init__(self, env: gym.Env, out: str | Path = "runs", run_id: str | None = None, *,
                 doctor: str = "gym-policy", resume: bool = False):
        super().__init__(env)
        self.recorder = RunRecorder.for_env(env, out, run_id, doctor=doctor, resume=resume)
        self._started: tuple[float, str] | None = None

    @property
    def folder(self) -> Path:
        return self.recorder.folder

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self._started = (time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and info.get("record") is not None:
            record: EpisodeRecord = info["record"]
            clock, started_at = self._started or (time.perf_counter(), None)
            seconds = time.perf_counter() - clock
            env_seconds = sum(e.env_ms for e in record.events) / 1000
            scenario = self.env.unwrapped.clinic.scenario
            self.recorder.add(record, started_at=started_at, seconds=round(seconds, 4),
                              doctor_seconds=round(max(0.0, seconds - env_seconds), 4),
                              tool_metrics=tool_metrics(record.events, scenario.relevant_tools))
            self._started = None
        return observation, reward, terminated, truncated, info

    def close(self):
        try:
            self.recorder.close()
        finally:
            super().close()
