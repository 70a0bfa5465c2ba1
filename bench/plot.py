"""Plot ``bench/results/latest.json`` as ``docs/performance.png``: ours beside floors and peers.

Throughput records are drawn as bars in groups (asyncio floor and Pykka against our asks; raw
sqlite3 against durable invocations; bare aiohttp and grpc.aio against our servers), so each
figure sits next to the floor it is judged by. Run ``python -m bench.plot`` after ``make bench``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = [
    ("in-process asks", ["floor_ask", "pykka_ask", "ask_async", "ask_sync_from_thread", "tell"]),
    ("wire and views", ["floor_ask", "invoke_wire", "ask_async_view_open"]),
    ("durable (SQLite)", ["sqlite_full_upsert", "invoke_durable_1caller"]),
    ("PostgreSQL, 100 callers", ["pg_raw_upsert_100callers", "pg_invoke_durable_100callers"]),
    ("HTTP", ["http_floor_seq", "http_invoke_seq", "http_floor_16conc", "http_invoke_16conc"]),
    ("gRPC", ["grpc_floor_seq", "grpc_invoke_seq", "grpc_floor_16conc", "grpc_invoke_16conc"]),
]
FLOORS = {
    "floor_ask",
    "pykka_ask",
    "sqlite_full_upsert",
    "pg_raw_upsert_100callers",
    "http_floor_seq",
    "http_floor_16conc",
    "grpc_floor_seq",
    "grpc_floor_16conc",
}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    source = Path(args[0]) if args else ROOT / "bench" / "results" / "latest.json"
    target = Path(args[1]) if len(args) > 1 else ROOT / "docs" / "performance.png"
    records = {r["name"]: r for r in json.loads(source.read_text()) if r.get("value")}

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [(title, [n for n in names if n in records]) for title, names in GROUPS]
    groups = [(title, names) for title, names in groups if names]
    figure = Figure(figsize=(11, 2.6 * len(groups)), dpi=90)
    FigureCanvasAgg(figure)
    for row, (title, names) in enumerate(groups, 1):
        axes = figure.add_subplot(len(groups), 1, row)
        values = [records[n]["value"] for n in names]
        colours = ["#9aa3ad" if n in FLOORS else "#2f6db5" for n in names]
        bars = axes.barh(names, values, color=colours)
        axes.set_title(f"{title} (ops/s; grey = floor or peer)", fontsize=10, loc="left")
        axes.invert_yaxis()
        for bar, value in zip(bars, values, strict=True):
            axes.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value:,.0f}",
                va="center",
                fontsize=8,
            )
        axes.set_xlim(0, max(values) * 1.25)
        axes.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
