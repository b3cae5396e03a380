"""Hand-written run folders for the report tests: five catalogue models with invented figures, chosen so
that the expected frontier, upper bound, memory fit and Table 3 picks can be worked out by hand.

Batch 1, CPU run:   images/s  top-1  memory   params  family
  squeezenet1_1          100     60   0.51 GB    25 M   Fam     (memory = 1.1 x size MB + 400)
  mobilenet_v2            50     70   0.84 GB   100 M   Fam
  resnet50                25     75   1.17 GB   175 M   Fam
  vgg16                   10     80   2.00 GB   300 M   Other
  googlenet               40     65   0.60 GB    50 M   Other   (mobilenet_v2 is faster and better)
"""

from __future__ import annotations

import json
from pathlib import Path

MODELS = {  # name: (images/s at bs 1, top-1, memory bytes at bs 1, params, family)
    "squeezenet1_1": (100.0, 60.0, 510_000_000, 25_000_000, "Fam"),
    "mobilenet_v2": (50.0, 70.0, 840_000_000, 100_000_000, "Fam"),
    "resnet50": (25.0, 75.0, 1_170_000_000, 175_000_000, "Fam"),
    "vgg16": (10.0, 80.0, 2_000_000_000, 300_000_000, "Other"),
    "googlenet": (40.0, 65.0, 600_000_000, 50_000_000, "Other"),
}

CPU_ENV = {"hostname": "box", "cpu_model": "Test CPU", "jetson": {"is_jetson": False}}
GPU_ENV = {"hostname": "gpubox", "cpu_model": "Test CPU", "jetson": {"is_jetson": False},
           "nvml": {"available": True, "gpus": [{"name": "Test GPU"}]}}


def record(model: str, runtime: str, batch_size: int, images_per_s: float | None, memory_bytes: int | None,
           device: str = "cpu", status: str = "ok", run_id: str = "run", started_at: str = "2026-11-29T10:00:00+00:00",
           source: str = "host_rss", valid: bool = True, precision: str = "fp32") -> dict:
    _, top1, _, params, family = MODELS[model]
    cell = {"model": model, "runtime": runtime, "precision": precision, "batch_size": batch_size, "device": device}
    result = {
        "schema_version": 1, "run_id": run_id, "kind": "bench", "status": status,
        "cell_id": f"{model}|{runtime}|{precision}|bs{batch_size}|{device}", "cell": cell,
        "error": None if status == "ok" else f"{status} in the fixture", "started_at": started_at, "wall_s": 1.0,
        "model": {"name": model, "display_name": model.capitalize(), "family": family,
                  "published": {"top1": top1, "top5": top1 + 15, "accuracy_source": "fixture table"},
                  "complexity": {"params": params, "macs": params * 20}},
        "prepared": {"artifact": {"opset": 18, "path": "/nonexistent/model.onnx"}} if runtime == "ort" else {},
    }
    if status == "ok":
        median_ms = batch_size * 1000.0 / images_per_s  # type: ignore[operator]
        result["timing"] = {"host": {"median_ms": median_ms, "p90_ms": None, "samples": 10,
                                     "per_image_median_ms": median_ms / batch_size, "images_per_s": images_per_s}}
        result["memory"] = {source: {"baseline_bytes": 100, "peak_bytes": memory_bytes},
                            "torch_allocator": {"missing": "the cell runs on the CPU"}}
        result["validity"] = {"valid": valid, "reasons": [] if valid else ["coefficient of variation 0.3 > 0.1"]}
    return result


def cpu_records(runtime: str = "torch", speed: float = 1.0) -> list[dict]:
    """Batch 1 per the table above; batch 8 at 1.5 x the images/s and 1.2 x the memory (mobilenet_v2: oom)."""
    records = []
    for name, (fps, _, memory, _, _) in MODELS.items():
        records.append(record(name, runtime, 1, fps * speed, memory))
        if name == "mobilenet_v2":
            records.append(record(name, runtime, 8, None, None, status="oom"))
        else:
            records.append(record(name, runtime, 8, fps * speed * 1.5, int(memory * 1.2)))
    return records


def write_run(run_dir: Path, records: list[dict], env: dict | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "env.json").write_text(json.dumps(env if env is not None else CPU_ENV))
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def accuracy_record(model: str, runtime: str, precision: str, top1: float) -> dict:
    """An accuracy run's record of `model` with its top-1 (top-5 15 points above), of the fixture's shape."""
    base = record(model, runtime, 1, 1.0, 1, status="ok", precision=precision)
    for key in ("timing", "memory", "validity"):
        base.pop(key, None)
    return {**base, "kind": "accuracy", "cell_id": base["cell_id"],
            "accuracy": {"top1": top1, "top5": top1 + 15, "images": 500}}
