"""GPU check: every CUDA runtime installed here, at fp32 and fp16 (and bf16 on torch and torch-compile), on
ResNet-50 and MobileNet-v2 at batch 1 and 8 — per cell the host median, the device-clock median and how it was
taken (CUDA events with one run queued ahead, as trtexec; harness/measure/timing.py), memory, parity with
PyTorch eager fp32, and for TensorRT cells trtexec's GPU Compute Time median on the very same engine file with
the ratio (trtexec's flags chosen by trtexec's own version: harness/measure/trtexec.py), or why there is none.

    python bench/gpu_check.py [--out results/] [--models resnet50,mobilenet_v2] [--batch-sizes 1,8]
                              [--runtimes torch,torch-compile,ort,ort-trt,trt]
    make gpu-check

It runs to the end with whatever subset is installed and says what it skipped and why. Exit 0 when
every planned cell ran and agreed with the reference, 1 otherwise, 2 when there is no CUDA GPU at all.
Figures go to OUT/<run-id>/gpu-check.json besides the usual run folders (bench and verify).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.measure import trtexec as native  # noqa: E402
from harness.measure.timing import QUEUED_AHEAD  # noqa: E402
from harness.paths import cache_dir  # noqa: E402
from runtimes import RuntimeUnavailable, cuda_driver, runtime_class  # noqa: E402

GOAL_RATIO = 1.03
BF16_RUNTIMES = ("torch", "torch-compile")  # autocast; the others have no bf16 path here


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


def row_of(record: dict[str, Any], parity: dict[tuple[str, str, str], dict[str, Any]],
           trtexec: str | None) -> dict[str, Any]:
    """One cell's figures: host and device medians (with the device clock's method), memory, parity, and for
    trt cells trtexec's GPU compute median on the same engine with the ratio, or why there is none."""
    cell = record["cell"]
    row: dict[str, Any] = {"cell": record["cell_id"], "status": record["status"], "error": record.get("error")}
    if record["status"] == "ok":
        timing, memory = record["timing"], record.get("memory", {})
        row.update(host_median_ms=timing["host"]["median_ms"],
                   device_median_ms=(timing.get("device") or {}).get("median_ms"),
                   device_method="queued ahead" if timing.get("device_method") == QUEUED_AHEAD else
                   "in loop" if timing.get("device_method") else None,
                   nvml_peak_bytes=(memory.get("cuda_nvml") or {}).get("peak_bytes"),
                   host_peak_bytes=(memory.get("host_rss") or {}).get("peak_bytes"))
    if cell["runtime"] == "trt":
        comparison = native.compare(record, trtexec, cache_dir())
        row.update(trtexec_gpu_compute_median_ms=comparison.median_ms, trtexec_command=comparison.command,
                   trtexec_version=comparison.trtexec_version, trtexec_why_not=comparison.why or None)
        if comparison.median_ms and row.get("device_median_ms"):
            row["ratio_to_trtexec"] = row["device_median_ms"] / comparison.median_ms
    verdict = parity.get((cell["model"], cell["runtime"], cell["precision"]))
    row["parity"] = verdict["status"] if verdict else "not checked"
    return row


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'cell':46} {'status':12} {'host ms':>9} {'device ms':>9} {'method':>12} {'NVML MB':>9} "
          f"{'parity':>12} {'trtexec ms':>10} {'/trtexec':>9}")
    for row in rows:
        def figure(key: str, width: int = 9) -> str:
            return f"{row[key]:{width}.3f}" if row.get(key) is not None else f"{'—':>{width}}"

        nvml = f"{row['nvml_peak_bytes'] / 1e6:9.0f}" if row.get("nvml_peak_bytes") else f"{'—':>9}"
        print(f"{row['cell']:46} {row['status']:12} {figure('host_median_ms')} {figure('device_median_ms')} "
              f"{row.get('device_method') or '—':>12} {nvml} {row['parity']:>12} "
              f"{figure('trtexec_gpu_compute_median_ms', 10)} {figure('ratio_to_trtexec')}")
        if row.get("trtexec_why_not"):
            print(f"{'':46} no trtexec figure: {row['trtexec_why_not']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results", help="parent of the run folders (default results/)")
    parser.add_argument("--models", default="resnet50,mobilenet_v2")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runtimes", default=",".join(PROBES),
                        help=f"the CUDA runtimes to check, of {', '.join(PROBES)} (default: all; those not installed "
                             "are skipped with the reason)")
    args = parser.parse_args()
    asked = [name.strip() for name in args.runtimes.split(",") if name.strip()]
    unknown = [name for name in asked if name not in PROBES]
    if unknown:
        parser.error(f"--runtimes: {', '.join(unknown)} is not a CUDA runtime here; choose from {', '.join(PROBES)}")
    if cuda_driver.device_count() == 0:
        print("no CUDA GPU is visible here (the CUDA driver sees none): nothing to check")
        return 2
    run_id = f"gpu-check-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    skipped = {name: why for name in asked if (why := PROBES[name]()) is not None}
    runtimes = [name for name in asked if name not in skipped]
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if not runtimes:
        print("no CUDA runtime is installed: see docs/runtimes.md and docs/tensorrt.md (TensorRT, onnxruntime-gpu, "
              "torch with CUDA)")
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
    trtexec = native.find()
    rows = [row_of(record, parity, trtexec) for record in bench]
    print_rows(rows)
    ratios = [row["ratio_to_trtexec"] for row in rows if row.get("ratio_to_trtexec")]
    if ratios:
        print(f"ours (device clock, queued ahead) / trtexec GPU Compute Time median: worst {max(ratios):.3f} "
              f"(goal <= {GOAL_RATIO})")
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
