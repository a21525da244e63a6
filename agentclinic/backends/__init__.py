"""Model backends behind one ChatModel protocol: openai-compatible servers, in-process hf, replay cache."""

from agentclinic.backends.base import (
    CALL_LOG, ChatModel, ChatResult, ImagePart, Message, ModelError, ModelSpec, Settings, TextPart, ToolCall, Usage,
    call_model, load_model, register_backend)
from agentclinic.backends.cache import CachedModel, ReplayCache

__all__ = ["CALL_LOG", "call_model", "CachedModel", "ChatModel", "ChatResult", "ImagePart", "Message", "ModelError", "ModelSpec",
           "ReplayCache", "Settings", "TextPart", "ToolCall", "Usage", "load_model", "register_backend"]
