"""The registry of the doctor's expert tools, by name, and the one way to call them."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

from pydantic import ValidationError

from agentclinic.tools.base import Tool, ToolArgumentError, ToolContext, ToolError, ToolResult

TOOLS: dict[str, Tool] = {}


def register_tool(tool: Tool) -> Tool:
    """Add a tool (an instance) to the registry under its name; returns it."""
    TOOLS[tool.name] = tool
    return tool


def get_tool(name: str) -> Tool:
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolError(f"unknown tool {name!r}; available: {', '.join(sorted(TOOLS)) or 'none'}")
    return tool


def without_length_bounds(schema):
    """A JSON schema without ``maxLength``: the arguments model still enforces it, but servers that turn a
    schema into a grammar (llama.cpp) expand a bound of thousands of characters into a grammar they cannot
    parse (llama-cpp-python 0.3.36 crashes on ``maxLength: 2000``). The descriptions state the limits."""
    if isinstance(schema, dict):
        return {k: without_length_bounds(v) for k, v in schema.items() if k != "maxLength"}
    if isinstance(schema, list):
        return [without_length_bounds(v) for v in schema]
    return schema


def tool_functions() -> list[dict]:
    """The registered tools as OpenAI-style function tools (name, description, JSON-schema parameters)."""
    functions = []
    for name in sorted(TOOLS):
        tool = TOOLS[name]
        schema = without_length_bounds(tool.Arguments.model_json_schema())
        schema.pop("title", None)
        functions.append({"type": "function", "function": {
            "name": name, "description": tool.description, "parameters": schema}})
    return functions


def parse_arguments(tool: Tool, arguments: dict[str, Any]) -> Any:
    try:
        return tool.Arguments.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        raise ToolArgumentError(f"invalid arguments for {tool.name}: {problems}") from exc


def prepare_call(name: str, arguments: dict[str, Any]) -> tuple[Tool, Any]:
    """The tool and its validated arguments; ``ToolError`` for an unknown tool, ``ToolArgumentError``
    for arguments that do not match its model."""
    tool = get_tool(name)
    return tool, parse_arguments(tool, arguments)


async def run_tool(tool: Tool, arguments: Any, context: ToolContext | None = None) -> tuple[ToolResult, float]:
    """Run a tool on validated arguments; returns the result and the seconds it took. A plain ``run`` runs in
    a worker thread (never on the event loop), a coroutine ``run`` is awaited (see ``Tool``). Exceptions other
    than ``ToolError`` are wrapped in one with their type."""
    started = time.perf_counter()
    context = context or ToolContext()
    try:
        if inspect.iscoroutinefunction(tool.run):
            result = await tool.run(arguments, context)
        else:
            result = await asyncio.to_thread(tool.run, arguments, context)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken tool is an error observation, not a crash
        raise ToolError(f"{tool.name} failed: {type(exc).__name__}: {exc}") from exc
    return result, time.perf_counter() - started


async def call_tool(name: str, arguments: dict[str, Any], context: ToolContext | None = None) -> tuple[ToolResult, float]:
    """Validate the arguments and run the tool (``prepare_call`` then ``run_tool``)."""
    return await run_tool(*prepare_call(name, arguments), context)
