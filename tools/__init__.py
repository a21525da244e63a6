"""The doctor's expert tools, installed as ``agentclinic.tools``: the protocol, the registry, and the
built-in tools (each registers itself on import; heavy libraries load on first call)."""

from agentclinic.tools.base import Tool, ToolArgumentError, ToolArguments, ToolContext, ToolError, ToolResult
from agentclinic.tools.registry import TOOLS, call_tool, get_tool, register_tool, tool_functions

__all__ = ["TOOLS", "Tool", "ToolArgumentError", "ToolArguments", "ToolContext", "ToolError", "ToolResult",
           "call_tool", "get_tool", "register_tool", "tool_functions"]

from agentclinic.tools import report_check, retrieval, segmentation  # noqa: E402,F401  (they register on import)
