"""HTTP figures of issue 4 §8: the Spawn proxy API against a bare aiohttp POST on the same stack.

Every figure runs a real aiohttp server on 127.0.0.1 (on its own thread, as ``serve_http`` runs)
and a keep-alive aiohttp client in a separate process. The floor answers a POST of the same
size with fixed bytes, so ``http_invoke_*`` / ``http_floor_*`` is the cost of Spawn: decoding,
the actor call and encoding. Floor and invoke trials alternate, so that load from elsewhere on
the machine falls on both alike. ``http_invoke_remote_actor`` adds a user function (the
user-function side of spawn_lab, on another thread): client -> proxy -> user function -> back.
Each figure checks the counter it drove, so a figure cannot come from failing calls.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Callable

from aiohttp import web

import spawn_lab as sl
from bench import harness
from bench.harness import RecordFn, Sample, Target, rate, wanted
from spawn_lab.protocol import payloads
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2
from spawn_lab.transports.http import (
    HttpServer,
    register_with_proxy,
    serve_http,
    serve_user_function,
)

N_SEQ = 3_000
N_CONC = 6_000
N_REMOTE = 1_500
CONCURRENCY = 16
SYSTEM = "spawn-system"

TARGETS = {
    "http_floor_seq": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "http_invoke_seq": Target("ratio", ">=", 0.9, ">= 0.9x http_floor_seq"),
    "http_floor_16conc": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "http_invoke_16conc": Target("ratio", ">=", 0.9, ">= 0.9x http_floor_16conc"),
    "http_invoke_remote_actor": Target("ratio", "base", 1.0, "report"),
}


def run(record: RecordFn) -> None:
    body = _invoke_body("counter", 1)
    floor = HttpServer(lambda state: _floor_app(_reply_bytes(body)), port=0, name="bench-floor")
    system = sl.ActorSystem(SYSTEM, store="memory://")
    system.register(_counter())
    proxy = serve_http(system, port=0)
    urls = (floor.url + "/echo", f"{proxy.url}/api/v1/system/{SYSTEM}/actors/counter/invoke")
    calls = 0
    try:
        for label, n, concurrency in (("seq", N_SEQ, 1), ("16conc", N_CONC, CONCURRENCY)):
            names = (f"http_floor_{label}", f"http_invoke_{label}")
            if not any(wanted(name) for name in names):
                continue
            rates: tuple[list[float], list[float]] = ([], [])
            for _ in range(harness.TRIALS):  # alternate, so both meet the same background load
                for url, values in zip(urls, rates, strict=True):
                    gc.collect()
                    values.append(n / _timed(url, body, concurrency)(n))
            calls += n * harness.TRIALS
            _check(system, "counter", calls)
            floor_rates, invoke_rates = Sample(rates[0]), Sample(rates[1])
            record(names[0], floor_rates.best, "ops/s", ratio=1.0, note=floor_rates.note())
            record(names[1], invoke_rates.best, "ops/s", ratio=names[0], note=invoke_rates.note())
    finally:
        proxy.close()
        floor.close()
        system.close()
    if wanted("http_invoke_remote_actor"):
        _measure_remote(record)


def _measure_remote(record: RecordFn) -> None:
    """Proxy -> user function round trip: an actor registered by a 'remote SDK' (spawn_lab's own
    user-function side on another thread) invoked over the proxy's HTTP API."""
    host = sl.ActorSystem(SYSTEM, store="memory://")
    host.register(_counter())
    user_function = serve_user_function(host, port=0)
    proxy_system = sl.ActorSystem(SYSTEM, store="memory://")
    proxy = serve_http(proxy_system, port=0, user_function=user_function.url)
    try:
        register_with_proxy(host, proxy.url)
        url = f"{proxy.url}/api/v1/system/{SYSTEM}/actors/counter/invoke"
        sample = rate(_timed(url, _invoke_body("counter", 1), 1), N_REMOTE)
        _check(proxy_system, "counter", N_REMOTE * len(sample.values))
        record(
            "http_invoke_remote_actor",
            sample.best,
            "ops/s",
            ratio="http_invoke_seq",
            note=f"client->proxy->user function, sequential; {sample.note()}",
        )
    finally:
        proxy.close()
        user_function.close()
        proxy_system.close()
        host.close()


# -- helpers ---------------------------------------------------------------------------------------


def _counter() -> sl.Actor:
    counter = sl.Actor("counter", state=0)

    @counter.action
    def add(ctx: sl.Context, amount: int) -> sl.Value:
        total = ctx.state + amount
        return sl.Value(total, state=total)

    return counter


def _invoke_body(actor: str, amount: int) -> bytes:
    return protocol_pb2.InvocationRequest(
        system=actor_pb2.ActorSystem(name=SYSTEM),
        actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=SYSTEM)),
        action_name="add",
        value=payloads.pack(amount),
    ).SerializeToString()


def _reply_bytes(body: bytes) -> bytes:
    """An InvocationResponse like the proxy's, so the floor moves as many bytes."""
    request = protocol_pb2.InvocationRequest.FromString(body)
    return protocol_pb2.InvocationResponse(
        status=protocol_pb2.RequestStatus(status=protocol_pb2.OK),
        system=request.system,
        actor=request.actor,
        value=payloads.pack(123_456),
    ).SerializeToString()


def _floor_app(reply: bytes) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_post("/echo", echo)
    return app


#: The client, run in its own process: in one process, client and server would take turns on
#: the GIL and the figure would measure that instead of the server.
_CLIENT = """
import asyncio, json, sys, time
import aiohttp

url, body = sys.argv[1], bytes.fromhex(sys.argv[2])
n, concurrency = int(sys.argv[3]), int(sys.argv[4])
headers = {"Content-Type": "application/octet-stream"}

async def main():
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client(count):
            for _ in range(count):
                async with session.post(url, data=body, headers=headers) as response:
                    data = await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url} answered {response.status}: {data[:200]!r}")
        await asyncio.gather(*(client(1) for _ in range(concurrency)))  # connect outside the clock
        share, extra = divmod(n - concurrency, concurrency)
        started = time.perf_counter()
        await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
        print(json.dumps({"seconds": time.perf_counter() - started, "timed": n - concurrency}))

asyncio.run(main())
"""


def _timed(url: str, body: bytes, concurrency: int) -> Callable[[int], float]:
    """``timed(n)``: seconds per ``n`` POSTs by ``concurrency`` keep-alive clients of one process
    (``n`` calls are made in all; the first of each client opens its connection, untimed)."""

    def timed(n: int) -> float:
        args = [sys.executable, "-c", _CLIENT, url, body.hex(), str(n), str(concurrency)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise AssertionError(f"HTTP client failed: {done.stderr.strip()[-500:]}")
        result = json.loads(done.stdout)
        return float(result["seconds"]) * n / int(result["timed"])

    return timed


def _check(system: sl.ActorSystem, actor: str, expected: int) -> None:
    total = system.state(actor)
    if total != expected:
        raise AssertionError(f"{actor} counted {total!r}, expected {expected}")
