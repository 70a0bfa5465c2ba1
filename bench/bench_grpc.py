"""gRPC figures of issue 5: an actor service against a bare grpc.aio unary round trip.

Both servers run as ``serve_grpc`` runs them: grpc.aio on an event loop of its own thread, in
this process. The floor answers fixed reply bytes from a generic handler, without decoding;
``grpc_invoke_*`` decodes the request, asks a notebook-style actor (a counter compiled from
proto text in this process) and encodes its reply, so ``invoke / floor`` is the cost of Spawn.
The client is one grpc.aio channel in a separate process (in one process, client and server
would take turns on the GIL). It alternates floor and invoke trials, so drift on a busy machine
hits both alike. The counter is checked at the end, so a figure cannot come from failing calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import grpc
from grpc import aio

import spawn_lab as sl
from bench import harness
from bench.harness import RecordFn, Sample, Target, wanted
from spawn_lab.protobuf import CompiledProto, ProtoRegistry, compile_proto
from spawn_lab.transports.grpc import serve_grpc
from spawn_lab.transports.loop import LoopThread

N_SEQ = 500
N_CONC = 1_500
#: Short trials, many of them, alternating floor and invoke: on a shared machine the best of
#: many short windows is a steadier figure than the best of a few long ones.
TRIALS_FACTOR = 2
CONCURRENCY = 16

TARGETS = {
    "grpc_floor_seq": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "grpc_invoke_seq": Target("ratio", ">=", 0.9, ">= 0.9x grpc_floor_seq"),
    "grpc_floor_16conc": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "grpc_invoke_16conc": Target("ratio", ">=", 0.9, ">= 0.9x grpc_floor_16conc"),
}

PROTO = """
syntax = "proto3";
package bench;
import "spawn/actors/extensions.proto";
message AddRequest { int32 amount = 1; }
message Total { int64 value = 1; }
service Counter {
  option (spawn.actors.actor) = { kind: NAMED stateful: true state_type: ".bench.Total" };
  rpc Add(AddRequest) returns (Total);
}
"""


def run(record: RecordFn) -> None:
    proto = compile_proto(PROTO, "bench.proto", registry=(registry := ProtoRegistry()))
    request = proto.AddRequest(amount=1).SerializeToString()
    reply = proto.Total(value=123_456).SerializeToString()  # the floor moves as many bytes
    floor = LoopThread("bench-grpc-floor")
    floor_server, floor_port = floor.run(_start_floor(reply), 30)  # keep the server referenced
    system = sl.ActorSystem("bench-grpc", store="memory://")
    system.register(_counter(proto))
    server = serve_grpc(system, registry=registry, reflection=False, health=False)
    calls = 0
    try:
        for suffix, n, concurrency in (
            ("seq", N_SEQ, 1),
            (f"{CONCURRENCY}conc", N_CONC, CONCURRENCY),
        ):
            floor_name, invoke_name = f"grpc_floor_{suffix}", f"grpc_invoke_{suffix}"
            if not (wanted(floor_name) or wanted(invoke_name)):
                continue
            floor_s, invoke_s = _trials(
                f"127.0.0.1:{floor_port}", server.address, request, n, concurrency
            )
            calls += n * len(invoke_s)
            _check(system, calls)
            floor_rate, invoke_rate = (
                Sample([n / s for s in floor_s]),
                Sample([n / s for s in invoke_s]),
            )
            record(floor_name, floor_rate.best, "ops/s", ratio=1.0, note=floor_rate.note())
            record(
                invoke_name, invoke_rate.best, "ops/s", ratio=floor_name, note=invoke_rate.note()
            )
    finally:
        server.close()
        system.close()
        floor.run(floor_server.stop(0), 10)
        floor.stop()


async def _start_floor(reply: bytes) -> tuple[aio.Server, int]:
    """A bare grpc.aio server: one generic unary handler answering fixed bytes."""

    async def call(request: bytes, context: Any) -> bytes:
        return reply

    server = aio.server()
    handler = grpc.unary_unary_rpc_method_handler(call)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Counter", {"Add": handler}),)
    )
    port = int(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    return server, port


def _counter(proto: CompiledProto) -> sl.Actor:
    def add(ctx: sl.Context, request: Any) -> sl.Value:
        state: Any = ctx.state
        total = proto.Total(value=state.value + request.amount)
        return sl.Value(total, state=total)

    return proto.actor("Counter", handlers={"Add": add})


#: The client process: alternate trials against the floor and the actor service.
_CLIENT = """
import asyncio, json, sys, time
import grpc

floor, invoke, body = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
n, concurrency, trials = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

async def timed(channel):
    call = channel.unary_unary("/bench.Counter/Add")
    async def client(count):
        for _ in range(count):
            await call(body, timeout=30)
    await asyncio.gather(*(client(20) for _ in range(concurrency)))  # warm, outside the clock
    share, extra = divmod(n, concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
    return time.perf_counter() - started

async def main():
    result = {"floor": [], "invoke": []}
    async with grpc.aio.insecure_channel(floor) as f, grpc.aio.insecure_channel(invoke) as i:
        for _ in range(trials):
            result["floor"].append(await timed(f))
            result["invoke"].append(await timed(i))
    print(json.dumps(result))

asyncio.run(main())
"""


def _trials(
    floor: str, invoke: str, body: bytes, n: int, concurrency: int
) -> tuple[list[float], list[float]]:
    """Seconds per ``n`` calls, per trial, for the floor and for the actor service."""
    trials = harness.TRIALS * TRIALS_FACTOR
    args = [
        sys.executable,
        "-c",
        _CLIENT,
        floor,
        invoke,
        body.hex(),
        str(n),
        str(concurrency),
        str(trials),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"gRPC client failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout)
    return list(result["floor"]), list(result["invoke"])


def _check(system: sl.ActorSystem, expected_adds: int) -> None:
    """The counter saw every timed call plus the warm-up calls (20 per client per trial)."""
    total = system.state("Counter").value  # type: ignore[attr-defined]
    if total < expected_adds:
        raise AssertionError(f"Counter counted {total!r}, expected at least {expected_adds}")
