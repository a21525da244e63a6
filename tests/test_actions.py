import json

import pytest

from agentclinic.backends.base import ToolCall
from agentclinic.env.actions import (
    MAX_ACTION_CHARS, MAX_JSON_DEPTH, ActionError, Ask, CallTool, Diagnose, Examine, OrderTests, RequestImage,
    action_tools, parse_action, raw_output, tool_call_to_action)


@pytest.mark.parametrize("text, expected", [
    ("REQUEST TEST: Chest_X-Ray", OrderTests(tests=["Chest_X-Ray"])),
    ("request test: CBC, troponin; ECG.", OrderTests(tests=["CBC", "troponin", "ECG"])),
    ("I'd like to order something. Request Tests: lipase", OrderTests(tests=["lipase"])),
    ("REQUEST IMAGES", RequestImage()),
    ("request image: img2", RequestImage(image_id="img2")),
    ("DIAGNOSIS READY: Myasthenia gravis", Diagnose(primary="Myasthenia gravis")),
    ("Thank you. diagnosis ready:  Acute gout.\nI will explain the plan.", Diagnose(primary="Acute gout")),
    ("Examine: cardiovascular", Examine(system="cardiovascular")),
    ("physical examination", Examine()),
    ("CALL TOOL: retrieve {\"query\": \"chest pain\"}", CallTool(name="retrieve", arguments={"query": "chest pain"})),
    ("  When did the pain start?  ", Ask(text="When did the pain start?")),
])
def test_free_text_with_agentclinic_phrases(text, expected):
    assert parse_action(text) == expected


def test_json_objects_and_tool_calls():
    assert parse_action('{"type": "diagnose", "primary": "Gout", "differential": ["Pseudogout"], "confidence": 0.7}') \
        == Diagnose(primary="Gout", differential=["Pseudogout"], confidence=0.7)
    assert parse_action({"type": "order_tests", "tests": ["CBC"]}) == OrderTests(tests=["CBC"])
    assert parse_action({"name": "ask", "arguments": '{"text": "Any fever?"}'}) == Ask(text="Any fever?")
    assert tool_call_to_action("segment", {"image_id": "img1"}) == CallTool(name="segment", arguments={"image_id": "img1"})
    action = Examine(system="skin")
    assert parse_action(action) is action


@pytest.mark.parametrize("bad, message", [
    ("", "empty message"),
    ("   ", "empty message"),
    ("DIAGNOSIS READY:", "needs a diagnosis"),
    ("REQUEST TEST:  ", "needs a test name"),
    ("REQUEST TEST: CBC\nDIAGNOSIS READY: anaemia", "same turn"),
    ('{"type": "diagnose"', "not valid JSON"),
    ({"type": "diagnose", "confidence": 2}, "primary"),
    ({"type": "teleport"}, "expected one of"),
    ({"type": "ask", "text": "hi", "volume": 11}, "volume"),
    ("CALL TOOL: retrieve {not json}", "not valid JSON"),
    (42, "expected text"),
])
def test_malformed_actions_are_explicit_errors(bad, message):
    with pytest.raises(ActionError, match=message):
        parse_action(bad)


def test_openai_tool_calls_are_accepted():
    call = {"id": "call_7", "type": "function", "function": {"name": "ask", "arguments": '{"text": "Any fever?"}'}}
    assert parse_action(call) == Ask(text="Any fever?")
    assert parse_action(json.dumps(call)) == Ask(text="Any fever?")
    assert parse_action({"type": "function", "function": {"name": "segment", "arguments": {"image_id": "img1"}}}) \
        == CallTool(name="segment", arguments={"image_id": "img1"})
    assert parse_action(ToolCall(id="c1", name="diagnose", arguments='{"primary": "Gout"}')) == Diagnose(primary="Gout")
    assert parse_action({"id": "c2", "name": "order_tests", "arguments": {"tests": ["CBC"]}}) == OrderTests(tests=["CBC"])
    for none in (None, "", "null"):  # a function without arguments
        assert parse_action({"name": "request_image", "arguments": none}) == RequestImage()
    assert parse_action({"type": "function", "function": {"name": "examine"}}) == Examine()


class Opaque:
    def __repr__(self):
        raise RuntimeError("no repr")


def nested_dict(depth):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


CYCLE: dict = {}
CYCLE["self"] = CYCLE


@pytest.mark.parametrize("bad, message", [
    (None, r"expected text .*tool call.*got null"),
    (1.5, "got a number"),
    (float("nan"), "got a number"),
    ([1, 2], "got a list"),
    (b"DIAGNOSIS READY: gout", "got bytes"),
    (Opaque(), "got Opaque"),
    ({}, "got an empty object"),
    ({"text": "hi"}, "got an object with keys 'text'"),
    ({"name": "ask", "arguments": "null"}, "ask.text: Field required"),
    ({"name": "ask", "arguments": [1, 2]}, "arguments of 'ask' must be a JSON object; got a list"),
    ({"name": 5, "arguments": "{}"}, "a tool call needs a name"),
    ({"name": None, "arguments": {}}, "a tool call needs a name"),
    ({"name": "ask", "arguments": {"type": "diagnose", "primary": "x"}}, "unexpected key 'type'"),
    ({"name": "ask", "arguments": {}, "text": "hi"}, "unexpected keys 'text'"),
    ({"type": "function", "function": "ask"}, '"function": {"name"'),
    ({"type": "function", "function": {"name": "ask", "parameters": {}}}, "unexpected keys 'parameters'"),
    ('{"type": "ask", "text": "\\ud800"}', "lone surrogate"),
    ("hello \ud800", "lone surrogate"),
    ('{"type": "diagnose", "primary": "gout", "confidence": NaN}', "NaN is not a JSON number"),
    ('{"type": "diagnose", "primary": "gout", "confidence": 1e999}', "inf is not a JSON number"),
    ({"type": "diagnose", "primary": "gout", "confidence": float("inf")}, "inf is not a JSON number"),
    ({1: 2}, "keys must be text"),
    ({"type": "ask", "text": b"hi"}, "bytes is not a JSON value"),
])
def test_any_other_output_is_an_error_naming_what_was_expected(bad, message):
    with pytest.raises(ActionError, match=message):
        parse_action(bad)


@pytest.mark.parametrize("deep", [
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    '{"a": ' + "[" * 1000 + "]" * 1000 + "}",  # within the length limit: the depth is checked before json.loads
    "CALL TOOL: retrieve " + '{"a":' * 300 + "1" + "}" * 300,
    {"name": "retrieve", "arguments": '{"a":' * 300 + "1" + "}" * 300},
    nested_dict(10_000),
    CYCLE,
], ids=lambda deep: type(deep).__name__)
def test_deep_or_cyclic_json_is_bounded(deep):
    with pytest.raises(ActionError, match=f"nested deeper than {MAX_JSON_DEPTH} levels|over the limit of 2048"):
        parse_action(deep)


def test_the_length_limit_names_the_limit():
    assert parse_action("x" * MAX_ACTION_CHARS) == Ask(text="x" * MAX_ACTION_CHARS)
    for long in ("x" * (MAX_ACTION_CHARS + 1), Ask(text="y" * 3000), {"type": "ask", "text": "y" * 3000},
                 {"type": "order_tests", "tests": ["CBC"] * 1000}):
        with pytest.raises(ActionError, match="over the limit of 2048"):
            parse_action(long)


@pytest.mark.parametrize("output", [
    42, None, 1.5, float("nan"), [1, 2], b"\xff", Opaque(), CYCLE, nested_dict(5000), {"a": float("nan")},
    "x" * 100_000, "hi \ud800", {"type": "ask", "text": "\ud800"}, Ask(text="hi"), 10**5000,
    ToolCall(id="c", name="ask", arguments="{}"),
], ids=lambda output: type(output).__name__)
def test_raw_output_is_json_safe_and_bounded(output):
    raw = raw_output(output)
    assert raw is None or isinstance(raw, (str, dict))
    assert len(json.dumps(raw, allow_nan=False).encode("utf-8")) < 3 * MAX_ACTION_CHARS
    assert raw_output("REQUEST TEST: CBC") == "REQUEST TEST: CBC"
    assert raw_output({"type": "ask", "text": "hi"}) == {"type": "ask", "text": "hi"}
    assert raw_output(Ask(text="hi")) == {"type": "ask", "text": "hi"}


def test_action_tools_are_function_schemas():
    tools = {t["function"]["name"]: t["function"] for t in action_tools()}
    assert set(tools) == {"ask", "examine", "order_tests", "request_image", "call_tool", "diagnose"}
    assert tools["diagnose"]["parameters"]["required"] == ["primary"]
    assert "type" not in tools["ask"]["parameters"]["properties"]
    json.dumps(tools)
