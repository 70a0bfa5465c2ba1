"""``spawn-lab``: the command line. ``spawn-lab serve`` runs a system as a Spawn proxy for SDKs.

It prints the address it listens on (one line, flushed, so scripts can wait for it), and on
SIGINT or SIGTERM it drains, stops serving and flushes every actor's state to the store before
it exits. Defaults follow the Spawn sidecar's environment variables where one exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spawn-lab", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve an actor system as a Spawn proxy (HTTP API on /api/v1)",
        description="Serve an actor system as a Spawn proxy that real Spawn SDKs can use.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PROXY_HTTP_PORT") or 9001),
        help="port to bind, 0 for any free one (default $PROXY_HTTP_PORT or 9001)",
    )
    serve.add_argument(
        "--store",
        default=None,
        help="state store URL: memory://, sqlite:///file.db or postgresql://... "
        "(default: spawn_lab's default store, an SQLite file in the working directory)",
    )
    serve.add_argument(
        "--token",
        default=os.environ.get("SPAWN_LAB_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' on all but /health* (default $SPAWN_LAB_TOKEN)",
    )
    serve.add_argument(
        "--system",
        default=os.environ.get("PROXY_ACTOR_SYSTEM_NAME") or "spawn-system",
        help="actor system name (default $PROXY_ACTOR_SYSTEM_NAME or spawn-system)",
    )
    serve.add_argument(
        "--user-function",
        metavar="HOST:PORT",
        default=None,
        help="where SDK actors run (default $USER_FUNCTION_HOST:$USER_FUNCTION_PORT, "
        "else 127.0.0.1:8090)",
    )
    serve.add_argument(
        "--user-function-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for one user-function answer (default 30)",
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve actor services over gRPC on this port (upstream uses 9980; 0 = free)",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=8_000_000,
        metavar="BYTES",
        help="largest request body accepted (default 8000000, as upstream)",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    from spawn_lab.runtime.system import ActorSystem
    from spawn_lab.transports.http.proxy import serve_http, user_function_address

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    system = ActorSystem(args.system, **({"store": args.store} if args.store else {}))
    try:
        server = serve_http(
            system,
            args.host,
            args.port,
            args.token or None,
            user_function=args.user_function,
            user_function_timeout=args.user_function_timeout,
            max_body=args.max_body,
        )
    except BaseException:
        system.close()
        raise
    grpc_server = None
    if args.grpc_port is not None:
        from spawn_lab.transports.grpc import serve_grpc

        grpc_server = serve_grpc(system, host=args.host, port=args.grpc_port)
    user_function = user_function_address(args.user_function)
    secured = ", token required" if args.token else ""
    grpc_text = f", gRPC on {grpc_server.address}" if grpc_server is not None else ""
    print(
        f"spawn-lab serving actor system {system.name!r} on {server.url}{grpc_text} "
        f"(user function {user_function}{secured})",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if grpc_server is not None:
            grpc_server.close()
        server.close()
        system.close()
    print("spawn-lab stopped; state flushed", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spawn-lab`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2  # argparse refuses unknown commands first


if __name__ == "__main__":
    sys.exit(main())
