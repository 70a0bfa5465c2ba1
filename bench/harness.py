"""The benchmark harness: discover ``bench/bench_*.py``, run them, ratio, check, print and save.

A benchmark module needs one function::

    def run(record):
        record("http_ask", 12_345.0, "ops/s")                    # ratio vs floor_ask (default)
        record("http_ask_seq", 9_000.0, "ops/s", ratio="http_floor_seq")  # vs another record
        record("grpc_ask", 8_000.0, "ops/s", ratio=0.41)          # a ratio it computed itself
        record("pg_save", None, "ops/s", note="postgres missing") # an explicit failure

``record(name, value, unit, ratio=None, note="")``:

- ``ratio=None`` on a rate (a unit ending in ``/s``) means "relative to ``floor_ask`` measured in
  this run"; the harness fills it in at the end (and measures the floor itself if the run did
  not include ``bench_core``). Other units (bytes, %) get no ratio unless one is given.
- ``ratio="<record name>"`` makes that record of the same run the base (resolved at the end, so
  the base may be recorded after this one).
- a number is taken as is.
- ``value=None`` records a failure; its note says why. It shows as ``error`` in the table.

Targets live in :data:`TARGETS` below; a module may add rows for its own records with a module
level ``TARGETS`` dict of the same shape (rows here win). ``TRIALS`` is how many trials a module
should take per figure, and :func:`wanted` tells a module whether a record was asked for
(``--record``), so that a single figure can be re-measured quickly.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import pkgutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = (
    "TARGETS",
    "TRIALS",
    "Record",
    "Recorder",
    "Sample",
    "Target",
    "main",
    "rate",
    "wanted",
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "latest.json"
FLOOR = "floor_ask"

#: Trials per figure; modules read it at run time (``--trials``).
TRIALS = 5
_SELECTED: frozenset[str] | None = None


class RecordFn(Protocol):
    def __call__(
        self,
        name: str,
        value: float | None,
        unit: str,
        ratio: float | str | None = None,
        note: str = "",
    ) -> Record: ...


# -- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A pass/miss rule: ``on`` ("ratio" or "value") ``op`` (">=", "<=") ``threshold``."""

    on: str
    op: str
    threshold: float
    text: str

    def check(self, rec: Record) -> str:
        if self.op == "base":
            return "base" if rec.value is not None else "error"
        if rec.value is None:
            return "error"
        subject = rec.ratio if self.on == "ratio" else rec.value
        if subject is None:
            return "n/a"
        ok = subject >= self.threshold if self.op == ">=" else subject <= self.threshold
        return "pass" if ok else "miss"


def _at_least(threshold: float, base: str = "floor") -> Target:
    return Target("ratio", ">=", threshold, f">= {threshold:g}x {base}")


def _at_most(threshold: float, unit: str) -> Target:
    return Target("value", "<=", threshold, f"<= {threshold:,g} {unit}")


#: name -> target (issue 2 §9). Peers and floors have "base" rows: they are what others compare to.
TARGETS: dict[str, Target] = {
    "floor_ask": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "ask_async": _at_least(0.9),
    "tell": _at_least(4.0),
    "ask_sync_from_thread": _at_least(1.0, "pykka_ask"),
    "pykka_ask": Target("ratio", "base", 1.0, "peer"),
    "invoke_wire": _at_least(0.4),
    "mem_passive_actor_bytes": _at_most(300, "B"),
    "mem_active_idle_actor_bytes": _at_most(1_000, "B"),
    "trace_overhead": _at_most(5, "%"),
}


# -- records -----------------------------------------------------------------------------------


@dataclass
class Record:
    name: str
    value: float | None
    unit: str
    ratio: float | None = None
    base: str | None = None
    note: str = ""
    module: str = ""
    target: Target | None = None
    status: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "base": self.base,
            "target": self.target.text if self.target else None,
            "status": self.status or None,
            "note": self.note,
            "module": self.module,
        }


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if abs(value) >= 100:
        return round(value, 1)
    return round(value, 3)


@dataclass
class Recorder:
    """Collects the records of one run, in order."""

    records: list[Record] = field(default_factory=list)
    module: str = ""
    echo: bool = True

    def record(
        self,
        name: str,
        value: float | None,
        unit: str,
        ratio: float | str | None = None,
        note: str = "",
    ) -> Record:
        base: str | None = None
        if isinstance(ratio, str):
            base, ratio = ratio, None
        elif ratio is None and unit.endswith("/s"):
            base = FLOOR
        if value is not None:
            value = float(value)
        rec = Record(name, value, unit, ratio, base, note, self.module)
        self.records.append(rec)
        if self.echo:
            shown = "ERROR" if value is None else f"{_fmt_value(value, unit)} {unit}"
            print(f"  {name:<30} {shown}  {note}", file=sys.stderr, flush=True)
        return rec

    def get(self, name: str) -> Record | None:
        for rec in reversed(self.records):
            if rec.name == name and rec.value is not None:
                return rec
        return None


def wanted(name: str) -> bool:
    """False if ``--record`` was given and did not name ``name`` (modules may skip the work)."""
    return _SELECTED is None or name in _SELECTED


# -- measuring helpers ---------------------------------------------------------------------------


@dataclass
class Sample:
    """Rates of repeated trials of one figure. ``best`` is the headline (noise only slows)."""

    values: list[float]

    @property
    def best(self) -> float:
        return max(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def note(self) -> str:
        return (
            f"best of {len(self.values)}; median {self.median:,.0f}, worst {min(self.values):,.0f}"
        )


def rate(timed: Callable[[int], float], n: int, trials: int | None = None) -> Sample:
    """Run ``timed(n)`` (which returns the seconds ``n`` operations took) ``trials`` times."""
    values = []
    for _ in range(trials or TRIALS):
        gc.collect()
        seconds = timed(n)
        values.append(n / seconds)
    return Sample(values)


# -- discovery and running -------------------------------------------------------------------------


def discover() -> list[str]:
    """Module groups (``core`` for ``bench_core``), core first so the floor is measured first."""
    names = sorted(
        info.name[len("bench_") :]
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if info.name.startswith("bench_")
    )
    return sorted(names, key=lambda n: (n != "core", n))


def run_groups(groups: Iterable[str], recorder: Recorder) -> list[str]:
    """Run each group's ``run(record)``; return the groups that crashed (with an error record)."""
    crashed = []
    for group in groups:
        recorder.module = group
        print(f"[{group}]", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{group}")
            for name, target in getattr(module, "TARGETS", {}).items():
                TARGETS.setdefault(name, target)
            module.run(recorder.record)
        except Exception as exc:  # one broken module must not lose the others' figures
            traceback.print_exc()
            recorder.record(
                f"bench_{group}", None, "", note=f"crashed: {type(exc).__name__}: {exc}"
            )
            crashed.append(group)
        gc.collect()
        print(f"[{group}] {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return crashed


def finish(recorder: Recorder) -> list[Record]:
    """Resolve ratios (measuring the floor if the run lacks it) and check targets."""
    needs_floor = any(r.base == FLOOR and r.ratio is None for r in recorder.records)
    if needs_floor and recorder.get(FLOOR) is None:
        from bench.bench_core import measure_floor

        recorder.module = "core"
        print("[floor] measuring floor_ask for the ratios", file=sys.stderr, flush=True)
        measure_floor(recorder.record)
    for rec in recorder.records:
        if rec.ratio is None and rec.base is not None and rec.value is not None:
            base = recorder.get(rec.base)
            if base is not None and base.value:
                rec.ratio = rec.value / base.value
            else:
                rec.note = f"{rec.note}; no {rec.base} in this run".lstrip("; ")
        rec.target = TARGETS.get(rec.name)
        rec.status = rec.target.check(rec) if rec.target else ("error" if rec.value is None else "")
    return recorder.records


# -- output ---------------------------------------------------------------------------------------


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _fmt_ratio(rec: Record) -> str:
    if rec.ratio is None:
        return "-"
    base = {FLOOR: "floor", None: ""}.get(rec.base, rec.base)
    return f"{rec.ratio:.2f}x {base}".rstrip()


def table(records: list[Record], markdown: bool = False) -> str:
    """The result table as aligned text, or as a Markdown table."""
    head = ("name", "value", "unit", "ratio", "target", "status")
    rows = [
        (
            r.name,
            _fmt_value(r.value, r.unit),
            r.unit,
            _fmt_ratio(r),
            r.target.text if r.target else "",
            r.status or "",
        )
        for r in records
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += [
            "| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |"
            for row in rows
        ]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    right = {1, 3}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [line(head), line(tuple("-" * w for w in widths))]
    out += [line(row) for row in rows]
    notes = [f"  {r.name}: {r.note}" for r in records if r.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def write(records: list[Record], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([r.as_json() for r in records], indent=2) + "\n")
    os.replace(tmp, path)


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global TRIALS, _SELECTED
    groups = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description="spawn_lab benchmarks")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated groups to run (default: all of {', '.join(groups)})",
    )
    parser.add_argument(
        "--record",
        action="append",
        default=[],
        help="measure only this record (repeatable; modules that support it skip the rest)",
    )
    parser.add_argument("--trials", type=int, default=TRIALS, help="trials per figure (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON records")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 on any miss, not only on errors"
    )
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(groups))
        return 0
    selected = [
        g.strip().removeprefix("bench_") for g in args.only.split(",") if g.strip()
    ] or groups
    unknown = sorted(set(selected) - set(groups))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(groups)}")
    TRIALS = max(1, args.trials)
    _SELECTED = frozenset(args.record) if args.record else None

    recorder = Recorder()
    started = time.perf_counter()
    crashed = run_groups(selected, recorder)
    records = finish(recorder)
    if _SELECTED is not None:
        keep = _SELECTED | {r.base for r in records if r.name in _SELECTED and r.base}
        records = [r for r in records if r.name in keep or r.value is None]
    write(records, args.out)
    print(table(records, markdown=args.markdown))
    print(f"\n{len(records)} records in {time.perf_counter() - started:.1f} s -> {args.out}")
    statuses = {r.status for r in records}
    if crashed or "error" in statuses:
        return 1
    return 1 if args.strict and "miss" in statuses else 0
