"""What the energy pass adds per cell: the same plan with `--energy off` and with `--energy on` where a RAPL
tree can be read, one run.

This machine has no readable energy source, so a powercap tree shaped like a real one (two packages whose
counters do not move) is made in a temporary folder and named with HARNESS_POWERCAP_DIR: the pass then runs
as it would on a machine with RAPL (1 s idle window, at least 2 s of back-to-back calls), and the record's
figure is "≈ idle" (a counter that does not move). What is measured is the wall time the pass adds, not
joules. A third run with `--energy on` and no tree shows what the default costs where no source is readable.

Usage: python bench/energy_pass_cost.py [--models squeezenet1_1,mobilenet_v2] [--batch-sizes 1,4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.measure.environment import cpu_model  # noqa: E402


def powercap_tree(folder: Path) -> Path:
    for index in range(2):
        domain = folder / f"intel-rapl:{index}"
        domain.mkdir(parents=True)
        (domain / "name").write_text(f"package-{index}\n")
        (domain / "energy_uj").write_text("123456789\n")
        (domain / "max_energy_range_uj").write_text("262143328850\n")
    return folder


def timed_run(out: Path, run_id: str, plan: list[str], energy: str, powercap: Path) -> tuple[float, list[dict]]:
    env = {**os.environ, "HARNESS_POWERCAP_DIR": str(powercap)}
    command = [sys.executable, "-m", "harness", "bench", *plan, "--out", str(out), "--run-id", run_id,
               "--energy", energy, "--show", "time"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=False, capture_output=True)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / run_id / "records.jsonl").read_text().splitlines()]
    return wall, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="squeezenet1_1,mobilenet_v2")
    parser.add_argument("--batch-sizes", default="1,4")
    args = parser.parse_args()
    plan = ["--runtime", "ort", "--models", args.models, "--batch-sizes", args.batch_sizes]
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tree = powercap_tree(root / "powercap")
        # a warm-up run fills the artifact cache, so no measured run pays for an export
        timed_run(root / "runs", "warm", plan, "off", root / "none")
        rows = {}
        for name, run_id, energy, powercap in (("--energy off", "off", "off", root / "none"),
                                               ("--energy on, no readable source", "on-none", "on", root / "none"),
                                               ("--energy on, a RAPL tree", "on-rapl", "on", tree)):
            wall, records = timed_run(root / "runs", run_id, plan, energy, powercap)
            passes = [r["energy"]["pass"] for r in records if (r.get("energy") or {}).get("pass")]
            rows[name] = (wall, len(records), passes)
        base = rows["--energy off"][0] / rows["--energy off"][1]
        for name, (wall, cells, passes) in rows.items():
            per_cell = wall / cells
            spent = sum(p["idle_s"] + p["busy_s"] for p in passes) / max(1, len(passes))
            print(f"{name:34s} {wall:6.1f} s for {cells} cells = {per_cell:5.2f} s/cell "
                  f"({per_cell - base:+.2f} s/cell over --energy off; passes run: {len(passes)}, "
                  f"idle + busy {spent:.2f} s each)")


if __name__ == "__main__":
    main()
