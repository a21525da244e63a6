"""The one episode loop every front end uses, and many episodes at once in one event loop.

The runner plays the doctor against the clinic and reads back the clinic's record (and nothing
else of the clinic): it adds what only the runner knows (run id, episode number, doctor, timing,
tokens, the doctor's bias, tool metrics, patient ratings) and hands the record to the writer.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from agentclinic.agents.base import FALLBACK_LOG, Doctor
from agentclinic.backends.base import CALL_LOG
from agentclinic.env.clinic import Clinic
from agentclinic.runs.record import EpisodeRecord, Event
from agentclinic.runs.writer import RunWriter
from agentclinic.scenario.schema import Scenario


_TAKES_IMAGES: dict[type, bool] = {}


def accepts_images(doctor: Doctor) -> bool:
    """Whether ``doctor.act`` takes ``images`` (older doctors take the observation only)."""
    kind = type(doctor)
    if kind not in _TAKES_IMAGES:
        try:
            params = inspect.signature(doctor.act).parameters.values()
        except (TypeError, ValueError):
            params = ()
        _TAKES_IMAGES[kind] = any(p.name == "images" or p.kind is p.VAR_KEYWORD for p in params)
    return _TAKES_IMAGES[kind]


async def doctor_act(doctor: Doctor, observation: str, images: list[dict] | None):
    if accepts_images(doctor):
        return await doctor.act(observation, images=images or None)
    return await doctor.act(observation)


def reset_doctor(doctor: Doctor, brief: str, seed: int | None, scenario: Scenario,
                 biases: Sequence[str] = ()) -> dict | None:
    """Reset the doctor for an episode; biases are rendered for the case and given to doctors that take
    them (``accepts_bias``). Returns the bias record (applied, or configured but ignored)."""
    if biases:
        from agentclinic.agents.biases import not_applied, render_biases

        if getattr(doctor, "accepts_bias", False):
            applied = render_biases("doctor", biases, scenario, seed)
            doctor.reset(brief, seed, bias=applied)
            return applied.record() if applied else None
        doctor.reset(brief, seed)
        record = not_applied("doctor", biases, getattr(doctor, "name", None) or type(doctor).__name__)
        return record.record() if record else None
    doctor.reset(brief, seed)
    return None


def tool_metrics(events: Sequence[Event], relevant_tools: Sequence[str]) -> dict:
    """How the doctor used its tools: calls per tool, calls with invalid arguments, errors, and whether
    each tool the case calls for was used before the diagnosis (None when the case names none)."""
    calls: dict[str, int] = {}
    invalid = errors = 0
    used_before: set[str] = set()
    for event in events:
        tool = event.tool
        if tool:
            calls[tool.name] = calls.get(tool.name, 0) + 1
            invalid += tool.invalid_arguments
            errors += bool(tool.error) and not tool.invalid_arguments
            if not tool.error:
                used_before.add(tool.name)
        if event.kind == "diagnose":
            break
    return {"calls": dict(sorted(calls.items())), "total": sum(calls.values()), "invalid_arguments": invalid,
            "errors": errors, "relevant": list(relevant_tools),
            "relevant_used": all(t in used_before for t in relevant_tools) if relevant_tools else None}


async def play_episode(clinic: Clinic, doctor: Doctor, scenario: Scenario, *, seed: int | None,
                       run_id: str = "", episode: int = 0, doctor_name: str = "",
                       doctor_biases: Sequence[str] = (), out_dir: Path | None = None) -> EpisodeRecord:
    """Play one episode to its end and return its record; any failure is recorded in it, never raised
    (the record keeps the turns played before the failure, and is scored with no diagnosis credit).

    ``out_dir`` is where the episode's tools write files (overlays); a temporary folder when None.

    The images that come with an observation (``info["images"]``: with the brief under the
    'upfront' policy, after a request otherwise) are passed to ``doctor.act(observation, images=...)``.
    The reasons a doctor gives for fallback actions (``agentclinic.agents.base.note_fallback``) go into
    each event's ``fallback``.
    """
    started, started_at = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    doctor_seconds = 0.0
    doctor_bias = None
    rating_calls: list[dict] = []
    try:
        observation, info = clinic.reset(scenario, seed, out_dir=out_dir)
        doctor_bias = reset_doctor(doctor, observation, seed, scenario, doctor_biases)
        images = info.get("images") or None
        while True:
            t0 = time.perf_counter()
            calls: list[dict] = []
            fallbacks: list[str] = []
            tokens = CALL_LOG.set(calls), FALLBACK_LOG.set(fallbacks)
            try:
                action = await doctor_act(doctor, observation, images)
            finally:
                CALL_LOG.reset(tokens[0])
                FALLBACK_LOG.reset(tokens[1])
            spent = time.perf_counter() - t0
            doctor_seconds += spent
            result = await clinic.step(action, doctor_ms=spent * 1000, doctor_calls=calls,
                                       fallback="; ".join(fallbacks) or None)
            observation, images = result.observation, result.info.get("images") or None
            if result.terminated or result.truncated:
                break
    except Exception as exc:  # noqa: BLE001 - a failed episode is recorded and the run goes on
        await clinic.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    else:
        rating_calls = await clinic.rate()
    record = clinic.record
    calls = [c for e in record.events for c in e.model_calls] + rating_calls
    extra = dict(record.extra)
    if doctor_bias:
        extra["biases"] = {**extra.get("biases", {}), "doctor": doctor_bias}
    return record.model_copy(update=dict(
        run_id=run_id, episode=episode, doctor=doctor_name, started_at=started_at,
        seconds=round(time.perf_counter() - started, 4), doctor_seconds=round(doctor_seconds, 4),
        prompt_tokens=sum(c["usage"]["prompt_tokens"] for c in calls),
        completion_tokens=sum(c["usage"]["completion_tokens"] for c in calls),
        model_seconds=round(sum(c["latency_s"] for c in calls), 4), extra=extra,
        tool_metrics=tool_metrics(record.events, scenario.relevant_tools)))


async def run_episodes(plan: list[tuple[int, Scenario, int]], make_clinic: Callable[[], Clinic],
                       make_doctor: Callable[[], Doctor], *, writer: RunWriter, run_id: str, doctor_name: str,
                       concurrency: int = 1, on_done: Callable[[EpisodeRecord], None] | None = None,
                       doctor_biases: Sequence[str] = ()) -> None:
    """Play (episode, scenario, seed) items, ``concurrency`` at a time, appending each record as it ends.

    Each worker (one per concurrent episode) makes its own clinic and doctor, so agents are never
    shared between episodes in flight; the models behind them are (``load_model`` caches them)."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker() -> None:
        clinic, doctor = make_clinic(), make_doctor()
        while not queue.empty():
            episode, scenario, seed = queue.get_nowait()
            record = await play_episode(clinic, doctor, scenario, seed=seed, run_id=run_id, episode=episode,
                                        doctor_name=doctor_name, doctor_biases=doctor_biases,
                                        out_dir=writer.folder / "artifacts" / f"episode-{episode:05d}")
            writer.append(record)
            if on_done:
                on_done(record)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(plan))))))
