"""The tool protocol: what every expert tool is, what it gets, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agentclinic.errors import AgentClinicError


class ToolError(AgentClinicError):
    """A tool that could not do its job (bad image, missing report, ...); the message says why."""


class ToolArgumentError(ToolError):
    """Arguments that do not match the tool's argument model."""


class ToolArguments(BaseModel):
    """Base of every tool's argument model: unknown keys are rejected, and so are NaN and infinite numbers
    (``ToolArgumentError``, like any other invalid argument)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ToolResult(BaseModel):
    """What a tool returns: text for the doctor, structured data and image files for the record."""

    text: str
    data: dict[str, Any] = Field(default_factory=dict)
    images: list[str] = Field(default_factory=list)  # paths of images the tool wrote (overlays, ...)


@dataclass
class ToolContext:
    """What a tool may use in an episode: the case's images, the reports the doctor has received,
    a folder for the files it writes, and the configured model (for model-backed checkers)."""

    scenario: Any = None  # the Scenario, when the call is part of an episode
    images: dict[str, dict] = field(default_factory=dict)  # image id -> {"path", "modality", "mask", ...}
    reports: dict[str, str] = field(default_factory=dict)  # test name -> report text the doctor received
    out_dir: Path | None = None  # where to write overlays; None: a temporary folder
    model: Any = None  # a ChatModel for model-backed tools, when configured

    def output_dir(self) -> Path:
        if self.out_dir is None:
            import tempfile

            self.out_dir = Path(tempfile.mkdtemp(prefix="agentclinic-tool-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir


class Tool(Protocol):
    """An expert tool: ``name``, ``description``, an ``Arguments`` model (its JSON schema is what a
    model sees; it bounds the input, e.g. string lengths), and ``run(arguments, context) -> ToolResult``.

    ``run`` is a plain function for a tool that computes (image processing, search): the registry runs it in a
    worker thread, so concurrent episodes keep going. A tool that awaits a model makes ``run`` a coroutine
    function; it runs on the event loop and must hand its CPU-bound work to a thread (``asyncio.to_thread``)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Arguments: ClassVar[type[ToolArguments]]

    def run(self, arguments: Any, context: ToolContext) -> ToolResult | Awaitable[ToolResult]: ...
