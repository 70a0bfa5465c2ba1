"""Where nodes go: positions computed once per new node, then fixed, so the picture never jumps.

A force layout (networkx ``spring_layout``) places the first connected nodes; later ones are
placed next to their partners with every placed node held still (``fixed=``). A node with no
edges yet waits in a grid below the mesh, provisionally: registered actors that have not talked
to anyone line up neatly instead of being flung outwards by the layout's repulsion (the row
moves down when the mesh above it grows), and each moves once, next to its partners, when its
first message arrives.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np

__all__ = ("Layout",)


class Layout:
    """Positions of a growing graph, in layout units (about -1 to 1)."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.positions: dict[str, tuple[float, float]] = {}
        self.provisional: set[str] = set()

    def place(self, graph: Any) -> bool:
        """Give positions to new (and newly connected) nodes of ``graph``; True if any moved."""
        undirected = nx.Graph(graph.to_undirected(as_view=True))
        undirected.remove_edges_from(list(nx.selfloop_edges(undirected)))
        degree = dict(undirected.degree())
        placed_before = self.positions
        movers = [
            n
            for n in undirected
            if (n not in placed_before or n in self.provisional) and degree[n] > 0
        ]
        lonely = [n for n in undirected if n not in placed_before and degree[n] == 0]
        if movers:
            self._spring(undirected.subgraph(n for n in undirected if degree[n] > 0), movers)
            waiting = [n for n in self.positions if n in self.provisional]
            self.provisional.difference_update(waiting)
            lonely = waiting + lonely  # the mesh grew: line the waiting nodes up below it again
        if lonely:
            self._grid(lonely)
        return bool(movers or lonely)

    def bounds(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Lower-left and upper-right corners of all positions, and the larger side."""
        xy = np.array(list(self.positions.values())).reshape(-1, 2)
        if not len(xy):
            return np.array([-1.0, -1.0]), np.array([1.0, 1.0]), 2.0
        low, high = xy.min(axis=0), xy.max(axis=0)
        return low, high, max(float((high - low).max()), 0.5)

    def _spring(self, connected: Any, movers: list[str]) -> None:
        k = 1.6 / math.sqrt(max(connected.number_of_nodes(), 1))
        fixed = [n for n in connected if n in self.positions and n not in self.provisional]
        if not fixed:
            placed = nx.spring_layout(connected, k=k, seed=self.seed, iterations=60)
        else:
            initial = {n: self.positions[n] for n in fixed}
            rng = np.random.default_rng(self.seed + len(self.positions))
            for node in movers:
                around = [initial[m] for m in connected.neighbors(node) if m in initial]
                centre = np.mean(around, axis=0) if around else rng.uniform(-1.0, 1.0, 2)
                initial[node] = tuple(centre + rng.normal(0, 0.1, 2))
            placed = nx.spring_layout(
                connected, k=k, pos=initial, fixed=fixed, seed=self.seed, iterations=40
            )
        _separate(placed, movers, 0.5 * k)
        for node in movers:
            self.positions[node] = (float(placed[node][0]), float(placed[node][1]))
            self.provisional.discard(node)

    def _grid(self, lonely: list[str]) -> None:
        """Rows of isolated nodes below whatever is placed for good."""
        fixed = [p for n, p in self.positions.items() if n not in self.provisional]
        top = min((y for _, y in fixed), default=1.0) - 0.3
        taken = len(self.provisional)
        per_row = max(8, int(math.sqrt(taken + len(lonely)) * 1.6))
        for i, node in enumerate(lonely, start=taken):
            row, col = divmod(i, per_row)
            self.positions[node] = (-1.0 + 2.0 * (col + 0.5) / per_row, top - 0.22 * row)
            self.provisional.add(node)


def _separate(pos: dict[Any, Any], movers: list[str], gap: float, rounds: int = 8) -> None:
    """Push movable nodes apart until none sits closer than ``gap`` to another node.

    Force layouts put hubs with the same neighbours (a router and an aggregator of the same
    workers) on top of each other; this small relaxation keeps them apart.
    """
    names = list(pos)
    xy = np.array([pos[n] for n in names], dtype=float)
    movable = np.zeros(len(names), dtype=bool)
    index = {n: i for i, n in enumerate(names)}
    movable[[index[n] for n in movers if n in index]] = True
    for _ in range(rounds):
        delta = xy[:, None, :] - xy[None, :, :]
        dist = np.hypot(delta[..., 0], delta[..., 1])
        np.fill_diagonal(dist, 1e9)
        close = dist < gap
        if not close[movable].any():
            break
        push = np.where(close, (gap - dist) / np.maximum(dist, 1e-9), 0.0)
        shift = (delta * push[..., None]).sum(axis=1) * 0.5
        xy[movable] += shift[movable]
    for i, name in enumerate(names):
        if movable[i]:
            pos[name] = xy[i]
