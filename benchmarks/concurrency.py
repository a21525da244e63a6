"""Concurrent chat requests through the openai backend: requests/s and speed-up vs one at a time.

    .venv/bin/python benchmarks/concurrency.py [--delay 0.2] [--rounds 5] [--url http://127.0.0.1:8765/v1] [--no-fake]

(a) A local fake OpenAI endpoint (127.0.0.1, its own thread and event loop) that answers every
    request after a fixed delay: the ideal throughput at K concurrent requests is K / delay, so
    what is missing is the harness's own overhead (client, semaphore, parsing, HTTP).
(b) With --url, a real server (e.g. llama-cpp-python serving SmolLM2): what concurrency buys there.
(c) With --episodes, whole episodes through ``run_session`` (the CLI's path: LLM doctor and LLM patient
    on the endpoint, scripted measurement and judge, recording, scoring), K at a time versus one at a
    time: episodes per second and the speed-up. AgentClinic plays one call at a time with a 1 s sleep
    per turn. Against --url the models run with the backend's defaults, as a user's run would (only
    max_tokens is set; --options and --timeout change that): for a local server one request in flight,
    600 s timeout, timeouts not retried;
    the table adds the model calls made, the mean seconds per call and the episodes that failed.

For each K in --ks, K workers each send requests one after the other (--rounds each against the
fake endpoint; against --url enough rounds for at least --url-requests requests); the figure is all
requests / wall time, after one warm-up request. The model's concurrency limit is --concurrency
(default: the largest K; the backend's own default, 16, is shown as an extra row).

Measured here (2 shared CPUs): the fake endpoint scales to ~15x at K=16 (90% of ideal) and ~30-40x
at K=64, where the openai client's own CPU cost (~3 ms a request) becomes the limit;
llama-cpp-python's server runs one request at a time, so concurrency gains only ~1.1-1.3x there.
Whole episodes (--episodes, 4 turns, 200 ms endpoint): 3.9x at K=4, 13.1x at K=16, 27.8x at K=64.
Against llama-cpp-python serving SmolLM2 (--episodes --url ... --ks 1,4 --per-k 4 --turns 3
--max-tokens 32, default limits: one request in flight): 59.9 s at K=1, 31.3 s at K=4 (1.91x; the
server reuses the prompt prefix of consecutive same-role requests); --options 'local=0&concurrency=16'
--timeout 60 (the old defaults) at K=4: 32.1 s, 3.9 s a call (its wait on the server included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time

from agentclinic.backends.base import Message, Settings
from agentclinic.backends.openai_compat import DEFAULT_CONCURRENCY, OpenAIChatModel

REPLY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello there."}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}).encode()


class FakeEndpoint:
    """A minimal HTTP/1.1 keep-alive server answering every POST with REPLY after ``delay`` seconds."""

    def __init__(self, delay: float):
        self.delay, self.count = delay, 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake endpoint did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512))
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        self._ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.count += 1
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(REPLY)).encode() + b"\r\n\r\n" + REPLY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def close(self):
        async def stop():
            self.server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:  # connections the client left open
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def measure(model: OpenAIChatModel, k: int, rounds: int, settings: Settings) -> tuple[float, float]:
    """(requests per second, mean per-request latency in s) with ``k`` workers of ``rounds`` requests each."""
    latencies: list[float] = []

    async def worker(i: int):
        for r in range(rounds):
            result = await model.chat([Message(role="user", content=f"Say hello, {i}-{r}.")], settings)
            latencies.append(result.latency_s)

    await model.chat([Message(role="user", content="warm-up")], settings)
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(k)))
    elapsed = time.perf_counter() - started
    return k * rounds / elapsed, statistics.fmean(latencies)


async def table(title: str, url: str, ks: list[int], rounds, concurrency: int, settings: Settings,
                delay: float | None = None) -> None:
    print(f"\n{title}\n  {'K':>4} {'limit':>5} {'requests':>8} {'req/s':>9} {'speed-up':>9} {'mean latency':>13}"
          + (f" {'ideal req/s':>12} {'efficiency':>10}" if delay else ""))
    rows = [(k, concurrency) for k in ks]
    if max(ks) > DEFAULT_CONCURRENCY and concurrency != DEFAULT_CONCURRENCY:
        rows.append((max(ks), DEFAULT_CONCURRENCY))
    base = None
    for k, limit in rows:
        model = OpenAIChatModel(f"openai/bench@{url}?concurrency={limit}")
        rate, latency = await measure(model, k, rounds(k), settings)
        await model.aclose()
        base = base or rate
        line = (f"  {k:>4} {limit:>5} {k * rounds(k):>8} {rate:>9.2f} {rate / base:>8.2f}x"
                f" {latency * 1000:>10.0f} ms")
        if delay:
            ideal = min(k, limit) / delay
            line += f" {ideal:>12.1f} {rate / ideal:>9.0%}"
        print(line, flush=True)


def episodes_table(url: str, ks: list[int], turns: int, per_k: int, delay: float | None,
                   max_tokens: int | None = None, options: str = "", timeout_s: float | None = None) -> None:
    """(c): K concurrent episodes against the endpoint versus one at a time, through ``run_session``. The fake
    endpoint (``delay``) stands for a server with K slots (``concurrency=K``); a real one gets the defaults."""
    import tempfile
    from pathlib import Path

    from agentclinic.runs.session import RunConfig, run_session
    from agentclinic.scenario.loaders import BANK_DIR

    case = str(Path(BANK_DIR) / "cardiology" / "inferior-stemi.yaml")
    roles = ("doctor", "patient", "measurement", "judge")
    settings = {r: Settings(timeout_s=600) if delay else Settings(max_tokens=max_tokens or 256, timeout_s=timeout_s)
                for r in roles}
    print(f"\n(c) whole episodes on {url}: LLM doctor and patient, {turns} turns each, at least {per_k} episodes per K"
          + ("" if delay else f", max_tokens={max_tokens}, "
                               f"{'options ' + options if options else 'default limits'}, timeout_s={timeout_s}")
          + f"\n  {'K':>4} {'episodes':>8} {'turns':>6} {'seconds':>8} {'episodes/s':>11} {'speed-up':>9}"
          + (f" {'ideal':>7}" if delay else f" {'calls':>6} {'s/call':>7} {'errors':>6}"))
    base = None
    with tempfile.TemporaryDirectory() as out:
        warm = RunConfig(scenarios=[case], doctor=f"openai/bench@{url}?attempts=1",
                         patient=f"openai/bench@{url}?attempts=1", episodes=1, max_turns=turns, settings=settings)
        run_session(warm, out=Path(out), run_id="warm-up")  # model load, first embeddings: not measured
        for k in ks:
            spec = f"openai/bench@{url}?attempts=1&concurrency={k}" if delay else \
                f"openai/bench@{url}{'?' + options if options else ''}"
            n = max(per_k, k)
            config = RunConfig(scenarios=[case], doctor=spec, patient=spec, episodes=n, concurrency=k,
                               max_turns=turns, settings=settings)
            started = time.perf_counter()
            folder, summary = run_session(config, out=Path(out), run_id=f"k{k}")
            elapsed = time.perf_counter() - started
            records = [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines()]
            events = [e for r in records for e in r["events"]]
            calls = [c for e in events for c in e.get("model_calls", [])]
            assert summary["errors"] == 0 or not delay, summary
            rate = n / elapsed
            base = base or rate
            line = f"  {k:>4} {n:>8} {len(events):>6} {elapsed:>8.1f} {rate:>11.4f} {rate / base:>8.2f}x"
            if delay:
                line += f" {k:>6}x"
            else:
                seconds = statistics.fmean(c.get("latency_s", 0.0) for c in calls) if calls else 0.0
                line += f" {len(calls):>6} {seconds:>7.2f} {summary['errors']:>6}"
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="1,4,16,64", help="concurrency levels, comma-separated")
    parser.add_argument("--delay", type=float, default=0.2, help="the fake endpoint's reply delay in seconds")
    parser.add_argument("--rounds", type=int, default=5, help="requests per worker against the fake endpoint")
    parser.add_argument("--concurrency", type=int, default=0, help="the model's concurrency limit (default: max K)")
    parser.add_argument("--url", help="a real OpenAI-compatible server, e.g. http://127.0.0.1:8765/v1")
    parser.add_argument("--url-requests", type=int, default=16,
                        help="at least this many requests per K against --url (rounds = ceil(n / K))")
    parser.add_argument("--no-fake", action="store_true", help="skip (a), the fake endpoint")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens for --url requests (and episodes)")
    parser.add_argument("--episodes", action="store_true", help="(c): whole episodes instead of single requests")
    parser.add_argument("--turns", type=int, default=4, help="turns per episode in (c)")
    parser.add_argument("--per-k", type=int, default=8, help="at least this many episodes per K in (c)")
    parser.add_argument("--options", default="", help="(c) against --url: spec options instead of the defaults, "
                                                      "e.g. 'local=0&concurrency=16' (the old remote defaults)")
    parser.add_argument("--timeout", type=float, help="(c) against --url: timeout_s (default: the endpoint's)")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    concurrency = args.concurrency or max(ks)

    if args.episodes:
        endpoint = None if args.url else FakeEndpoint(args.delay)
        try:
            episodes_table(args.url or endpoint.url, ks, args.turns, args.per_k, None if args.url else args.delay,
                           args.max_tokens, args.options, args.timeout)
        finally:
            if endpoint:
                endpoint.close()
        return
    if not args.no_fake:
        endpoint = FakeEndpoint(args.delay)
        try:
            asyncio.run(table(f"(a) fake endpoint, {args.delay * 1000:.0f} ms per reply, {args.rounds} requests per "
                              "worker", endpoint.url, ks, lambda k: args.rounds, concurrency, Settings(timeout_s=60),
                              delay=args.delay))
        finally:
            endpoint.close()
    if args.url:
        asyncio.run(table(f"(b) {args.url}, max_tokens={args.max_tokens}, at least {args.url_requests} requests per K",
                          args.url, ks, lambda k: -(-args.url_requests // k), concurrency,
                          Settings(max_tokens=args.max_tokens, timeout_s=600)))


if __name__ == "__main__":
    main()
