import json

import pytest

from agentclinic.env.actions import (
    ActionError, Ask, CallTool, Diagnose, Examine, OrderTests, RequestImage, action_tools, parse_action,
    tool_call_to_action)


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
    ('{"type": "diagnose"', "does not parse"),
    ({"type": "diagnose", "confidence": 2}, "primary"),
    ({"type": "teleport"}, "expected one of"),
    ({"type": "ask", "text": "hi", "volume": 11}, "volume"),
    ("CALL TOOL: retrieve {not json}", "not valid JSON"),
    (42, "expected text"),
])
def test_malformed_actions_are_explicit_errors(bad, message):
    with pytest.raises(ActionError, match=message):
        parse_action(bad)


def test_action_tools_are_function_schemas():
    tools = {t["function"]["name"]: t["function"] for t in action_tools()}
    assert set(tools) == {"ask", "examine", "order_tests", "request_image", "call_tool", "diagnose"}
    assert tools["diagnose"]["parameters"]["required"] == ["primary"]
    assert "type" not in tools["ask"]["parameters"]["properties"]
    json.dumps(tools)
