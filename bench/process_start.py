"""Does forking cells from a zygote change what a cell measures? And what does it save?

The same cells run with `--process-start exec` (a new interpreter per cell) and `fork` (a child of a
zygote that imported the cell's libraries once), in interleaved rounds so drift hits both alike.
Per cell it reports the median of the per-round batch medians, the peak host RSS and the baseline RSS
(before the model was loaded) for each start, and the wall time per cell. The claim to check: the
medians and memory agree within the machine's noise, and only the wall time differs.

Usage: python bench/process_start.py [--rounds 3] [--models resnet18,mobilenet_v2] [--runtimes torch,ort]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from harness.catalogue.registry import load_catalogue
from harness.measure.timing import QUICK
from harness.sweep.planning import plan_cells
from harness.sweep.sweep import BenchSettings, Sweep, catalogue_subjects

STARTS = ("exec", "fork")


def run_round(out_dir: Path, round_index: int, start: str, specs, runtimes: list[str],
              batch_sizes: list[int]) -> list[dict]:
    subjects = catalogue_subjects(specs)
    cells = plan_cells(list(subjects), runtimes, ["fp32"], batch_sizes, "cpu")
    sweep = Sweep(out_dir, f"{start}-{round_index}", subjects, BenchSettings(policy=QUICK, process_start=start))
    return sweep.run(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--runtimes", default="torch,ort")
    parser.add_argument("--batch-sizes", default="1")
    args = parser.parse_args()
    specs = load_catalogue().select(args.models)
    runtimes = args.runtimes.split(",")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    seen: dict[tuple[str, str], list[dict]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = STARTS if round_index % 2 == 0 else STARTS[::-1]
            for start in order:
                for record in run_round(Path(tmp), round_index, start, specs, runtimes, batch_sizes):
                    seen[(record["cell_id"], start)].append(record)
    print("| cell | start | median ms | peak RSS MB | baseline RSS MB | wall s per cell |")
    print("|---|---|---:|---:|---:|---:|")
    for (cell_id, start), records in sorted(seen.items()):
        ok = [r for r in records if r["status"] == "ok"]
        if not ok:
            print(f"| {cell_id} | {start} | {records[0]['status']} | | | |")
            continue
        median = statistics.median(r["timing"]["host"]["median_ms"] for r in ok)
        peak = statistics.median(r["memory"]["host_rss"]["peak_bytes"] for r in ok) / 1e6
        baseline = statistics.median(r["memory"]["host_rss"]["baseline_bytes"] for r in ok) / 1e6
        wall = statistics.fmean(r["wall_s"] for r in ok)
        print(f"| {cell_id} | {start} | {median:.2f} | {peak:.0f} | {baseline:.0f} | {wall:.2f} |")


if __name__ == "__main__":
    main()
