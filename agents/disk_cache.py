"""The on-disk cache that lets a new process skip the warm-up: indexes and embeddings built once.

Files live in ``$AGENTCLINIC_CACHE`` (default ``~/.cache/agentclinic``); each file's name carries a
hash of everything its content depends on (package versions, the code that builds it, the embedder,
the texts), so a stale entry is never read: a changed input is a different file. Files are written
to a unique temporary name and renamed into place (atomic on POSIX and Windows), so a reader never
sees half a file and concurrent writers of one entry each leave a complete, identical copy. A file
that cannot be read (damaged, truncated, wrong shape) is rebuilt and rewritten; a cache folder that
cannot be written only costs the rebuild next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

CACHE_ENV = "AGENTCLINIC_CACHE"
T = TypeVar("T")


def cache_dir() -> Path:
    """``$AGENTCLINIC_CACHE``, else ``~/.cache/agentclinic``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "agentclinic")


def digest(*parts: str | bytes) -> str:
    """A short hash of ``parts`` (in order; parts are separated, so ('ab', 'c') != ('a', 'bc'))."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:24]


def write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a unique temporary file and a rename; False when it cannot."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False


def cached_json(path: Path, build: Callable[[], T], to_json: Callable[[T], Any],
                from_json: Callable[[Any], T]) -> T:
    """``from_json`` of the JSON in ``path``; else ``build()``, saved with ``to_json`` (a damaged file is rebuilt)."""
    try:
        return from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent, damaged or from another layout: rebuilt below
    value = build()
    write_atomic(path, json.dumps(to_json(value), separators=(",", ":")).encode())
    return value


def cached_array(path: Path, build: Callable[[], np.ndarray], rows: int | None = None) -> np.ndarray:
    """The float32 matrix saved in ``path`` (``.npy``, no pickles) when it has ``rows`` rows (None: any);
    else ``build()``, saved."""
    try:
        array = np.load(path, allow_pickle=False)
        if array.dtype == np.float32 and array.ndim == 2 and (rows is None or array.shape[0] == rows):
            return array
    except (OSError, ValueError, EOFError):
        pass  # absent or damaged: rebuilt below
    array = np.ascontiguousarray(build(), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_atomic(path, buffer.getvalue())
    return array
