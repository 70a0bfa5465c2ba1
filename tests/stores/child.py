"""Child processes for the reliability tests: a durable write storm, and racing store writers.

``python child.py storm URL SYSTEM ACTORS``
    Opens ``ActorSystem(SYSTEM, store=URL, durable=True)`` with ``ACTORS`` counters and has one
    thread per counter ask ``add`` forever, printing ``<actor> <value>`` for each reply, that is,
    for each write the store acknowledged as durable. The parent kills it with SIGKILL.

``python child.py increment URL SYSTEM TIMES``
    After ``go`` on stdin, adds 1 to actor ``shared`` in the store ``TIMES`` times by
    read-modify-write with the optimistic revision check, retrying on ConflictError. Prints a
    JSON line with its wins and conflicts.

``python child.py race URL SYSTEM``
    Loads actor ``shared``, prints ``loaded``, waits for ``go``, then saves the next revision
    once and prints ``won`` or ``conflict <message>``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from spawn_lab import Actor, ActorSystem, Value
from spawn_lab.core.errors import ConflictError
from spawn_lab.stores.base import Snapshot, open_store


def counter(name: str) -> Actor:
    actor = Actor(name, state={"n": 0})

    @actor.action
    def add(ctx: object, _payload: object) -> Value:
        n = ctx.state["n"] + 1  # type: ignore[attr-defined]
        return Value(n, state={"n": n})

    return actor


def storm(url: str, system_name: str, actors: int) -> None:
    out = threading.Lock()
    system = ActorSystem(system_name, store=url, durable=True)
    names = [f"c{i}" for i in range(actors)]
    for name in names:
        system.register(counter(name))

    def hammer(name: str) -> None:
        while True:
            value = system.ask(name, "add")
            with out:
                sys.stdout.write(f"{name} {value}\n")
                sys.stdout.flush()

    print("ready", flush=True)
    threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _row(system: str, revision: int, value: int) -> Snapshot:
    # the writer's pid makes the bytes unique, so a collision is never an idempotent repeat
    data = f"{value}:{os.getpid()}".encode()
    return Snapshot(system, "shared", revision, "test/counter", data, timestamp=time.time())


def increment(url: str, system: str, times: int) -> None:
    store = open_store(url)
    print("ready", flush=True)
    sys.stdin.readline()
    wins = conflicts = 0
    while wins < times:
        latest = store.load(system, "shared")
        revision = latest.revision if latest else 0
        value = int(latest.data.split(b":")[0]) if latest else 0
        try:
            store.save([_row(system, revision + 1, value + 1)])
            wins += 1
        except ConflictError:
            conflicts += 1
    store.close()
    print(json.dumps({"wins": wins, "conflicts": conflicts}), flush=True)


def race(url: str, system: str) -> None:
    store = open_store(url)
    latest = store.load(system, "shared")
    revision = latest.revision if latest else 0
    print("loaded", flush=True)
    sys.stdin.readline()
    try:
        store.save([_row(system, revision + 1, revision + 1)])
        print("won", flush=True)
    except ConflictError as exc:
        print(f"conflict {exc}", flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    command, url, system = sys.argv[1:4]
    if command == "storm":
        storm(url, system, int(sys.argv[4]))
    elif command == "increment":
        increment(url, system, int(sys.argv[4]))
    else:
        race(url, system)
