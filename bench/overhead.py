"""How much does the harness's timing loop add to what it measures?

1. PyTorch eager: for resnet18 and mobilenet_v2 at batch 1 on the CPU, in one process on one module,
   the harness's median (torch runtime + `harness.measure.timing.sample`) against a minimal hand-written loop
   (`time.perf_counter()` around `model(x)` under one `torch.inference_mode()`), in interleaved
   rounds so drift hits both alike. Target: harness median / hand median <= 1.02.
2. ONNX Runtime: the same models exported once (the harness's cached file), at batch 1 and 8, the
   harness's median (ort runtime) against a hand-written `session.run` loop on one session each.
3. The per-sample cost of the loop itself: the null runtime (run() does nothing), in microseconds.

Usage: python bench/overhead.py [--rounds 10] [--samples 30] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch
import torchvision

from harness.measure.environment import cpu_model
from harness.measure.timing import Policy, sample
from runtimes.base import RuntimeOptions, TorchModuleArtifact
from runtimes.null import NullRuntime
from runtimes.torch_eager import TorchEagerRuntime


def fixed_policy(samples: int) -> Policy:
    return Policy(warmup_min_iters=3, warmup_min_s=0.0, warmup_stable_rel=None, min_samples=samples, min_duration_s=0.0,
                  max_samples=samples, max_duration_s=3600.0)


def hand_loop(model: torch.nn.Module, x: torch.Tensor, samples: int) -> list[float]:
    times_ms = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(samples):
            start = time.perf_counter()
            model(x)
            times_ms.append((time.perf_counter() - start) * 1e3)
    return times_ms


def interleaved(runtime, hand: Callable[[], list[float]], rounds: int, samples: int) -> dict[str, float]:
    """Alternate harness and hand-loop blocks (swapping which goes first) so drift hits both alike."""
    harness_ms: list[float] = []
    hand_ms: list[float] = []
    for round_index in range(rounds):
        order = ("harness", "hand") if round_index % 2 == 0 else ("hand", "harness")
        for which in order:
            if which == "harness":
                harness_ms += sample(runtime, fixed_policy(samples)).host_ms
            else:
                hand_ms += hand()
    runtime.close()
    harness_median, hand_median = statistics.median(harness_ms), statistics.median(hand_ms)
    return {"harness_median_ms": harness_median, "hand_median_ms": hand_median,
            "ratio": harness_median / hand_median, "samples_each": len(harness_ms)}


def compare(name: str, rounds: int, samples: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    model = getattr(torchvision.models, name)(weights=None).eval()
    inputs = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    runtime = TorchEagerRuntime(RuntimeOptions(threads=threads))
    runtime.load(TorchModuleArtifact(name=name, build=lambda: model))
    runtime.prepare(inputs)
    x = torch.from_numpy(inputs)
    result = interleaved(runtime, lambda: hand_loop(model, x, samples), rounds, samples)
    return {"model": f"{name} bs1", **result}


def onnx_file(name: str) -> str:
    """The harness's own cached export of the model (random, BatchNorm-recalibrated weights)."""
    from dataclasses import replace

    from exporters.onnx_export import ExportSpec, export
    from exporters.store import Store
    from exporters.torch_models import build_module
    from exporters.weights import random_weights
    from harness.catalogue.recipes import library_version, recipe_for
    from harness.paths import cache_dir
    from harness.catalogue.registry import load_catalogue

    spec = load_catalogue().get(name)
    store = Store(cache_dir())
    weights = random_weights(recipe_for(spec), spec.input_size, 0, store, library_version(spec.source))
    recipe = replace(recipe_for(spec), weights=str(weights.path))
    entry, _ = export(ExportSpec(model=name, weights_id=weights.meta["sha256"], input_size=spec.input_size),
                      lambda: build_module(recipe), store)
    return str(entry.path)


def hand_session_loop(session, feed: dict[str, np.ndarray], samples: int) -> list[float]:
    times_ms = []
    for _ in range(3):
        session.run(None, feed)
    for _ in range(samples):
        start = time.perf_counter()
        session.run(None, feed)
        times_ms.append((time.perf_counter() - start) * 1e3)
    return times_ms


def compare_ort(name: str, batch_size: int, rounds: int, samples: int, threads: int) -> dict[str, float]:
    import onnxruntime as ort

    from runtimes.base import OnnxFileArtifact
    from runtimes.onnxruntime import OnnxRuntime

    path = onnx_file(name)
    inputs = np.random.default_rng(0).standard_normal((batch_size, 3, 224, 224), dtype=np.float32)
    runtime = OnnxRuntime(RuntimeOptions(threads=threads))
    runtime.load(OnnxFileArtifact(name=name, path=path))
    runtime.prepare(inputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: inputs}
    result = interleaved(runtime, lambda: hand_session_loop(session, feed, samples), rounds, samples)
    return {"model": f"{name} bs{batch_size}", **result}


def null_overhead_us(samples: int = 20_000) -> dict[str, float]:
    runtime = NullRuntime(RuntimeOptions())
    runtime.load(TorchModuleArtifact(name="none", build=lambda: None))
    runtime.prepare(np.zeros((1, 3, 1, 1), dtype=np.float32))
    measurement = sample(runtime, fixed_policy(samples))
    times = measurement.host_ms
    bare = []
    for _ in range(samples):  # two clock readings with nothing between them
        start = time.perf_counter_ns()
        bare.append((time.perf_counter_ns() - start) / 1e3)
    return {"null_runtime_per_sample_median_us": statistics.median(times) * 1e3,
            "loop_wall_per_sample_us": measurement.loop_s * 1e6 / samples,
            "bare_clock_pair_median_us": statistics.median(bare), "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--samples", type=int, default=30, help="samples per round and side")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    results = [{**compare(name, args.rounds, args.samples, args.threads), "runtime": "torch"}
               for name in ("resnet18", "mobilenet_v2")]
    results += [{**compare_ort(name, batch, args.rounds, args.samples, args.threads), "runtime": "ort"}
                for name in ("resnet18", "mobilenet_v2") for batch in (1, 8)]
    null = null_overhead_us()
    import onnxruntime

    print(f"machine: {cpu_model()}, {platform.system()}, torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}, {args.threads} threads")
    print("| runtime | model | harness median (ms) | hand loop median (ms) | ratio | samples each |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['runtime']} | {r['model']} | {r['harness_median_ms']:.3f} | {r['hand_median_ms']:.3f} "
              f"| {r['ratio']:.4f} | {r['samples_each']} |")
    print(f"\nnull runtime: {null['null_runtime_per_sample_median_us']:.2f} us per sample (median of "
          f"{null['samples']}) inside the timed region; "
          f"{null['loop_wall_per_sample_us']:.2f} us per sample of loop wall time (bookkeeping included); "
          f"two bare perf_counter_ns readings: {null['bare_clock_pair_median_us']:.2f} us")
    print(json.dumps({"models": results, "null": null}))


if __name__ == "__main__":
    main()
