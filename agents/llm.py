"""LLM agents for every role of an episode, over any ChatModel backend.

Each agent is built from ``(model: ChatModel, settings: Settings, ...)`` and calls its model only
through ``call_model``, so every call (messages, reply, tokens, latency) lands in the episode
record. Prompts are template files in ``agents/prompts/`` (``string.Template``; a folder named by
``$AGENTCLINIC_PROMPTS`` overrides them file by file).

* ``LLMPatient``: persona and speakable facts (volunteered and said-when-asked; hidden facts and
  the diagnosis never enter the prompt) in a private system brief with disclosure rules; keeps
  the conversation; each reply is scrubbed of the diagnosis under any name, and the facts it
  states are found by comparing its sentences with the fact texts (sentence embeddings, or the
  scripted patient's lexical score without a model) -> ``PatientReply.disclosed``. After the
  episode ``rate()`` asks it, in character, to rate the doctor 1-10 (confidence, compliance,
  consult again), recorded as simulated.
* ``LLMMeasurement``: looks up exactly what was asked with ``ScriptedMeasurement`` (unknown ->
  not available, no model call), then asks the model only to phrase that result; it never sees
  the diagnosis. A phrasing with a number the source lacks, a diagnosis name, or no text falls
  back to the exact case text.
* ``LLMDoctor``: mode ``text`` (AgentClinic-style control phrases, turn counter, raw text
  returned for the environment to parse) or ``tools`` (function calling over ``action_tools()``;
  a tool call becomes an Action; no tool call -> its text). Images reach an image-capable model
  as ``ImagePart`` in its next user message.
* ``LLMJudge``: structured verdict (JSON schema: level + rationale), parsed tolerantly ("Yes.",
  level words, JSON in code fences); the rule judge's verdict is kept beside it (``rule_level``)
  and used when the reply cannot be understood. The doctor's proposal reaches it as data: one JSON
  string between ``<proposed_diagnosis>`` tags (``quote_proposal``), never as prompt structure.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Literal

import numpy as np

from agentclinic.agents.base import CORRECT_LEVELS, LEVELS, Finding, PatientReply, Verdict
from agentclinic.agents.biases import AppliedBias, check_biases, render_biases
from agentclinic.agents.embeddings import Embedder, default_embedder, tokens
from agentclinic.agents.judge import RuleJudge
from agentclinic.agents.measurement import ScriptedMeasurement
from agentclinic.agents.patient import _index_for, diagnosis_guard, lexical_score, lexical_tokens
from agentclinic.backends.base import ChatModel, ImagePart, Message, Settings, TextPart, ToolCall, call_model
from agentclinic.env.actions import Action, ActionError, action_tools, tool_call_to_action
from agentclinic.errors import ConfigError
from agentclinic.scenario.schema import Disclosure, Scenario

PROMPTS_DIR = Path(__file__).with_name("prompts")
PROMPTS_ENV = "AGENTCLINIC_PROMPTS"


# --------------------------------------------------------------------------------------------
# Prompt templates
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _read_template(path: str, mtime: float) -> Template:
    return Template(Path(path).read_text(encoding="utf-8"))


def prompt_template(name: str) -> Template:
    """The template ``name`` (``agents/prompts/<name>.md``, or the same file in ``$AGENTCLINIC_PROMPTS``)."""
    for folder in (os.environ.get(PROMPTS_ENV), PROMPTS_DIR):
        if folder:
            path = Path(folder) / f"{name}.md"
            if path.is_file():
                return _read_template(str(path), path.stat().st_mtime)
    raise ConfigError(f"no prompt template {name!r} in {PROMPTS_DIR}" +
                      (f" or ${PROMPTS_ENV}={os.environ[PROMPTS_ENV]}" if os.environ.get(PROMPTS_ENV) else ""))


def render_prompt(name: str, /, **values: object) -> str:
    """A prompt from its template; every ``$name`` must be given (a missing one is a ConfigError)."""
    try:
        text = prompt_template(name).substitute({k: "" if v is None else str(v) for k, v in values.items()})
    except KeyError as exc:
        raise ConfigError(f"prompt template {name!r} needs a value for ${exc.args[0]}") from exc
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

_LABEL = re.compile(r"^\s*(?:\*\*)?(?:patient|doctor|dr\.?\s*\w*|assistant|report|result|answer)(?:\*\*)?\s*:\s*",
                    re.I)
_SPEAKER = re.compile(r"\n\s*(?:\*\*)?(?:doctor|dr\.?\s*\w*|patient|user|measurement|lab)(?:\*\*)?\s*:", re.I)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


def clean_reply(text: str, *, cut_speakers: bool = True, fold: bool = True) -> str:
    """A model's reply as one turn: HTML entities decoded, a leading speaker label and any lines
    written for the other party ("Doctor: ...") removed, surrounding quotes stripped, whitespace folded (``fold``) or
    only trimmed (the doctor's text keeps its lines: the action parser reads the first one)."""
    text = html.unescape(text or "").strip()  # some chat templates HTML-escape the conversation ("I&#39;m")
    if cut_speakers:
        lines = "\n" + text
        match = next((m for m in _SPEAKER.finditer(lines) if m.start() > 0), None)
        if match:
            text = lines[: match.start()]
    text = _LABEL.sub("", text.strip(), count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return " ".join(text.split()) if fold else text.strip()


def _windowed(segments: list[list[Message]], keep: int | None) -> list[Message]:
    """The conversation: the first turn (the brief) always, then the last ``keep`` turns. A kept turn
    that opens with a tool result keeps the assistant message that called the tool."""
    if keep is None or len(segments) <= keep + 1:
        return [m for segment in segments for m in segment]
    first, rest = segments[0], segments[1:]
    kept = rest[-keep:] if keep > 0 else []
    out = list(first)
    if kept and kept[0] and kept[0][0].role == "tool":
        dropped = rest[: len(rest) - len(kept)]
        caller = dropped[-1][-1] if dropped and dropped[-1] else None
        if caller is not None and caller.role == "assistant":
            out.append(caller)
    for segment in kept:
        out += segment
    return out


# --------------------------------------------------------------------------------------------
# Patient
# --------------------------------------------------------------------------------------------

# Reply sentence -> fact, calibrated on the bank with paraphrases of facts ("It feels like a heavy
# weight crushing my chest" 0.72, "Yes, I smoke about a pack every day" 0.67) against unrelated
# sentences ("I work in a warehouse" 0.20, "Hello doctor" 0.22) and near topics (0.41-0.52).
DISCLOSURE_THRESHOLD = 0.55  # sentence embeddings, best fact view (the text or one of its sentences)
DISCLOSURE_LEXICAL_THRESHOLD = 0.55  # the scripted patient's lexical score
DISCLOSURE_MARGIN = 0.04  # a second fact counts when within this of the best
UNCLEAR_REPLY = "Sorry, doctor, could you say that again?"
UNSURE_REPLY = "I'm not sure, doctor."

_HEALTH_LITERACY = {"low": "You use everyday words and do not know medical terms.",
                    "high": "You understand medical terms and use some of them."}
_VERBOSITY = {"terse": "You keep your answers very short.",
              "talkative": "You like to talk and add small personal details, but no new medical facts."}


RATINGS_SCHEMA = {"type": "object", "properties": {
    **{k: {"type": "integer", "minimum": 1, "maximum": 10} for k in ("confidence", "compliance", "consult_again")},
    "comment": {"type": "string"}}, "required": ["confidence", "compliance", "consult_again"]}


class LLMPatient:
    """A patient played by a language model, with controlled disclosure (see the module doc)."""

    name = "llm"

    def __init__(self, model: ChatModel, settings: Settings | None = None, *, biases: list[str] | str | None = None,
                 embedder: Embedder | None = None, threshold: float | None = None, history: int | None = None):
        self.model = model
        self.settings = settings or Settings()
        self.biases = check_biases("patient", biases)
        self.embedder = embedder if embedder is not None else default_embedder()
        self.threshold = threshold if threshold is not None else (
            DISCLOSURE_THRESHOLD if self.embedder.available else DISCLOSURE_LEXICAL_THRESHOLD)
        self.history_turns = history
        self.scenario: Scenario | None = None
        self.bias: AppliedBias | None = None
        self.disclosures: list[tuple[int, str]] = []

    # -- set-up ---------------------------------------------------------------------------

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.index = _index_for(scenario, self.embedder)  # speakable facts only, names of the diagnosis scrubbed
        self.guard = self.index.guard
        self.bias = render_biases("patient", self.biases, scenario, seed)
        self.system = Message(role="system", content=self.system_prompt())
        self.segments: list[list[Message]] = []
        self.disclosures = []
        self._disclosed: set[str] = set()
        views: list[str] = []
        owners: list[int] = []
        for i, text in enumerate(self.index.texts):
            sentences = [s for s in _SENTENCE.split(text) if tokens(s)]
            for view in dict.fromkeys([text, *sentences]):
                views.append(view)
                owners.append(i)
        self._views, self._owners = views, np.array(owners, dtype=np.int64)
        if self.embedder.available and views:
            self._matrix = self.embedder.encode(views).T.copy()
        else:
            self._matrix = None
            self._view_tokens = [lexical_tokens(v) for v in views]

    @property
    def bias_info(self) -> dict | None:
        return self.bias.record() if self.bias else None

    def system_prompt(self) -> str:
        """The private brief: who the patient is, what it may say and how (never hidden facts or the diagnosis)."""
        scenario, index = self.scenario, self.index
        patient = scenario.patient
        who = patient.describe()
        extras = [x for x in (patient.gender and f"gender: {patient.gender}",
                              patient.ethnicity and f"ethnicity: {patient.ethnicity}",
                              patient.occupation and f"works as: {patient.occupation}") if x]
        if extras:
            who += " (" + "; ".join(extras) + ")"
        if patient.informant:
            who = (f"you are the patient's {patient.informant} and you answer the doctor for them. "
                   f"The patient is a {who}. The facts below are written as you would say them.")
        else:
            who = f"a {who}."
        persona = patient.persona
        lines = [guarded for x in (persona.description, persona.mood and f"Right now you feel {persona.mood}.")
                 if x and (guarded := self.guard(x))]
        lines += [x for x in (_HEALTH_LITERACY.get(persona.health_literacy), _VERBOSITY.get(persona.verbosity)) if x]
        if persona.language and persona.language.lower() != "english":
            lines.append(f"You speak {persona.language}.")
        volunteer = [t for f, t in zip(index.facts, index.texts) if f.disclosure == Disclosure.VOLUNTEER]
        on_ask = [t for f, t in zip(index.facts, index.texts) if f.disclosure == Disclosure.ON_ASK]
        bullets = lambda items, empty: "\n".join(f"- {t}" for t in items) or f"- ({empty})"  # noqa: E731
        bias = f"\nSomething else about you in this consultation:\n{self.bias.text}" if self.bias else ""
        return render_prompt("patient", who=who, persona="\n".join(lines) + ("\n" if lines else ""),
                             volunteer=bullets(volunteer, "nothing in particular: you just have not felt right"),
                             on_ask=bullets(on_ask, "nothing else"), bias=bias)

    # -- talking --------------------------------------------------------------------------

    async def reply(self, message: str, turn: int) -> PatientReply:
        if self.scenario is None:
            raise RuntimeError("LLMPatient.reply called before reset(scenario)")
        user = Message(role="user", content=message)
        messages = [self.system, *_windowed(self.segments, self.history_turns), user]
        result = await call_model(self.model, messages, self.settings, role="patient")
        text = clean_reply(result.text) or UNCLEAR_REPLY
        guarded = self.guard(text)
        text = guarded if guarded is not None else UNSURE_REPLY
        self.segments.append([user, Message(role="assistant", content=text)])
        said = self.disclosed_in(text)
        for fact_id in said:
            if fact_id not in self._disclosed:
                self._disclosed.add(fact_id)
                self.disclosures.append((turn, fact_id))
        return PatientReply(text=text, disclosed=said)

    async def rate(self) -> dict:
        """After the consultation: the patient's ratings of the doctor, 1-10 (confidence, compliance,
        consult_again), asked in character over the whole conversation (prompt ``patient_ratings``).
        Marked ``simulated`` with the model's name; a reply without readable ratings gives None values
        and the reason."""
        from agentclinic.scoring.ratings import RATING_KEYS, parse_ratings

        if self.scenario is None:
            raise RuntimeError("LLMPatient.rate called before reset(scenario)")
        messages = [self.system, *(m for segment in self.segments for m in segment),
                    Message(role="user", content=render_prompt("patient_ratings"))]
        result = await call_model(self.model, messages, self.settings, role="patient_ratings",
                                  json_schema=RATINGS_SCHEMA)
        parsed = parse_ratings(result.text)
        base = {"simulated": True, "model": self.model.name}
        if parsed is None:
            snippet = " ".join((result.text or "").split())[:160]
            return base | {k: None for k in RATING_KEYS} | {"error": f"the reply had no readable ratings: {snippet!r}"}
        return base | parsed

    def disclosed_in(self, text: str) -> list[str]:
        """The facts (ids) a reply states: each sentence against each fact's text and sentences."""
        sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip() and tokens(s)]
        if not sentences or not self._views:
            return []
        n_facts = len(self.index.facts)
        scores = np.zeros((len(sentences), n_facts), np.float32)
        if self._matrix is not None:
            sims = self.embedder.encode(sentences) @ self._matrix
            np.maximum.at(scores.T, self._owners, sims.T)
        else:
            for i, sentence in enumerate(sentences):
                query = lexical_tokens(sentence)
                views = np.array([lexical_score(query, v, v) for v in self._view_tokens], np.float32)
                np.maximum.at(scores[i], self._owners, views)
        said: list[str] = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:2]
            best = float(row[order[0]])
            if best < self.threshold:
                continue
            for j in order:
                if float(row[j]) < self.threshold or float(row[j]) < best - DISCLOSURE_MARGIN:
                    break
                fact_id = self.index.facts[j].id
                if fact_id not in said:
                    said.append(fact_id)
        return said


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> set[float]:
    """The numbers written in ``text`` ('6,500' -> 6500, '7.0' == '7', '120/80' -> 120 and 80)."""
    out: set[float] = set()
    for raw in _NUMBER.findall(text or ""):
        value = raw.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw) else raw.replace(",", ".")
        try:
            out.add(round(float(value), 6))
        except ValueError:
            for part in re.split(r"[.,]", raw):
                if part:
                    out.add(float(part))
    return out


def phrasing_problem(phrased: str, finding: Finding, guard=None) -> str | None:
    """Why a model's phrasing of ``finding`` cannot replace the exact text, or None when it can."""
    if not phrased.strip():
        return "empty reply"
    source = " ".join(x for x in (finding.result, finding.name or "", finding.request) if x)
    invented = numbers_in(phrased) - numbers_in(source)
    if invented:
        return "numbers not in the result: " + ", ".join(f"{n:g}" for n in sorted(invented))
    if guard is not None:
        guarded = guard(phrased)
        if guarded != phrased and guard(source) == source:
            return "names the diagnosis"
    if len(phrased) > 3 * len(finding.result) + 300:
        return "far longer than the result"
    return None


class PhrasedFinding(Finding):
    """A finding whose ``result`` a model phrased; ``case_result`` is the case's exact text."""

    case_result: str


class LLMMeasurement:
    """Exact lookup first (``ScriptedMeasurement``), then the model phrases what was found."""

    name = "llm"

    def __init__(self, model: ChatModel, settings: Settings | None = None, *,
                 lookup: ScriptedMeasurement | None = None):
        self.model = model
        self.settings = settings or Settings()
        self.lookup = lookup or ScriptedMeasurement()
        self.scenario: Scenario | None = None
        self.fallbacks: list[tuple[str, str]] = []  # (request, why the exact text was used)

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.lookup.reset(scenario, seed)
        self._guard = diagnosis_guard(scenario)  # code only: the model never sees the diagnosis
        self.fallbacks = []

    async def examine(self, system: str | None) -> list[Finding]:
        findings = self.lookup.look(system)  # one phrasing per finding, requested together
        return list(await asyncio.gather(*(self._phrase(f, "Examination") for f in findings)))

    async def order(self, test: str) -> Finding:
        return await self._phrase(self.lookup.lookup(test), "Test")

    async def _phrase(self, finding: Finding, kind: str) -> Finding:
        if not finding.available:
            return finding  # "not available" is said exactly, no model needed
        prompt = render_prompt("measurement_request", request=finding.request or "(everything)", kind=kind,
                               name=finding.name or finding.group or finding.request, result=finding.result)
        messages = [Message(role="system", content=render_prompt("measurement")), Message(role="user", content=prompt)]
        result = await call_model(self.model, messages, self.settings, role="measurement")
        phrased = clean_reply(result.text, cut_speakers=False)
        problem = phrasing_problem(phrased, finding, self._guard)
        if problem is not None:
            self.fallbacks.append((finding.request, problem))
            return finding
        return PhrasedFinding(**finding.model_dump() | {"result": phrased, "case_result": finding.result})


# --------------------------------------------------------------------------------------------
# Doctor
# --------------------------------------------------------------------------------------------

DoctorMode = Literal["text", "tools"]
DOCTOR_MODES = ("text", "tools")
IMAGE_MIMES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
IMAGES_NOT_SHOWN = "(The images cannot be shown to you; use their reports.)"


def image_part(path: str | Path, source: str | None = None) -> ImagePart | None:
    """An image file as an ``ImagePart`` a vision model can read: PNG/JPEG/GIF/WebP as they are, other
    formats (DICOM, TIFF) converted to PNG by the same conversion as the report and the segmentation
    tool (``display_image``: modality LUT, the file's VOI window, MONOCHROME1 inverted); None when it
    cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix.lower() in IMAGE_MIMES:
        return ImagePart.from_file(path, source=source)
    from PIL import Image

    from agentclinic.tools.base import ToolError
    from agentclinic.tools.imaging import display_image

    try:
        pixels = display_image(path)
    except ToolError:  # an unreadable image is reported (the doctor is told it cannot be shown), not fatal
        return None
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    import base64

    return ImagePart(url="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
                     source=source or str(path))


class LLMDoctor:
    """A doctor played by a language model: AgentClinic-style text, or function calling (see the module doc).

    ``history`` keeps the first turn (the brief) and the last ``history`` turns in each request
    (default: the whole consultation). A doctor bias is rendered per case by the runner and given
    to ``reset(brief, seed, bias=...)``.
    """

    accepts_bias = True

    def __init__(self, model: ChatModel, settings: Settings | None = None, *, mode: DoctorMode = "text",
                 max_turns: int = 20, history: int | None = None, name: str | None = None):
        if mode not in DOCTOR_MODES:
            raise ConfigError(f"unknown doctor mode {mode!r}; expected one of: {', '.join(DOCTOR_MODES)}")
        if max_turns < 1:
            raise ConfigError("max_turns must be at least 1")
        self.model = model
        self.settings = settings or Settings()
        self.mode = mode
        self.max_turns = max_turns
        self.history_turns = history
        self.name = name or f"{model.name}?mode={mode}"
        self.tools = action_tools() if mode == "tools" else None
        self.reset("")

    def reset(self, brief: str, seed: int | None = None, *, bias: AppliedBias | str | None = None) -> None:
        self.brief = brief or ""
        self.seed = seed
        self.turn = 0
        self.bias = bias if isinstance(bias, AppliedBias) else None
        bias_text = bias.text if isinstance(bias, AppliedBias) else (bias or "")
        self.system = Message(role="system", content=render_prompt(
            "doctor_tools" if self.mode == "tools" else "doctor_text", max_turns=self.max_turns,
            bias=f"\nHow you think in this consultation:\n{bias_text}" if bias_text else ""))
        self.segments: list[list[Message]] = []
        self.pending: list[ToolCall] = []  # tool calls of the last reply, awaiting their results
        self.images_sent: list[str] = []

    @property
    def bias_info(self) -> dict | None:
        return self.bias.record() if self.bias else None

    def _images(self, images: list[dict] | None) -> tuple[list[ImagePart], str]:
        """ImageParts for a vision model, and a note for the text."""
        usable = [i for i in images or () if i.get("available", True) and i.get("path")]
        if not usable:
            return [], ""
        if not getattr(self.model, "supports_images", False):
            return [], IMAGES_NOT_SHOWN
        parts, failed = [], []
        for image in usable:
            source = f"{image.get('id')}: {image.get('asset') or image['path']}"
            part = image_part(image["path"], source=source)
            if part is None:
                failed.append(str(image.get("id")))
            else:
                parts.append(part)
                self.images_sent.append(source)
        note = f"(Could not attach image(s) {', '.join(failed)}: unreadable format.)" if failed else ""
        if parts:
            labels = ", ".join(f"{i.get('id')} ({i.get('modality')})" for i in usable if str(i.get("id")) not in failed)
            note = f"(Attached: {labels}.) {note}".strip()
        return parts, note

    async def act(self, observation: str, images: list[dict] | None = None) -> Action | str | dict:
        self.turn += 1
        text = observation or ""
        if self.turn == 1 and text.strip() == self.brief.strip():
            text = f"Case brief: {text}"
        parts, note = self._images(images)
        counter = render_prompt("doctor_turn", turn=self.turn, max_turns=self.max_turns,
                                left=max(0, self.max_turns - self.turn))
        body = "\n\n".join(x for x in (text, note, counter) if x)
        segment: list[Message] = []
        if self.pending:  # the observation answers the tool call of the last reply
            first, *others = self.pending
            segment.append(Message(role="tool", tool_call_id=first.id, content=body))
            for call in others:
                segment.append(Message(role="tool", tool_call_id=call.id,
                                       content="Not done: one action per turn, only the first call was carried out."))
            if parts:
                segment.append(Message(role="user", content=[TextPart(text="The images:"), *parts]))
        else:
            segment.append(Message(role="user", content=[TextPart(text=body), *parts] if parts else body))
        self.segments.append(segment)
        messages = [self.system, *_windowed(self.segments, self.history_turns)]
        result = await call_model(self.model, messages, self.settings, role="doctor", tools=self.tools)
        self.pending = []
        if self.mode == "tools" and result.tool_calls:
            calls = [c if c.id else c.model_copy(update={"id": f"call_{self.turn}_{n}"})
                     for n, c in enumerate(result.tool_calls)]
            segment.append(Message(role="assistant", content=result.text or "", tool_calls=calls))
            self.pending = calls
            first = calls[0]
            try:
                return tool_call_to_action(first.name, first.arguments)
            except ActionError:
                return {"name": first.name, "arguments": first.arguments}  # the environment reports the error
        reply = clean_reply(result.text, fold=False)
        segment.append(Message(role="assistant", content=reply))
        return reply


# --------------------------------------------------------------------------------------------
# Judge
# --------------------------------------------------------------------------------------------

VERDICT_SCHEMA = {
    "title": "verdict", "type": "object", "additionalProperties": False, "required": ["level", "rationale"],
    "properties": {"level": {"type": "string", "enum": list(LEVELS)}, "rationale": {"type": "string"}},
}
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.S | re.I)
_LEVEL_WORDS = {"exact": "exact", "exactly": "exact", "identical": "exact", "synonym": "synonym",
                "synonyms": "synonym", "synonymous": "synonym", "broader": "broader", "broad": "broader",
                "narrower": "narrower", "narrow": "narrower", "wrong": "wrong", "incorrect": "wrong"}
_NEGATED = re.compile(r"\b(?:not|no|isn't|is\s+not|neither|nor)\s+(?:an?\s+|the\s+|quite\s+|really\s+)?$")


def json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (code fences stripped, surrounding prose ignored), or None."""
    decoder = json.JSONDecoder()
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                return value
            start = candidate.find("{", start + 1)
    return None


def parse_judgement(text: str, rule_level: str | None = None) -> tuple[str, str] | None:
    """(level, rationale) from a judge model's reply, tolerantly; None when it cannot be understood.

    JSON (bare or in a code fence) with ``level`` (or ``match``/``verdict``/``answer``); a yes/no
    answer ("Yes.", "yes, same condition": the same condition, ``exact`` where the rule judge found
    the names identical, else ``synonym``; "No": the rule judge's broader/narrower, else ``wrong``);
    a level word not negated ("synonym", "The proposal is broader"); "same condition", "different".
    """
    text = (text or "").strip()
    if not text:
        return None
    data = json_object(text)
    if data is not None:
        value = next((data[k] for k in ("level", "match", "verdict", "answer", "label") if k in data), None)
        rationale = next((str(data[k]) for k in ("rationale", "reason", "explanation", "justification")
                          if data.get(k)), "")
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if isinstance(value, str):
            level = _level_of(value, rule_level, whole=True)
            if level is not None:
                return level, rationale or f"judge model: {value}"
        return None
    level = _level_of(text, rule_level)
    if level is None:
        return None
    rationale = " ".join(text.split())
    return level, rationale if len(rationale) <= 500 else rationale[:497] + "..."


def _level_of(text: str, rule_level: str | None, whole: bool = False) -> str | None:
    low = " ".join(text.lower().replace("*", "").split())
    bare = re.sub(r"[^a-z ]+", " ", low).strip()
    if bare in LEVELS:
        return bare
    first = bare.split(" ", 1)[0] if bare else ""
    if first in ("yes", "correct", "true", "same"):
        return "exact" if rule_level == "exact" else "synonym"
    if first in ("no", "false", "different"):
        return rule_level if rule_level in ("broader", "narrower") else "wrong"
    found: list[tuple[int, str]] = []
    for match in re.finditer(r"[a-z]+", low):
        level = _LEVEL_WORDS.get(match.group())
        if level and not _NEGATED.search(low[: match.start()]):
            found.append((match.start(), level))
    if found:
        return min(found)[1]
    if re.search(r"\b(?:the\s+)?same\s+(?:condition|diagnosis|disease|thing)\b", low) and "not the same" not in low:
        return "exact" if rule_level == "exact" else "synonym"
    if re.search(r"\b(?:different|not\s+the\s+same|does\s+not\s+match|doesn't\s+match)\b", low):
        return "wrong"
    if whole and bare in ("match", "matches", "correct"):
        return "synonym"
    return None


PROPOSAL_TAG = "proposed_diagnosis"
MAX_PROPOSAL = 500  # characters of the proposal the judge model sees (a diagnosis is a few words)


def quote_proposal(proposed: str) -> str:
    """The doctor's proposal as data for the judge model: spacing and line breaks folded to single spaces (no
    line of the prompt can start inside it), cut to ``MAX_PROPOSAL`` characters, as one JSON string with
    ``<`` and ``>`` escaped (it cannot close its tag), between ``<proposed_diagnosis>`` tags."""
    flat = " ".join(str(proposed).split())
    if len(flat) > MAX_PROPOSAL:
        flat = flat[:MAX_PROPOSAL - 1] + "…"
    quoted = json.dumps(flat, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<{PROPOSAL_TAG}>{quoted}</{PROPOSAL_TAG}>"


class LLMJudge:
    """A model judge with the rule judge beside it (``Verdict.rule_level``) and as its fallback."""

    name = "llm"

    def __init__(self, model: ChatModel, settings: Settings | None = None, *, rule: RuleJudge | None = None):
        self.model = model
        self.settings = settings or Settings()
        self.rule = rule or RuleJudge()

    async def judge(self, proposed: str | None, scenario: Scenario) -> Verdict:
        rule = await self.rule.judge(proposed, scenario)
        ruled = rule.model_copy(update={"rule_level": rule.level, "judge": "rule"})
        if proposed is None or not str(proposed).strip() or scenario.diagnosis is None:
            return ruled
        diagnosis = scenario.diagnosis
        request = render_prompt("judge_request", diagnosis=diagnosis.name,
                                aliases=", ".join(diagnosis.aliases) or "none given",
                                icd10=diagnosis.icd10 or "not given", proposed=quote_proposal(proposed))
        messages = [Message(role="system", content=render_prompt("judge")), Message(role="user", content=request)]
        result = await call_model(self.model, messages, self.settings, role="judge", json_schema=VERDICT_SCHEMA)
        parsed = parse_judgement(result.text, rule.level)
        if parsed is None:
            snippet = " ".join((result.text or "").split())[:120]
            return ruled.model_copy(update={
                "rationale": f"{rule.rationale} (the judge model's reply was not understood: {snippet!r}; "
                             "the rule verdict stands)"})
        level, rationale = parsed
        correct = level in CORRECT_LEVELS
        return Verdict(level=level, correct=correct, matched=diagnosis.name if level not in ("wrong", "none") else None,
                       rationale=rationale or f"judge model: {level}", rule_level=rule.level, judge=self.model.name)


__all__ = ["LLMPatient", "LLMMeasurement", "LLMDoctor", "LLMJudge", "render_prompt", "prompt_template",
           "parse_judgement", "quote_proposal", "phrasing_problem",
           "PhrasedFinding", "numbers_in", "image_part", "clean_reply", "VERDICT_SCHEMA",
           "PROMPTS_DIR", "DOCTOR_MODES"]
