"""One exception hierarchy for the whole project."""

from __future__ import annotations

from pathlib import Path


class AgentClinicError(Exception):
    """Base class of every error agentclinic raises on purpose."""


class ScenarioError(AgentClinicError):
    """A scenario file or record that cannot be read, named by file, line and field."""

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, field: str | None = None, code: str = "schema"):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.code = code
        super().__init__(self.location() + message)

    def location(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: " if where else ""


class ConfigError(AgentClinicError):
    """A configuration value that is missing or wrong."""
