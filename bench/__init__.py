"""spawn_lab benchmarks: ``python -m bench`` (what ``make bench`` runs).

Each module ``bench/bench_<group>.py`` exposes ``run(record)`` and calls
``record(name, value, unit, ratio=None, note="")`` once per figure. The harness
(:mod:`bench.harness`) discovers the modules, runs them, computes ratios against the asyncio
floor measured in the same run, checks the targets in :data:`bench.harness.TARGETS`, prints a
table and writes ``bench/results/latest.json``. ``docs/performance.md`` explains every record.
"""
