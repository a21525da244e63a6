"""Agents and clinics from role specs: ``scripted``, ``openai/<model>[@<url>][?...]``, ``hf/<path>[?...]``.

A role spec is a model spec plus, in its query, options for the *agent* (taken out before the
model is loaded, so the backend never sees them):

* doctor: ``mode=text|tools`` (default text) for ``LLMDoctor``, ``mode=graph|graph-text`` for the LangGraph
  ``GraphDoctor`` (function calling with the expert tools, or the text protocol only) with ``retries=N``
  (rejected replies fed back per turn); ``history=N`` (keep the brief and the last N turns);
* patient: ``history=N``.

The doctor may also be ``scripted``, ``random`` or ``human`` (with ``name:key=value`` options).
Models come from ``load_model`` (one instance per spec per process, shared by every role and
episode that names it); with ``cache`` each is wrapped in ``CachedModel(ReplayCache(cache))``
(one cache per path). Each call of ``build_clinic`` / ``make_agent_doctor`` makes fresh agents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from agentclinic.agents.biases import check_biases
from agentclinic.backends.base import ChatModel, ModelSpec, Settings, load_model
from agentclinic.backends.cache import CachedModel, ReplayCache
from agentclinic.env.ledger import Budget
from agentclinic.errors import ConfigError

ROLES = ("doctor", "patient", "measurement", "judge")
AGENT_OPTIONS: dict[str, tuple[str, ...]] = {"doctor": ("mode", "history", "retries"), "patient": ("history",),
                                             "measurement": (), "judge": ()}
NON_MODEL_DOCTORS = ("scripted", "random", "human")
DOCTOR_MODES = ("text", "tools", "graph", "graph-text")


class RoleSpec(BaseModel):
    """A parsed role spec: what plays the role, the model spec (without agent options) and agent options."""

    role: str
    text: str
    kind: Literal["scripted", "random", "human", "model"]
    model: ModelSpec | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.options.get("mode", "text")

    @property
    def history(self) -> int | None:
        return int(self.options["history"]) if "history" in self.options else None


def is_model_spec(spec: str) -> bool:
    return str(spec).strip().startswith(("openai/", "hf/"))


def parse_role_spec(role: str, spec: str) -> RoleSpec:
    """Parse ``spec`` for ``role``; a ``ConfigError`` names the role, the spec and what is expected."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    text = str(spec).strip()
    name = text.partition(":")[0].strip().lower()
    if role == "doctor" and name in NON_MODEL_DOCTORS:
        return RoleSpec(role=role, text=text, kind=name)
    if text.lower() == "scripted":
        return RoleSpec(role=role, text=text, kind="scripted")
    if not is_model_spec(text):
        known = "scripted, random, human" if role == "doctor" else "scripted"
        raise ConfigError(f"--{role} {text!r}: expected {known}, openai/<model>[@<base_url>] or hf/<path-or-name>")
    try:
        model = ModelSpec.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"--{role}: {exc}") from exc
    ours = {k: v for k, v in model.options.items() if k in AGENT_OPTIONS[role]}
    if "mode" in model.options and role != "doctor":
        raise ConfigError(f"--{role} {text!r}: 'mode' is an option of the doctor only")
    if ours.get("mode", "text") not in DOCTOR_MODES:
        raise ConfigError(f"--{role} {text!r}: mode={ours['mode']!r}; expected mode=text or mode=tools (LLM doctor), "
                          "or mode=graph or mode=graph-text (LangGraph doctor)")
    if "retries" in ours and not ours.get("mode", "").startswith("graph"):
        raise ConfigError(f"--{role} {text!r}: retries is an option of the graph doctor (mode=graph or graph-text)")
    if "retries" in ours and not ours["retries"].isdigit():
        raise ConfigError(f"--{role} {text!r}: retries={ours['retries']!r}; expected a whole number >= 0")
    if "history" in ours:
        try:
            if int(ours["history"]) < 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--{role} {text!r}: history={ours['history']!r}; expected a whole number >= 0") from None
    model = model.model_copy(update={"options": {k: v for k, v in model.options.items() if k not in ours}})
    return RoleSpec(role=role, text=text, kind="model", model=model, options=ours)


_CACHES: dict[str, ReplayCache] = {}
_CACHED: dict[tuple[str, str], CachedModel] = {}


def role_model(spec: ModelSpec | str, cache: str | Path | None = None) -> ChatModel:
    """The shared model for ``spec``, wrapped in the replay cache at ``cache`` when one is given."""
    model = load_model(spec)
    if cache is None:
        return model
    path = str(Path(cache).expanduser().resolve())
    key = (model.name, path)
    if key not in _CACHED:
        if path not in _CACHES:
            _CACHES[path] = ReplayCache(path)
        _CACHED[key] = CachedModel(model, _CACHES[path])
    return _CACHED[key]


def settings_for(settings: dict[str, Settings] | Settings | None, role: str) -> Settings:
    if settings is None:
        return Settings()
    if isinstance(settings, Settings):
        return settings
    value = settings.get(role)
    return value if isinstance(value, Settings) else Settings.model_validate(value or {})


def make_patient(spec: str = "scripted", settings: Settings | None = None, *, biases=None,
                 cache: str | Path | None = None):
    """The patient: ``ScriptedPatient`` (which ignores biases) or an ``LLMPatient``."""
    parsed = parse_role_spec("patient", spec)
    biases = check_biases("patient", biases)
    if parsed.kind == "scripted":
        from agentclinic.agents.patient import ScriptedPatient

        return ScriptedPatient()
    from agentclinic.agents.llm import LLMPatient

    return LLMPatient(role_model(parsed.model, cache), settings, biases=biases, history=parsed.history)


def make_measurement(spec: str = "scripted", settings: Settings | None = None, *, cache: str | Path | None = None):
    parsed = parse_role_spec("measurement", spec)
    from agentclinic.agents.measurement import ScriptedMeasurement

    if parsed.kind == "scripted":
        return ScriptedMeasurement()
    from agentclinic.agents.llm import LLMMeasurement

    return LLMMeasurement(role_model(parsed.model, cache), settings)


def make_judge(spec: str = "scripted", settings: Settings | None = None, *, cache: str | Path | None = None):
    parsed = parse_role_spec("judge", spec)
    from agentclinic.agents.judge import RuleJudge

    if parsed.kind == "scripted":
        return RuleJudge()
    from agentclinic.agents.llm import LLMJudge

    return LLMJudge(role_model(parsed.model, cache), settings)


def make_model_doctor(spec: str, settings: Settings | None = None, *, max_turns: int = 20,
                      cache: str | Path | None = None):
    """An ``LLMDoctor`` from a model spec (``?mode=text|tools``, ``?history=N``), or with ``?mode=graph`` /
    ``?mode=graph-text`` (and ``&retries=N``) the LangGraph ``GraphDoctor``."""
    parsed = parse_role_spec("doctor", spec)
    if parsed.kind != "model":
        raise ConfigError(f"--doctor {spec!r} is not a model spec")
    if parsed.mode.startswith("graph"):
        from agentclinic.agents.langgraph_doctor import GraphDoctor

        retries = {"retries": int(parsed.options["retries"])} if "retries" in parsed.options else {}
        return GraphDoctor(role_model(parsed.model, cache), settings, mode="text" if parsed.mode == "graph-text"
                           else "tools", max_turns=max_turns, history=parsed.history, name=parsed.text, **retries)
    from agentclinic.agents.llm import LLMDoctor

    return LLMDoctor(role_model(parsed.model, cache), settings, mode=parsed.mode, max_turns=max_turns,
                     history=parsed.history, name=parsed.text)


def build_clinic(*, patient: str = "scripted", measurement: str = "scripted", judge: str = "scripted",
                 settings: dict[str, Settings] | Settings | None = None, patient_bias=None,
                 image_policy: str = "on-request", budget: Budget | None = None, cache: str | Path | None = None,
                 prices=None):
    """A clinic with fresh agents for the given role specs (models shared through ``load_model``)."""
    from agentclinic.env.clinic import Clinic

    biases = check_biases("patient", patient_bias)
    return Clinic(make_patient(patient, settings_for(settings, "patient"), biases=biases, cache=cache),
                  make_measurement(measurement, settings_for(settings, "measurement"), cache=cache),
                  make_judge(judge, settings_for(settings, "judge"), cache=cache),
                  budget=budget, prices=prices, image_policy=image_policy, patient_biases=biases)


__all__ = ["ROLES", "RoleSpec", "parse_role_spec", "is_model_spec", "role_model", "settings_for", "make_patient",
           "make_measurement", "make_judge", "make_model_doctor", "build_clinic"]
