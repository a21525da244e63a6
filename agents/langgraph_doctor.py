"""The tool-using doctor: a LangGraph ``StateGraph`` around any ChatModel (the one module that imports langgraph).

Each turn runs through the graph::

    observe -> model -> validate --(valid)----------------------------> wait -> observe -> ...
                 ^          |--(error, fed back; at most ``retries``)--^ |
                 |__________|                                            (a diagnosis: finish -> END)
                            '--(still wrong)--> fallback --> wait

* ``observe`` folds the environment's observation (and any images) into the conversation, counts
  the turn and, near the turn limit, tells the model to diagnose; at the limit the turn is *forced*:
  only a diagnosis is accepted.
* ``model`` calls the ChatModel through ``call_model`` (so the call lands in the episode record), with
  ``action_tools(expert_tools=True)`` as function tools in mode ``tools`` (a text reply is read with the
  text protocol too: small models served by llama.cpp often answer in text), or none in mode ``text``.
* ``validate`` turns the reply into an ``Action`` (``tool_call_to_action`` / ``parse_action``) and checks
  expert tools against the registry (known name, arguments valid for its model). A problem goes back
  to the model as an explicit error message and costs no turn; after ``retries`` failed attempts,
  ``fallback`` chooses a safe action: when turns are short, the latest diagnosis the model has named (or
  else the retrieval tool's leading hit), otherwise an open question. A fallback action is marked as such
  in the episode record (``Event.fallback``, the reason) and counted in the run's summary.
* ``wait`` is an ``interrupt``: the graph pauses with the action, the environment executes it, and the
  next ``act`` resumes the graph with ``Command(resume={"observation": ..., "images": ...})``.

State is checkpointed (``InMemorySaver`` by default, any LangGraph checkpointer may be given) under a
thread id per episode, so an episode can be paused and taken up again, by this object or another one
sharing the checkpointer: ``snapshot()`` shows where it stands, ``override(action)`` lets a person
replace the pending action, ``resume(thread_id)`` attaches a doctor to a paused episode. A TUI may also
drive ``doctor.graph`` itself with ``doctor.config``: ``ainvoke(Command(resume={...}), config)``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agentclinic.agents.base import note_fallback
from agentclinic.agents.biases import AppliedBias
from agentclinic.agents.doctors import RETRIEVAL_HIT
from agentclinic.agents.llm import IMAGES_NOT_SHOWN, _windowed, clean_reply, image_part, json_object, render_prompt
from agentclinic.backends.base import CALL_LOG, ChatModel, Message, Settings, TextPart, ToolCall, call_model
from agentclinic.env.actions import (
    ACTION, DIAGNOSIS, Action, ActionError, Ask, CallTool, Diagnose, Examine, OrderTests, RequestImage, action_names,
    action_tools, parse_action, tool_call_to_action)
from agentclinic.errors import AgentClinicError, ConfigError

GraphMode = Literal["tools", "text"]
GRAPH_MODES = ("tools", "text")
OPEN_QUESTIONS = ("Could you tell me more about what has been troubling you?",
                  "Is there anything else about how you have been feeling that I should know?",
                  "How are you feeling right now?")
NOT_DONE = "Not done: one action per turn, only the first call was carried out."
_LETTER = re.compile(r"[^\W\d_]", re.U)


class DoctorState(TypedDict, total=False):
    """What the graph keeps per episode (checkpointed after every step)."""

    system: str  # the system prompt (kept so a resumed episode uses the same one)
    brief: str
    messages: list[dict]  # the conversation after the system prompt; each dict has the turn it belongs to
    turn: int  # actions taken so far, this one included
    observation: str  # the latest observation from the environment
    images: list[dict]  # the images that came with it
    reply: dict | None  # the model's last reply: text and tool calls
    action: dict | None  # the action of this turn, awaiting execution
    calls: list[str]  # ids of the tool calls the next observation answers
    attempts: int  # model calls this turn
    errors: list[dict]  # every rejected reply: turn, attempt, error
    guesses: list[str]  # the retrieval tool's leaders, then the diagnoses the model has named; latest last
    fallbacks: int  # turns decided by the fallback
    fallback: str | None  # why the fallback chose this turn's action (None: the model did)
    done: bool  # a diagnosis was given


class GraphDoctor:
    """A doctor played by a ChatModel inside a LangGraph state machine (see the module doc).

    ``mode``: ``tools`` (function calling over the actions and the registered expert tools; a text reply
    is read with the text protocol) or ``text`` (the text protocol only). ``retries``: rejected replies fed
    back per turn before the fallback. ``warn_turns``: from this many turns left, the model is told to
    diagnose. ``history``: keep the brief and the last N turns in each request (default: everything).
    """

    accepts_bias = True

    def __init__(self, model: ChatModel, settings: Settings | None = None, *, mode: GraphMode = "tools",
                 max_turns: int = 20, retries: int = 2, warn_turns: int = 2, history: int | None = None,
                 checkpointer: Any = None, name: str | None = None):
        if mode not in GRAPH_MODES:
            raise ConfigError(f"unknown graph doctor mode {mode!r}; expected one of: {', '.join(GRAPH_MODES)}")
        if max_turns < 1 or retries < 0 or warn_turns < 0:
            raise ConfigError("the graph doctor needs max_turns >= 1, retries >= 0 and warn_turns >= 0")
        self.model = model
        self.settings = settings or Settings()
        self.mode = mode
        self.max_turns = max_turns
        self.retries = retries
        self.warn_turns = warn_turns
        self.history_turns = history
        self.name = name or f"{model.name}?mode=graph" + ("-text" if mode == "text" else "")
        self._own_checkpointer = checkpointer is None
        self.checkpointer = checkpointer if checkpointer is not None else InMemorySaver()
        self.graph = self._build().compile(checkpointer=self.checkpointer)
        self.thread_id: str | None = None
        self.bias: AppliedBias | None = None
        self.reset("")

    # -- the graph ---------------------------------------------------------------------------

    def _build(self) -> StateGraph:
        graph = StateGraph(DoctorState)
        graph.add_node("observe", self._observe)
        graph.add_node("model", self._call_model)
        graph.add_node("validate", self._validate)
        graph.add_node("fallback", self._fallback)
        graph.add_node("wait", self._wait)
        graph.add_node("finish", self._finish)
        graph.add_edge(START, "observe")
        graph.add_edge("observe", "model")
        graph.add_edge("model", "validate")
        graph.add_conditional_edges("validate", self._route, ["model", "fallback", "wait", "finish"])
        graph.add_conditional_edges("fallback", self._route, ["wait", "finish"])
        graph.add_edge("wait", "observe")
        graph.add_edge("finish", END)
        return graph

    def _route(self, state: DoctorState) -> str:
        action = state.get("action")
        if action is not None:
            return "finish" if action["type"] == "diagnose" else "wait"
        return "model" if state.get("attempts", 0) <= self.retries else "fallback"

    async def _observe(self, state: DoctorState) -> dict:
        turn = state.get("turn", 0) + 1
        left = self.max_turns - turn
        text = state.get("observation") or ""
        brief = state.get("brief") or ""
        if turn == 1 and brief:
            text = f"Case brief: {text}" if text.strip() == brief.strip() else f"Case brief: {brief}\n\n{text}"
        images, note = self._image_refs(state.get("images") or [])
        counter = render_prompt("doctor_turn", turn=turn, max_turns=self.max_turns, left=max(0, left))
        if left <= 0:
            counter += (" This is your last turn: give your diagnosis now (diagnose, or DIAGNOSIS READY: "
                        "<diagnosis>); nothing else is accepted.")
        elif left <= self.warn_turns:
            counter += (f" Only {left} turn{'s' if left > 1 else ''} left after this one: diagnose now or very "
                        "soon, or the consultation ends without a diagnosis.")
        body = "\n\n".join(x for x in (text, note, counter) if x)
        new: list[dict] = []
        calls = state.get("calls") or []
        if calls:  # the observation answers the tool call the action came from
            new.append({"role": "tool", "tool_call_id": calls[0], "content": body, "turn": turn})
            new += [{"role": "tool", "tool_call_id": c, "content": NOT_DONE, "turn": turn} for c in calls[1:]]
            if images:
                new.append({"role": "user", "content": "The images:", "images": images, "turn": turn})
        else:
            new.append({"role": "user", "content": body, "images": images, "turn": turn})
        hits = [m.group("name").strip() for m in RETRIEVAL_HIT.finditer(text.split(":", 1)[1].lstrip())][:3] \
            if text.startswith("Tool retrieve:") else []  # the retrieval tool's leaders: guesses of last resort
        guesses = [h for h in reversed(hits) if h not in state.get("guesses", [])] + state.get("guesses", [])
        return {"turn": turn, "messages": state.get("messages", []) + new, "attempts": 0, "reply": None,
                "action": None, "calls": [], "guesses": guesses[-10:], "fallback": None}

    async def _call_model(self, state: DoctorState) -> dict:
        messages = [Message(role="system", content=state["system"]), *self._conversation(state["messages"])]
        tools = action_tools(expert_tools=True) if self.mode == "tools" else None
        result = await call_model(self.model, messages, self.settings, role="doctor", tools=tools)
        reply = {"text": result.text or "", "tool_calls": [c.model_dump() for c in result.tool_calls]}
        return {"reply": reply, "attempts": state.get("attempts", 0) + 1}

    async def _validate(self, state: DoctorState) -> dict:
        turn, attempt = state["turn"], state["attempts"]
        forced = turn >= self.max_turns
        reply = state.get("reply") or {"text": "", "tool_calls": []}
        calls = [ToolCall.model_validate(c) for c in reply["tool_calls"]]
        calls = [c if c.id else c.model_copy(update={"id": f"call_{turn}_{attempt}_{n}"}) for n, c in enumerate(calls)]
        text = clean_reply(reply["text"], fold=False)
        action, error, guesses = read_reply(text, calls, forced=forced)
        messages = list(state["messages"])
        if calls:
            messages.append({"role": "assistant", "content": reply["text"] or "",
                             "tool_calls": [c.model_dump() for c in calls], "turn": turn})
        else:
            messages.append({"role": "assistant", "content": text, "turn": turn})
        update: dict = {"guesses": _merge(state.get("guesses", []), guesses)}
        _annotate_call({"turn": turn, "attempt": attempt, "error": error,
                        "action": action.model_dump() if action else None})
        if action is not None:
            return update | {"messages": messages, "action": action.model_dump(), "calls": [c.id for c in calls]}
        feedback = (f"Error: {error}. That did not use a turn; reply with one valid action"
                    + (" (your diagnosis)." if forced else "."))
        if calls:
            messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": feedback, "turn": turn})
            messages += [{"role": "tool", "tool_call_id": c.id, "content": NOT_DONE, "turn": turn} for c in calls[1:]]
        else:
            messages.append({"role": "user", "content": feedback, "turn": turn})
        errors = state.get("errors", []) + [{"turn": turn, "attempt": attempt, "error": error}]
        return update | {"messages": messages, "errors": errors, "action": None, "calls": []}

    async def _fallback(self, state: DoctorState) -> dict:
        turn, guesses = state["turn"], state.get("guesses", [])
        left = self.max_turns - turn
        action: Action
        why = f"no valid action from the model in {state.get('attempts', 0)} attempts"
        if guesses and left <= self.warn_turns:
            primary = guesses[-1]
            action = Diagnose(primary=primary, differential=[g for g in reversed(guesses) if g != primary][:3])
            why += (f"; the fallback diagnosed the latest guess {primary!r} (a diagnosis the model named, or else "
                    "the retrieval tool's leading hit)")
        else:
            action = Ask(text=OPEN_QUESTIONS[state.get("fallbacks", 0) % len(OPEN_QUESTIONS)])
            why += "; the fallback asked an open question"
        line = action_line(action)
        messages = state["messages"] + [{"role": "assistant", "content": line, "turn": turn}]
        return {"action": action.model_dump(), "messages": messages, "calls": [],
                "fallbacks": state.get("fallbacks", 0) + 1, "fallback": why}

    async def _wait(self, state: DoctorState) -> dict:
        answer = interrupt({"turn": state["turn"], "action": state["action"]})
        if not isinstance(answer, dict):
            answer = {"observation": str(answer)}
        return {"observation": str(answer.get("observation") or ""), "images": list(answer.get("images") or [])}

    async def _finish(self, state: DoctorState) -> dict:
        return {"done": True}

    # -- messages ----------------------------------------------------------------------------

    def _image_refs(self, images: list[dict]) -> tuple[list[dict], str]:
        """References to the images a vision model will be shown (read at call time), and a note."""
        usable = [i for i in images if i.get("available", True) and i.get("path")]
        if not usable:
            return [], ""
        if not getattr(self.model, "supports_images", False):
            return [], IMAGES_NOT_SHOWN
        refs = [{"path": str(i["path"]), "source": f"{i.get('id')}: {i.get('asset') or i['path']}"} for i in usable]
        labels = ", ".join(f"{i.get('id')} ({i.get('modality')})" for i in usable)
        return refs, f"(Attached: {labels}.)"

    def _conversation(self, stored: list[dict]) -> list[Message]:
        segments: list[list[Message]] = []
        last = None
        for item in stored:
            if item.get("turn") != last:
                segments.append([])
                last = item.get("turn")
            segments[-1].append(self._message(item))
        return _windowed(segments, self.history_turns)

    @staticmethod
    def _message(item: dict) -> Message:
        content: Any = item.get("content", "")
        parts = [p for ref in item.get("images") or () if (p := image_part(ref["path"], source=ref["source"]))]
        if parts:
            content = [TextPart(text=content), *parts] if content else parts
        return Message(role=item["role"], content=content, tool_call_id=item.get("tool_call_id"),
                       tool_calls=[ToolCall.model_validate(c) for c in item.get("tool_calls") or ()])

    def system_prompt(self, bias_text: str = "") -> str:
        how = ("Each turn, call exactly one of the functions you are given. If you answer in text instead, "
               "write exactly one of the forms in brackets, at the start of your message:"
               if self.mode == "tools" else
               "Each turn, write exactly one of the forms in brackets, at the start of your message:")
        tools = expert_tool_lines(detailed=self.mode == "text")  # in tools mode the function schemas say the rest
        return render_prompt("doctor_graph", how=how, tools=tools, max_turns=self.max_turns,
                             bias=f"\nHow you think in this consultation:\n{bias_text}" if bias_text else "")

    # -- the Doctor protocol -----------------------------------------------------------------

    @property
    def config(self) -> dict:
        """The LangGraph config of this episode: its thread, and room for every retry of one turn."""
        return {"configurable": {"thread_id": self.thread_id}, "recursion_limit": 2 * self.retries + 12}

    def reset(self, brief: str, seed: int | None = None, *, bias: AppliedBias | str | None = None,
              thread_id: str | None = None) -> None:
        """A new episode on a new thread (the previous one is dropped from a checkpointer this doctor owns)."""
        if self._own_checkpointer and self.thread_id is not None:
            self.checkpointer.delete_thread(self.thread_id)
        self.brief = brief or ""
        self.seed = seed
        self.bias = bias if isinstance(bias, AppliedBias) else None
        self._bias_text = bias.text if isinstance(bias, AppliedBias) else (bias or "")
        self.thread_id = thread_id or f"doctor-{uuid.uuid4().hex}"
        self._started = False

    @property
    def bias_info(self) -> dict | None:
        return self.bias.record() if self.bias else None

    async def act(self, observation: str, images: list[dict] | None = None) -> Action:
        """Run the graph up to its next pause with this observation; the action it pauses with."""
        images = [dict(i) for i in images or ()]
        if not self._started:
            start: Any = DoctorState(system=self.system_prompt(self._bias_text), brief=self.brief, messages=[], turn=0,
                                     observation=observation or "", images=images, calls=[], errors=[],
                                     guesses=[], fallbacks=0, done=False)
            self._started = True
        else:
            if self.graph.get_state(self.config).values.get("done"):
                raise AgentClinicError("the graph doctor's episode is over (it diagnosed): call reset() first")
            start = Command(resume={"observation": observation or "", "images": images})
        state = await self.graph.ainvoke(start, self.config)
        if state.get("fallback"):
            note_fallback(state["fallback"])  # recorded in the episode's event, counted in the summary
        return ACTION.validate_python(state["action"])

    # -- pausing and resuming ----------------------------------------------------------------

    def snapshot(self) -> dict:
        """Where the episode stands: thread, turn, the pending action, conversation, errors, next node."""
        state = self.graph.get_state(self.config)
        values = state.values
        return {"thread_id": self.thread_id, "turn": values.get("turn", 0), "action": values.get("action"),
                "done": bool(values.get("done")), "next": list(state.next),
                "waiting": any(i.value.get("action") is not None for i in state.interrupts if isinstance(i.value, dict)),
                "messages": list(values.get("messages", [])), "errors": list(values.get("errors", [])),
                "guesses": list(values.get("guesses", [])), "fallbacks": values.get("fallbacks", 0),
                "checkpoint_id": state.config.get("configurable", {}).get("checkpoint_id")}

    def resume(self, thread_id: str) -> Action | None:
        """Attach to a paused episode in this doctor's checkpointer; returns its pending action (None when done).

        The next ``act(observation)`` carries on from there, with the conversation and turn count restored."""
        state = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        if not state.values:
            raise AgentClinicError(f"no episode with thread id {thread_id!r} in this doctor's checkpointer")
        self.thread_id, self._started = thread_id, True
        self.brief = state.values.get("brief", "")
        if state.values.get("done") or not state.values.get("action"):
            return None
        return ACTION.validate_python(state.values["action"])

    def override(self, action: Action | str | dict) -> Action:
        """Replace the pending action (a person decides this turn); the conversation says what was done."""
        action = parse_action(action)
        state = self.graph.get_state(self.config)
        if not state.values or state.values.get("done") or not state.next:
            raise AgentClinicError("nothing to override: the episode has not started or is over")
        messages = list(state.values["messages"])
        turn = state.values["turn"]
        if messages and messages[-1]["role"] == "assistant" and messages[-1].get("turn") == turn:
            messages.pop()  # the model's (or the fallback's) choice, replaced by the person's
        messages.append({"role": "assistant", "content": action_line(action), "turn": turn})
        values = {"action": action.model_dump(), "messages": messages, "calls": [], "fallback": None}
        if isinstance(action, Diagnose):
            self.graph.update_state(self.config, values | {"done": True}, as_node="finish")
        else:
            self.graph.update_state(self.config, values, as_node="validate")
        return action


# --------------------------------------------------------------------------------------------
# Reading a reply
# --------------------------------------------------------------------------------------------


def read_reply(text: str, calls: list[ToolCall], *, forced: bool = False) -> tuple[Action | None, str | None, list[str]]:
    """(action, None, guesses) for a usable reply, (None, error, guesses) otherwise.

    The first tool call counts; without one, the text is read with the text protocol (a JSON tool call
    written as text is taken as one). Expert tools must exist and get valid arguments. On a ``forced``
    turn only a diagnosis is accepted (a short text without control phrases is read as the diagnosis).
    ``guesses`` are the diagnoses the reply names, usable or not.
    """
    guesses: list[str] = []
    if not calls and text:
        embedded = json_object(text) if "{" in text and not re.match(r"\s*call\s+tool\b", text, re.I) else None
        if embedded and isinstance(embedded.get("name"), str) and ("arguments" in embedded or "parameters" in embedded):
            arguments = embedded.get("arguments", embedded.get("parameters"))
            calls = [ToolCall(id=None, name=embedded["name"],
                              arguments=arguments if isinstance(arguments, str) else json.dumps(arguments))]
    try:
        if calls:
            first = calls[0]
            guesses += _named_diagnosis(first)
            if first.name not in action_names():
                from agentclinic.tools import TOOLS

                if first.name not in TOOLS:
                    known = ", ".join(action_names() + sorted(TOOLS))
                    raise ActionError(f"there is no function {first.name!r}; the functions are: {known}")
            action = tool_call_to_action(first.name, first.arguments)
        else:
            if not _LETTER.search(text):
                raise ActionError("the reply has no words in it: ask, examine, order tests, request images, "
                                  "call an expert tool or diagnose")
            action = parse_action(text)
            if match := DIAGNOSIS.search(text):
                guesses += [g for g in [_first_line(match.group(1))] if g]
        if isinstance(action, CallTool):
            _check_tool(action)
        if isinstance(action, Diagnose):
            guesses += [*action.differential[::-1], action.primary]
        elif forced:
            if isinstance(action, Ask) and not calls and len(text.split()) <= 10 and "?" not in text:
                action = Diagnose(primary=_first_line(text))
                guesses.append(action.primary)
            else:
                raise ActionError(f"this is the last turn and {action.type} is not a diagnosis: "
                                  "give your most likely diagnosis now")
    except ActionError as exc:
        return None, str(exc), guesses
    return action, None, guesses


def _check_tool(action: CallTool) -> None:
    from agentclinic.tools import TOOLS, ToolArgumentError
    from agentclinic.tools.registry import parse_arguments

    tool = TOOLS.get(action.name)
    if tool is None:
        raise ActionError(f"there is no expert tool {action.name!r}; the expert tools are: "
                          f"{', '.join(sorted(TOOLS)) or 'none'}")
    try:
        parse_arguments(tool, action.arguments)
    except ToolArgumentError as exc:
        raise ActionError(str(exc)) from exc


def _named_diagnosis(call: ToolCall) -> list[str]:
    """The diagnosis named in a diagnose call, even when its arguments are otherwise invalid."""
    if call.name != "diagnose":
        return []
    data = json_object(call.arguments) if isinstance(call.arguments, str) else None
    primary = (data or {}).get("primary")
    return [primary.strip()] if isinstance(primary, str) and primary.strip() else []


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.strip().strip("*").strip().rstrip(".")


def _merge(old: list[str], new: list[str]) -> list[str]:
    merged = [g for g in old if g not in new] + [g for g in dict.fromkeys(new)]
    return merged[-10:]


def _annotate_call(info: dict) -> None:
    """Mark the doctor's latest model call in the episode's call log with how the graph read it."""
    log = CALL_LOG.get()
    if log:
        entry = next((c for c in reversed(log) if c.get("role") == "doctor"), None)
        if entry is not None and "graph" not in entry:
            entry["graph"] = {k: v for k, v in info.items() if v is not None}


def action_line(action: Action) -> str:
    """An action in the text protocol (what the conversation shows for a fallback or a person's action)."""
    if isinstance(action, Ask):
        return action.text
    if isinstance(action, Examine):
        return f"EXAMINE: {action.system}" if action.system else "EXAMINE"
    if isinstance(action, OrderTests):
        return "REQUEST TEST: " + ", ".join(action.tests)
    if isinstance(action, RequestImage):
        return f"REQUEST IMAGES: {action.image_id}" if action.image_id else "REQUEST IMAGES"
    if isinstance(action, CallTool):
        return f"CALL TOOL: {action.name} {json.dumps(action.arguments)}"
    return f"DIAGNOSIS READY: {action.primary}"


def expert_tool_lines(detailed: bool = True) -> str:
    """The registered expert tools for the prompt: name, arguments (with their types) and, when ``detailed``,
    the description (a model given the function schemas has the descriptions there already)."""
    from agentclinic.tools import tool_functions

    lines = []
    for function in tool_functions():
        spec = function["function"]
        params = spec["parameters"]
        required = set(params.get("required", ()))
        args = ", ".join(f'"{k}": {_type_of(v)}{"" if k in required else " (optional)"}'
                         for k, v in params.get("properties", {}).items())
        about = f": {' '.join(spec['description'].split())}" if detailed else ""
        lines.append(f"    - {spec['name']} {{{args}}}{about}")
    return "\n".join(lines) or "    (no expert tools are available in this consultation)"


def _type_of(schema: dict) -> str:
    if "type" in schema:
        kind = schema["type"]
        if kind == "array" and isinstance(schema.get("items"), dict):
            return f"list of {_type_of(schema['items'])}"
        return str(kind)
    options = [_type_of(s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return " or ".join(options) or "value"


__all__ = ["GraphDoctor", "DoctorState", "GRAPH_MODES", "read_reply", "action_line", "expert_tool_lines"]
