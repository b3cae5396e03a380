"""The child side of one cell, run as `python -m harness.worker REQUEST.json RESULT.json` in a fresh process.

Bench mode: prepare weights and artifact (outside cold start) -> load (cold start) -> prepare ->
first run -> warm-up and timed loop -> outputs check -> complexity. Parity mode: the same artifact
through the runtime, against PyTorch eager fp32 on the same weights and seeded inputs. Accuracy mode:
cached image crops through the runtime, scored against their labels.
It always tries to write RESULT.json (status and error included); a crash or a kill leaves none, and
the parent records that instead. Nothing goes to the parent through stdout.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from exporters.onnx_export import ExportFailed, ExportSpec, export, metadata_for
from exporters.store import Store, sha256_of
from exporters.torch_models import (PRETRAINED, RANDOM, ModelRecipe, SourceUnavailable, WeightsUnavailable, build_module,
                                    import_source)
from exporters.weights import random_weights
from harness import __version__, memory, validity
from harness.complexity import ComplexityCache, measure
from harness.parity import TOLERANCES, compare, violations
from harness.paths import write_atomically
from harness.timing import Policy, sample, summarize
from runtimes import RuntimeUnavailable, create_runtime
from runtimes.base import OnnxFileArtifact, Runtime, RuntimeOptions, TorchModuleArtifact, UnsupportedConfiguration

NUM_CLASSES = 1000
EXPECTED_FAILURES = (UnsupportedConfiguration, SourceUnavailable, WeightsUnavailable, RuntimeUnavailable, ExportFailed)


def make_inputs(shape: list[int] | tuple[int, ...], seed: int, dtype: str = "float32") -> np.ndarray:
    """Deterministic input: standard normal for floats, uniform 0..255 for integers."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.floating):
        return rng.standard_normal(tuple(shape), dtype=np.float32).astype(dtype, copy=False)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, size=tuple(shape)).astype(np.bool_)
    return rng.integers(0, 256, size=tuple(shape)).astype(dtype)


OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate memory",
                "bad_alloc")


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" \
        or any(message in text for message in OOM_MESSAGES)


class CellContext:
    """What one request needs: the recipe, the store, and the weights and artifact prepared for it."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        self.cell = request["cell"]
        self.model = request["model"]
        self.seed = request.get("seed", 0)
        self.store = Store(Path(request["cache_dir"]))
        self.external_onnx = self.model.get("onnx_path")
        self.recipe = None if self.external_onnx else ModelRecipe(
            name=self.model["name"], source=self.model["source"], builder=self.model["builder"],
            builder_kwargs=self.model.get("builder_kwargs", {}), pretrained_tag=self.model.get("pretrained_tag"),
            weights=request.get("weights", RANDOM))
        self.prepared: dict[str, Any] = {}
        self.built: dict[str, Any] = {}

    def options(self, precision: str | None = None) -> RuntimeOptions:
        return RuntimeOptions(device=self.cell["device"], precision=precision or self.cell["precision"],
                              threads=self.request.get("threads"),
                              channels_last=self.request.get("channels_last", False))

    def input_shape(self) -> list[int]:
        if self.external_onnx:
            return [self.cell["batch_size"], *self.model["input_shape"][1:]]
        size = self.model["input_size"]
        return [self.cell["batch_size"], 3, size, size]

    def prepare_weights(self, import_library: bool = True) -> None:
        """Random weights become a cached, seeded, BatchNorm-recalibrated state-dict file.

        The source library is imported here (and timed) when the runtime will build the module; a
        runtime that reads a cached ONNX file never needs it.
        """
        if self.recipe is None:
            return
        if import_library:
            start = time.perf_counter()
            import_source(self.recipe.source, hub_needed=self.recipe.weights == "pretrained")
            self.prepared["library_import_s"] = time.perf_counter() - start
        from harness.models import library_version

        if self.recipe.weights == PRETRAINED:
            self.prepared["weights"] = {"kind": PRETRAINED, "tag": self.recipe.pretrained_tag,
                                        "library": library_version(self.recipe.source)}
            return
        if self.recipe.weights != RANDOM:  # a state-dict file: its content names it (two files may share a name)
            self.prepared["weights"] = {"kind": self.recipe.weights_label, "path": self.recipe.weights,
                                        "sha256": sha256_of(Path(self.recipe.weights))}
            return

        start = time.perf_counter()
        entry = random_weights(self.recipe, self.model["input_size"], self.seed, self.store,
                               library_version(self.recipe.source))
        self.recipe = replace(self.recipe, weights=str(entry.path))
        self.prepared["weights"] = {"kind": "random", "seed": self.seed, "description": entry.meta["description"],
                                    "sha256": entry.meta["sha256"], "file_bytes": entry.meta["file_bytes"],
                                    "prepare_s": time.perf_counter() - start}

    def build(self) -> Any:
        module = build_module(self.recipe)
        self.built["module"] = module
        return module

    def weights_id(self) -> str:
        weights = self.prepared.get("weights", {})
        return weights.get("sha256") or f"{self.recipe.weights_label}:{self.recipe.pretrained_tag}:" \
                                        f"{weights.get('library')}"

    def artifact(self, runtime: Runtime, precision: str) -> TorchModuleArtifact | OnnxFileArtifact:
        name = self.model["name"]
        if runtime.artifact_kind == "torch":
            if self.recipe is None:
                raise UnsupportedConfiguration(f"{runtime.name} runs catalogue models, not an ONNX file")
            return TorchModuleArtifact(name=name, build=self.build)
        if self.external_onnx:
            self.prepared["artifact"] = {"kind": "onnx", "path": self.external_onnx, "external": True}
            return OnnxFileArtifact(name=name, path=self.external_onnx)
        return self.exported(name, precision)

    def exported(self, name: str, precision: str) -> OnnxFileArtifact:
        """The cached ONNX file for the prepared weights (exported now on a miss), noted in `prepared`."""
        options = self.request.get("export", {})
        spec = ExportSpec(model=name, weights_id=self.weights_id(), input_size=self.model["input_size"],
                          opset=options.get("opset", 18), precision=precision,
                          simplify=options.get("simplify", False),
                          metadata=metadata_for(name, self.model.get("preprocessing", {}),
                                                self.prepared.get("weights", {}).get("description", self.recipe.weights_label),
                                                __version__))
        start = time.perf_counter()
        entry, hit = export(spec, lambda: build_module(self.recipe), self.store)
        meta = entry.meta
        self.prepared["artifact"] = {
            "kind": "onnx", "path": str(entry.path), "cache_hit": hit, "lookup_s": time.perf_counter() - start,
            "exporter": meta["exporter"], "fallback_reason": meta["fallback_reason"], "opset": meta["opset"],
            "export_s": meta["export_s"], "file_bytes": meta["file_bytes"], "sha256": meta["sha256"],
            "precision": precision, "simplified": spec.simplify}
        return OnnxFileArtifact(name=name, path=str(entry.path))

    def complexity(self, may_build: bool) -> dict[str, Any] | None:
        """Cached figure if there is one, else measured on the module (built now if the runtime did not)."""
        if self.recipe is None:
            return None
        cache = ComplexityCache(Path(self.request["cache_dir"]) / "complexity.json")
        key = self.request["complexity_key"]
        cached = cache.get(key)
        if cached is not None:
            return cached.as_dict()
        if not may_build:
            return None
        module = self.built.get("module") or build_module(self.recipe)
        value = measure(module, self.model["input_size"])
        cache.put(key, value)
        return value.as_dict()


def _run_once(runtime: Runtime) -> float:
    start = time.perf_counter_ns()
    runtime.run()
    runtime.synchronize()
    return (time.perf_counter_ns() - start) / 1e6


MEMORY_PASS_RUNS = 3


def run_bench(context: CellContext) -> dict[str, Any]:
    """Prepared weights/artifact, then: load -> first run -> timed loop -> memory pass.

    Memory samplers (NVML, Jetson meminfo) run only through load and first run and through a
    separate memory pass, never during the timed loop; host peak RSS needs no sampler (VmHWM), so
    without a sampler there is no memory pass.
    """
    cell = context.cell
    device = cell["device"]
    result: dict[str, Any] = {"status": "ok", "error": None}
    runtime = create_runtime(cell["runtime"], context.options())
    with runtime:
        if runtime.builds_model:
            context.prepare_weights(import_library=runtime.artifact_kind == "torch")
            artifact: Any = context.artifact(runtime, cell["precision"])
        else:
            artifact = TorchModuleArtifact(name=context.model["name"], build=lambda: None)
        inputs = make_inputs(context.input_shape(), context.seed, context.model.get("input_dtype", "float32"))
        host, nvml, jetson = memory.HostRss(), memory.NvmlProcess(device), memory.JetsonUnified()
        memory.start_cuda_context(device)
        nvml.mark_context()
        host.start()
        samplers = (nvml, jetson)
        for sampler in samplers:
            sampler.start()
        start = time.perf_counter_ns()
        runtime.load(artifact)
        load_s = (time.perf_counter_ns() - start) / 1e9
        runtime.prepare(inputs)
        first_run_ms = _run_once(runtime)
        for sampler in samplers:
            sampler.stop()

        frequency_before, gpu_before = validity.cpu_frequencies_khz(), validity.gpu_clocks(device)
        measurement = sample(runtime, Policy(**context.request["policy"]), first_run_ms=first_run_ms)
        frequency_after, gpu_after = validity.cpu_frequencies_khz(), validity.gpu_clocks(device)

        sampled = [sampler for sampler in samplers if sampler.reason is None]
        memory_pass_runs = MEMORY_PASS_RUNS if sampled else 0  # VmHWM already holds the host peak
        for sampler in sampled:
            sampler.start()
        for _ in range(memory_pass_runs):
            runtime.run()
            runtime.synchronize()
        for sampler in sampled:
            sampler.stop()
        outputs = runtime.outputs()
        result["runtime"] = runtime.info()
    if not context.external_onnx:
        _check_outputs(outputs, cell["batch_size"])
    host_stats = summarize(measurement.host_ms, cell["batch_size"]).__dict__
    result["prepared"] = context.prepared
    result["cold_start"] = {"library_import_s": context.prepared.get("library_import_s"), "load_s": load_s,
                            "first_run_ms": first_run_ms,
                            "load_includes": "building the module or session from the prepared weights/artifact, "
                                             "and moving it to the device"}
    result["timing"] = {
        "clock": "host perf_counter_ns around run()+synchronize()",
        "warmup_iters": measurement.warmup_iters, "warmup_s": measurement.warmup_s,
        "warmup_stop": measurement.warmup_stop,
        "stop_reason": measurement.stop_reason, "loop_s": measurement.loop_s,
        "host": host_stats,
        "device": summarize(measurement.device_ms, cell["batch_size"]).__dict__ if measurement.device_ms else None,
    }
    result["samples_ms"] = {"host": measurement.host_ms, "device": measurement.device_ms}
    result["memory"] = {"host_rss": host.reading(), "cuda_nvml": nvml.reading(),
                        "torch_allocator": memory.torch_allocator(device, runtime.name),
                        "jetson_unified": jetson.reading(), "memory_pass_runs": memory_pass_runs}
    gpu = None
    if gpu_before is not None:
        gpu = {"before": gpu_before, "after": gpu_after, "other_processes": nvml.other_processes(),
               "sm_clock_before_mhz": gpu_before.get("sm_clock_mhz"),
               "sm_clock_after_mhz": (gpu_after or {}).get("sm_clock_mhz"),
               "throttle_reasons_after": (gpu_after or {}).get("throttle_reasons")}
    result["validity"] = validity.verdict(host_stats, context.request["policy"]["min_samples"],
                                          context.request.get("max_cv", validity.MAX_CV["quick"]),
                                          frequency_before, frequency_after, gpu)
    result["input"] = {"shape": list(inputs.shape), "dtype": str(inputs.dtype),
                       "generator": f"numpy default_rng({context.seed})"}
    result["complexity"] = context.complexity(may_build=runtime.builds_model)
    return result


def run_parity(context: CellContext) -> dict[str, Any]:
    """Candidate runtime vs PyTorch eager fp32 on the same weights and the same seeded inputs."""
    import torch

    cell = context.cell
    context.prepare_weights()
    inputs = make_inputs(context.input_shape(), context.seed)
    reference_module = build_module(context.recipe)
    with torch.inference_mode():
        reference = reference_module(torch.from_numpy(inputs)).float().numpy()
    del reference_module
    runtime = create_runtime(cell["runtime"], context.options())
    with runtime:
        runtime.load(context.artifact(runtime, cell["precision"]))
        runtime.prepare(inputs)
        runtime.run()
        runtime.synchronize()
        candidate = runtime.outputs()[0]
        info = runtime.info()
    parity = compare(reference, candidate)
    tolerance = TOLERANCES[cell["precision"]]
    problems = violations(parity, tolerance)
    return {"status": "parity_failed" if problems else "ok",
            "error": "; ".join(problems) or None,
            "runtime": info, "prepared": context.prepared,
            "parity": {**parity.as_dict(), "reference": "torch eager fp32, same weights and inputs",
                       "tolerance": tolerance.__dict__},
            "input": {"shape": list(inputs.shape), "dtype": str(inputs.dtype),
                      "generator": f"numpy default_rng({context.seed})"}}


def predictions_path(run_dir: str | Path, model: str, runtime: str, precision: str) -> Path:
    """Where an accuracy cell keeps its top-5 answers, for the agreement of later cells with the reference."""
    return Path(run_dir) / "predictions" / f"{model}-{runtime.replace(':', '_')}-{precision}.npy"


def run_accuracy(context: CellContext) -> dict[str, Any]:
    """The model's cached crops through the runtime, batch by batch; top-1/top-5 against the labels, and
    top-1 agreement with the reference (PyTorch eager fp32) where its answers are already saved."""
    from harness.accuracy.evaluate import score

    cell, settings = context.cell, context.request["accuracy"]
    if context.request.get("weights", RANDOM) == RANDOM:
        raise WeightsUnavailable("accuracy needs trained weights: pass --weights pretrained or a state-dict path")
    crop_set = settings["sets"][cell["model"]]
    predictions, labels, load_s, info = _evaluate(context, crop_set)
    run_dir = context.request["run_dir"]
    own = predictions_path(run_dir, cell["model"], cell["runtime"], cell["precision"])
    _save_array(own, predictions.top5)
    scores = score(predictions.top5, labels)
    reference = settings["reference"]
    figures: dict[str, Any] = {
        "top1": scores.top1, "top5": scores.top5, "images": scores.images,
        "top1_correct": scores.top1_correct, "top5_correct": scores.top5_correct,
        "images_per_s": scores.images / predictions.loop_s if predictions.loop_s > 0 else None,
        "loop_s": predictions.loop_s, "load_s": load_s,
        "loop_includes": "normalizing each batch from the cached uint8 crops, prepare, run, synchronize, outputs, top-5",
        "predictions_file": str(own), "reference": f"{reference['runtime']} {reference['precision']}",
        "preprocessing": {"geometry": crop_set["geometry"], "normalization": crop_set["normalization"],
                          "from": crop_set["preprocessing_from"]},
        "data": {**settings["data"], "crop_set": crop_set["key"], "images_listed": crop_set["count"],
                 "bad_images": crop_set["count"] - crop_set["valid_count"],
                 "bad_images_listed_in": str(Path(crop_set["folder"]) / "meta.json")},
    }
    reference_path = predictions_path(run_dir, cell["model"], reference["runtime"], reference["precision"])
    figures.update(_against_reference(predictions.top5, labels, reference_path, is_reference=reference_path == own))
    return {"status": "ok", "error": None, "runtime": info, "prepared": context.prepared, "accuracy": figures}


def _evaluate(context: CellContext, crop_set: dict[str, Any]) -> tuple[Any, np.ndarray, float, dict[str, Any]]:
    """(predictions, the labels of the evaluated images, load seconds, runtime info)."""
    from harness.accuracy.crop_cache import open_crops
    from harness.accuracy.evaluate import predict
    from harness.accuracy.preprocess import Normalization

    cell = context.cell
    crops, labels, valid = open_crops(Path(crop_set["folder"]))
    indices = np.flatnonzero(valid)
    normalization = Normalization(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in crop_set["normalization"].items()})
    runtime = create_runtime(cell["runtime"], context.options())
    with runtime:
        context.prepare_weights(import_library=runtime.artifact_kind == "torch")
        artifact = context.artifact(runtime, cell["precision"])
        start = time.perf_counter_ns()
        runtime.load(artifact)
        load_s = (time.perf_counter_ns() - start) / 1e9
        predictions = predict(runtime, crops, indices, normalization, cell["batch_size"])
        info = runtime.info()
    return predictions, labels[indices], load_s, info


def _save_array(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def _against_reference(top5: np.ndarray, labels: np.ndarray, reference_path: Path,
                       is_reference: bool) -> dict[str, Any]:
    """Top-1 agreement with the reference's saved answers, image by image, and the reference's top-1."""
    from harness.accuracy.evaluate import agreement, score

    figures: dict[str, Any] = {"is_reference": is_reference, "agreement_top1": None, "reference_top1": None}
    if reference_path.is_file() and not is_reference:
        reference_top5 = np.load(reference_path)
        figures["agreement_top1"] = agreement(top5, reference_top5)
        figures["reference_top1"] = score(reference_top5, labels).top1
    return figures


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
    return {"status": status, "error": f"{type(exc).__name__}: {exc}",
            "traceback": None if isinstance(exc, EXPECTED_FAILURES) else traceback.format_exc(limit=20)}


def run_export(context: CellContext) -> dict[str, Any]:
    """Prepare weights and the ONNX file (from the cache, or exported now); nothing is timed."""
    context.prepare_weights()
    context.exported(context.model["name"], context.cell["precision"])
    return {"status": "ok", "error": None, "prepared": context.prepared}


MODES = {"bench": run_bench, "parity": run_parity, "export": run_export, "accuracy": run_accuracy}


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    context = CellContext(request)
    try:
        result = MODES[request.get("mode", "bench")](context)
    except BaseException as exc:  # everything becomes a record; KeyboardInterrupt included
        result = failure(exc)
        result["prepared"] = context.prepared
    result["worker_s"] = time.perf_counter() - started  # the cell's wall time less interpreter start and imports
    write_atomically(result_path, json.dumps(result, allow_nan=False, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
