"""Every tool under hostile input: NaN and infinite numbers are invalid arguments (not charged), argument
sizes are bounded, and tool work runs off the event loop. (Through the clinic, the action parser already
refuses NaN; these are the registry's own checks, used by every caller: clinic, LangGraph doctor, CLI.)"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import threading
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from agentclinic.tools import TOOLS, ToolArgumentError, ToolArguments, ToolContext, ToolResult, call_tool
from agentclinic.tools.registry import prepare_call, register_tool
from agentclinic.tools.retrieval import MAX_QUERY
from conftest import call_while_ticking


@pytest.fixture
def disk(tmp_path) -> ToolContext:
    """A 64 x 64 picture of a bright disk, as the case image ``img``."""
    rows, cols = np.mgrid[:64, :64]
    pixels = np.where((rows - 32) ** 2 + (cols - 32) ** 2 < 100, 200, 20).astype(np.uint8)
    path = tmp_path / "disk.png"
    Image.fromarray(pixels).save(path)
    return ToolContext(images={"img": {"path": str(path)}}, out_dir=tmp_path / "out")


@pytest.mark.parametrize("arguments", [
    {"point": [math.nan, 3]}, {"point": [math.inf, 3]}, {"point": [3, -math.inf]},
    {"box": [0, 0, math.inf, 10]}, {"box": [math.nan, 0, 10, 10]}, {"point": [30, 30], "tolerance": math.nan},
    {"point": ["nan", 3]}, {"point": ["Infinity", 3]}])
def test_nan_and_infinity_are_invalid_arguments(disk, arguments):
    with pytest.raises(ToolArgumentError, match="invalid arguments for segment: .*finite number"):
        asyncio.run(call_tool("segment", {"image_id": "img", **arguments}, disk))
    result, _ = asyncio.run(call_tool("segment", {"image_id": "img", "point": [32, 32]}, disk))
    assert result.data["area_px"] > 200  # the same image with a finite point is segmented


def test_nan_is_rejected_before_the_call_is_charged():
    """``prepare_call`` is where the clinic tells an invalid call (not charged) from a charged one."""
    for tool in ("segment", "retrieve", "check_report"):
        number = {"segment": {"image_id": "x", "tolerance": math.inf}, "retrieve": {"query": "fever", "k": math.nan},
                  "check_report": {"report": "x", "image_id": math.nan}}[tool]
        with pytest.raises(ToolArgumentError, match=f"invalid arguments for {tool}"):
            prepare_call(tool, number)


def test_argument_sizes_are_bounded():
    with pytest.raises(ToolArgumentError, match=f"query: String should have at most {MAX_QUERY} characters"):
        prepare_call("retrieve", {"query": "fever " * MAX_QUERY})
    with pytest.raises(ToolArgumentError, match="image_id: String should have at most 200 characters"):
        prepare_call("segment", {"image_id": "x" * 201})
    with pytest.raises(ToolArgumentError, match="test: String should have at most 200 characters"):
        prepare_call("check_report", {"test": "x" * 201})


def test_computing_tools_run_in_a_worker_thread():
    """A tool with a plain ``run`` runs in a worker thread: the event loop ticks while it works. Its run waits
    for 20 ticks of the loop, which it would never see if it ran on the loop."""
    ticked = threading.Event()

    class Busy:
        name: ClassVar[str] = "busy_test_tool"
        description: ClassVar[str] = "waits for the event loop to tick"
        Arguments: ClassVar[type[ToolArguments]] = ToolArguments

        def run(self, arguments, context):
            return ToolResult(text=f"ticked: {ticked.wait(timeout=10)}",
                              data={"thread": threading.get_ident()})

    register_tool(Busy())
    try:
        result, ticks = call_while_ticking("busy_test_tool", {}, ticked)
    finally:
        TOOLS.pop("busy_test_tool")
    assert result.text == "ticked: True" and ticks >= 20 and result.data["thread"] != threading.get_ident()


def test_every_built_in_tool_keeps_the_event_loop_free():
    """The computing tools have a plain ``run`` (the registry threads it); check_report awaits a model and
    hands its rule checking to a thread (tests/test_report_check.py shows the loop ticking meanwhile)."""
    assert {"segment", "retrieve", "check_report"} <= set(TOOLS)
    coroutines = {name for name, tool in TOOLS.items() if inspect.iscoroutinefunction(tool.run)}
    assert coroutines == {"check_report"}
    source = inspect.getsource(type(TOOLS["check_report"]).run)
    assert "asyncio.to_thread(check_rules" in source


def test_function_schemas_carry_no_length_bounds_but_the_limits_hold():
    """llama.cpp turns a tool's JSON schema into a grammar, and a ``maxLength`` of thousands of characters
    crashed its server (segfault on tool_choice=retrieve); the schemas leave the bound out, the models keep it."""
    from agentclinic.tools.registry import tool_functions

    assert "maxLength" not in json.dumps(tool_functions())
    with pytest.raises(ToolArgumentError, match=f"at most {MAX_QUERY} characters"):
        prepare_call("retrieve", {"query": "x" * (MAX_QUERY + 1)})
