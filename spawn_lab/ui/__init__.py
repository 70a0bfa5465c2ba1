"""The notebook lab: a live graph, panels, a sequence diagram and exports, built on the trace bus.

``import spawn_lab`` does not import this package, and importing it loads no ipywidgets,
matplotlib or networkx either: those load when a view is built, so the runtime stays light in
scripts and servers, and ``lab()`` can fall back to text when they are missing.
"""

from __future__ import annotations

from typing import Any

from spawn_lab.ui.exports import Trace, replay
from spawn_lab.ui.lab import lab

__all__ = ("GraphView", "SequenceDiagram", "Trace", "lab", "protocol_messages", "replay")

_LAZY = {
    "GraphView": "spawn_lab.ui.graph_view",
    "SequenceDiagram": "spawn_lab.ui.sequence",
    "protocol_messages": "spawn_lab.ui.protocol",
}


def __getattr__(name: str) -> Any:
    """Load views (and their matplotlib, networkx and protobuf imports) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spawn_lab.ui' has no attribute {name!r}")
