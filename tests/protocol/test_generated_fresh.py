"""The committed generated code in spawn_lab/protocol/spawn/ must match what protos/ generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"


def test_generated_code_imports_with_googleapis() -> None:
    """Our healthcheck code and googleapis-common-protos share google/api/*.proto in one pool."""
    code = (
        "import google.api.annotations_pb2, google.api.http_pb2\n"
        "from spawn_lab.protocol.spawn.actors import (actor_pb2, extensions_pb2, healthcheck_pb2,\n"
        "    protocol_pb2, state_pb2)\n"
        "print(protocol_pb2.DESCRIPTOR.name, healthcheck_pb2.DESCRIPTOR.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["spawn/actors/protocol.proto", "spawn/actors/healthcheck.proto"]


def test_generated_code_keeps_upstream_names() -> None:
    """Type URLs and gRPC service paths are built from these names; they must be Spawn's."""
    from spawn_lab.protocol.spawn.actors import actor_pb2, healthcheck_pb2, protocol_pb2

    assert protocol_pb2.JSONType.DESCRIPTOR.full_name == "spawn.JSONType"
    assert actor_pb2.ActorId.DESCRIPTOR.full_name == "spawn.actors.ActorId"
    assert actor_pb2.DESCRIPTOR.name == "spawn/actors/actor.proto"
    service = healthcheck_pb2.DESCRIPTOR.services_by_name["HealthCheckActor"]
    assert service.full_name == "spawn.actors.healthcheck.HealthCheckActor"
