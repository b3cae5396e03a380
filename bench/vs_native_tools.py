"""Does the harness report what each runtime's own tool reports? One run, interleaved rounds.

OpenVINO: the harness's `ov` cell (`python -m harness bench --runtime ov`, a fresh process per round, its
usual warm-up and stopping rule) against OpenVINO's own `benchmark_app` (installed with the openvino
wheel) on the same cached ONNX file, with the same device, batch size (`-shape`), performance hint,
streams, threads, pinning and precision hint: benchmark_app takes them through `-load_config` from what
the harness's cell recorded OpenVINO settled on, and the script checks the properties benchmark_app
prints against them. benchmark_app runs `-api sync`: one request in flight, so its per-request median
latency is the time of one inference, what the harness's batch median is. (Its default async mode keeps
several requests in flight and reports their latency under contention: a different quantity.) Like with
like: benchmark_app reports OpenVINO's `InferRequest.latency`, the C++-side time from start_async() to the
completion callback, and the harness records that same clock per sample beside its host clock (the ov
runtime's device clock), so the ratio compares the harness's median of it with benchmark_app's; the host
median (which also holds the Python calls, 12-32 us here: bench/ov_call_overhead.py) is printed beside.

ONNX Runtime: its perf tool (onnxruntime_perf_test) ships with source builds, not the wheel; where it is
not on PATH, the harness's `ort` cell is compared with a hand-written `session.run` loop in a process of
its own, on the same file with the same threads.

Per cell: the median over rounds of harness median / tool median; goal <= 1.03. Rounds alternate which
side goes first so drift hits both alike.

Usage: python bench/vs_native_tools.py [--rounds 5] [--models resnet50,mobilenet_v2,squeezenet1_1]
       [--batch-sizes 1,8] [--precisions fp32] [--threads N] [--seconds 5] [--skip-ort]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.measure.environment import cpu_model  # noqa: E402
from harness.paths import cache_dir  # noqa: E402
from harness.records import read_records  # noqa: E402

OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
# benchmark_app's printed property -> the key the harness's ov record holds it under
CHECKED_PROPERTIES = {"NUM_STREAMS": "num_streams", "INFERENCE_NUM_THREADS": "inference_num_threads",
                      "PERFORMANCE_HINT": "performance_hint", "ENABLE_CPU_PINNING": "enable_cpu_pinning"}
HAND_LOOP = """
import sys, time, statistics, numpy as np, onnxruntime as ort
path, batch, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
options = ort.SessionOptions(); options.intra_op_num_threads = threads
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
meta = session.get_inputs()[0]
feed = {meta.name: np.random.default_rng(0).standard_normal((batch, *meta.shape[1:]), dtype=np.float32)}
for _ in range(5):
    session.run(None, feed)
times, end = [], time.perf_counter() + seconds
while time.perf_counter() < end:
    start = time.perf_counter(); session.run(None, feed); times.append((time.perf_counter() - start) * 1e3)
print(statistics.median(times), len(times))
"""


@dataclass
class Cell:
    runtime: str
    model: str
    batch_size: int
    precision: str
    harness_ms: list[float] = field(default_factory=list)  # what is compared: the clock the tool reads
    harness_host_ms: list[float] = field(default_factory=list)
    tool_ms: list[float] = field(default_factory=list)
    tool: str = ""
    mismatches: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [h / t for h, t in zip(self.harness_ms, self.tool_ms)]


def harness_cell(cell: Cell, threads: int, out: Path, round_index: int) -> dict:
    """One bench cell through the whole harness, in a process of its own; its record."""
    run_id = f"{cell.runtime}-{cell.model}-{cell.precision}-bs{cell.batch_size}-r{round_index}"
    command = [sys.executable, "-m", "harness", "bench", "--models", cell.model, "--runtime", cell.runtime,
               "--precision", cell.precision, "--batch-sizes", str(cell.batch_size), "--threads", str(threads),
               "--out", str(out), "--run-id", run_id]
    if cell.runtime == "ov":
        command += ["--runtime-option", "ov.hint=latency", "--runtime-option", "ov.streams=1"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    [record] = read_records(out / run_id / "records.jsonl").records
    if record["status"] != "ok":
        raise SystemExit(f"{run_id}: {record['status']}: {record.get('error')}")
    return record


def compared_median_ms(record: dict) -> float:
    """The harness's median by the clock the native tool reads: OpenVINO's own request latency for ov
    (recorded as the cell's device timing), the host clock for ort (the hand loop times session.run)."""
    timing = record["timing"]
    if record["cell"]["runtime"] == "ov":
        if not (timing.get("device_clock") or "").startswith("OpenVINO"):
            raise SystemExit(f"the ov record holds no OpenVINO latency samples ({timing.get('device_clock')})")
        return timing["device"]["median_ms"]
    return timing["host"]["median_ms"]


def onnx_path(record: dict) -> str:
    path = Path(record["prepared"]["artifact"]["path"])
    return str(path if path.is_absolute() else cache_dir() / path)


def benchmark_app(record: dict, cell: Cell, seconds: int, work: Path) -> tuple[float, list[str]]:
    """benchmark_app's median latency (ms) with the settings the harness's cell recorded, and any property
    benchmark_app printed that differs from them."""
    options = record["runtime"]["options"]
    config = {"CPU": {"PERFORMANCE_HINT": options["performance_hint"], "NUM_STREAMS": str(options["num_streams"]),
                      "INFERENCE_NUM_THREADS": str(options["inference_num_threads"]),
                      "INFERENCE_PRECISION_HINT": OV_PRECISION[cell.precision],
                      "ENABLE_CPU_PINNING": "YES" if options["enable_cpu_pinning"] else "NO"}}
    config_path = work / "ov-config.json"
    config_path.write_text(json.dumps(config))
    shape = record["runtime"]["options"]["input_shape"]
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    result = subprocess.run([tool, "-m", onnx_path(record), "-d", "CPU", "-hint", options["performance_hint"].lower(),
                             "-load_config", str(config_path), "-shape", shape, "-api", "sync", "-t", str(seconds)],
                            check=True, capture_output=True, text=True)
    median = re.search(r"Median:\s+([\d.]+) (ms|us)", result.stdout)  # it switches to us below 1 ms
    if median is None:
        raise SystemExit(f"benchmark_app printed no median latency:\n{result.stdout[-2000:]}")
    median_ms = float(median.group(1)) / (1000.0 if median.group(2) == "us" else 1.0)
    printed = dict(re.findall(r"\[ INFO \]\s+([A-Z_]+): (.+)", result.stdout))
    mismatches = [f"{name}: benchmark_app {printed.get(name)} vs harness {options[key]}"
                  for name, key in CHECKED_PROPERTIES.items() if str(printed.get(name)) != str(options[key])]
    if cell.precision == "bf16" and "bfloat16" not in printed.get("INFERENCE_PRECISION_HINT", ""):
        mismatches.append(f"INFERENCE_PRECISION_HINT: {printed.get('INFERENCE_PRECISION_HINT')}")
    return median_ms, mismatches


def hand_loop(record: dict, cell: Cell, threads: int, seconds: int) -> float:
    result = subprocess.run([sys.executable, "-c", HAND_LOOP, onnx_path(record), str(cell.batch_size), str(threads),
                             str(seconds)], check=True, capture_output=True, text=True)
    return float(result.stdout.split()[0])


def tool_median(setup: dict, cell: Cell, threads: int, seconds: int, work: Path) -> float:
    if cell.runtime == "ov":
        tool_ms, mismatches = benchmark_app(setup, cell, seconds, work)
        cell.tool, cell.mismatches = "benchmark_app -api sync", sorted(set(cell.mismatches) | set(mismatches))
        return tool_ms
    cell.tool = "hand session.run loop"
    return hand_loop(setup, cell, threads, seconds)


def measure(cell: Cell, rounds: int, threads: int, seconds: int, work: Path) -> None:
    """A setup cell (not counted) makes the ONNX file and records the settings the tool is given; then rounds
    of harness cell and tool run, alternating which goes first."""
    setup = harness_cell(cell, threads, work / "runs", 0)
    for round_index in range(1, rounds + 1):
        record, tool_ms = {}, 0.0
        for side in (("harness", "tool") if round_index % 2 else ("tool", "harness")):
            if side == "harness":
                record = harness_cell(cell, threads, work / "runs", round_index)
            else:
                tool_ms = tool_median(setup, cell, threads, seconds, work)
        cell.harness_ms.append(compared_median_ms(record))
        cell.harness_host_ms.append(record["timing"]["host"]["median_ms"])
        cell.tool_ms.append(tool_ms)
        print(f"  {cell.runtime} {cell.model} {cell.precision} bs{cell.batch_size} round {round_index}: harness "
              f"{cell.harness_ms[-1]:.3f} ms (host {cell.harness_host_ms[-1]:.3f} ms), {cell.tool} {tool_ms:.3f} ms",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="resnet50,mobilenet_v2,squeezenet1_1")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--precisions", default="fp32", help="ov precisions: fp32 and/or bf16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=int, default=5, help="benchmark_app -t and the hand loop's duration")
    parser.add_argument("--skip-ort", action="store_true")
    args = parser.parse_args()
    models, batches = args.models.split(","), [int(b) for b in args.batch_sizes.split(",")]
    cells = [Cell("ov", m, b, p) for m in models for b in batches for p in args.precisions.split(",")]
    if not args.skip_ort:
        cells += [Cell("ort", m, b, "fp32") for m in models for b in batches]
    with tempfile.TemporaryDirectory() as temp:
        for cell in cells:
            measure(cell, args.rounds, args.threads, args.seconds, Path(temp))
    import onnxruntime
    import openvino

    print(f"\nmachine: {cpu_model()}, {platform.system()}, openvino {openvino.get_version()}, onnxruntime "
          f"{onnxruntime.__version__}, {args.threads} threads, {args.rounds} rounds, tool runs of {args.seconds:g} s")
    print("| runtime | model | precision | batch | harness clock | harness median (ms) | tool median (ms) | tool | "
          "median ratio | ratios | host median (ms) | host ratio |")
    print("|---|---|---|---:|---|---:|---:|---|---:|---|---:|---:|")
    for cell in cells:
        ratios = cell.ratios
        host_ratio = statistics.median(h / t for h, t in zip(cell.harness_host_ms, cell.tool_ms))
        clock = "OpenVINO request latency" if cell.runtime == "ov" else "host"
        print(f"| {cell.runtime} | {cell.model} | {cell.precision} | {cell.batch_size} | {clock} | "
              f"{statistics.median(cell.harness_ms):.3f} | {statistics.median(cell.tool_ms):.3f} | {cell.tool} | "
              f"{statistics.median(ratios):.3f} | {', '.join(f'{r:.3f}' for r in ratios)} | "
              f"{statistics.median(cell.harness_host_ms):.3f} | {host_ratio:.3f} |")
    mismatches = [f"{c.model} bs{c.batch_size} {c.precision}: {m}" for c in cells for m in c.mismatches]
    print("\nsettings benchmark_app printed that differ from the harness's: " + ("; ".join(mismatches) or "none"))
    worst = max(statistics.median(c.ratios) for c in cells)
    print(f"worst median ratio {worst:.3f} (goal <= 1.03)")
    print(json.dumps([{**{k: v for k, v in vars(c).items() if not k.startswith("_")}, "ratios": c.ratios}
                      for c in cells]))


if __name__ == "__main__":
    main()
