"""The clinic: the async core of an episode. The environment owns the patient, the
measurement agent, the judge, the tools, the ledger and the episode's record; the doctor is
outside it and only sends actions.

The record (``clinic.record``, an ``EpisodeRecord``) is the hub: the clinic appends one typed
event per turn (findings, tool calls, disclosures, images, model calls) and sets the outcome,
the verdict and the scores on it; every consumer (the runner, the report, ``rescore``) reads the
record and nothing else. ``reset`` starts a fresh record; the clinic's state exists from
``__init__`` on.

Images: every step's ``info["images"]`` (and the event's ``images``) lists the images that
came back with it, as dicts with ``id``, ``modality``, ``asset``, ``path`` (the local file,
resolved relative to the scenario file; None when unavailable), ``available`` and, when
unavailable, ``reason`` (remote assets, missing files). The image policy decides when they come:
``on-request`` (default: when the doctor requests them) or ``upfront`` (all of them with the
brief, in ``reset``'s info, the brief listing them; requesting them later still works).

Conversation stations (``scenario.kind == "conversation"``) are played through the same clinic: the learner's
utterances are ``ask`` actions answered by a station patient (``agents/emotional_patient.py``: the scripted
emotional patient for the scripted patient, an LLM conversation patient for an LLM one), which records the
moves and the emotional state per turn (``Event.moves``, ``Event.emotion``, ``info["conversation"]``);
``END CONVERSATION`` (``{"type": "end"}``) or ``end()`` closes it ("completed"), the station's turn budget or
``end(reason="time")`` ends it as "ended-by-budget", never as an error. The feedback (rubric items with
quoted evidence) is saved in ``record.extra["feedback"]``.

Reward: 0 on every step but the last; when the episode ends (a diagnosis, or a budget used up)
it is scored by ``agentclinic.scoring.score_episode`` on the record, and the reward is the weighted
composite (``weights``; 0 without a diagnosis). The final ``info`` has ``axes`` (axis -> value in
[0, 1] or None), ``composite`` and ``scores`` (the ``Scores``, with the evidence), so RL code can
weight the axes itself. Every ``info`` names the ``embedder`` the agents match text with.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentclinic.agents.base import Finding, Judge, Measurement, Patient
from agentclinic.agents.embeddings import embedders_used
from agentclinic.backends.base import CALL_LOG
from agentclinic.env.actions import (
    Action, ActionError, Ask, CallTool, Diagnose, End, Examine, OrderTests, RequestImage, parse_action, raw_output)
from agentclinic.env.ledger import Budget, Ledger
from agentclinic.errors import AgentClinicError, ConfigError, ScenarioError
from agentclinic.runs.record import EpisodeRecord, Event, ToolCall
from agentclinic.scenario.assets import usable_asset
from agentclinic.scenario.loaders import source_of
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import Image, Scenario
from agentclinic.scoring.rewards import ScoreWeights, score_episode

from agentclinic.tools import ToolArgumentError, ToolContext, ToolError
from agentclinic.tools.registry import prepare_call, run_tool

ImagePolicy = Literal["on-request", "upfront"]
IMAGE_POLICIES = ("on-request", "upfront")
REMOTE_NOTE = " (Note: this case's images are remote and unavailable offline; it runs text-only.)"


def case_brief(scenario: Scenario) -> str:
    """A diagnostic case's opening brief before any upfront images: the doctor's brief, and a note when its
    images are remote (the ``messages`` dataset's first prompt is built from it too)."""
    return scenario.doctor_brief + (REMOTE_NOTE if any(image.remote for image in scenario.images) else "")


def scenario_folder(scenario: Scenario | None) -> Path | None:
    """The folder of the file a scenario was read from (asset paths are relative to it)."""
    source = source_of(scenario) if scenario is not None else None
    return Path(source.path).parent if source is not None else None


def image_info(image: Image, base: Path | None) -> dict:
    """An image as the doctor receives it: id, modality, asset, local path (None when unavailable), and
    ``available``, or the ``reason`` it is not."""
    info = {"id": image.id, "modality": image.modality, "asset": image.asset, "path": None, "available": False}
    try:
        path = usable_asset(image.asset, base)
    except ScenarioError as exc:
        return info | {"reason": exc.message}
    return info | {"path": str(path), "available": True}


def tool_context(scenario: Scenario, reports: dict[str, str], out_dir: Path | None = None, model=None) -> ToolContext:
    """A tool context for a case: its images (with ground-truth mask paths) and the given results."""
    base = scenario_folder(scenario)
    images = {}
    for image in scenario.images:
        images[image.id] = image_info(image, base)
        if image.mask:
            with contextlib.suppress(ScenarioError):  # an unusable mask is left out (validate reports it)
                images[image.id]["mask"] = str(usable_asset(image.mask, base))
    return ToolContext(scenario=scenario, images=images, reports=reports, out_dir=out_dir, model=model)


@dataclass
class StepResult:
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict = field(default_factory=dict)


class Clinic:
    """One simulated consultation at a time: ``reset(scenario)``, then ``await step(action)``."""

    def __init__(self, patient: Patient, measurement: Measurement, judge: Judge,
                 budget: Budget | None = None, prices: PriceTable | None = None,
                 image_policy: ImagePolicy = "on-request", patient_biases: list[str] | None = None,
                 tool_model=None, weights: ScoreWeights | dict | str | None = None, rubric_model=None):
        if image_policy not in IMAGE_POLICIES:
            raise ConfigError(f"unknown image policy {image_policy!r}; expected one of: {', '.join(IMAGE_POLICIES)}")
        self.patient, self.measurement, self.judge = patient, measurement, judge
        self.budget = budget or Budget()
        self.prices = prices or price_table()
        self.image_policy = image_policy
        self.patient_biases = list(patient_biases or [])  # configured; recorded as ignored by agents without biases
        self.tool_model = tool_model  # a ChatModel for model-backed tools (the report checker), or None
        self.weights = ScoreWeights.parse(weights)  # the composite reward's axis weights
        self.score_axes: tuple[str, ...] | None = None  # score only these axes (fast training rewards); None: all
        self.rubric_model = rubric_model  # grades communication; None: the judge's model, if it has one
        self.station_turns: int | None = None  # a cap on a station's own turn budget (None: the station's)
        self._station_patient = None  # the patient that plays stations (built on first use)
        self._next_reply: str | None = None
        self.scenario: Scenario | None = None
        self.out_dir: Path | None = None
        self.ledger = Ledger(budget=self.budget, price_table=self.prices.version)
        self.record = EpisodeRecord(scenario_id="")  # the episode's record; a fresh one at every reset
        self.done = True  # no episode in play until reset
        self._embedder: str | None = None

    @property
    def embedder(self) -> str | None:
        """The sentence embedder the environment's agents match text with (name@version or "lexical"), or
        None when none uses one; loading it fails loudly (``agentclinic.agents.embeddings``)."""
        if self._embedder is None:
            self._embedder = embedders_used({"patient": self.patient, "measurement": self.measurement,
                                             "judge": self.judge})
        return self._embedder

    def reset(self, scenario: Scenario, seed: int | None = None, out_dir: Path | None = None) -> tuple[str, dict]:
        """Start an episode with a fresh record; ``out_dir`` is where tools write their files (overlays), a
        temporary folder if None."""
        budget = self._budget_for(scenario)
        self.record = EpisodeRecord(scenario_id=scenario.id, kind=scenario.kind, scenario_hash=scenario_hash(scenario),
                                    specialty=scenario.specialty, seed=seed, max_turns=budget.turns,
                                    price_table=self.prices.version)
        self.scenario, self.out_dir, self.done = scenario, out_dir, True
        self.ledger = Ledger(budget=budget, price_table=self.prices.version)
        self.record.embedder = self.embedder
        self._next_reply = None
        self.active_patient.reset(scenario, seed)
        if scenario.is_station:
            self.record.extra["kind"] = "conversation"
            self.done = False
            return self._station_brief(scenario), self._info()
        self.measurement.reset(scenario, seed)
        self.done = False
        if (bias := self._patient_bias()) is not None:
            self.record.extra["biases"] = {"patient": bias}
        brief = case_brief(scenario)
        upfront: list[dict] = []
        if self.image_policy == "upfront":
            upfront = [self.image_info(image) for image in scenario.images]
            self.record.extra |= {"image_policy": self.image_policy, "images_upfront": upfront}
            if upfront:
                brief += "\n\n" + self._image_lines(scenario.images, upfront)
        info = self._info()
        info["images"] = list(upfront)
        return brief, info

    @property
    def active_patient(self) -> Patient:
        """Who answers in the episode in play: the configured patient, or for a station its station patient."""
        if self.scenario is not None and self.scenario.is_station:
            if self._station_patient is None:
                from agentclinic.agents.emotional_patient import conversation_patient_for

                self._station_patient = conversation_patient_for(self.patient)
            return self._station_patient
        return self.patient

    def _budget_for(self, scenario: Scenario) -> Budget:
        if not scenario.is_station:
            return self.budget
        turns = scenario.conversation.budget.turns
        return Budget(turns=min(turns, self.station_turns) if self.station_turns else turns)

    @staticmethod
    def _station_brief(scenario: Scenario) -> str:
        conversation = scenario.conversation
        people = "; ".join(f"{p.name} ({p.role})" for p in conversation.participants)
        return (f"{scenario.doctor_brief}\n\nSetting: {conversation.setting}\nWho is here: {people}\n"
                f"Your task: {conversation.task}\n(Type END CONVERSATION when you have finished.)")

    def set_next_patient_reply(self, text: str) -> None:
        """An instructor takes over the person's next reply in a station (the state machine still runs)."""
        if self.scenario is None or not self.scenario.is_station:
            raise AgentClinicError("taking over the patient's reply is for conversation stations")
        self.active_patient.set_next_reply(text)

    async def end(self, reason: str | None = None) -> StepResult:
        """End the episode in play without a turn: the learner stopped (a station: "completed"; a diagnostic
        case: "no-diagnosis"), or ``reason="time"`` / ``"turns"``: a budget ran out ("ended-by-budget")."""
        if self.done:
            raise AgentClinicError("the episode is over (or never started): call reset() first")
        record = self.record
        if reason:
            record.truncated_by = reason
        if self.scenario.is_station:
            record.outcome = "ended-by-budget" if reason else "completed"
        else:
            record.outcome, record.extra["ended_by"] = "no-diagnosis", reason or "doctor"
        self.done = True
        reward = await self._score([])
        return StepResult("The conversation is over." if self.scenario.is_station else "The consultation is over.",
                          reward, reason is None, reason is not None, self._info(record.events[-1] if record.events
                                                                                  else None))

    def image_info(self, image: Image) -> dict:
        """An image of the case as the doctor receives it: id, modality, asset, local path, availability."""
        return image_info(image, scenario_folder(self.scenario))

    @staticmethod
    def _image_lines(images: list[Image], infos: list[dict]) -> str:
        lines = []
        for image, info in zip(images, infos):
            note = "attached" if info["available"] else (
                "unavailable offline (remote)" if image.remote else "unavailable")
            lines.append(f"- {image.id} ({image.modality}): {note}. {image.description or 'No report.'}")
        return "Images:\n" + "\n".join(lines)

    def _patient_bias(self) -> dict | None:
        """The patient's biases this episode: as applied by an LLM patient, or configured but ignored."""
        applied = getattr(self.patient, "bias_info", None)
        if applied:
            return applied
        if self.patient_biases:
            from agentclinic.agents.biases import not_applied

            agent = getattr(self.patient, "name", None) or type(self.patient).__name__
            record = not_applied("patient", self.patient_biases, "scripted" if "Scripted" in agent else agent)
            return record.record() if record else None
        return None

    def _info(self, event: Event | None = None) -> dict:
        record = self.record
        info = {"scenario": record.scenario_id or None, "turn": self.ledger.turns, "ledger": self.ledger.snapshot(),
                "outcome": record.outcome, "truncated_by": record.truncated_by,
                "action": event.kind if event else None, "error": event.error if event else None,
                "verdict": record.verdict.model_dump() if record.verdict else None,
                "images": list(event.images) if event else [], "embedder": record.embedder or "none"}
        if record.scores is not None and event is not None:
            info |= {"axes": dict(record.scores.axes), "composite": record.scores.composite, "scores": record.scores}
        if self.scenario is not None and self.scenario.is_station:
            info["conversation"] = self._conversation_info()
            if "feedback" in record.extra:
                info["feedback"] = record.extra["feedback"]
        return info

    def _conversation_info(self) -> dict:
        """A station's state after the last turn: moves, emotion, mood, what was delivered, concerns revealed."""
        patient = self.active_patient
        tracker = getattr(patient, "tracker", None)
        last = tracker.turns[-1] if tracker is not None and tracker.turns else None
        return {"moves": list(last.moves) if last else [], "emotion": dict(last.state) if last else (
                    tracker.state.as_dict() if tracker is not None else None),
                "mood": last.mood if last else None, "delivered": sorted(tracker.delivered) if tracker else [],
                "concerns": list(getattr(patient, "revealed", [])), "turn": self.ledger.turns}

    async def step(self, message: object, doctor_ms: float = 0.0,
                   doctor_calls: list[dict] | None = None, fallback: str | None = None) -> StepResult:
        """Apply one doctor output (anything: see ``parse_action``); every call costs a turn and records one
        event, a malformed one too (an ``Error: ...`` observation; the event keeps the output, JSON-safe).

        ``doctor_calls`` are the model calls the doctor made to choose this action, and ``fallback`` why the
        doctor's own fallback rather than its model chose it (for the record; None: it did not).
        """
        if self.done:
            raise AgentClinicError("the episode is over (or never started): call reset() first")
        started = time.perf_counter()
        self.ledger.turns += 1
        event = Event(turn=self.ledger.turns, doctor=raw_output(message), observation="", fallback=fallback)
        reward, terminated = 0.0, False
        calls: list[dict] = list(doctor_calls or [])
        token = CALL_LOG.set(calls)
        try:
            action = parse_action(message)
            event.action = action.model_dump()
            event.observation, reward, terminated = await self._apply(action, event)
        except ActionError as exc:
            event.error = str(exc)
            event.observation = f"Error: {exc}"
        finally:
            CALL_LOG.reset(token)
        event.model_calls = calls
        record = self.record
        truncated = False
        if not terminated and record.truncated_by is None and self.ledger.turns_left == 0:
            record.truncated_by = "turns"
        if record.truncated_by and not terminated:
            truncated = True
            record.outcome = "ended-by-budget" if self.scenario.is_station else "no-diagnosis"
            event.observation += (f"\nThe consultation is over: the {record.truncated_by.replace('_', ' ')} "
                                  "budget is used up.")
        self.done = terminated or truncated
        event.ledger = self.ledger.snapshot()
        event.env_ms = (time.perf_counter() - started) * 1000
        event.doctor_ms = doctor_ms
        self._append(event)
        if self.done:
            reward = await self._score(calls)
            event.env_ms = (time.perf_counter() - started) * 1000
        return StepResult(event.observation, reward, terminated, truncated, self._info(event))

    def _append(self, event: Event) -> None:
        """Add a turn's event to the record, and the ledger's totals."""
        record = self.record
        record.events.append(event)
        record.turns, record.tests = self.ledger.turns, self.ledger.tests
        record.tool_calls, record.cost = self.ledger.tool_calls, self.ledger.cost

    async def _score(self, calls: list[dict]) -> float:
        """Score the record (``agentclinic.scoring.score_episode``); the composite is the terminal reward. A
        grading model's calls go into ``calls`` (the last event's)."""
        grader = self.rubric_model or getattr(self.judge, "model", None)
        settings = getattr(self.judge, "settings", None) if self.rubric_model is None else None
        token = CALL_LOG.set(calls)
        try:
            scores = await score_episode(self.scenario, self.record, self.weights, judge=self.judge,
                                         prices=self.prices, grader=grader, grader_settings=settings,
                                         axes=self.score_axes)
        finally:
            CALL_LOG.reset(token)
        self.record.scores, self.record.reward = scores, scores.composite
        if self.scenario.is_station and (details := scores.details.get("conversation", {})).get("feedback"):
            self.record.extra["feedback"] = details["feedback"]
        return scores.composite

    async def rate(self) -> list[dict]:
        """After the episode: the patient's ratings of the consultation into ``record.patient_ratings`` (None
        for patients that give none, e.g. scripted; a failure is recorded there, never raised). Returns the
        model calls they took."""
        from agentclinic.scoring.ratings import patient_ratings

        calls: list[dict] = []
        if self.scenario is not None and self.scenario.is_station:
            self.record.patient_ratings = None  # a station is graded on its rubrics, not on ratings
            return calls
        token = CALL_LOG.set(calls)
        try:
            ratings = await patient_ratings(self.patient)
        except Exception as exc:  # noqa: BLE001 - the episode is already played; keep it
            model = getattr(getattr(self.patient, "model", None), "name", None)
            ratings = {"simulated": True, "model": model, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            CALL_LOG.reset(token)
        if ratings is not None and calls:
            ratings = ratings | {"model_calls": calls}
        self.record.patient_ratings = ratings
        return calls

    async def fail(self, error: str) -> EpisodeRecord:
        """End the episode in play as an error (the doctor or an agent raised): the record keeps every turn
        played and is scored like any other (no diagnosis credit); a failure to score leaves it unscored."""
        record = self.record
        self.done = True
        record.outcome, record.error, record.correct = "error", error, False
        try:
            await self._score([])
        except Exception as exc:  # noqa: BLE001 - the episode already failed; keep its record
            record.scores, record.reward = None, 0.0
            record.error += f"\n(not scored: {type(exc).__name__}: {exc})"
        return record

    async def _apply(self, action: Action, event: Event) -> tuple[str, float, bool]:
        turn = self.ledger.turns
        if self.scenario.is_station:
            return await self._apply_station(action, event)
        if isinstance(action, End):
            self.record.outcome, self.record.extra["ended_by"] = "no-diagnosis", "doctor"
            return "The consultation is over (ended without a diagnosis).", 0.0, True
        if isinstance(action, Ask):
            reply = await self.patient.reply(action.text, turn)
            known = {d for _, d in self.record.disclosed}
            self.record.disclosed += [(turn, f) for f in reply.disclosed if f not in known]
            event.disclosed = reply.disclosed
            return f"Patient: {reply.text}", 0.0, False
        if isinstance(action, Examine):
            findings = await self.measurement.examine(action.system)
            event.findings = [_finding(f) for f in findings]
            lines = [f"- {f.name + ': ' if f.name else ''}{f.result}" for f in findings]
            return "Examination:\n" + "\n".join(lines), 0.0, False
        if isinstance(action, OrderTests):
            lines = []
            for request in action.tests:
                finding = await self.measurement.order(request)
                if finding.available:
                    price = self.prices.price_of(finding.price_code, finding.group) if finding.name else 0.0
                    if over := self.ledger.over_budget_if(tests=1, money=price):
                        self.record.truncated_by = over
                        lines.append(f"- {request}: not done, the {over.replace('_', ' ')} budget is used up")
                        break
                    self.ledger.charge_test(finding.name or request, price)
                event.findings.append(_finding(finding))
                lines.append(f"- {finding.name or request}: {finding.result}")
            return "Test results:\n" + "\n".join(lines), 0.0, False
        if isinstance(action, RequestImage):
            images = [m for m in self.scenario.images if action.image_id in (None, m.id)]
            if not images:
                known = ", ".join(m.id for m in self.scenario.images) or "none"
                raise ActionError(f"no image {action.image_id!r} in this case (images: {known})"
                                  if action.image_id else "this case has no images")
            infos = [self.image_info(image) for image in images]
            event.images.extend(infos)
            return self._image_lines(images, infos), 0.0, False
        if isinstance(action, CallTool):
            return await self._call_tool(action, event), 0.0, False
        assert isinstance(action, Diagnose)
        verdict = await self.judge.judge(action.primary, self.scenario)
        self.record.diagnosis, self.record.differential = action.primary, list(action.differential)
        self.record.verdict, self.record.correct = verdict, verdict.correct
        self.record.outcome = "correct" if verdict.correct else "incorrect"
        return f"Diagnosis recorded: {action.primary}", float(verdict.correct), True

    async def _apply_station(self, action: Action, event: Event) -> tuple[str, float, bool]:
        """A station's turn: talk to the person, or end the conversation; nothing else applies."""
        from agentclinic.agents.emotional_patient import speaker_label

        if isinstance(action, End):
            self.record.outcome = "completed"
            return "The conversation is over.", 0.0, True
        if not isinstance(action, Ask):
            raise ActionError(f"this is a conversation station: talk to the person, or type END CONVERSATION to "
                              f"finish ({action.type} does not apply)")
        reply = await self.active_patient.reply(action.text, self.ledger.turns)
        state = reply.conversation or {}
        event.moves, event.emotion = list(state.get("moves") or []), state.get("emotion")
        event.disclosed = reply.disclosed
        known = {d for _, d in self.record.disclosed}
        self.record.disclosed += [(self.ledger.turns, f) for f in reply.disclosed if f not in known]
        return f"{speaker_label(self.scenario)}: {reply.text}", 0.0, False

    def tool_context(self) -> ToolContext:
        """What a tool sees: the case's images (local paths, masks) and the results received so far."""
        reports = {f.name: f.result for e in self.record.events for f in e.findings if f.available and f.name}
        return tool_context(self.scenario, reports, out_dir=self.out_dir, model=self.tool_model)

    async def _call_tool(self, action: CallTool, event: Event) -> str:
        """Run an expert tool; its call, arguments, result or error and time go into ``event.tool``.
        A call with an unknown name or invalid arguments is an error observation and is not charged."""
        call = event.tool = ToolCall(name=action.name, arguments=action.arguments)
        try:
            tool, arguments = prepare_call(action.name, action.arguments)
            if over := self.ledger.over_budget_if(tool_calls=1):
                self.record.truncated_by = over
                call.error = f"not run: the {over.replace('_', ' ')} budget is used up"
                return f"Tool {action.name}: not run, the {over.replace('_', ' ')} budget is used up"
            self.ledger.charge_tool(action.name)
            result, seconds = await run_tool(tool, arguments, self.tool_context())
        except ToolError as exc:
            call.error, call.invalid_arguments = str(exc), isinstance(exc, ToolArgumentError)
            raise ActionError(str(exc)) from exc
        call.text, call.data, call.images, call.seconds = result.text, result.data, result.images, round(seconds, 4)
        return f"Tool {action.name}: {result.text}"


def _finding(finding: Finding) -> Finding:
    """A measurement answer as the record keeps it (a subclass's extra fields folded into ``Finding``)."""
    return finding if type(finding) is Finding else Finding.model_validate(finding.model_dump())


def scenario_hash(scenario: Scenario) -> str:
    """A short hash of a scenario's content, recorded with each episode (``rescore`` checks it)."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()[:16]
