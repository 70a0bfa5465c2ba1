"""Draw a :class:`~spawn_lab.ui.flow.FlowModel` to PNG with matplotlib, cheaply enough to animate.

Costs decide the shape (``docs`` and ``env-notes`` §4 measured them): a full matplotlib redraw of
50 nodes takes ~50 ms, far too much at 4 Hz beside a busy mesh. So the renderer keeps one
``Figure`` (Figure API and ``FigureCanvasAgg``, never pyplot, so it cannot disturb the user's
own plots or the inline backend) and splits it in two layers:

- the *background* (labels, legend, axes) is drawn once per topology change and cached as a
  pixel buffer, and node positions are computed only when a node appears, then never move;
- the *foreground* (edges, arrowheads, nodes, pulses, the status line) is a handful of
  collections whose colours, widths and sizes change each frame; a frame restores the cached
  background, draws just those artists (blitting), and encodes the buffer with Pillow at a
  low compression level.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.transforms import offset_copy
from PIL import Image

from spawn_lab.ui.flow import FlowModel, MessageKind, NodeRole, label_of
from spawn_lab.ui.layout import Layout

__all__ = ("EDGE_STYLES", "FAILURE_COLOR", "KIND_COLORS", "GraphRenderer", "describe")

#: Node colour by actor kind.
KIND_COLORS: dict[str, str] = {
    "NAMED": "#1f77b4",
    "UNNAMED": "#2ca02c",
    "POOLED": "#ff7f0e",
    "TASK": "#9467bd",
    "PROJECTION": "#8c564b",
    "PROXY": "#7f7f7f",
    "UNKNOWN": "#aaaaaa",
    "": "#aaaaaa",
}
#: Edge colour and line style by message kind.
EDGE_STYLES: dict[MessageKind, tuple[str, Any]] = {
    MessageKind.INVOKE: ("#3b5b92", "solid"),
    MessageKind.REPLY: ("#8a8a8a", (0, (4, 2))),
    MessageKind.PIPE: ("#17becf", "solid"),
    MessageKind.FORWARD: ("#bcbd22", "solid"),
    MessageKind.BROADCAST: ("#e377c2", (0, (6, 2, 1, 2))),
    MessageKind.SIDE_EFFECT: ("#9467bd", (0, (1, 1.5))),
    MessageKind.TIMER: ("#8c564b", (0, (3, 1, 1, 1))),
}
#: Failed edges and failing actors' rims.
FAILURE_COLOR = "#e00000"
_ROLE_MARKERS = {
    NodeRole.ACTOR: "o",
    NodeRole.CHANNEL: "D",
    NodeRole.EXTERNAL: "s",
    NodeRole.DEAD_LETTERS: "X",
}
_ROLE_COLORS = {NodeRole.CHANNEL: "#e377c2", NodeRole.EXTERNAL: "#555555"}
_DEAD_COLOR = "#6b0000"
_HALO = withStroke(linewidth=2.5, foreground="white")


def _style_key(style: Any) -> Any:
    return style if isinstance(style, str) else repr(style)


_STYLE_OF = {kind: _style_key(style) for kind, (_, style) in EDGE_STYLES.items()}
_FAIL_RGBA = np.array(to_rgba(FAILURE_COLOR))
_EDGE_RGBA = {k: np.array(to_rgba(c)) for k, (c, _) in EDGE_STYLES.items()}


class GraphRenderer:
    """Renders one model again and again into the same figure; keep one per view.

    ``render(model)`` returns PNG bytes. ``pulse_frames`` is how many frames an edge that just
    carried a message stays highlighted. ``max_labels`` caps the names printed (the busiest
    nodes win), which is what keeps 200 actors readable.
    """

    def __init__(
        self,
        *,
        width: float = 7.2,
        height: float = 4.8,
        dpi: int = 100,
        max_labels: int = 40,
        pulse_frames: int = 3,
        seed: int = 7,
    ) -> None:
        self.figure = Figure(figsize=(width, height), dpi=dpi, facecolor="white")
        self.canvas: Any = FigureCanvasAgg(self.figure)  # Agg's blitting calls are untyped
        self.ax = self.figure.add_axes((0.0, 0.0, 1.0, 1.0))
        self.ax.set_axis_off()
        self.max_labels = max_labels
        self.pulse_frames = pulse_frames
        self.seed = seed
        self.frames = 0
        self.last_frame_ms = 0.0
        self.layout = Layout(seed)
        self._order: list[str] = []
        self._node_version = -1
        self._edge_version = -1
        self._background: Any = None
        self._labels: list[Any] = []
        self._overlay: Image.Image | None = None
        self._edge_keys: list[tuple[str, str, MessageKind]] = []
        self._touched: dict[tuple[str, str, MessageKind], tuple[int, int]] = {}
        self._pulse_points = np.zeros((0, 2, 2))
        self._span = 1.0
        self._view: tuple[float, float, float, float] | None = None
        # one collection per line style (kinds differ by colour within it): a collection with
        # per-segment dash patterns costs matplotlib O(segments x widths) on every width change,
        # i.e. every frame, and each extra collection costs a draw call
        self._lanes: dict[Any, tuple[Any, list[int]]] = {}
        for _, style in EDGE_STYLES.values():
            if _style_key(style) not in self._lanes:
                lane = LineCollection(
                    [], animated=True, capstyle="round", linestyles=style, zorder=1
                )
                self.ax.add_collection(lane)
                self._lanes[_style_key(style)] = (lane, [])
        self._arrows: Any = LineCollection([], animated=True, zorder=2)
        self.ax.add_collection(self._arrows)
        self._pulses: Any = self.ax.scatter([], [], s=18, zorder=4, animated=True, linewidths=0)
        self._groups: dict[NodeRole, tuple[Any, list[str]]] = {}
        for role, marker in _ROLE_MARKERS.items():
            artist = self.ax.scatter([], [], marker=marker, zorder=3, animated=True)
            self._groups[role] = (artist, [])
        self._status = self.ax.text(
            0.01, 0.99, "", transform=self.ax.transAxes, va="top", fontsize=8, animated=True
        )
        self._legend()

    # -- public -------------------------------------------------------------------------------

    @property
    def positions(self) -> dict[str, tuple[float, float]]:
        """Node positions in data coordinates; fixed once placed."""
        return self.layout.positions

    def render(self, model: FlowModel, *, status: str | None = None) -> bytes:
        """One frame as PNG bytes; re-lays out only if nodes appeared since the last frame.

        ``status`` is a line printed top left: ``None`` prints the model's counts, ``""``
        nothing (a live view shows its counts beside the image; text costs ~3 ms a frame).
        """
        started = time.perf_counter()
        self.draw(model, status=status)
        png = self.png()
        self.last_frame_ms = (time.perf_counter() - started) * 1000
        return png

    def draw(self, model: FlowModel, *, status: str | None = None) -> None:
        """Update the figure's pixels for ``model`` without encoding them."""
        self.frames += 1
        if model.node_version != self._node_version or (
            self.layout.provisional and model.edge_version != self._edge_version
        ):
            if self._place(model):
                self._edge_version = -1
                self._background = None
            self._node_version = model.node_version
        if model.edge_version != self._edge_version:
            self._geometry(model)
            self._edge_version = model.edge_version
        if self._background is None:
            self._draw_background(model)
        self._style_edges(model)
        self._style_nodes(model)
        if status is None:
            status = describe(model)
        canvas = self.canvas
        canvas.restore_region(self._background)
        ax = self.ax
        for lane, indices in self._lanes.values():
            if indices:
                ax.draw_artist(lane)
        ax.draw_artist(self._arrows)
        for artist, names in self._groups.values():
            if names:
                ax.draw_artist(artist)
        if len(self._pulses.get_offsets()):
            ax.draw_artist(self._pulses)
        if status:
            self._status.set_text(status)
            ax.draw_artist(self._status)

    def png(self) -> bytes:
        """The current pixels as PNG (fast, lightly compressed: frames are thrown away)."""
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer(
            "RGBA", (width, height), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        )
        if self._overlay is not None:
            image = Image.alpha_composite(image, self._overlay)
        # mapping to a fixed palette of our own colours (and their blends with white) costs
        # 0.5 ms; a paletted PNG then skips the per-row filters: ~3 ms in all instead of 9-16 ms
        # for RGB, and a quarter of the bytes on the comm channel
        paletted = image.convert("RGB").quantize(palette=_palette(), dither=Image.Dither.NONE)
        out = io.BytesIO()
        paletted.save(out, format="PNG", compress_level=1)
        return out.getvalue()

    # -- layout: once per new node ------------------------------------------------------------

    def _place(self, model: FlowModel) -> bool:
        """Place new nodes (:class:`Layout`) and move the markers there; True if any moved."""
        if not self.layout.place(model.graph):
            return False
        graph = model.graph
        self._order = list(graph.nodes)
        low, high, span = self.layout.bounds()
        margin = 0.09 * span
        view = (low[0] - margin, high[0] + margin, low[1] - margin * 2.0, high[1] + margin * 1.6)
        if self._view is not None:  # only ever zoom out, so placed nodes stay put on screen
            view = (
                min(view[0], self._view[0]),
                max(view[1], self._view[1]),
                min(view[2], self._view[2]),
                max(view[3], self._view[3]),
            )
        self._view = view
        self._span = max(view[1] - view[0], view[3] - view[2]) / 1.25
        self.ax.set_xlim(view[0], view[1])
        self.ax.set_ylim(view[2], view[3])
        positions = self.positions
        for role, (artist, _) in self._groups.items():
            names = [n for n in self._order if graph.nodes[n]["role"] is role]
            artist.set_offsets(np.array([positions[n] for n in names]).reshape(-1, 2))
            self._groups[role] = (artist, names)
        return True

    def _draw_background(self, model: FlowModel) -> None:
        """Cache two layers: everything static below the mesh, and the labels above it.

        Labels go on top (a hub's name would vanish under its own edges otherwise), but text
        costs too much to draw each frame, so they are drawn once on a transparent layer that
        each frame composites over the pixels (0.5 ms).
        """
        for label in self._labels:
            label.remove()
        nodes = model.nodes()
        ranked = sorted(
            self._order,
            key=lambda n: (nodes[n]["role"] is NodeRole.ACTOR, -nodes[n]["messages"], n),
        )
        count = len(self._order)
        size = 8 if count <= 30 else (7 if count <= 80 else 6)
        scale = _scale(len(nodes))
        self._labels = []
        for n in ranked[: self.max_labels]:
            radius = math.sqrt(_size(nodes[n], scale)) / 2  # marker size is an area in pt²
            below = offset_copy(self.ax.transData, fig=self.figure, y=-radius - 1.5, units="points")
            self._labels.append(
                self.ax.text(
                    *self.positions[n],
                    label_of(n),
                    transform=below,
                    ha="center",
                    va="top",
                    fontsize=size,
                    color="#222222",
                    zorder=5,
                    clip_on=True,
                    visible=False,
                    path_effects=[_HALO],
                )
            )
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        hidden: list[Any] = [a for a in (self.ax.get_legend(), *self.ax.patches) if a is not None]
        for artist in hidden:
            artist.set_visible(False)
        for label in self._labels:
            label.set_visible(True)
        self.figure.patch.set_alpha(0.0)
        self.canvas.draw()
        width, height = self.canvas.get_width_height()
        self._overlay = Image.frombuffer(
            "RGBA", (width, height), bytes(self.canvas.buffer_rgba()), "raw", "RGBA", 0, 1
        )
        self.figure.patch.set_alpha(1.0)
        for artist in hidden:
            artist.set_visible(True)
        for label in self._labels:
            label.set_visible(False)

    def _legend(self) -> None:
        handles = [
            Line2D(
                [],
                [],
                color=color,
                linestyle=style,
                linewidth=1.6,
                label=kind.value.replace("_", " "),
            )
            for kind, (color, style) in EDGE_STYLES.items()
        ]
        handles.append(Line2D([], [], color=FAILURE_COLOR, linewidth=1.6, label="failed"))
        self.ax.legend(
            handles=handles,
            loc="lower left",
            fontsize=6,
            ncol=4,
            frameon=False,
            handlelength=2.2,
            columnspacing=1.0,
        )

    # -- edges: geometry per new edge, style per frame ------------------------------------------

    def _geometry(self, model: FlowModel) -> None:
        """Segments for every edge, vectorised: edges appear in bursts when traffic starts."""
        keys = list(model.edges())
        count = len(keys)
        lane: dict[tuple[str, str], int] = {}
        lanes = np.empty(count)
        for i, (src, dst, _) in enumerate(keys):
            index = lane.get((src, dst), 0)
            lanes[i] = index
            lane[(src, dst)] = index + 1
        positions = self.positions
        a = np.array([positions[k[0]] for k in keys]).reshape(-1, 2)
        b = np.array([positions[k[1]] for k in keys]).reshape(-1, 2)
        direction = b - a
        length = np.hypot(direction[:, 0], direction[:, 1])
        loops = length == 0
        unit = direction / np.where(loops, 1.0, length)[:, None]
        normal = np.column_stack([-unit[:, 1], unit[:, 0]])
        normal *= (0.012 * self._span * (1 + 0.9 * lanes))[:, None]
        start, end = a + normal, b + normal
        lines = np.stack([start, end], axis=1)
        tip = start + 0.6 * (end - start)
        size = np.minimum(0.022 * self._span, 0.3 * length)[:, None]
        heads = np.stack(
            [tip - _rotate(unit, 0.45) * size, tip, tip - _rotate(unit, -0.45) * size], axis=1
        )
        pulses = np.stack([start + 0.3 * (end - start), start + 0.75 * (end - start)], axis=1)
        segments: list[np.ndarray] = list(lines)
        theta = np.linspace(0, 2 * np.pi, 16)
        circle = np.column_stack([np.cos(theta), np.sin(theta)])
        for j in np.flatnonzero(loops).tolist():  # messages to self (timers): a small ring
            radius = 0.035 * self._span * (1 + 0.35 * lanes[j])
            ring = a[j] + radius + radius * circle
            segments[j] = ring
            heads[j] = np.nan
            pulses[j] = ring[[4, 10]]
        self._edge_keys = keys
        for style, (artist, _) in self._lanes.items():
            indices = [i for i, key in enumerate(keys) if _STYLE_OF[key[2]] == style]
            artist.set_segments([segments[i] for i in indices])
            self._lanes[style] = (artist, indices)
        self._arrows.set_segments(list(heads))
        self._pulse_points = pulses

    def _style_edges(self, model: FlowModel) -> None:
        edges = model.edges()
        keys = self._edge_keys
        frame = self.frames
        count = len(keys)
        colors = np.empty((count, 4))
        widths = np.empty(count)
        pulse_at: list[np.ndarray] = []
        pulse_colors: list[np.ndarray] = []
        touched = self._touched
        rest = 0.6 if count < 40 else (0.4 if count < 150 else 0.25)
        for i, key in enumerate(keys):
            data = edges[key]
            seen = touched.get(key)
            if seen is None or seen[0] != data["last_seq"]:
                touched[key] = seen = (data["last_seq"], frame)
            age = frame - seen[1]
            rgba = _FAIL_RGBA if data["failed"] else _EDGE_RGBA[key[2]]
            colors[i] = rgba
            base = (1.0 if count < 40 else 0.6) + min(0.3 * math.log1p(data["count"]), 1.4)
            if age < self.pulse_frames:
                fade = 1 - age / self.pulse_frames
                colors[i, 3] = 1.0
                widths[i] = base + 1.2 * fade
                pulse_at.append(self._pulse_points[i, frame % 2])
                pulse_colors.append(rgba)
            else:
                colors[i, 3] = 0.95 if data["failed"] else rest
                widths[i] = base
        for lane, indices in self._lanes.values():
            if indices:
                lane.set_color(colors[indices])
                lane.set_linewidths(widths[indices])
        self._arrows.set_color(colors)
        self._arrows.set_linewidths(widths)
        self._pulses.set_offsets(np.array(pulse_at).reshape(-1, 2))
        if pulse_colors:
            self._pulses.set_facecolors(np.array(pulse_colors))

    def _style_nodes(self, model: FlowModel) -> None:
        nodes = model.nodes()
        scale = _scale(len(nodes))
        for role, (artist, names) in self._groups.items():
            if not names:
                continue
            faces = np.empty((len(names), 4))
            rims = np.empty((len(names), 4))
            sizes = np.empty(len(names))
            rim_widths = np.empty(len(names))
            for i, name in enumerate(names):
                node = nodes[name]
                face, rim, width = _node_look(role, node)
                faces[i] = face
                rims[i] = rim
                rim_widths[i] = width
                sizes[i] = _size(node, scale)
            artist.set_facecolors(faces)
            artist.set_edgecolors(rims)
            artist.set_linewidths(rim_widths)
            artist.set_sizes(sizes)


_PALETTE: list[Image.Image] = []


def _palette() -> Image.Image:
    """A 256-colour palette: every style colour blended with white at several strengths, greys."""
    if not _PALETTE:
        bases = {*KIND_COLORS.values(), *(c for c, _ in EDGE_STYLES.values())}
        bases |= {FAILURE_COLOR, _DEAD_COLOR, "#ff9900", *_ROLE_COLORS.values()}
        colors: list[tuple[int, int, int]] = []
        for base in sorted(bases):
            rgb = np.array(to_rgba(base)[:3])
            for alpha in (1.0, 0.85, 0.7, 0.55, 0.4, 0.28, 0.16, 0.08):
                mixed = rgb * alpha + (1 - alpha)
                red, green, blue = (round(float(v) * 255) for v in mixed)
                colors.append((red, green, blue))
        levels = 256 - len(colors)
        colors += [(int(g), int(g), int(g)) for g in np.linspace(0, 255, max(levels, 2))]
        flat = [v for color in colors[:256] for v in color]
        image = Image.new("P", (1, 1))
        image.putpalette(flat + [255] * (768 - len(flat)))
        _PALETTE.append(image)
    return _PALETTE[0]


def describe(model: FlowModel) -> str:
    """The one-line summary printed on snapshots and beside live views."""
    s = model.summary()
    lost = f" · {s['lost']} events lost" if s["lost"] else ""
    return (
        f"{s['actors']} actors ({s['active']} active) · {s['messages']} messages · "
        f"{s['failures']} failures{lost}"
    )


_LOOKS: dict[tuple[Any, ...], tuple[Any, Any, float]] = {}


def _node_look(role: NodeRole, node: dict[str, Any]) -> tuple[Any, Any, float]:
    """Face, rim and rim width, cached: a handful of looks serve every node of a frame."""
    key = (
        role,
        node["kind"],
        bool(node["failures"]),
        bool(node["breakpoint"]),
        node["active"],
        node["template"],
    )
    look = _LOOKS.get(key)
    if look is None:
        look = _LOOKS[key] = _look(role, node)
    return look


def _look(role: NodeRole, node: dict[str, Any]) -> tuple[Any, Any, float]:
    """Kind colour; filled if active, faint if passivated, hollow for a template; red rim
    for an actor that failed, orange for one a breakpoint held."""
    if role is NodeRole.DEAD_LETTERS:
        return to_rgba(_DEAD_COLOR), to_rgba(FAILURE_COLOR), 1.0
    if role is not NodeRole.ACTOR:
        color = _ROLE_COLORS[role]
        return to_rgba(color, 0.85), to_rgba("#222222"), 0.6
    color = KIND_COLORS.get(node["kind"], KIND_COLORS[""])
    if node["failures"]:
        rim, width = to_rgba(FAILURE_COLOR), 2.2
    elif node["breakpoint"]:
        rim, width = to_rgba("#ff9900"), 2.2
    else:
        rim, width = to_rgba("#1a1a1a" if node["active"] else color), 0.9
    if node["template"]:
        return to_rgba("white"), to_rgba(color), 1.4
    if node["active"]:
        return to_rgba(color), rim, width
    return to_rgba(color, 0.22), rim, max(width, 1.2)


def _scale(count: int) -> float:
    """Shrink markers as the mesh grows, so 200 actors still fit side by side."""
    return min(1.5, math.sqrt(50 / max(count, 1)))


def _size(node: dict[str, Any], scale: float) -> float:
    """Marker area in pt²: grows with the messages an actor handled (log), then stops."""
    return (70 + 28 * min(math.log1p(node["messages"]), 6)) * scale


def _rotate(unit: np.ndarray, angle: float) -> np.ndarray:
    """Rotate each row of an ``(n, 2)`` array of unit vectors by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.column_stack([unit[:, 0] * c - unit[:, 1] * s, unit[:, 0] * s + unit[:, 1] * c])
