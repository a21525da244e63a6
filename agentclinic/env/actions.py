"""The doctor's actions: a typed union, and a parser for JSON, tool calls and free text.

Free text accepts AgentClinic's control phrases case-insensitively
(``REQUEST TEST: ...``, ``REQUEST IMAGES``, ``DIAGNOSIS READY: ...``) plus
``EXAMINE[: system]``, ``CALL TOOL: name {json}`` and ``END CONVERSATION`` (alone); anything else is a question to
the patient. Any other input (a number, None, bytes, a list, an object, a malformed or
over-long action) raises ``ActionError`` with what was expected, and nothing else:
output is bounded (``MAX_ACTION_CHARS``, ``MAX_JSON_DEPTH``) before it is parsed.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError

from agentclinic.backends.base import ToolCall
from agentclinic.errors import AgentClinicError
from agentclinic.scenario.reading import too_deep
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


class End(Strict):
    """End the conversation (a station) or give up on the case (a diagnostic case: no diagnosis)."""

    type: Literal["end"] = "end"


Action = Annotated[Union[Ask, Examine, OrderTests, RequestImage, CallTool, Diagnose, End], Field(discriminator="type")]
ACTION = TypeAdapter(Action)
ACTION_TYPES = (Ask, Examine, OrderTests, RequestImage, CallTool, Diagnose, End)
TOOL_ACTION_TYPES = ACTION_TYPES[:-1]  # what a doctor model is offered as functions (ending is typed, not called)

MAX_ACTION_CHARS = 2048  # the Gymnasium action space's max_length: longer output is an error, not an action
MAX_JSON_DEPTH = 32  # nesting of a JSON action or tool arguments, checked before parsing
EXPECTED = ('text (a question, or a phrase such as REQUEST TEST: name), a JSON action {"type": ...}, a tool call '
            '{"name": ..., "arguments": {...}} or {"type": "function", "function": {...}}, or an Action')

DIAGNOSIS = re.compile(r"diagnosis\s+ready\s*:\s*(.*)", re.I | re.S)
TEST = re.compile(r"request\s+tests?\s*:[ \t]*([^\n]*)", re.I)
IMAGES = re.compile(r"request\s+images?\b(?:\s*:\s*([\w.-]+))?", re.I)
EXAMINE = re.compile(r"^\s*(?:examine|physical\s+exam(?:ination)?)\b\s*:?\s*([^\n]*)", re.I)
TOOL = re.compile(r"call\s+tool\s*:\s*([\w.-]+)\s*(\{.*\})?", re.I | re.S)
END = re.compile(r"^\s*end(\s+(the\s+)?(conversation|consultation|session))?\s*[.!]*\s*$", re.I)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip().rstrip(".") if text.strip() else ""


def parse_action(message: object) -> Action:
    """Turn a doctor's output into an Action: an Action, free text, a JSON action (text or dict), or a tool
    call (flat ``{"name", "arguments"}``, OpenAI's ``{"type": "function", "function": {...}}``, a ``ToolCall``).

    Anything else, or output over ``MAX_ACTION_CHARS`` / ``MAX_JSON_DEPTH``, raises ``ActionError`` saying
    what was expected; no other exception escapes, whatever the input."""
    if isinstance(message, ACTION_TYPES):
        _check_json(dict(message), "the action")
        return message
    if isinstance(message, ToolCall):
        message = message.model_dump()
    if isinstance(message, str):
        _check_text(message, "the action")
        if not message.lstrip().startswith("{"):
            try:
                return _parse_text(message)
            except ValidationError as exc:
                raise _invalid(exc) from None
        message = _loads(message, "the action")
    if not isinstance(message, dict):
        raise ActionError(f"expected {EXPECTED}; got {_kind(message)}")
    _check_json(message, "the action")
    if message.get("type") == "function":
        _only(message, {"id", "index", "type", "function"}, "a tool call")
        function = message.get("function")
        if not isinstance(function, dict):
            raise ActionError(f'a tool call needs "function": {{"name": ..., "arguments": ...}}; got {_kind(function)}')
        _only(function, {"name", "arguments"}, "a tool call's function")
        return tool_call_to_action(function.get("name"), function.get("arguments"))
    if "type" not in message and "name" in message:
        _only(message, {"id", "name", "arguments"}, "a tool call")
        return tool_call_to_action(message["name"], message.get("arguments"))
    if "type" not in message:
        keys = f"an object with keys {', '.join(map(repr, message))}" if message else "an empty object"
        raise ActionError(f"expected {EXPECTED}; got {keys}")
    return _validate(message)


def _parse_text(text: str) -> Action:
    if not text.strip():
        raise ActionError("empty message: ask the patient something, examine, request a test or image, or diagnose")
    if END.match(text):
        return End()
    diagnosis, test, tool = DIAGNOSIS.search(text), TEST.search(text), TOOL.search(text)
    if diagnosis and (test or tool):
        raise ActionError("a diagnosis and a request in the same turn: do one at a time")
    if diagnosis:
        primary = _first_line(diagnosis.group(1))
        if not primary:
            raise ActionError("DIAGNOSIS READY: needs a diagnosis after the colon")
        return Diagnose(primary=primary)
    if tool:
        arguments = _loads(tool.group(2), "CALL TOOL arguments") if tool.group(2) else {}
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
    """The actions a doctor model may call as functions (``end`` is typed: END CONVERSATION)."""
    return [t.model_fields["type"].default for t in TOOL_ACTION_TYPES]


def tool_call_to_action(name: object, arguments: object = None) -> Action:
    """A function call (name + JSON arguments: text, a dict, or None / "" / "null" for none) as an Action:
    an action's name gives that action, any other name a ``CallTool`` (an expert tool)."""
    if not isinstance(name, str) or not name.strip():
        raise ActionError(f"a tool call needs a name (one of: {', '.join(action_names())}, or an expert tool's); "
                          f"got {_kind(name)}")
    _check_text(name, "a tool call's name")
    if isinstance(arguments, str):
        arguments = _loads(arguments, f"arguments of {name!r}") if arguments.strip() else None
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        raise ActionError(f"arguments of {name!r} must be a JSON object; got {_kind(arguments)}")
    _check_json(arguments, f"arguments of {name!r}")
    if name not in action_names():
        return _validate({"type": "call_tool", "name": name, "arguments": arguments})
    if "type" in arguments:
        raise ActionError(f"arguments of {name!r}: unexpected key 'type' (the function's name is the action)")
    return _validate({"type": name, **arguments})


def raw_output(message: object) -> str | dict | None:
    """A doctor's output as an event records it, JSON-safe and bounded: text and JSON objects within the
    limits as they are, an Action or ``ToolCall`` as its JSON, anything else as a shortened ``repr``."""
    if message is None:
        return None
    if isinstance(message, str):
        text = message.encode("utf-8", "backslashreplace").decode("utf-8")
        cut = f" ... [{len(text)} characters]"
        return text if len(text) <= MAX_ACTION_CHARS else text[: MAX_ACTION_CHARS - len(cut)] + cut
    if isinstance(message, (*ACTION_TYPES, ToolCall)):
        message = dict(message)
    if isinstance(message, dict):
        try:
            _check_json(message, "the output")
            return json.loads(json.dumps(message))
        except ActionError:
            pass
    return _repr(message)


def action_tools(expert_tools: bool = False) -> list[dict]:
    """The actions as OpenAI-style function tools (name, description, JSON-schema parameters); with
    ``expert_tools``, each registered expert tool too, under its own name (a call becomes ``CallTool``)."""
    tools = []
    for model in TOOL_ACTION_TYPES:
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


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_ACTION_CHARS:
        raise ActionError(f"{what}: {len(text)} characters, over the limit of {MAX_ACTION_CHARS} per action")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ActionError(f"{what}: not valid Unicode (a lone surrogate at character {exc.start})") from None


def _loads(text: str, what: str) -> Any:
    """JSON text as a value, its size, nesting depth and numbers checked (before parsing, for the depth)."""
    _check_text(text, what)
    if too_deep(text, MAX_JSON_DEPTH):
        raise ActionError(f"{what}: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ActionError(f"{what}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    except ValueError as exc:
        raise ActionError(f"{what}: not valid JSON: {exc}") from None
    _check_json(value, what)
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _check_json(value: object, what: str) -> None:
    """Check that ``value`` is a JSON value (text keys, finite numbers, valid Unicode) within the depth and
    size limits, without recursion; a cycle shows as too deep."""
    stack, size = [(value, 0)], 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ActionError(f"{what}: nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise ActionError(f"{what}: object keys must be text; got {_kind(key)}")
                stack += [(key, depth + 1), (item, depth + 1)]
        elif isinstance(node, (list, tuple)):
            stack += [(item, depth + 1) for item in node]
        elif isinstance(node, str):
            _check_text(node, f"a text in {what}")
            size += len(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ActionError(f"{what}: {node} is not a JSON number")
        elif isinstance(node, int) and not isinstance(node, bool):
            size += node.bit_length() // 4
        elif node is not None and not isinstance(node, (bool, float)):
            raise ActionError(f"{what}: a {type(node).__name__} is not a JSON value")
        size += 1
        if size > MAX_ACTION_CHARS:
            raise ActionError(f"{what}: over the limit of {MAX_ACTION_CHARS} characters per action (as JSON)")


def _only(mapping: dict, allowed: set[str], what: str) -> None:
    if extra := sorted(set(mapping) - allowed):
        raise ActionError(f"{what} has unexpected keys {', '.join(map(repr, extra))}; "
                          f"expected: {', '.join(sorted(allowed))}")


def _validate(data: dict) -> Action:
    try:
        return ACTION.validate_python(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> ActionError:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'action'}: {e['msg']}" for e in exc.errors())
    return ActionError(f"invalid action ({problems}); expected one of: {', '.join(action_names())}")


def _kind(value: object) -> str:
    """What a value is, for an error message: its JSON type, or its Python type and a short repr."""
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a text",
             list: "a list", dict: "an object"}
    return names.get(type(value)) or f"{type(value).__name__} {_repr(value)}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 80, 80


def _repr(value: object) -> str:
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a doctor's object whose repr fails is still described
        text = f"<{type(value).__name__}>"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:200]
