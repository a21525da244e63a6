"""The Ray executor: episodes played by Ray actors, with the driver the single writer of the run folder.

Each actor (``EpisodeWorker``) builds its agents and models once (a clinic and a doctor for each episode it
plays at once, reused) and returns finished records; the driver appends them, so records, resume, locking,
the progress bar and the summary behave as with the local executor. The driver keeps at most
``concurrency`` episodes in flight across the cluster, spread over the actors: an episode makes one model
call at a time, so that is also the cluster-wide bound on requests to any one endpoint (the backends'
per-endpoint limit still holds inside each actor).

A worker that dies (its process killed, its node lost) is replaced, and its episodes are played again
elsewhere, up to ``attempts`` times each; an episode that keeps failing is recorded as an error naming the
cause. Ray is imported here only: ``import agentclinic`` never imports it.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import ray
from ray.exceptions import RayActorError, RayError

from agentclinic.runs.record import EpisodeRecord
from agentclinic.runs.runner import play_episode
from agentclinic.runs.writer import RunWriter
from agentclinic.scenario.schema import Scenario

Item = tuple[int, Scenario, int]  # (episode, scenario, seed)


class EpisodeWorker:
    """One Ray actor: plays episodes of one run, up to its ``max_concurrency`` at once."""

    def __init__(self, config: dict):
        from agentclinic.runs.session import RunConfig, RunFactory

        self.config = RunConfig.model_validate(config)
        self.factory = RunFactory(self.config)
        self.idle: list[tuple] = [(self.factory.clinic(), self.factory.doctor())]  # pairs not playing now

    def pid(self) -> int:
        return os.getpid()

    def cpu_seconds(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def play(self, item: Item, run_id: str, out_dir: str) -> EpisodeRecord:
        episode, scenario, seed = item
        pair = self.idle.pop() if self.idle else (self.factory.clinic(), self.factory.doctor())
        try:
            return await play_episode(pair[0], pair[1], scenario, seed=seed, run_id=run_id, episode=episode,
                                      doctor_name=self.config.doctor, doctor_biases=self.config.doctor_bias,
                                      out_dir=out_dir)
        finally:
            self.idle.append(pair)


@dataclass
class RayStats:
    """What the executor did besides playing: workers started, replaced after dying, episodes replayed."""

    workers: int = 0
    per_worker: int = 0
    startup_s: float = 0.0  # from the first actor asked for to the last one ready (agents and models built)
    replaced: int = 0
    replayed: int = 0
    failed: int = 0
    worker_cpu_seconds: float = 0.0
    causes: list[str] = field(default_factory=list)


def ray_workers(concurrency: int, episodes: int, gpus_per_worker: float, workers: int | None) -> int:
    """How many actors: as asked, else as many as the cluster has CPUs (and GPUs) for, at most one per
    episode in flight."""
    if workers:
        return max(1, min(workers, concurrency, episodes))
    resources = ray.cluster_resources()
    fit = int(resources.get("CPU", 1))
    if gpus_per_worker:
        fit = min(fit, int(resources.get("GPU", 0) / gpus_per_worker))
    return max(1, min(fit, concurrency, episodes))


def run_on_ray(plan: list[Item], config: dict, *, writer: RunWriter, run_id: str, concurrency: int,
               failure: Callable[[Item, str], EpisodeRecord], on_done: Callable[[EpisodeRecord], None] | None = None,
               address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0.0,
               attempts: int = 3) -> RayStats:
    """Play ``plan`` on Ray actors, appending each record as it ends. ``failure(item, cause)`` makes the error
    record of an episode whose worker died ``attempts`` times. Connects to ``address`` (a running cluster;
    None: a local one is started, or the one this process already joined)."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    stats = RayStats()
    if not plan:
        return stats
    stats.workers = ray_workers(concurrency, len(plan), gpus_per_worker, workers)
    stats.per_worker = math.ceil(concurrency / stats.workers)
    actor = ray.remote(EpisodeWorker).options(num_cpus=1, num_gpus=gpus_per_worker or 0,
                                              max_concurrency=stats.per_worker)
    started = time.perf_counter()
    pool = [actor.remote(config) for _ in range(stats.workers)]
    ray.get([a.pid.remote() for a in pool])  # a worker that cannot start fails here, before any episode
    stats.startup_s = round(time.perf_counter() - started, 3)
    load = {id(a): 0 for a in pool}
    waiting: deque[Item] = deque(plan)
    tries: dict[int, int] = {}
    in_flight: dict = {}  # ObjectRef -> (item, actor)

    def submit() -> None:
        while waiting:
            free = [a for a in pool if load[id(a)] < stats.per_worker]
            if not free:
                return
            target = min(free, key=lambda a: load[id(a)])
            item = waiting.popleft()
            out_dir = str(writer.folder / "artifacts" / f"episode-{item[0]:05d}")
            in_flight[target.play.remote(item, run_id, out_dir)] = (item, target)
            load[id(target)] += 1

    def replace(dead) -> None:
        if dead in pool:
            pool.remove(dead)
            load.pop(id(dead), None)
            ray.kill(dead, no_restart=True)
            fresh = actor.remote(config)
            pool.append(fresh)
            load[id(fresh)] = 0
            stats.replaced += 1

    try:
        submit()
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            ref = ready[0]
            item, target = in_flight.pop(ref)
            if id(target) in load:
                load[id(target)] -= 1
            try:
                record = ray.get(ref)
            except RayActorError as exc:  # the worker died: play the episode again on another one
                replace(target)
                cause = f"Ray worker died: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                tries[item[0]] = tries.get(item[0], 0) + 1
                if tries[item[0]] < attempts:
                    stats.replayed += 1
                    waiting.appendleft(item)
                    submit()
                    continue
                stats.failed += 1
                stats.causes.append(cause)
                record = failure(item, f"{cause} ({attempts} attempts)")
            except RayError as exc:  # the task itself failed (play_episode records failures, so rarely)
                stats.failed += 1
                stats.causes.append(str(exc).splitlines()[0])
                record = failure(item, f"{type(exc).__name__}: {exc}")
            writer.append(record)
            if on_done:
                on_done(record)
            submit()
        for a in pool:
            try:
                stats.worker_cpu_seconds += ray.get(a.cpu_seconds.remote(), timeout=30)
            except RayError:  # a timeout (GetTimeoutError) too
                pass
    finally:
        for a in pool:
            ray.kill(a, no_restart=True)
    return stats


def failure_record(factory, item: Item, cause: str, run_id: str) -> EpisodeRecord:
    """The error record of an episode no worker could finish: its scenario, seed and cause, scored like any
    failed episode (no diagnosis credit)."""
    episode, scenario, seed = item
    clinic = factory.clinic()
    clinic.reset(scenario, seed)
    record = asyncio.run(clinic.fail(cause))
    return record.model_copy(update={"run_id": run_id, "episode": episode, "doctor": factory.config.doctor})
