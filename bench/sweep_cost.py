"""Where a sweep's wall time went: inside timed inference, and the overhead around it.

Usage: python bench/sweep_cost.py results/<run-id> [...]

Overhead = wall time of the cells minus the time inside the timed loops, as a share of wall time,
split into: process start and imports (the cell's wall time outside the worker's main), weights and
ONNX preparation (cached after the first time), library import, load (cold start), first run,
warm-up, and the rest (memory pass, outputs check, complexity, result writing).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from harness.records import RECORDS_FILE, read_records


def _prepared_s(record: dict) -> float:
    prepared = record.get("prepared") or {}
    weights = (prepared.get("weights") or {}).get("prepare_s") or 0.0
    artifact = (prepared.get("artifact") or {}).get("lookup_s") or 0.0
    return weights + artifact


def main(runs: list[str]) -> None:
    records = [r for run in runs for r in read_records(Path(run) / RECORDS_FILE).records]
    wall = sum(r["wall_s"] for r in records)
    parts = Counter()
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
    print(f"wall time of the cells: {wall:,.0f} s ({wall / 3600:.2f} h)")
    print(f"inside timed inference: {inside:,.0f} s; overhead: {wall - inside:,.0f} s = "
          f"{(wall - inside) / wall:.1%} of wall time")
    for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:50s} {seconds:9,.0f} s  {seconds / wall:6.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
