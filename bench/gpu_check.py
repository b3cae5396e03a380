"""GPU check: every CUDA runtime installed here, at fp32 and fp16 (and bf16 on torch and torch-compile), on
ResNet-50 and MobileNet-v2 at batch 1 and 8 — times, memory, parity with PyTorch eager fp32, and (where
`trtexec` is on PATH) the ratio of our median GPU time to trtexec's GPU compute median on the very same
engine file.

    python bench/gpu_check.py [--out results/] [--models resnet50,mobilenet_v2] [--batch-sizes 1,8]
    make gpu-check

It runs to the end with whatever subset is installed and says what it skipped and why. Exit 0 when
every planned cell ran and agreed with the reference, 1 otherwise, 2 when there is no CUDA GPU at all.
Figures go to OUT/<run-id>/gpu-check.json besides the usual run folders (bench and verify).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.paths import cache_dir  # noqa: E402
from runtimes import RuntimeUnavailable, cuda_driver, runtime_class  # noqa: E402

GOAL_RATIO = 1.03
BF16_RUNTIMES = ("torch", "torch-compile")  # autocast; the others have no bf16 path here
GPU_COMPUTE = re.compile(r"GPU Compute Time: min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms, "
                         r"median = ([\d.]+) ms")


def _probe_torch() -> str | None:
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    return None if torch.cuda.is_available() else "torch has no CUDA here"


def _probe_ort(provider: str) -> str | None:
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    providers = ort.get_available_providers()
    return None if provider in providers else f"onnxruntime offers no {provider} ({', '.join(providers)}); " \
                                              "install onnxruntime-gpu"


def _probe_trt() -> str | None:
    try:
        runtime_class("trt")
        importlib.import_module("tensorrt")
    except (RuntimeUnavailable, ImportError) as exc:
        return str(exc)
    return None


PROBES = {"torch": _probe_torch, "torch-compile": _probe_torch, "ort": lambda: _probe_ort("CUDAExecutionProvider"),
          "ort-trt": lambda: _probe_ort("TensorrtExecutionProvider"), "trt": _probe_trt}


def harness(*args: str) -> int:
    print(f"\n$ python -m harness {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT).returncode


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def trtexec_median_ms(record: dict[str, Any], trtexec: str) -> tuple[float | None, str]:
    """trtexec's GPU compute median on the engine the cell ran, with the cell's settings."""
    engine = record.get("prepared", {}).get("engine") or {}
    plan = cache_dir() / engine.get("folder", "") / "model.engine"
    if not plan.is_file():
        return None, "engine file not found in the cache"
    shapes = engine.get("build", {}).get("shapes", {})
    batch = record["cell"]["batch_size"]
    command = [trtexec, f"--loadEngine={plan}", "--noDataTransfers", "--separateProfileRun"]
    if shapes.get("input"):
        command.append(f"--shapes={shapes['input']}:{'x'.join(map(str, [batch, *shapes['min'][1:]]))}")
    if record["runtime"]["options"].get("cuda_graph"):
        command.append("--useCudaGraph")
    elif int(str(record["runtime"]["version"]).split(".")[0]) >= 11:
        command.append("--noCudaGraph")  # 11.x captures a graph by default; the cell did not
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    match = GPU_COMPUTE.search(done.stdout)
    if not match:
        return None, f"trtexec printed no GPU compute time (exit {done.returncode}): {done.stdout[-300:]}"
    return float(match.group(4)), " ".join(command)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results", help="parent of the run folders (default results/)")
    parser.add_argument("--models", default="resnet50,mobilenet_v2")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if cuda_driver.device_count() == 0:
        print("no CUDA GPU is visible here (the CUDA driver sees none): nothing to check")
        return 2
    run_id = f"gpu-check-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    skipped = {name: why for name, probe in PROBES.items() if (why := probe()) is not None}
    runtimes = [name for name in PROBES if name not in skipped]
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if not runtimes:
        print("no CUDA runtime is installed: see the README (TensorRT, onnxruntime-gpu, torch with CUDA)")
        return 1
    out = Path(args.out)
    bench: list[dict[str, Any]] = []
    parity: dict[tuple[str, str, str], dict[str, Any]] = {}
    bench_exit = verify_exit = 0
    passes = [("fp32,fp16", runtimes, ""), ("bf16", [r for r in runtimes if r in BF16_RUNTIMES], "-bf16")]
    for precisions, chosen, suffix in passes:
        if not chosen:
            continue
        common = ("--models", args.models, "--precision", precisions, "--device", args.device, "--out", str(out))
        bench_exit |= harness("bench", "--runtime", ",".join(chosen), "--batch-sizes", args.batch_sizes, *common,
                              "--run-id", f"{run_id}-bench{suffix}")
        verify_exit |= harness("verify", "--runtime", ",".join(chosen), "--batch-size",
                               args.batch_sizes.split(",")[-1], *common, "--run-id", f"{run_id}-verify{suffix}")
        bench += read_records(out / f"{run_id}-bench{suffix}")
        parity.update({(r["cell"]["model"], r["cell"]["runtime"], r["cell"]["precision"]): r
                       for r in read_records(out / f"{run_id}-verify{suffix}")})
    trtexec = shutil.which("trtexec")
    if "trt" in runtimes and not trtexec:
        print("skipped the trtexec comparison: trtexec is not on PATH")
    rows = []
    for record in bench:
        cell = record["cell"]
        row: dict[str, Any] = {"cell": record["cell_id"], "status": record["status"], "error": record.get("error")}
        if record["status"] == "ok":
            timing, memory = record["timing"], record.get("memory", {})
            row.update(host_median_ms=timing["host"]["median_ms"],
                       device_median_ms=(timing.get("device") or {}).get("median_ms"),
                       nvml_peak_bytes=(memory.get("cuda_nvml") or {}).get("peak_bytes"),
                       host_peak_bytes=(memory.get("host_rss") or {}).get("peak_bytes"))
            if cell["runtime"] == "trt" and trtexec:
                theirs, how = trtexec_median_ms(record, trtexec)
                row.update(trtexec_gpu_compute_median_ms=theirs, trtexec_command=how)
                if theirs and row["device_median_ms"]:
                    row["ratio_to_trtexec"] = row["device_median_ms"] / theirs
        verdict = parity.get((cell["model"], cell["runtime"], cell["precision"]))
        row["parity"] = verdict["status"] if verdict else "not checked"
        rows.append(row)
    print(f"\n{'cell':46} {'status':12} {'host ms':>9} {'GPU ms':>9} {'NVML MB':>9} {'parity':>14} {'/trtexec':>9}")
    for row in rows:
        figures = [f"{row[k]:9.3f}" if row.get(k) is not None else f"{'—':>9}"
                   for k in ("host_median_ms", "device_median_ms")]
        nvml = f"{row['nvml_peak_bytes'] / 1e6:9.0f}" if row.get("nvml_peak_bytes") else f"{'—':>9}"
        ratio = f"{row['ratio_to_trtexec']:9.3f}" if row.get("ratio_to_trtexec") else f"{'—':>9}"
        print(f"{row['cell']:46} {row['status']:12} {' '.join(figures)} {nvml} {row['parity']:>14} {ratio}")
    ratios = [row["ratio_to_trtexec"] for row in rows if row.get("ratio_to_trtexec")]
    if ratios:
        print(f"ours / trtexec GPU compute median: worst {max(ratios):.3f} (goal <= {GOAL_RATIO})")
    summary = {"run_id": run_id, "runtimes": runtimes, "skipped": skipped, "trtexec": trtexec, "rows": rows,
               "bench_exit": bench_exit, "verify_exit": verify_exit}
    target = out / f"{run_id}-bench" / "gpu-check.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=2))
    print(f"figures: {target}")
    ok = bench_exit == 0 and verify_exit == 0 and all(row["parity"] in ("ok", "not checked") for row in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
