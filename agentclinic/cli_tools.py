"""``agentclinic tool NAME`` (try any expert tool without an episode) and ``agentclinic kb build|search``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentclinic.errors import AgentClinicError

kb_app = typer.Typer(help="Build and search the retrieval tool's knowledge index.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)
Sources = Annotated[Optional[list[str]], typer.Option("--source", help="kb, icd10 or hpo (repeatable)")]


def _fail(message: object, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {escape(str(message))}")
    raise typer.Exit(code)


def _context(images: list[str], scenario_id: str | None, scenarios: list[Path], out: Path | None):
    """A tool context from ``--image`` files and/or a scenario's images and results."""
    from agentclinic.env.clinic import tool_context
    from agentclinic.scenario.loaders import BANK_DIR, load_scenarios
    from agentclinic.tools import ToolContext

    if scenario_id:
        loaded = load_scenarios(scenarios or [BANK_DIR], skip_errors=True)
        case = next((s for s in loaded if s.id == scenario_id), None)
        if case is None:
            raise AgentClinicError(f"no scenario {scenario_id!r} under {', '.join(map(str, scenarios or [BANK_DIR]))}")
        context = tool_context(case, {t.name: t.result for t in case.tests}, out_dir=out)
    else:
        context = ToolContext(out_dir=out)
    for ref in images:
        image_id, _, path = ref.rpartition("=") if "=" in ref else (Path(ref).stem, "", ref)
        if not Path(path).is_file():
            raise AgentClinicError(f"--image {ref!r}: no such file {path}")
        context.images[image_id] = {"id": image_id, "path": str(Path(path).resolve()), "available": True,
                                    "modality": "unknown", "asset": path}
    return context


def tool_command(
    name: Annotated[str, typer.Argument(help="the tool's name (e.g. segment, retrieve, check_report)")],
    args: Annotated[str, typer.Option("--args", help="the tool's arguments as a JSON object")] = "{}",
    image: Annotated[Optional[list[str]], typer.Option(
        "--image", help="an image file, as PATH (id: the file stem) or ID=PATH; repeatable")] = None,
    scenario: Annotated[Optional[str], typer.Option("--scenario", help="a scenario id: its images and results")] = None,
    scenarios: Annotated[Optional[list[Path]], typer.Option(
        "--scenarios", help="where to find --scenario (default: the bank)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="folder for the files the tool writes")] = None,
) -> None:
    """Run one expert tool and print its result as JSON (text, data, images written, seconds)."""
    from agentclinic.tools import TOOLS, call_tool

    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        _fail(f"--args is not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(arguments, dict):
        _fail("--args must be a JSON object")
    try:
        context = _context(image or [], scenario, scenarios or [], out)
        tool = TOOLS.get(name)
        if tool and len(context.images) == 1 and "image_id" in tool.Arguments.model_fields:
            arguments.setdefault("image_id", next(iter(context.images)))
        result, seconds = asyncio.run(call_tool(name, arguments, context))
    except AgentClinicError as exc:
        _fail(exc)
    print(json.dumps({"tool": name, "arguments": arguments, **result.model_dump(), "seconds": round(seconds, 4)},
                     indent=2, default=str))


@kb_app.command("build")
def kb_build(sources: Sources = None,
             force: Annotated[bool, typer.Option(help="rebuild even when the cache has it")] = False) -> None:
    """Build the index (embeddings + faiss + BM25) over the sources, cached on disk by corpus hash."""
    from agentclinic.tools.retrieval import build_index

    try:
        info = build_index(sources or None, force=force)
    except AgentClinicError as exc:
        _fail(exc)
    console.print(f"{info.passages} passages from {', '.join(f'{s} ({n})' for s, n in info.per_source.items())}; "
                  f"{'loaded from the cache' if info.cache_hit else 'built'} in {info.seconds:.1f} s "
                  f"[{info.model}, {info.cache_path}]")


@kb_app.command("search")
def kb_search(query: Annotated[str, typer.Argument(help="symptoms, findings or a disease name")],
              k: Annotated[int, typer.Option("-k", help="the most diseases to return")] = 5,
              sources: Sources = None,
              as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Search the knowledge index: ranked diseases with their best passage."""
    from agentclinic.tools.retrieval import search

    try:
        hits = search(query, k, sources or None)
    except AgentClinicError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([h.model_dump() for h in hits], indent=2))
        return
    table = Table(title=escape(f"{len(hits)} hits for {query!r}"))
    for column in ("#", "disease", "icd10", "source", "score", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, 1):
        table.add_row(*map(escape, (str(rank), hit.disease, hit.icd10 or "", hit.source, f"{hit.score:.3f}",
                                    hit.text[:120])))
    console.print(table)
