"""The doctor's actions: a typed union, and a parser for JSON, tool calls and free text.

Free text accepts AgentClinic's control phrases case-insensitively
(``REQUEST TEST: ...``, ``REQUEST IMAGES``, ``DIAGNOSIS READY: ...``) plus
``EXAMINE[: system]`` and ``CALL TOOL: name {json}``; anything else is a question to
the patient. Malformed input raises ``ActionError`` with what was expected.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError

from agentclinic.errors import AgentClinicError
from agentclinic.scenario.schema import Strict, Text


class ActionError(AgentClinicError):
    """A doctor action that cannot be understood; the message says what was expected."""


class Ask(Strict):
    """Say something to the patient (a question, an explanation)."""

    type: Literal["ask"] = "ask"
    text: Text


class Examine(Strict):
    """Examine the patient: one body system, or everything when ``system`` is empty."""

    type: Literal["examine"] = "examine"
    system: str | None = None


class OrderTests(Strict):
    """Order one or more tests by name."""

    type: Literal["order_tests"] = "order_tests"
    tests: list[Text] = Field(min_length=1)


class RequestImage(Strict):
    """Request the case's images (one by id, or all)."""

    type: Literal["request_image"] = "request_image"
    image_id: str | None = None


class CallTool(Strict):
    """Call one of the doctor's expert tools with JSON arguments."""

    type: Literal["call_tool"] = "call_tool"
    name: Text
    arguments: dict[str, Any] = Field(default_factory=dict)


class Diagnose(Strict):
    """Commit to a diagnosis; ends the episode."""

    type: Literal["diagnose"] = "diagnose"
    primary: Text
    differential: list[Text] = Field(default_factory=list)
    confidence: float | None = Field(None, ge=0, le=1)


Action = Annotated[Union[Ask, Examine, OrderTests, RequestImage, CallTool, Diagnose], Field(discriminator="type")]
ACTION = TypeAdapter(Action)
ACTION_TYPES = (Ask, Examine, OrderTests, RequestImage, CallTool, Diagnose)

DIAGNOSIS = re.compile(r"diagnosis\s+ready\s*:\s*(.*)", re.I | re.S)
TEST = re.compile(r"request\s+tests?\s*:[ \t]*([^\n]*)", re.I)
IMAGES = re.compile(r"request\s+images?\b(?:\s*:\s*([\w.-]+))?", re.I)
EXAMINE = re.compile(r"^\s*(?:examine|physical\s+exam(?:ination)?)\b\s*:?\s*([^\n]*)", re.I)
TOOL = re.compile(r"call\s+tool\s*:\s*([\w.-]+)\s*(\{.*\})?", re.I | re.S)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip().rstrip(".") if text.strip() else ""


def parse_action(message: str | dict | Action) -> Action:
    """Turn a doctor's output (an Action, a dict / JSON object, or free text) into an Action."""
    if isinstance(message, ACTION_TYPES):
        return message
    if isinstance(message, str) and message.strip().startswith("{"):
        try:
            message = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ActionError(f"the action looks like JSON but does not parse: {exc.msg} at column {exc.colno}") from exc
    if isinstance(message, dict):
        if "name" in message and "arguments" in message and "type" not in message:
            message = tool_call_to_action(message["name"], message["arguments"])
            return message
        try:
            return ACTION.validate_python(message)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'action'}: {e['msg']}" for e in exc.errors())
            raise ActionError(f"invalid action ({problems}); expected one of: {', '.join(action_names())}") from exc
    if not isinstance(message, str):
        raise ActionError(f"expected text or a JSON action, got {type(message).__name__}")
    return _parse_text(message)


def _parse_text(text: str) -> Action:
    if not text.strip():
        raise ActionError("empty message: ask the patient something, examine, request a test or image, or diagnose")
    diagnosis, test, tool = DIAGNOSIS.search(text), TEST.search(text), TOOL.search(text)
    if diagnosis and (test or tool):
        raise ActionError("a diagnosis and a request in the same turn: do one at a time")
    if diagnosis:
        primary = _first_line(diagnosis.group(1))
        if not primary:
            raise ActionError("DIAGNOSIS READY: needs a diagnosis after the colon")
        return Diagnose(primary=primary)
    if tool:
        try:
            arguments = json.loads(tool.group(2)) if tool.group(2) else {}
        except json.JSONDecodeError as exc:
            raise ActionError(f"CALL TOOL arguments are not valid JSON: {exc.msg}") from exc
        return CallTool(name=tool.group(1), arguments=arguments)
    if test:
        names = [n.strip().rstrip(".") for n in re.split(r"[;,]", test.group(1)) if n.strip().rstrip(".")]
        if not names:
            raise ActionError("REQUEST TEST: needs a test name after the colon")
        return OrderTests(tests=names)
    if images := IMAGES.search(text):
        return RequestImage(image_id=images.group(1))
    if examine := EXAMINE.match(text):
        return Examine(system=_first_line(examine.group(1)) or None)
    return Ask(text=text.strip())


def action_names() -> list[str]:
    return [t.model_fields["type"].default for t in ACTION_TYPES]


def tool_call_to_action(name: str, arguments: str | dict) -> Action:
    """An OpenAI-style function call (name + JSON arguments) as an Action."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ActionError(f"arguments of {name!r} are not valid JSON: {exc.msg}") from exc
    if name not in action_names():
        return CallTool(name=name, arguments=arguments)
    return parse_action({"type": name, **arguments})


def action_tools(expert_tools: bool = False) -> list[dict]:
    """The actions as OpenAI-style function tools (name, description, JSON-schema parameters); with
    ``expert_tools``, each registered expert tool too, under its own name (a call becomes ``CallTool``)."""
    tools = []
    for model in ACTION_TYPES:
        schema = model.model_json_schema()
        schema["properties"].pop("type")
        schema.pop("title", None)
        for prop in schema["properties"].values():
            prop.pop("title", None)
        tools.append({"type": "function", "function": {
            "name": model.model_fields["type"].default, "description": model.__doc__.strip(),
            "parameters": schema}})
    if expert_tools:
        from agentclinic.tools import tool_functions

        tools += tool_functions()
    return tools
