"""Where a sweep's wall time went: inside timed inference, and the overhead around it.

Usage: python bench/sweep_cost.py results/<run-id> [...]

Overhead = the run's wall time (first cell's start to last cell's end) minus the time inside the
timed loops, as a share of that wall time, split into: between cells (the parent: starting zygotes,
planning, writing records), process start and imports (each cell's wall time outside the worker's
main: fork or interpreter start, and the imports a zygote did not do), weights and ONNX preparation
(cached after the first time), library import inside the worker, load (cold start), first run,
warm-up, and the rest (memory pass, outputs check, complexity, result writing).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from harness.records import RECORDS_FILE, read_records


def _prepared_s(record: dict) -> float:
    prepared = record.get("prepared") or {}
    weights = (prepared.get("weights") or {}).get("prepare_s") or 0.0
    artifact = (prepared.get("artifact") or {}).get("lookup_s") or 0.0
    return weights + artifact


def run_span_s(records: list[dict]) -> float:
    """First cell's start to last cell's end (started_at has whole seconds: +-1 s)."""
    starts = [datetime.fromisoformat(r["started_at"]).timestamp() for r in records]
    last = max(range(len(records)), key=lambda i: starts[i])
    return max(starts[last] + records[last]["wall_s"] - min(starts), sum(r["wall_s"] for r in records))


def main(runs: list[str]) -> None:
    per_run = [read_records(Path(run) / RECORDS_FILE).records for run in runs]
    records = [r for run in per_run for r in run]
    cells_wall = sum(r["wall_s"] for r in records)
    wall = sum(run_span_s(run) for run in per_run if run)
    parts = Counter()
    parts["between cells (parent, zygote starts)"] = wall - cells_wall
    for r in records:
        worker = r.get("worker_s", r["wall_s"])
        parts["process start and imports"] += r["wall_s"] - worker
        parts["weights and ONNX preparation"] += _prepared_s(r)
        cold = r.get("cold_start") or {}
        parts["library import"] += cold.get("library_import_s") or 0.0
        parts["load (cold start)"] += cold.get("load_s") or 0.0
        parts["first run"] += (cold.get("first_run_ms") or 0.0) / 1e3
        timing = r.get("timing") or {}
        parts["warm-up"] += timing.get("warmup_s") or 0.0
        parts["timed inference"] += timing.get("loop_s") or 0.0
    inside = parts.pop("timed inference")
    parts["rest (memory pass, checks, complexity, writing)"] = wall - inside - sum(parts.values())
    statuses = Counter(r["status"] for r in records)
    invalid = sum(1 for r in records if r["status"] == "ok" and not (r.get("validity") or {"valid": True})["valid"])
    print(f"cells: {len(records)}  " + "  ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
          + f"  (ok but invalid: {invalid})")
    starts = Counter((r.get("process") or {"start": "exec"})["start"] for r in records)
    print("process start: " + ", ".join(f"{k} {v}" for k, v in sorted(starts.items())))
    print(f"wall time: {wall:,.0f} s ({wall / 3600:.2f} h), of which inside cells {cells_wall:,.0f} s")
    print(f"inside timed inference: {inside:,.0f} s; overhead: {wall - inside:,.0f} s = "
          f"{(wall - inside) / wall:.1%} of wall time")
    for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:50s} {seconds:9,.0f} s  {seconds / wall:6.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
