"""A run folder: ``run.json`` (config), ``episodes.jsonl`` (append-only), ``summary.json``, ``.lock``.

One process at a time: ``start`` takes an exclusive, non-blocking lock on ``.lock`` (``flock``;
the file names the holder: pid, host, start time) and holds it until ``close``. Each finished
episode is appended as one line, written in full (short writes are continued) and fsynced, so a
run killed at any moment (SIGKILL included) leaves whole lines plus at most one torn last line,
which resuming cuts off before carrying on. A record that cannot be appended (a full disk) is
saved to a fallback file that the error names. Any other damage (a bad line in the middle, an
unreadable run.json, records without run.json) is an error naming the file and line, never
repaired or adopted silently.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, NoReturn

from pydantic import ValidationError

from agentclinic.errors import AgentClinicError
from agentclinic.runs.record import EpisodeRecord
from agentclinic.scoring.summary import summarise_scores

_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
RECORDED = ("scenarios", "format", "doctor", "episodes", "seed", "max_turns", "scenario_ids")
"""Settings every run.json has held since the first version: a resume needs them to tell what its episodes are."""
HOW_RUN = frozenset({"concurrency", "executor", "ray_address", "workers", "gpus_per_worker"})
"""How a run is played, not what it plays: a resume may change them."""


class RunFolderError(AgentClinicError):
    """A run folder that cannot be used: held by another run, damaged, missing or not writable."""


def check_run_id(run_id: str) -> str:
    """``run_id`` when it is a plain folder name (so the run stays inside ``--out``), else an error."""
    if not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise RunFolderError(f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', not "
                             "starting with '.' or '-' and without '..' (it names a folder inside --out)")
    return run_id


class RunWriter:
    """The single writer of one run folder; use it as a context manager (``close`` releases the lock)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.episodes_path = self.folder / "episodes.jsonl"
        self.run_json = self.folder / "run.json"
        self._lock: IO[str] | None = None

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def check(self, *, resume: bool) -> None:
        """Refuse, before anything is written, a folder this run may not use."""
        if self.run_json.exists():
            if not resume:
                raise RunFolderError(f"{self.folder} already holds a run: pass --resume to continue it, "
                                     "or choose another --run-id")
            self.saved_config()  # readable
        elif resume:
            raise RunFolderError(f"cannot resume {self.folder}: there is no run there (no run.json); check --out "
                                 "and --run-id, or leave out --resume to start a new run")
        elif self.episodes_path.exists():
            raise RunFolderError(f"{self.episodes_path} exists but {self.run_json} does not: these records belong "
                                 "to an unknown run and are not adopted; move them away or choose another --run-id")

    def start(self, config: dict, *, resume: bool) -> set[int]:
        """Lock the folder, create the run (or check it matches ``config`` on resume); the episodes already
        done (failed ones are not: a resumed run plays them again, and the new record supersedes the old)."""
        self.check(resume=resume)
        self._acquire()
        try:
            self.check(resume=resume)  # again, under the lock
            if resume:
                saved = self.saved_config()
                if missing := [k for k in RECORDED if k in config and k not in saved]:
                    raise RunFolderError(f"cannot resume {self.folder}: {self.run_json} does not record "
                                         f"{', '.join(missing)}, which every run records (was it edited?); "
                                         "restore it, or start a new run with another --run-id")
                # settings an older version did not record (absent from run.json) are not compared
                different = {k for k in config if k not in HOW_RUN and k in saved and saved[k] != config[k]}
                if different:
                    raise RunFolderError(f"cannot resume {self.folder}: settings differ from the saved run "
                                         f"({', '.join(sorted(different))})")
            else:
                _write_atomic(self.run_json, json.dumps({"config": config, **environment()}, indent=2))
            return {r.episode for r in self.records(repair=True) if r.outcome != "error"}
        except OSError as exc:
            self.close()
            raise RunFolderError(f"cannot use {self.folder}: {exc}") from exc
        except BaseException:
            self.close()  # a run that cannot start holds nothing
            raise

    def _acquire(self) -> None:
        """Create the folder, check it is writable (a probe file) and take its lock, naming this process."""
        probe = self.folder / f".probe-{os.getpid()}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                _append_line(probe, b"agentclinic: checking that the run folder is writable\n")
            finally:
                probe.unlink(missing_ok=True)
            handle = open(self.folder / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise RunFolderError(f"cannot write to {self.folder}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "holder unknown"
            handle.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise RunFolderError(f"cannot lock {self.folder / '.lock'}: {exc.strerror or exc}") from exc
            raise RunFolderError(f"{self.folder} is in use by another run ({holder}); wait for it to end, "
                                 "or choose another --run-id") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, "
                     f"started {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
        handle.flush()
        self._lock = handle

    def close(self) -> None:
        """Release the folder's lock (the lock file stays, emptied)."""
        if self._lock is not None:
            try:
                self._lock.truncate(0)
            finally:
                self._lock.close()  # closing releases the flock
                self._lock = None

    def saved_config(self) -> dict:
        """The config in ``run.json``; an error naming the file when it is unreadable."""
        try:
            text = self.run_json.read_text(encoding="utf-8")
            config = json.loads(text)["config"] if text.strip() else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            detail = "no 'config' entry" if isinstance(exc, (KeyError, TypeError)) else str(exc)
            raise RunFolderError(f"{self.run_json}: unreadable ({detail}); restore it, or start a new run with "
                                 "another --run-id") from exc
        if not isinstance(config, dict):
            raise RunFolderError(f"{self.run_json}: {'empty' if not text.strip() else 'no config object'}; "
                                 "restore it, or start a new run with another --run-id")
        return config

    def append(self, record: EpisodeRecord) -> None:
        """Append one record, whole and fsynced; if that fails, save it to a fallback file and raise an error
        that says where it went (the record is never lost, and no torn line stays in episodes.jsonl)."""
        line = (record.model_dump_json() + "\n").encode()
        try:
            _append_line(self.episodes_path, line)
        except OSError as exc:
            self._save_unsaved(record.episode, line, exc)

    def _save_unsaved(self, episode: int, line: bytes, exc: OSError) -> NoReturn:
        reason = f"could not append episode {episode} to {self.episodes_path} ({exc.strerror or exc})"
        name = f"episodes.unsaved-{os.getpid()}.jsonl"
        places = [self.folder / name, Path(tempfile.gettempdir()) / f"agentclinic-{self.folder.name}-{name}"]
        for path in places:
            try:
                _append_line(path, line)
            except OSError:
                _remove_if_empty(path)
                continue
            raise RunFolderError(f"{reason}; its record was saved to {path}: append that file's lines to "
                                 f"{self.episodes_path} once there is room, or resume the run to play the "
                                 "episode again") from exc
        raise RunFolderError(f"{reason}, nor to {places[0]} or {places[1]}; resume the run once there is room "
                             "(the episode is played again)") from exc

    def records(self, repair: bool = False) -> list[EpisodeRecord]:
        """The complete records, the latest per episode. A last line without its newline (a kill in mid-write)
        counts when it holds a whole record; with ``repair`` its newline is added, or a torn one is cut off.
        Any other bad line is an error naming it."""
        if not self.episodes_path.exists():
            return []
        data = self.episodes_path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            try:
                EpisodeRecord.model_validate_json(data[end:])
                data, end, whole = data + b"\n", len(data) + 1, True
            except ValidationError:
                whole = False
            if repair:
                with self.episodes_path.open("r+b") as handle:
                    if whole:
                        handle.seek(0, os.SEEK_END)
                        handle.write(b"\n")
                    else:
                        handle.truncate(end)
        latest: dict[int, EpisodeRecord] = {}  # a replayed episode (after an error) supersedes its record
        for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = EpisodeRecord.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"]))
                raise RunFolderError(
                    f"{self.episodes_path}:{number}: unreadable episode record ({where + ': ' if where else ''}"
                    f"{first['msg']}); to repair, delete or fix line {number} (a deleted episode is played "
                    "again on --resume)") from None
            latest[record.episode] = record
        return list(latest.values())

    def write_summary(self) -> dict:
        summary = summarise(self.records())
        _write_atomic(self.folder / "summary.json", json.dumps(summary, indent=2))
        return summary


def summarise(records: list[EpisodeRecord]) -> dict:
    """Run-level figures. Accuracy, top-k and every mean are over all the episodes: an error or a budget
    cut-off is an episode without a diagnosis, and earns no diagnosis credit. ``accuracy_excluding_errors``
    is the accuracy over the episodes that did not fail, beside it and named so."""
    diagnostic = [r for r in records if r.kind == "diagnostic"]  # accuracy is not defined for stations
    ok = [r for r in diagnostic if r.outcome != "error"]
    mean = lambda xs: round(statistics.fmean(xs), 4) if xs else None  # noqa: E731
    by_specialty: dict[str, list[bool]] = {}
    for r in diagnostic:
        by_specialty.setdefault(r.specialty or "unknown", []).append(r.correct)
    return {
        "episodes": len(records),
        "stations": len(records) - len(diagnostic),
        "accuracy": mean([float(r.correct) for r in diagnostic]),
        "accuracy_excluding_errors": mean([float(r.correct) for r in ok]),
        "correct": sum(r.correct for r in records),
        "incorrect": sum(r.outcome == "incorrect" for r in records),
        "no_diagnosis": sum(r.outcome == "no-diagnosis" for r in records),
        "errors": sum(r.outcome == "error" for r in records),
        "mean_turns": mean([r.turns for r in records]),
        "mean_tests": mean([r.tests for r in records]),
        "mean_cost": mean([r.cost for r in records]),
        "mean_seconds": mean([r.seconds for r in records]),
        "accuracy_by_specialty": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_specialty.items())},
        "match_levels": _count(r.verdict.level if r.diagnosed else "none" for r in diagnostic),
        "fallbacks": summarise_fallbacks(records),
        "embedders": _count(r.embedder or "unknown" for r in records),
        **summarise_tools(records),
        **summarise_scores(records),  # axes means, top-k accuracy, mean composite, patient ratings
    }


def summarise_fallbacks(records: list[EpisodeRecord]) -> dict:
    """Actions a doctor's fallback chose instead of its model: in all, the episodes with any, and the
    diagnoses among them (a fallback can commit the scaffold's own guess)."""
    return {"actions": sum(r.fallbacks for r in records),
            "episodes": sum(r.fallbacks > 0 for r in records),
            "diagnoses": sum(e.fallback is not None and e.kind == "diagnose" for r in records for e in r.events)}


def summarise_tools(records: list[EpisodeRecord]) -> dict:
    """Tool use over a run: mean calls per episode, calls per tool, invalid arguments, errors, and the
    share of episodes that used the tools their case calls for (over the cases that name some)."""
    metrics = [r.tool_metrics for r in records if r.tool_metrics]
    calls: dict[str, int] = {}
    for m in metrics:
        for name, n in m.get("calls", {}).items():
            calls[name] = calls.get(name, 0) + n
    relevant = [m["relevant_used"] for m in metrics if m.get("relevant_used") is not None]
    return {"mean_tool_calls": round(statistics.fmean(r.tool_calls for r in records), 4) if records else None,
            "tool_calls": dict(sorted(calls.items())),
            "tool_invalid_arguments": sum(m.get("invalid_arguments", 0) for m in metrics),
            "tool_errors": sum(m.get("errors", 0) for m in metrics),
            "relevant_tools_used": round(statistics.fmean(relevant), 4) if relevant else None}


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items()))


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "write made no progress")
        view = view[written:]


def _append_line(path: Path, line: bytes) -> None:
    """Append ``line`` whole and fsync it; on failure, cut the file back so no partial line stays."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # a torn last line is cut off on resume
            raise
    finally:
        os.close(fd)


def _remove_if_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}") from exc


def environment() -> dict:
    """Package versions and the git commit, for run.json."""
    from importlib.metadata import PackageNotFoundError, version
    import platform
    import subprocess

    versions = {}
    for name in ("agentclinic", "pydantic", "gymnasium", "numpy", "torch", "sentence-transformers", "transformers"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "python": platform.python_version(), "git_commit": commit}
