"""Benchmark results as append-only tables: `bench/results/TABLE.jsonl`, one JSON row a line, one row schema.

Every row carries the provenance columns (`PROVENANCE`) beside its own figures: the batch it was made in (what a
sitting was called, `--name`), the date, the code (its commit and whether the tree was dirty), the CPU, the cores it
could use and the torch threads of its run, the data variant of each domain (full, starter, a folder), the torch
version and the command that reproduces it. A column is `None` where a row was made before that column was kept,
and the tables say "unrecorded" there. Rows are only ever appended; renderings (the tables in
docs/BENCHMARKS.md) are derived from them by `bench/report.py` and never committed beside them."""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
if str(RESULTS.parents[1]) not in sys.path:  # the provenance reads tl_core's (code, CPU)
    sys.path.insert(0, str(RESULTS.parents[1]))
PROVENANCE = ("batch", "date", "code", "cpu", "cores", "threads", "data", "torch", "command")


def provenance(batch: str, command: str, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance columns of a row made now; `run` is the run's own `provenance` from `train --json`
    (its code, CPU, threads and data variants), when the row is one run."""
    import torch

    from tl_core.planning.provenance import code_version, cpu_model

    run = run or {}
    machine = run.get("machine") or {}
    data = run.get("data")
    return {"batch": batch, "date": time.strftime("%Y-%m-%d"), "code": run.get("code") or code_version(),
            "cpu": machine.get("cpu") or cpu_model(),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "threads": machine.get("threads"),
            "data": {k: v.get("variant") for k, v in data.items()} if isinstance(data, dict) else None,
            "torch": torch.__version__, "command": command}


def append(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """Add one row to a table (the provenance columns first, `None` where not given); returns the row."""
    full = {k: row.get(k) for k in PROVENANCE} | {k: v for k, v in row.items() if k not in PROVENANCE}
    if not isinstance(full["batch"], (str, type(None))):
        raise ValueError(f"'batch' is the sitting's name (a provenance column), not {full['batch']!r}: name the "
                         "row's own field otherwise (batch_size)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{table}.jsonl", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two benchmarks pinned one per core write the same table
        f.write(json.dumps(full, ensure_ascii=False) + "\n")
    return full


def read(table: str, batches: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row of a table in the order it was made (only the named batches, if given)."""
    path = RESULTS / f"{table}.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if batches is None or r.get("batch") in batches]


def made_when(rows: list[dict]) -> str:
    """When and on what the rows were measured, from the rows themselves (a re-render keeps their dates):
    the run dates and CPUs they recorded, 'undated' for rows made before dates were kept."""
    dates = sorted({r["date"] for r in rows if r.get("date")})
    cpus = sorted({r["cpu"] for r in rows if r.get("cpu")})
    if not dates:
        when = "runs not dated (made before rows recorded their date)"
    else:
        when = "runs made " + (dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}")
        when += " (some rows undated)" if any(not r.get("date") for r in rows) else ""
    return f"{when}, on {', '.join(cpus) if cpus else 'a CPU not recorded'}"


def latest(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """The last row made for each value of `key` (a cell measured again replaces its earlier rows, which the
    table keeps), in the order of those last rows."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = tuple(json.dumps(r.get(f), sort_keys=True) for f in key)
        out.pop(k, None)
        out[k] = r
    return list(out.values())


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float | None = None
            ) -> tuple[dict[str, Any] | None, float, str]:
    """The one way a benchmark runs the product: `python -m tl_core ARGS` in a process of its own, as a user
    would type it (`--json` among the args), from the repository root. Returns (the last line of its output
    as JSON, or None when it failed; the process's wall seconds; the end of its error output)."""
    import subprocess

    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "tl_core", *args], cwd=RESULTS.parents[1], env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t, f"no answer within {timeout:.0f} s"
    wall = time.perf_counter() - t
    if p.returncode != 0:
        return None, wall, (p.stderr.strip() or p.stdout.strip())[-800:]
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), wall, p.stderr[-800:]
    except (ValueError, IndexError):
        return None, wall, (p.stderr or p.stdout)[-800:]
