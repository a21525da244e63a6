"""Episodes per second against a model endpoint with a fixed latency: the local executor and Ray, K at once.

    .venv/bin/python benchmarks/scale.py [--latency 0.2] [--ks 1,4,16,64,256] [--episodes 512] [--workers 2]

The doctor is ``openai/fixed@<endpoint>?concurrency=K`` against a small OpenAI-compatible server started here
that waits ``--latency`` seconds per request and answers like a doctor (a few questions, then a diagnosis);
patient, measurement agent and judge are the scripted ones. So the figures are the harness's own capacity
when the model is not the bottleneck: use them to size a cluster. Each K plays max(16, 2K) episodes (at most
``--episodes``) after one warm-up run per executor (models, indexes and caches loaded in this process);
a Ray run starts its actors afresh, so its figures include the actors' start-up. Printed per executor and K:
episodes/s, the speed-up over K=1 of the same executor, and the harness's CPU seconds per episode (driver
and workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from agentclinic.runs.session import RunConfig, run_session
from agentclinic.scenario.loaders import BANK_DIR

QUESTIONS = ["What brings you in today?", "When did it start?", "Any other symptoms?", "Any medical history?"]


def reply(messages: list[dict], turn_limit: int = 5) -> str:
    asked = sum(m.get("role") == "assistant" for m in messages)
    if asked < len(QUESTIONS) and asked < turn_limit - 1:
        return QUESTIONS[asked]
    return "DIAGNOSIS READY: community-acquired pneumonia"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            await asyncio.sleep(latency)
            text = reply(body.get("messages", []))
            payload = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fixed",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": text}}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
            data = payload.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve(latency: float, ports) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: handle(r, w, latency), "127.0.0.1", 0, backlog=1024)
        ports.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def serve(latency: float) -> int:
    """Start the fixed-latency endpoint in its own process (not competing with the harness for the GIL);
    returns its port."""
    ports = multiprocessing.Queue()
    multiprocessing.Process(target=_serve, args=(latency, ports), daemon=True).start()
    return ports.get(timeout=60)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def measure(executor: str, k: int, port: int, episodes: int, workers: int, out: Path) -> dict:
    config = RunConfig(scenarios=[str(BANK_DIR / "pulmonology")], episodes=episodes, concurrency=k,
                       doctor=f"openai/fixed@http://127.0.0.1:{port}/v1?concurrency={k}&mode=text",
                       executor=executor, workers=workers if executor == "ray" else None, max_turns=6)
    cpu, started = cpu_seconds(), time.perf_counter()
    _, summary = run_session(config, out=out, run_id=f"{executor}-{k}")
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    startup = 0.0
    if executor == "ray":  # the executor's own account (ray.json in the run folder)
        stats = json.loads((out / f"{executor}-{k}" / "ray.json").read_text())
        cpu, startup = cpu + stats["worker_cpu_seconds"], stats["startup_s"]
    return {"executor": executor, "k": k, "episodes": summary["episodes"], "errors": summary["errors"],
            "seconds": seconds, "startup_s": startup, "episodes_per_s": summary["episodes"] / seconds,
            "after_startup_per_s": summary["episodes"] / (seconds - startup), "cpu_per_episode": cpu / episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--ks", default="1,4,16,64,256")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="local,ray")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    port = serve(args.latency)
    out = Path(tempfile.mkdtemp(prefix="agentclinic-scale-"))
    rows = []
    try:
        for executor in args.executors.split(","):
            measure(executor, 4, port, 8, args.workers, out / "warm-up")
            for k in map(int, args.ks.split(",")):
                rows.append(measure(executor, k, port, min(args.episodes, max(16, 2 * k)), args.workers, out))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    base = {r["executor"]: r["episodes_per_s"] for r in rows if r["k"] == min(map(int, args.ks.split(",")))}
    print(f"\nlatency {args.latency} s per model call, max(16, 2K) episodes of at most 6 turns, "
          f"{os.cpu_count()} CPUs, Ray workers {args.workers}")
    print("| executor | K | episodes | episodes/s | speed-up over K=1 | actors' start-up s | episodes/s after it "
          "| CPU s per episode | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['executor']} | {r['k']} | {r['episodes']} | {r['episodes_per_s']:.2f} "
              f"| {r['episodes_per_s'] / base[r['executor']]:.1f}x | {r['startup_s']:.1f} "
              f"| {r['after_startup_per_s']:.2f} | {r['cpu_per_episode']:.3f} | {r['errors']} |")


if __name__ == "__main__":
    main()
