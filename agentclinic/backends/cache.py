"""Replay cache: the same request (model, settings, messages, tools) replays the same reply.

Content-addressed in SQLite: the key is the SHA-256 of the request's canonical JSON.
Wrap any ChatModel with ``CachedModel(model, ReplayCache(path))``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from agentclinic.backends.base import ChatModel, ChatResult, Message, Settings


class ReplayCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, reply TEXT)")
        self._db.commit()

    @staticmethod
    def key(model: str, messages: list[Message], settings: Settings, tools: list[dict] | None,
            json_schema: dict | None) -> str:
        request = {"model": model, "settings": settings.model_dump(exclude={"timeout_s"}),
                   "messages": [m.model_dump() for m in messages], "tools": tools, "json_schema": json_schema}
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> ChatResult | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return ChatResult.model_validate_json(row[0]).model_copy(update={"cached": True}) if row else None

    def put(self, key: str, model: str, result: ChatResult) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, model, result.model_dump_json()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CachedModel:
    """A ChatModel that answers from the cache when it can, and fills it when it cannot."""

    def __init__(self, model: ChatModel, cache: ReplayCache):
        self.model, self.cache = model, cache
        self.name, self.supports_images = model.name, model.supports_images

    async def chat(self, messages: list[Message], settings: Settings, *, tools: list[dict] | None = None,
                   json_schema: dict | None = None) -> ChatResult:
        key = ReplayCache.key(self.name, messages, settings, tools, json_schema)
        if (hit := await asyncio.to_thread(self.cache.get, key)) is not None:
            return hit
        result = await self.model.chat(messages, settings, tools=tools, json_schema=json_schema)
        await asyncio.to_thread(self.cache.put, key, self.name, result)
        return result
