"""The child side of one cell: load -> prepare -> first run -> timed loop -> outputs check -> complexity.

Run as `python -m harness.worker REQUEST.json RESULT.json` in a fresh process. It always tries to
write RESULT.json (status and error included); a crash or a kill leaves none, and the parent records
that instead. Nothing goes to the parent through stdout.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from exporters.torch_models import ModelRecipe, SourceUnavailable, WeightsUnavailable, build_module, import_source
from harness.complexity import ComplexityCache, measure
from harness.paths import write_atomically
from harness.timing import Policy, sample, summarize
from runtimes import RuntimeUnavailable, create_runtime
from runtimes.base import RuntimeOptions, TorchModuleArtifact, UnsupportedConfiguration

NUM_CLASSES = 1000


def make_inputs(batch_size: int, input_size: int, seed: int) -> np.ndarray:
    """Deterministic standard-normal fp32 input of shape (batch, 3, size, size)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, 3, input_size, input_size), dtype=np.float32)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _complexity(request: dict[str, Any], module: Any | None) -> dict[str, Any] | None:
    """Cached figure if there is one, else measured on the built module and cached."""
    cache = ComplexityCache(Path(request["complexity_cache"]))
    key = request["complexity_key"]
    cached = cache.get(key)
    if cached is not None:
        return cached.as_dict()
    if module is None:
        return None
    value = measure(module, request["model"]["input_size"])
    cache.put(key, value)
    return value.as_dict()


def run_cell(request: dict[str, Any]) -> dict[str, Any]:
    cell, model = request["cell"], request["model"]
    options = RuntimeOptions(device=cell["device"], precision=cell["precision"],
                             threads=request.get("threads"), channels_last=request.get("channels_last", False))
    recipe = ModelRecipe(name=model["name"], source=model["source"], builder=model["builder"],
                         builder_kwargs=model.get("builder_kwargs", {}), pretrained_tag=model.get("pretrained_tag"),
                         weights=request.get("weights", "random"))
    built: dict[str, Any] = {}

    def build() -> Any:
        built["module"] = build_module(recipe)
        return built["module"]

    result: dict[str, Any] = {"status": "ok", "error": None}
    runtime = create_runtime(cell["runtime"], options)
    with runtime:
        inputs = make_inputs(cell["batch_size"], model["input_size"], request.get("seed", 0))
        start = time.perf_counter_ns()
        if runtime.builds_model:  # library import is start-up cost, kept out of the model's load time
            import_source(recipe.source, hub_needed=recipe.weights == "pretrained")
        import_s = (time.perf_counter_ns() - start) / 1e9
        start = time.perf_counter_ns()
        runtime.load(TorchModuleArtifact(name=model["name"], build=build))
        load_s = (time.perf_counter_ns() - start) / 1e9
        runtime.prepare(inputs)
        start = time.perf_counter_ns()
        runtime.run()
        runtime.synchronize()
        first_run_ms = (time.perf_counter_ns() - start) / 1e6
        measurement = sample(runtime, Policy(**request["policy"]))
        outputs = runtime.outputs()
        result["runtime"] = runtime.info()
    _check_outputs(outputs, cell["batch_size"])
    result["cold_start"] = {"library_import_s": import_s, "load_s": load_s, "first_run_ms": first_run_ms,
                            "load_includes": "building the module (and loading weights), moving it to the device"}
    result["timing"] = {
        "clock": "host perf_counter_ns around run()+synchronize()",
        "warmup_iters": measurement.warmup_iters,
        "warmup_s": measurement.warmup_s,
        "stop_reason": measurement.stop_reason,
        "loop_s": measurement.loop_s,
        "host": summarize(measurement.host_ms, cell["batch_size"]).__dict__,
        "device": summarize(measurement.device_ms, cell["batch_size"]).__dict__ if measurement.device_ms else None,
    }
    result["samples_ms"] = {"host": measurement.host_ms, "device": measurement.device_ms}
    result["input"] = {"shape": list(inputs.shape), "dtype": str(inputs.dtype),
                       "generator": f"numpy default_rng({request.get('seed', 0)}).standard_normal"}
    result["complexity"] = _complexity(request, built.get("module"))
    return result


def _check_outputs(outputs: list[np.ndarray], batch_size: int) -> None:
    logits = outputs[0]
    if logits.shape != (batch_size, NUM_CLASSES):
        raise RuntimeError(f"unexpected output shape {logits.shape}, wanted ({batch_size}, {NUM_CLASSES})")
    if not np.isfinite(logits).all():
        raise RuntimeError("outputs contain NaN or infinity")


def failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, UnsupportedConfiguration):
        status = "unsupported"
    elif _is_oom(exc):
        status = "oom"
    else:
        status = "error"
    expected = (UnsupportedConfiguration, SourceUnavailable, WeightsUnavailable, RuntimeUnavailable)
    detail = f"{type(exc).__name__}: {exc}"
    return {"status": status, "error": detail,
            "traceback": None if isinstance(exc, expected) else traceback.format_exc(limit=20)}


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    try:
        result = run_cell(request)
    except BaseException as exc:  # everything becomes a record; KeyboardInterrupt included
        result = failure(exc)
    write_atomically(result_path, json.dumps(result, allow_nan=False, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
