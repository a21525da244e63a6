"""The registry of the doctor's expert tools, by name (filled by the tools that register)."""

from __future__ import annotations

from typing import Any, Protocol


class Tool(Protocol):
    name: str
    description: str

    async def __call__(self, arguments: dict[str, Any], context: Any) -> Any: ...


TOOLS: dict[str, Tool] = {}


def register_tool(tool: Tool) -> Tool:
    TOOLS[tool.name] = tool
    return tool
