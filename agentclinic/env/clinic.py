"""The clinic: the async core of an episode. The environment owns the patient, the
measurement agent, the judge, the tools, the ledger and the event log; the doctor is
outside it and only sends actions.

Images: every step's ``info["images"]`` (and the event's ``images``) lists the images that
came back with it, as dicts with ``id``, ``modality``, ``asset``, ``path`` (the local file,
resolved relative to the scenario file; None when unavailable), ``available`` and, when
unavailable, ``reason`` (remote assets, missing files). The image policy decides when they come:
``on-request`` (default: when the doctor requests them) or ``upfront`` (all of them with the
brief, in ``reset``'s info, the brief listing them; requesting them later still works).

Reward: 0 on every step but the last; when the episode ends (a diagnosis, or a budget used up)
it is scored on every axis (``agentclinic.scoring``) and the reward is the weighted composite
(``weights``). The final ``info`` has ``axes`` (axis -> value in [0, 1] or None), ``composite``
and ``scores`` (the evidence), so RL code can weight the axes itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentclinic.agents.base import Judge, Measurement, Patient, Verdict
from agentclinic.backends.base import CALL_LOG
from agentclinic.env.actions import (
    Action, ActionError, Ask, CallTool, Diagnose, Examine, OrderTests, RequestImage, parse_action, raw_output)
from agentclinic.env.ledger import Budget, Ledger
from agentclinic.errors import AgentClinicError, ConfigError, ScenarioError
from agentclinic.runs.record import Event
from agentclinic.scenario.assets import check_asset, resolve_asset
from agentclinic.scenario.loaders import source_of
from agentclinic.scenario.prices import PriceTable, price_table
from agentclinic.scenario.schema import Image, Scenario
from agentclinic.scoring.rewards import ScoreWeights, score_episode
from agentclinic.scoring.state import EpisodeState

from agentclinic.tools import ToolArgumentError, ToolContext, ToolError
from agentclinic.tools.registry import prepare_call, run_tool

ImagePolicy = Literal["on-request", "upfront"]
IMAGE_POLICIES = ("on-request", "upfront")


def scenario_folder(scenario: Scenario | None) -> Path | None:
    """The folder of the file a scenario was read from (asset paths are relative to it)."""
    source = source_of(scenario) if scenario is not None else None
    return Path(source.path).parent if source is not None else None


def image_info(image: Image, base: Path | None) -> dict:
    """An image as the doctor receives it: id, modality, asset, local path (None when unavailable), and
    ``available``, or the ``reason`` it is not."""
    info = {"id": image.id, "modality": image.modality, "asset": image.asset, "path": None, "available": False}
    try:
        path = resolve_asset(image.asset, base)
    except ScenarioError as exc:
        return info | {"reason": exc.message}
    problem = check_asset(image.asset, base)
    if problem is not None:
        return info | {"reason": problem}
    return info | {"path": str(path), "available": True}


def tool_context(scenario: Scenario, reports: dict[str, str], out_dir: Path | None = None, model=None) -> ToolContext:
    """A tool context for a case: its images (with ground-truth mask paths) and the given results."""
    base = scenario_folder(scenario)
    images = {}
    for image in scenario.images:
        images[image.id] = image_info(image, base)
        if image.mask and check_asset(image.mask, base) is None:
            images[image.id]["mask"] = str(resolve_asset(image.mask, base))
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
        self.rubric_model = rubric_model  # grades communication; None: the judge's model, if it has one
        self.scores: dict | None = None
        self.scenario: Scenario | None = None
        self.upfront_images: list[dict] = []
        self.out_dir: Path | None = None

    def reset(self, scenario: Scenario, seed: int | None = None, out_dir: Path | None = None) -> tuple[str, dict]:
        """Start an episode; ``out_dir`` is where tools write their files (overlays), a temporary folder if None."""
        self.scenario, self.seed, self.out_dir = scenario, seed, out_dir
        self.patient.reset(scenario, seed)
        self.measurement.reset(scenario, seed)
        self.ledger = Ledger(budget=self.budget, price_table=self.prices.version)
        self.events: list[Event] = []
        self.done = False
        self.outcome: str | None = None
        self.truncated_by: str | None = None
        self.diagnosis: Diagnose | None = None
        self.verdict: Verdict | None = None
        self.scores = None
        self.disclosed: list[tuple[int, str]] = []
        brief = scenario.doctor_brief
        if any(image.remote for image in scenario.images):
            brief += " (Note: this case's images are remote and unavailable offline; it runs text-only.)"
        self.upfront_images = []
        if self.image_policy == "upfront" and scenario.images:
            self.upfront_images = [self.image_info(image) for image in scenario.images]
            brief += "\n\n" + self._image_lines(scenario.images, self.upfront_images)
        info = self._info()
        info["images"] = list(self.upfront_images)
        return brief, info

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

    def bias_record(self) -> dict | None:
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
        return {"scenario": self.scenario.id if self.scenario else None, "turn": self.ledger.turns,
                "ledger": self.ledger.snapshot(), "outcome": self.outcome, "truncated_by": self.truncated_by,
                "action": event.action["type"] if event and event.action else None,
                "error": event.error if event else None,
                "verdict": self.verdict.model_dump() if self.verdict else None,
                "images": list(event.images) if event else [],
                **({"axes": dict(self.scores["axes"]), "composite": self.scores["composite"], "scores": self.scores}
                   if self.scores is not None and event is not None else {})}

    async def step(self, message: object, doctor_ms: float = 0.0,
                   doctor_calls: list[dict] | None = None) -> StepResult:
        """Apply one doctor output (anything: see ``parse_action``); every call costs a turn and records one
        event, a malformed one too (an ``Error: ...`` observation; the event keeps the output, JSON-safe).

        ``doctor_calls`` are the model calls the doctor made to choose this action (for the record).
        """
        if self.scenario is None or self.done:
            raise AgentClinicError("the episode is over (or never started): call reset() first")
        started = time.perf_counter()
        self.ledger.turns += 1
        event = Event(turn=self.ledger.turns, doctor=raw_output(message), observation="")
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
        truncated = False
        if not terminated and self.truncated_by is None and self.ledger.turns_left == 0:
            self.truncated_by = "turns"
        if self.truncated_by and not terminated:
            truncated, self.outcome = True, "no-diagnosis"
            event.observation += f"\nThe consultation is over: the {self.truncated_by.replace('_', ' ')} budget is used up."
        self.done = terminated or truncated
        event.ledger = self.ledger.snapshot()
        event.env_ms = (time.perf_counter() - started) * 1000
        event.doctor_ms = doctor_ms
        self.events.append(event)
        if self.done:
            reward = await self._finish(calls)
            event.env_ms = (time.perf_counter() - started) * 1000
        return StepResult(event.observation, reward, terminated, truncated, self._info(event))

    async def _finish(self, calls: list[dict]) -> float:
        """Score the ended episode (every axis and the composite, ``self.scores``); the composite is the
        terminal reward. A grading model's calls go into the last event's ``calls``."""
        model = self.rubric_model or getattr(self.judge, "model", None)
        settings = getattr(self.judge, "settings", None) if self.rubric_model is None else None
        token = CALL_LOG.set(calls)
        try:
            self.scores = await score_episode(self.scenario, EpisodeState.from_clinic(self), self.weights,
                                              rule_judge=self.judge, prices=self.prices, rubric_model=model,
                                              rubric_settings=settings)
        finally:
            CALL_LOG.reset(token)
        return self.scores["composite"]

    async def _apply(self, action: Action, event: Event) -> tuple[str, float, bool]:
        turn = self.ledger.turns
        if isinstance(action, Ask):
            reply = await self.patient.reply(action.text, turn)
            new = [f for f in reply.disclosed if f not in {d for _, d in self.disclosed}]
            self.disclosed += [(turn, f) for f in new]
            event.disclosed = reply.disclosed
            return f"Patient: {reply.text}", 0.0, False
        if isinstance(action, Examine):
            findings = await self.measurement.examine(action.system)
            event.findings = [f.model_dump() for f in findings]
            lines = [f"- {f.name + ': ' if f.name else ''}{f.result}" for f in findings]
            return "Examination:\n" + "\n".join(lines), 0.0, False
        if isinstance(action, OrderTests):
            lines = []
            for request in action.tests:
                finding = await self.measurement.order(request)
                if finding.available:
                    price = self.prices.price_of(finding.price_code, finding.group) if finding.name else 0.0
                    if over := self.ledger.over_budget_if(tests=1, money=price):
                        self.truncated_by = over
                        lines.append(f"- {request}: not done, the {over.replace('_', ' ')} budget is used up")
                        break
                    self.ledger.charge_test(finding.name or request, price)
                event.findings.append(finding.model_dump())
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
        self.diagnosis = action
        self.verdict = await self.judge.judge(action.primary, self.scenario)
        self.outcome = "correct" if self.verdict.correct else "incorrect"
        return f"Diagnosis recorded: {action.primary}", float(self.verdict.correct), True

    def tool_context(self) -> ToolContext:
        """What a tool sees: the case's images (local paths, masks) and the results received so far."""
        reports = {f["name"]: f["result"] for e in self.events for f in e.findings if f.get("available") and f.get("name")}
        return tool_context(self.scenario, reports, out_dir=self.out_dir, model=self.tool_model)

    async def _call_tool(self, action: CallTool, event: Event) -> str:
        """Run an expert tool; its call, arguments, result or error and time go into ``event.tool``.
        A call with an unknown name or invalid arguments is an error observation and is not charged."""
        event.tool = {"name": action.name, "arguments": action.arguments}
        try:
            tool, arguments = prepare_call(action.name, action.arguments)
            if over := self.ledger.over_budget_if(tool_calls=1):
                self.truncated_by = over
                event.tool["error"] = f"not run: the {over.replace('_', ' ')} budget is used up"
                return f"Tool {action.name}: not run, the {over.replace('_', ' ')} budget is used up"
            self.ledger.charge_tool(action.name)
            result, seconds = await run_tool(tool, arguments, self.tool_context())
        except ToolError as exc:
            event.tool |= {"error": str(exc), "invalid_arguments": isinstance(exc, ToolArgumentError)}
            raise ActionError(str(exc)) from exc
        event.tool |= {"text": result.text, "data": result.data, "images": result.images, "seconds": round(seconds, 4)}
        return f"Tool {action.name}: {result.text}"
