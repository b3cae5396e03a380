"""Which int8 Q/DQ flavor ONNX Runtime's CPU kernels are fast with: fp32 against the two flavors the harness
writes (exporters/quantize.py FLAVORS) — asymmetric uint8 activations (U8S8, `int8`) and symmetric int8
activations (S8S8, `int8-sym`, what TensorRT needs) — on the same fp32 file, batch 1, interleaved rounds.

    python bench/int8_formats.py [--models mobilenet_v2,resnet50] [--rounds 3] [--runs 60]

Calibration here is 8 seeded random batches: the activation ranges change the scales, not the kernels, so
speed does not depend on them (accuracy does: see bench/int8_tradeoff.py).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporters.quantize import FLAVORS, QuantizeSpec, quantize  # noqa: E402
from exporters.store import Store  # noqa: E402
from harness.paths import cache_dir  # noqa: E402


def fp32_files(models: list[str]) -> dict[str, Path]:
    """The harness's own fp32 ONNX files (exported now if not cached)."""
    done = subprocess.run([sys.executable, "-m", "harness", "export", "--models", ",".join(models)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    records = Path(re.search(r"Records: (\S+records\.jsonl)", done.stdout).group(1))  # type: ignore[union-attr]
    files = {}
    for line in records.read_text().splitlines():
        record = json.loads(line)
        files[record["cell"]["model"]] = cache_dir() / record["prepared"]["artifact"]["path"]
    return files


def random_batches() -> list[np.ndarray]:
    return [np.random.default_rng(seed).standard_normal((2, 3, 224, 224)).astype(np.float32) for seed in range(8)]


def median_ms(path: Path, inputs: np.ndarray, runs: int) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(5):
        session.run(None, {"input": inputs})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"input": inputs})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenet_v2,resnet50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    inputs = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    calibration = {"images": 16, "files_sha256": "random-normal", "seed": 0, "layout": "synthetic",
                   "preprocessing": {}}
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch))
        for model, fp32 in fp32_files(args.models.split(",")).items():
            files = {"fp32": fp32}
            for flavor in FLAVORS:
                spec = QuantizeSpec(model=model, fp32_sha256="bench", method="minmax", calibration=calibration,
                                    flavor=flavor)
                files[flavor] = quantize(spec, fp32, "input", random_batches, store)[0].path
            rounds = [{name: median_ms(path, inputs, args.runs) for name, path in files.items()}
                      for _ in range(args.rounds)]
            medians = {name: float(np.median([r[name] for r in rounds])) for name in files}
            print(f"{model}: batch-1 median ms over {args.rounds} interleaved rounds of {args.runs} runs: "
                  + ", ".join(f"{name} {ms:.2f}" for name, ms in medians.items())
                  + "; speed-up over fp32: " + ", ".join(f"{name} x{medians['fp32'] / medians[name]:.2f}"
                                                         for name in FLAVORS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
