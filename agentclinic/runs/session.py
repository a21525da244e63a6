"""A whole run: resolve the config, plan the episodes, play them with a progress bar, summarise.

Configuration comes from three layers, later ones winning: the defaults, a TOML file
(``--config``) and the command-line flags. The file takes the flags' names with underscores
(``max_turns``, ``patient_bias``, ``model_seed``...), and per-role tables ``[doctor]``,
``[patient]``, ``[measurement]``, ``[judge]`` holding ``model`` (the role's spec) and the role's
own decoding settings (``temperature``, ``max_tokens``, ``model_seed``, ``top_p``, ``timeout_s``).
A role may also be given as a plain string (``doctor = "openai/..."``). Unknown keys are errors.
Relative paths in the file (``scenarios``, ``cache``, ``out``) are relative to the file.
The score axes' weights (the composite reward) come from a ``[weights]`` table or a flag such as
``"diagnosis=0.8,coverage=0.2"`` (axes left out weigh 0; none given: the defaults, docs/scoring.md).

Decoding settings are the same for every role unless the file sets per-role values; a decoding
flag on the command line (``--temperature``, ``--max-tokens``, ``--model-seed``) sets that value
for every role, over the file. The resolved settings of each role are saved in ``run.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentclinic.backends.base import Settings
from agentclinic.env.ledger import Budget
from agentclinic.errors import ConfigError
from agentclinic.runs.runner import run_episodes
from agentclinic.runs.writer import RunWriter, check_run_id
from agentclinic.scenario.loaders import BANK_DIR, ScenarioSet, load_scenarios
from agentclinic.scenario.splits import Split, split_record, split_scenarios
from agentclinic.scenario.schema import Strict
from agentclinic.scoring.rewards import ScoreWeights

ROLES = ("doctor", "patient", "measurement", "judge")
DECODING = ("temperature", "max_tokens", "model_seed", "top_p", "timeout_s")


class RunConfig(Strict):
    """Everything that decides what a run plays (saved in run.json, checked on resume)."""

    scenarios: list[str]
    format: str | None = None
    doctor: str = "scripted"
    patient: str = "scripted"
    measurement: str = "scripted"
    judge: str = "scripted"
    patient_bias: list[str] = Field(default_factory=list)
    doctor_bias: list[str] = Field(default_factory=list)
    image_policy: Literal["on-request", "upfront"] = "on-request"
    cache: str | None = None
    settings: dict[str, Settings] = Field(default_factory=dict)  # per role, resolved
    episodes: int | None = Field(None, ge=1)
    seed: int = 0
    concurrency: int = Field(1, ge=1)
    executor: Literal["local", "ray"] = "local"  # how, not what: these four are not compared on resume
    ray_address: str | None = None
    workers: int | None = Field(None, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0)
    max_turns: int = Field(20, ge=1)
    max_tests: int | None = Field(None, ge=0)
    max_cost: float | None = Field(None, ge=0)
    weights: ScoreWeights = Field(default_factory=ScoreWeights)  # the composite reward's axis weights
    split: Split | None = None  # play only this split of the scenarios (agentclinic.scenario.splits)
    only: list[str] = Field(default_factory=list)  # play only these scenario ids (--scenario)
    kind: Literal["diagnostic", "conversation", "all"] = "diagnostic"  # which scenarios of the set (not for --scenario)

    def role_settings(self, role: str) -> Settings:
        return self.settings.get(role) or Settings()


class RoleTable(Strict):
    """A per-role table of the config file."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    model_seed: int | None = None
    top_p: float | None = None
    timeout_s: float | None = None


class FileConfig(Strict):
    """The TOML config file (``--config``): the flags' names, plus per-role tables."""

    scenarios: list[str] | str | None = None
    format: str | None = None
    doctor: str | RoleTable | None = None
    patient: str | RoleTable | None = None
    measurement: str | RoleTable | None = None
    judge: str | RoleTable | None = None
    patient_bias: list[str] | str | None = None
    doctor_bias: list[str] | str | None = None
    image_policy: Literal["on-request", "upfront"] | None = None
    cache: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    model_seed: int | None = None
    top_p: float | None = None
    timeout_s: float | None = None
    episodes: int | None = None
    seed: int | None = None
    concurrency: int | None = None
    executor: Literal["local", "ray"] | None = None
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    max_turns: int | None = None
    max_tests: int | None = None
    max_cost: float | None = None
    weights: dict[str, float] | str | None = None  # score axis weights: a [weights] table, or "axis=w,..."
    split: Literal["train", "validation", "test"] | None = None
    split_seed: int | None = None
    out: str | None = None
    run_id: str | None = None
    only: list[str] | str | None = None  # scenario ids to play (--scenario)
    kind: Literal["diagnostic", "conversation", "all"] | None = None


def load_config_file(path: str | Path) -> FileConfig:
    """Read and validate a TOML config; errors name the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = FileConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
    base = path.resolve().parent
    relative = lambda p: p if re.match(r"^[a-z]+:", p) or Path(p).is_absolute() else str(base / p)  # noqa: E731
    updates: dict[str, Any] = {}
    if config.scenarios is not None:
        items = [config.scenarios] if isinstance(config.scenarios, str) else config.scenarios
        updates["scenarios"] = [relative(p) for p in items]
    for key in ("cache", "out"):
        if getattr(config, key) is not None:
            updates[key] = relative(getattr(config, key))
    return config.model_copy(update=updates)


def _split(values: list[str] | str | None) -> list[str] | None:
    if values is None:
        return None
    items = [values] if isinstance(values, str) else values
    return [v for item in items for v in re.split(r"[\s,]+", item) if v]


def _settings(values: dict[str, Any], where: str) -> Settings:
    data = {("seed" if k == "model_seed" else k): v for k, v in values.items() if v is not None}
    if "seed" in data and data["seed"] is not None and data["seed"] < 0:
        data["seed"] = None  # a negative model seed means: send no seed
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from exc


def resolve_config(flags: dict[str, Any], config_file: str | Path | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config from defaults < the TOML file < flags (``None`` = flag not given).

    Returns the RunConfig and the options that are not part of it (``out``, ``run_id``)."""
    from agentclinic.agents.biases import check_biases
    from agentclinic.agents.llm_factory import parse_role_spec

    file = load_config_file(config_file) if config_file else FileConfig()
    unknown = set(flags) - set(FileConfig.model_fields) - {"resume"}
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in flags.items() if v is not None and k != "resume"}
    merged = {key: given.get(key, getattr(file, key)) for key in FileConfig.model_fields if key not in ROLES}
    specs: dict[str, str] = {}
    tables: dict[str, RoleTable | None] = {}
    for role in ROLES:  # a role: its spec (flag, file table's model, or file string) and its decoding table
        in_file = getattr(file, role)
        table = in_file if isinstance(in_file, RoleTable) else None
        specs[role] = str(given.get(role) or (table.model if table else in_file) or "scripted").strip()
        tables[role] = table
        parse_role_spec(role, specs[role])  # a bad spec fails here, before anything runs
    global_decoding = {k: merged.get(k) for k in DECODING}
    settings: dict[str, Settings] = {}
    for role in ROLES:
        values = dict(global_decoding)
        if tables[role] is not None:
            values |= {k: getattr(tables[role], k) for k in DECODING if getattr(tables[role], k) is not None}
        values |= {k: given[k] for k in DECODING if k in given}  # a flag sets every role
        settings[role] = _settings(values, f"{role} settings")
    scenarios = _split_paths(merged.get("scenarios")) or [str(BANK_DIR)]
    data = {
        "scenarios": scenarios, "format": merged.get("format"), **specs,
        "patient_bias": check_biases("patient", _split(merged.get("patient_bias"))),
        "doctor_bias": check_biases("doctor", _split(merged.get("doctor_bias"))),
        "image_policy": merged.get("image_policy") or "on-request",
        "cache": str(merged["cache"]) if merged.get("cache") else None, "settings": settings,
        "weights": ScoreWeights.parse(merged.get("weights")),
        "split": Split.parse(merged.get("split"), seed=merged.get("split_seed")),
        "only": _split(merged.get("only")) or [],
        **({"kind": merged["kind"]} if merged.get("kind") else {}),
        **{k: merged[k] for k in ("episodes", "seed", "concurrency", "executor", "ray_address", "workers",
                                  "gpus_per_worker", "max_turns", "max_tests", "max_cost")
           if merged.get(k) is not None},
    }
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid run settings: {problems}") from exc
    return config, {"out": merged.get("out"), "run_id": merged.get("run_id")}


def _split_paths(values) -> list[str] | None:
    if values is None:
        return None
    return [str(v) for v in ([values] if isinstance(values, (str, Path)) else values)]


def _label(spec: str) -> str:
    """A spec as a folder-name part: 'openai/smollm2@http://127.0.0.1:8080/v1' -> 'openai-smollm2'."""
    text = spec.split("@", 1)[0].split("?", 1)[0]
    backend, slash, model = text.partition("/")
    if slash and backend in ("openai", "hf"):
        text = f"{backend}-{Path(model.rstrip('/')).name or model}"  # hf/<long path> -> hf-<file or folder name>
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "run"


class RunFactory:
    """Makes each concurrent episode's agents: a fresh clinic and doctor, over shared models."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.budget = Budget(turns=config.max_turns, tests=config.max_tests, money=config.max_cost)

    def clinic(self):
        from agentclinic.agents.llm_factory import build_clinic

        c = self.config
        clinic = build_clinic(patient=c.patient, measurement=c.measurement, judge=c.judge, settings=c.settings,
                              patient_bias=c.patient_bias, image_policy=c.image_policy, budget=self.budget,
                              cache=c.cache)
        clinic.weights = c.weights
        return clinic

    def doctor(self):
        from agentclinic.agents.doctors import make_doctor

        c = self.config
        try:
            return make_doctor(c.doctor, settings=c.role_settings("doctor"), max_turns=c.max_turns, cache=c.cache)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc


def run_session(config: RunConfig, *, out: Path, run_id: str | None = None, resume: bool = False,
                console: Console | None = None) -> tuple[Path, dict]:
    """Play the run described by ``config`` into ``out/run_id``; returns the folder and its summary."""
    if resume and not run_id:
        raise ConfigError("--resume needs the --run-id of the run to continue")
    run_id = check_run_id(run_id) if run_id is not None else \
        f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{_label(config.doctor)}"
    writer = RunWriter(out / run_id)
    writer.check(resume=resume)  # a bad or missing run folder fails here, before anything is written
    if not config.settings:
        config = config.model_copy(update={"settings": {role: Settings() for role in ROLES}})
    factory = RunFactory(config)
    factory.doctor()  # a bad doctor, model spec or option fails here, before the run folder is made
    embedder = factory.clinic().embedder  # loads it: a model that cannot load fails here, never silently lexical
    scenarios = load_scenarios(config.scenarios, format=config.format, skip_errors=True)
    if not scenarios.scenarios:
        raise ConfigError(f"no scenario could be loaded from {', '.join(config.scenarios)}"
                          + (f" (first error: {scenarios.errors[0]})" if scenarios.errors else ""))
    if console and scenarios.errors:
        console.print(f"[yellow]{len(scenarios.errors)} scenario records skipped[/yellow] "
                      f"(first: {escape(str(scenarios.errors[0]))})")
    if console and config.patient_bias and config.patient == "scripted":
        console.print("[yellow]note:[/yellow] the scripted patient ignores biases (recorded as not applied)")
    if console and config.doctor_bias and config.doctor.split(":")[0] in ("scripted", "random", "human"):
        console.print(f"[yellow]note:[/yellow] the {config.doctor.split(':')[0]} doctor ignores biases "
                      "(recorded as not applied)")
    split_saved = {}
    if config.split is not None:  # the run plays one split; run.json keeps every scenario's assignment
        split_saved = {"split_assignment": split_record(scenarios, config.split).assignment}
        scenarios = ScenarioSet(split_scenarios(scenarios, config.split), scenarios.errors)
        if not scenarios.scenarios:
            raise ConfigError(f"no scenario of {', '.join(config.scenarios)} is in the {config.split.name} split "
                              f"(seed {config.split.seed})")
    if not config.only and config.kind != "all":  # diagnostic cases by default: stations need a clinician
        chosen = [sc for sc in scenarios if sc.kind == config.kind]
        if not chosen:
            raise ConfigError(f"no {config.kind} scenario in {', '.join(config.scenarios)}; choose others with "
                              "--kind conversation|diagnostic|all or --scenario ID")
        scenarios = ScenarioSet(chosen, scenarios.errors)
    if config.only:  # --scenario ID: these cases only, in the order given
        unknown = [i for i in config.only if i not in scenarios.ids()]
        if unknown:
            raise ConfigError(f"no scenario {', '.join(map(repr, unknown))} in {', '.join(config.scenarios)} "
                              "(agentclinic scenarios list shows the ids)")
        scenarios = ScenarioSet([scenarios.get(i) for i in config.only], scenarios.errors)
    episodes = config.episodes or len(scenarios)
    saved = config.model_dump(mode="json") | {"episodes": episodes, "scenario_ids": scenarios.ids(),
                                              "embedder": embedder} | split_saved  # another embedder: refused
    with writer:  # the folder is locked from start to summary
        done = writer.start(saved, resume=resume)
        plan = [(i, scenarios.scenarios[i % len(scenarios)], config.seed + i) for i in range(episodes)
                if i not in done]
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, disable=console is None or config.doctor.startswith("human"))
        with progress:
            task = progress.add_task(f"{_label(config.doctor)} doctor", total=episodes, completed=len(done))
            if config.executor == "ray":
                _run_on_ray(plan, config, factory, writer, run_id, on_done=lambda _: progress.advance(task),
                            console=console)
            else:
                asyncio.run(run_episodes(plan, factory.clinic, factory.doctor, writer=writer, run_id=run_id,
                                         doctor_name=config.doctor, concurrency=config.concurrency,
                                         doctor_biases=config.doctor_bias, on_done=lambda _: progress.advance(task)))
        return writer.folder, writer.write_summary()


def _run_on_ray(plan, config: RunConfig, factory: RunFactory, writer: RunWriter, run_id: str, *, on_done,
                console: Console | None) -> None:
    """Play the plan on Ray actors (``agentclinic.runs.ray_executor``); the driver writes every record."""
    try:
        from agentclinic.runs.ray_executor import failure_record, run_on_ray
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray: pip install 'agentclinic[ray]' ({exc})") from exc
    stats = run_on_ray(plan, config.model_dump(mode="json"), writer=writer, run_id=run_id,
                       concurrency=config.concurrency, on_done=on_done, address=config.ray_address,
                       workers=config.workers, gpus_per_worker=config.gpus_per_worker,
                       failure=lambda item, cause: failure_record(factory, item, cause, run_id))
    (writer.folder / "ray.json").write_text(json.dumps(dataclasses.asdict(stats), indent=2))  # what the executor did
    if console and (stats.replaced or stats.failed):
        console.print(f"[yellow]Ray:[/yellow] {stats.replaced} workers replaced, {stats.replayed} episodes played "
                      f"again, {stats.failed} recorded as errors")
