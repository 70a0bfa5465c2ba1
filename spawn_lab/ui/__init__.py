"""The notebook lab: a live graph, panels, a sequence diagram and exports, built on the trace bus.

``import spawn_lab`` does not import this package, and importing it loads no ipywidgets,
matplotlib or networkx either: those load when a view is built, so the runtime stays light in
scripts and servers, and ``lab()`` can fall back to text when they are missing.
"""

from __future__ import annotations

from spawn_lab.ui.exports import Trace, replay
from spawn_lab.ui.lab import lab

__all__ = ("Trace", "lab", "replay")
