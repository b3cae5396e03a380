"""What Ray adds per cell: the same plan of null-runtime cells with the local executor and with the Ray
executor on a local fleet (`ray.cluster_utils.Cluster`: a head and one worker node offering cpu), one run.

The null runtime does no work, so a cell's wall time is the harness's own: the quick policy's warm-up and
1 s of sampling, the fresh process, and for Ray the task's scheduling, its result's trip back, and the
node's new interpreter per cell (nodes do not fork from a zygote). Reported: seconds per cell for the local
executor forking from a zygote (the default), the local executor starting a new interpreter (`exec`, what a
node does), and Ray; Ray's cost is its time per cell less local exec's.

Usage: python bench/fleet_overhead.py [--cells 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.catalogue.registry import load_catalogue  # noqa: E402
from harness.fleet.devices import NodeResources  # noqa: E402
from harness.measure.environment import cpu_model  # noqa: E402

BATCH_SIZES = (1, 2, 4, 8)


def plan(cells: int) -> list[str]:
    models = [spec.name for spec in load_catalogue().select("@paper")][: max(1, cells // len(BATCH_SIZES))]
    return ["--runtime", "null", "--models", ",".join(models), "--batch-sizes", ",".join(map(str, BATCH_SIZES))]


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as temp:
        env = {**os.environ, "HARNESS_CACHE_DIR": str(Path(temp) / "cache")}
        cells = plan(args.cells)
        count = len(cells[cells.index("--models") + 1].split(",")) * len(BATCH_SIZES)
        base = [sys.executable, "-m", "harness", "bench", *cells, "--out", str(Path(temp) / "runs"), "--show", "time"]
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1, resources=NodeResources("node", ("cpu",)).as_ray())
        cluster.wait_for_nodes()
        try:
            seconds = {
                "local, fork": timed([*base, "--run-id", "fork", "--process-start", "fork"], env),
                "local, exec": timed([*base, "--run-id", "exec", "--process-start", "exec"], env),
                "ray": timed([*base, "--run-id", "ray", "--executor", "ray", "--ray-address", cluster.address], env),
            }
        finally:
            cluster.shutdown()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()}; {count} null-runtime cells, quick "
          "policy, whole `bench` command timed (start-up included)")
    print("| executor | wall (s) | per cell (s) |")
    print("|---|---:|---:|")
    for name, wall in seconds.items():
        print(f"| {name} | {wall:.1f} | {wall / count:.3f} |")
    print(f"Ray's cost per cell over local exec: {(seconds['ray'] - seconds['local, exec']) / count:+.3f} s")


if __name__ == "__main__":
    main()
