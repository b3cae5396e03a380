"""The child side of one job, run as `python -m harness.cell.worker ENVELOPE.json RESULT.json` in a fresh process.

Prepare mode: the weights file, params and MACs and the ONNX file a model's measuring cells need, made
in a process of their own so that no measuring process carries that work (torch, the module) in its
memory. Bench mode: load (cold start) -> prepare -> first run -> warm-up and timed loop -> memory pass ->
outputs check. Parity mode: the runtime's outputs on seeded inputs; the reference cell (PyTorch eager
fp32, run through the same contract) saves its outputs and the others compare with them. Accuracy mode:
cached image crops through the runtime, scored against their labels.
It always tries to write RESULT.json (status and error included); a crash or a kill leaves none, and
the parent records that instead. Nothing goes to the parent through stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import statistics
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from exporters.onnx_export import PRECISIONS as EXPORT_PRECISIONS, ExportFailed, ExportSpec, export, metadata_for
from exporters.quantize import (FLAVORS, CalibrationFeed, QuantizationFailed, QuantizeSpec, precision_name,
                               quantize)
from exporters.store import Entry, Store, sha256_of
from exporters.tasks import CLASSIFICATION, NotATaskModel, outputs_of
from exporters.torch_models import (PRETRAINED, RANDOM, ModelRecipe, SourceUnavailable, UnknownBuilder,
                                    WeightsUnavailable, build_module, import_source)
from exporters.weights import random_weights
from harness import __version__
from harness.cell.tool_timed import run_tool_timed_bench
from harness.catalogue.complexity import ComplexityCache, measure
from harness.cell.limits import EXIT_RESULT_UNWRITABLE, lift_memory_limit, limit_memory
from harness.measure import energy, jetson as board, memory, scenarios, stages, validity
from harness.catalogue.onnx_files import load_arrays
from harness.measure.inputs import describe_feeds, input_sha256, make_feeds, make_inputs  # noqa: F401 - re-exported
from harness.measure.parity import TOLERANCES, are_logits, compare_outputs, output_violations, worst
from harness.measure.timing import sample, summarize
from harness.paths import write_atomically
from harness.parts import (AccuracyFigures, Energy, Memory, ParityVerdict, Prepared, ScenarioFigures, StageTimes,
                           memory_reading)
from harness.protocol import (BundledReference, CatalogueModel, CellRequest, CellResult, OnnxModel,
                              reference_outputs_file)
from harness.cells import Cell
from runtimes import RuntimeUnavailable, before_any_model, create_runtime, runtime_class
from runtimes.base import (NOTHING, TORCH_MODULE, EngineArtifact, EngineShapes, IncompatibleEngine, OnnxFileArtifact,
                           OutOfMemory, Runtime, RuntimeOptions, TorchModuleArtifact, UnsupportedConfiguration,
                           as_inputs)

NUM_CLASSES = 1000
ENGINE_FILE = "model.engine"
EXPECTED_FAILURES = (UnsupportedConfiguration, SourceUnavailable, WeightsUnavailable, RuntimeUnavailable, ExportFailed,
                     UnknownBuilder, QuantizationFailed, NotATaskModel)


class CellContext:
    """What one request needs: the recipe, the store, and the artifacts its prepare job made.

    Measuring modes never prepare anything themselves: weights, complexity and the ONNX file were made
    by a separate prepare job (`run_prepare`), so nothing of that work is in a measuring process.
    """

    def __init__(self, request: CellRequest, placement: dict[str, str]) -> None:
        self.request = request
        self.cell = request.cell
        self.seed = request.seed
        self.cache_dir = Path(placement["cache_dir"])
        self.run_dir = Path(placement["run_dir"])
        self.store = Store(self.cache_dir)
        outside = request.outside_onnx
        self.external_onnx = outside.onnx_path if outside else None
        model = request.model
        self.recipe = None if isinstance(model, OnnxModel) else ModelRecipe(
            name=model.name, source=model.source, builder=model.builder, builder_kwargs=dict(model.builder_kwargs),
            pretrained_tag=model.pretrained_tag, weights=request.weights, task=model.task)
        self.model = model
        self.prepared: Prepared = request.prepared.copy()
        self.built: dict[str, Any] = {}

    @property
    def catalogue_model(self) -> CatalogueModel:
        """The catalogue entry (prepare jobs and exports only exist for catalogue models)."""
        assert isinstance(self.model, CatalogueModel), "an outside ONNX file has no catalogue entry"
        return self.model

    def in_cache(self, path: str) -> str:
        """A path the prepare job wrote relative to the cache, on this machine (absolute ones stay)."""
        return str(self.cache_dir / path)

    def options(self, runtime: str | None = None, precision: str | None = None) -> RuntimeOptions:
        return RuntimeOptions(device=self.cell.device, precision=precision or self.cell.precision,
                              threads=self.request.threads, channels_last=self.request.channels_last,
                              extra=self.request.runtime_extra(runtime or self.cell.runtime),
                              input_shapes=tuple(tuple(shape) for shape in self.input_shapes()))

    def input_shapes(self) -> list[list[int]]:
        """The shape of each input the cell feeds, in the graph's order."""
        batch = self.cell.batch_size
        if isinstance(self.model, OnnxModel):
            return [spec.shape_at(batch) for spec in self.model.inputs]
        size = self.model.input_size
        return [[batch, 3, size, size]]

    def feeds(self) -> list[np.ndarray]:
        """The cell's inputs, one array per graph input: seeded, or an outside file's .npz arrays."""
        if isinstance(self.model, OnnxModel):
            arrays = load_arrays(self.model.inputs_file) if self.model.inputs_file else None
            return make_feeds(self.model.inputs, self.cell.batch_size, self.seed, arrays)
        return [make_inputs(self.input_shapes()[0], self.seed)]

    def describe_feeds(self, feeds: list[np.ndarray]) -> dict[str, Any]:
        model = self.model
        if isinstance(model, OnnxModel):
            source = f"{model.inputs_file} (batched inputs: the first {self.cell.batch_size} rows)" \
                if model.inputs_file else f"numpy default_rng({self.seed}), input i of several: seed + i"
            return describe_feeds(feeds, [spec.name for spec in model.inputs], source)
        return describe_feeds(feeds, ["input"], f"numpy default_rng({self.seed})")

    # ---------------------------------------------------------------- prepare jobs

    def prepare_weights(self) -> None:
        """Random weights become a cached, seeded, BatchNorm-recalibrated state-dict file (path relative to
        the cache); a weights file is named by its content; pretrained weights by tag and library."""
        from harness.catalogue.recipes import library_version

        assert self.recipe is not None
        if self.recipe.weights == PRETRAINED:
            self.prepared.weights = {"kind": PRETRAINED, "tag": self.recipe.pretrained_tag,
                                        "library": library_version(self.recipe.source)}
            return
        if self.recipe.weights != RANDOM:  # a state-dict file: its content names it (two files may share a name)
            self.prepared.weights = {"kind": self.recipe.weights_label, "path": self.recipe.weights,
                                        "sha256": sha256_of(Path(self.recipe.weights))}
            return
        start = time.perf_counter()
        entry = random_weights(self.recipe, self.catalogue_model.input_size, self.seed, self.store,
                               library_version(self.recipe.source))
        self.prepared.weights = {"kind": "random", "seed": self.seed, "description": entry.meta["description"],
                                    "sha256": entry.meta["sha256"], "file_bytes": entry.meta["file_bytes"],
                                    "path": str(entry.path.relative_to(self.cache_dir)),
                                    "prepare_s": time.perf_counter() - start}

    def weights_recipe(self) -> ModelRecipe:
        """The recipe with the prepared weights: the cached random file, a user's file, or pretrained."""
        assert self.recipe is not None
        weights = self.prepared.weights or {}
        if weights.get("kind") == "random":
            return replace(self.recipe, weights=self.in_cache(weights["path"]))
        return self.recipe

    def build(self) -> Any:
        module = build_module(self.weights_recipe())
        self.built["module"] = module
        return module

    def weights_id(self) -> str:
        weights = (self.prepared.weights or {})
        assert self.recipe is not None
        return weights.get("sha256") or f"{self.recipe.weights_label}:{self.recipe.pretrained_tag}:" \
                                        f"{weights.get('library')}"

    def export_onnx(self, precision: str) -> None:
        """The cached ONNX file for the prepared weights (exported now on a miss), noted in `prepared`; int8
        is the fp32 file quantized on the calibration images of the request."""
        if precision in FLAVORS:
            self.export_onnx("fp32")
            self.quantize_onnx(precision)
            return
        options, model = self.request.export, self.catalogue_model
        name = model.name
        spec = ExportSpec(model=name, weights_id=self.weights_id(), input_size=model.input_size,
                          opset=options.opset, precision=precision, simplify=options.simplify,
                          output_names=outputs_of(model.task),
                          metadata=metadata_for(name, model.preprocessing,
                                                (self.prepared.weights or {}).get("description",
                                                                                     self.weights_recipe().weights_label),
                                                __version__))
        start = time.perf_counter()
        entry, hit = export(spec, self.build, self.store)
        meta = entry.meta
        self.prepared.artifact = {
            "kind": "onnx", "path": str(entry.path.relative_to(self.cache_dir)), "cache_hit": hit,
            "lookup_s": time.perf_counter() - start, "exporter": meta["exporter"],
            "fallback_reason": meta["fallback_reason"], "opset": meta["opset"], "export_s": meta["export_s"],
            "file_bytes": meta["file_bytes"], "sha256": meta["sha256"], "precision": precision,
            "simplified": spec.simplify}

    def quantize_onnx(self, flavor: str) -> None:
        """The fp32 file just prepared, quantized to int8 Q/DQ (`flavor`: exporters.quantize.FLAVORS) on the
        model's calibration crops (cached)."""
        from harness.accuracy.crop_cache import open_crops
        from harness.accuracy.preprocess import Normalization, normalize

        calibration = self.request.export.calibration
        if not calibration:
            raise UnsupportedConfiguration("int8 needs calibration images: pass --calibration DATA")
        crop_set = calibration["sets"][self.model.name]
        crops, _, valid = open_crops(Path(self.in_cache(crop_set["folder"])))
        normalization = Normalization(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in crop_set["normalization"].items()})
        fp32 = dict(self.prepared.artifact or {})
        identity = {k: calibration[k] for k in ("images", "files_sha256", "contents_sha256", "seed", "layout")}
        spec = QuantizeSpec(model=self.model.name, fp32_sha256=fp32["sha256"], method=calibration["method"],
                            flavor=flavor, calibration={**identity, "preprocessing": {"geometry": crop_set["geometry"],
                                                                       "normalization": crop_set["normalization"]}})
        feed = CalibrationFeed(crops, np.flatnonzero(valid), lambda batch: normalize(batch, normalization))
        start = time.perf_counter()
        entry, hit = quantize(spec, Path(self.in_cache(fp32["path"])), "input", lambda: feed, self.store)
        meta = entry.meta
        self.prepared.artifact = {
            "kind": "onnx", "path": str(entry.path.relative_to(self.cache_dir)), "cache_hit": hit,
            "lookup_s": time.perf_counter() - start, "exporter": f"{fp32['exporter']}, then {meta['quantizer']}",
            "fallback_reason": fp32["fallback_reason"], "opset": fp32["opset"], "export_s": fp32["export_s"],
            "quantize_s": meta["quantize_s"], "file_bytes": meta["file_bytes"], "sha256": meta["sha256"],
            "precision": flavor, "simplified": fp32["simplified"], "fp32_sha256": fp32["sha256"],
            "quantization": {"method": calibration["method"], "images": meta["calibration_images_read"],
                             "files_sha256": calibration["files_sha256"],
                             "contents_sha256": calibration["contents_sha256"], "seed": calibration["seed"],
                             "data": calibration.get("data"), "per_channel": True, "flavor": FLAVORS[flavor].description,
                             "left_in_float": meta["left_in_float"], "preprocess_note": meta["preprocess_note"]}}

    def measure_complexity(self) -> None:
        """Params and MACs from the cache, or counted on the module (built now if the export did not)."""
        cache = ComplexityCache(self.cache_dir / "complexity.json")
        key = self.request.complexity_key
        cached = cache.get(key)
        if cached is None:
            module = self.built.get("module") or self.build()
            cached = measure(module, self.catalogue_model.input_size)
            cache.put(key, cached)
        self.prepared.complexity = cached.as_dict()

    # ---------------------------------------------------------------- measuring jobs

    def artifact(self, runtime: Runtime) -> TorchModuleArtifact | OnnxFileArtifact | EngineArtifact:
        name = self.model.name
        if runtime.consumes == TORCH_MODULE:
            if self.recipe is None:
                raise UnsupportedConfiguration(f"{runtime.name} runs catalogue models, not an ONNX file")
            return TorchModuleArtifact(name=name, build=self.build)
        if runtime.consumes == NOTHING:
            return TorchModuleArtifact(name=name, build=lambda: None)
        if runtime.builds_engine and self.request.mode != "build":
            return self.engine_artifact()
        self._check_onnx_precision(runtime)
        return self.onnx_artifact()

    def _check_onnx_precision(self, runtime: Runtime) -> None:
        """The prepared ONNX file is the one this machine's runtime reads at the cell's precision (a fleet's
        driver chose it from the nodes' library versions; TensorRT's choice changes at 11.x)."""
        made = (self.prepared.artifact or {}).get("precision")
        wanted = type(runtime).onnx_precision(self.cell.precision)
        if made and made != wanted and wanted in (*EXPORT_PRECISIONS, *FLAVORS):
            raise RuntimeError(f"{runtime.name} {self.cell.precision} here reads the {precision_name(wanted)} ONNX "
                               f"file, but the {precision_name(made)} one was prepared (planned for another version "
                               "of its library: nodes offering this device differ); pin the device to one node, "
                               "DEVICE@NODE")

    def onnx_artifact(self) -> OnnxFileArtifact:
        name = self.model.name
        if self.external_onnx:
            self.prepared.artifact = {"kind": "onnx", "path": self.external_onnx, "external": True}
            return OnnxFileArtifact(name=name, path=self.external_onnx)
        artifact = self.prepared.artifact
        if not artifact or artifact.get("kind") != "onnx":
            raise RuntimeError(f"no ONNX file was prepared for {name} (a prepare job must run first)")
        return OnnxFileArtifact(name=name, path=self.in_cache(artifact["path"]))

    def onnx_sha256(self) -> str:
        artifact = self.prepared.artifact or {}
        if artifact.get("sha256"):
            return artifact["sha256"]
        return sha256_of(Path(self.onnx_artifact().path))  # an outside ONNX file: hashed as it is now

    def engine_artifact(self) -> EngineArtifact:
        """The engine the build job made, handed over only while its hash is the one recorded at the build."""
        engine = self.prepared.engine
        if not engine:
            raise RuntimeError(f"no engine was built for {self.model.name} (a build job must run first)")
        entry = self.store.lookup(Path(self.in_cache(engine["folder"])), ENGINE_FILE)
        if entry is None or entry.meta.get("sha256") != engine["sha256"]:
            raise RuntimeError(f"the engine {engine['folder']} changed or vanished after its build job; run the "
                               "command again to rebuild it")
        return EngineArtifact(name=self.model.name, path=str(entry.path), sha256=engine["sha256"],
                              description={"onnx_path": self.onnx_artifact().path})

    def complexity(self) -> dict[str, Any] | None:
        """What the prepare job counted, or a cached figure (cells that need no preparation)."""
        if self.recipe is None:
            return None
        if self.prepared.complexity is not None:
            return self.prepared.complexity
        cached = ComplexityCache(self.cache_dir / "complexity.json").get(self.request.complexity_key)
        return cached.as_dict() if cached else None


def _run_once(runtime: Runtime) -> float:
    start = time.perf_counter_ns()
    runtime.run()
    runtime.synchronize()
    return (time.perf_counter_ns() - start) / 1e6


MEMORY_PASS_RUNS = 3


def _energy_pass(context: CellContext, runtime: Runtime) -> Energy:
    """Energy per image from every readable source, in a pass of its own after the timed loop."""
    if not context.request.energy:
        return Energy(skipped="--energy off")

    def run_once() -> None:
        runtime.run()
        runtime.synchronize()

    busy_s = max(energy.MIN_BUSY_S, context.request.policy.min_duration_s / 2)
    return Energy.from_json(energy.measure(energy.sources_for(context.cell.device), run_once,
                                           context.cell.batch_size, busy_s))


def _scenario_pass(context: CellContext, runtime: Runtime, artifact: Any, inputs: list[np.ndarray],
                   loop_ms: list[float]) -> ScenarioFigures:
    """The cell's scenario after the timed loop (harness.measure.scenarios): single-stream states the timed loop's
    p90; multi-stream times back-to-back queries of its own until its p99 can be stated; server searches the
    highest Poisson rate whose p99 holds the bound; offline runs several instances of the runtime at once."""
    name, settings, policy = context.cell.scenario, context.request.scenario, context.request.policy
    if name == scenarios.SINGLE_STREAM:
        return _stated(name, scenarios.percentile_estimate(loop_ms, scenarios.PERCENTILE[name]))
    run_once = lambda: _run_once(runtime)  # noqa: E731 - run + synchronize, as the timed loop
    if name == scenarios.MULTI_STREAM:
        latencies = scenarios.back_to_back(run_once, scenarios.queries_needed(scenarios.PERCENTILE[name]),
                                           policy.min_duration_s, policy.max_duration_s)
        return _stated(name, scenarios.percentile_estimate(latencies, scenarios.PERCENTILE[name]))
    if name == scenarios.SERVER:
        median_ms = max(statistics.median(loop_ms), 1e-6)  # a runtime that runs nothing still has a capacity
        bound_ms = settings.p99_bound_ms or scenarios.DEFAULT_BOUND_FACTOR * median_ms
        found = scenarios.highest_rate(run_once, 1e3 / median_ms, bound_ms, context.seed, time.perf_counter,
                                       time.sleep, min_duration_s=policy.min_duration_s)
        batch = context.cell.batch_size
        return ScenarioFigures(name, scenarios.PERCENTILE[name], found.p99_ms, bound_ms=bound_ms,
                               bound_from="--p99-bound" if settings.p99_bound_ms else
                               f"{scenarios.DEFAULT_BOUND_FACTOR:g} x the single-stream median ({median_ms:.3f} ms)",
                               capacity_qps=found.capacity_qps, rate_qps=found.rate_qps,
                               images_per_s=found.rate_qps * batch if found.rate_qps else None,
                               queries=sum(t.queries for t in found.trials),
                               queries_needed=scenarios.queries_needed(scenarios.PERCENTILE[name]),
                               trials=[asdict(t) for t in found.trials])
    return _offline(context, runtime, artifact, inputs, settings.streams, policy.min_duration_s)


def _stages_pass(context: CellContext, runtime: Runtime, inputs: list[np.ndarray], loop_ms: list[float]) -> StageTimes:
    """Pre-processing, host-to-device and device-to-host of one query, each timed on its own (harness.measure.stages);
    compute is the timed loop's median (the same run + synchronize). The runtime is left with the same inputs
    prepared."""
    missing: dict[str, str] = {}
    steps: dict[str, Any] = {}
    model = context.model
    if isinstance(model, CatalogueModel) and model.preprocessing:
        steps["preprocess"] = stages.preprocessor(model.preprocessing, model.input_size, context.cell.batch_size,
                                                  context.seed)
    else:
        missing["preprocess"] = "no pre-processing recipe comes with this ONNX file (made elsewhere, or a bundle's)"

    def host_to_device() -> None:
        runtime.prepare(as_inputs(inputs))
        runtime.synchronize()

    steps.update(host_to_device=host_to_device, device_to_host=runtime.outputs)
    try:
        times = stages.time_stages(steps)
    except Exception as exc:  # noqa: BLE001 - the cell was measured; a pass beside it does not fail it
        if classify(exc, context.cell.runtime, memory_capped=False) != "oom":
            raise
        return StageTimes({}, "harness", None, {}, {"all": f"the stages pass ran out of memory (preparing the "
                                                           f"inputs a second time): {type(exc).__name__}: {exc}"[:300]})
    medians = {**stages.medians(times), "compute": statistics.median(loop_ms)}
    return StageTimes({name: medians[name] for name in stages.STAGES if name in medians}, "harness",
                      len(next(iter(times.values()))), {name: stages.INCLUDES[name] for name in medians}, missing)


def _stated(name: str, estimate: scenarios.PercentileEstimate) -> ScenarioFigures:
    return ScenarioFigures(name, estimate.percentile, estimate.latency_ms, estimate.empirical_ms, estimate.queries,
                           estimate.queries_needed)


def _offline(context: CellContext, runtime: Runtime, artifact: Any, inputs: list[np.ndarray], streams: int,
             duration_s: float) -> ScenarioFigures:
    """The runtime's own parallelism where it offers one (`Runtime.parallel_requests`: OpenVINO's async streams);
    else `streams` fresh instances of the cell's runtime, each with its share of the CPU cores where the user set
    no thread count, answering back-to-back queries on threads of their own for `duration_s`."""
    requests = runtime.parallel_requests(streams)
    if requests is not None:
        try:
            requests.start()  # one query through every part of the pipeline before the window
            requests.wait_all()
            found = scenarios.offline_queued(requests.start, requests.wait_all, streams, context.cell.batch_size,
                                             duration_s, time.perf_counter)
        finally:
            requests.close()
        return ScenarioFigures(context.cell.scenario, images_per_s=found.images_per_s, queries=found.queries,
                               streams=streams, threads_per_stream=context.request.threads,
                               parallelism=requests.description)
    threads = context.request.threads
    if threads is None and context.cell.device == "cpu":
        threads = max(1, (os.cpu_count() or 1) // streams)
    options = replace(context.options(), threads=threads)
    instances = [create_runtime(context.cell.runtime, options) for _ in range(streams)]
    try:
        for instance in instances:
            instance.load(artifact)
            instance.prepare(as_inputs(inputs))
            _run_once(instance)  # each warmed once before the window
        found = scenarios.offline([lambda i=i: _run_once(i) for i in instances], context.cell.batch_size,
                                  duration_s, time.perf_counter)
    finally:
        for instance in instances:
            instance.close()
    return ScenarioFigures(context.cell.scenario, images_per_s=found.images_per_s, queries=found.queries,
                           streams=streams, threads_per_stream=threads, queries_per_stream=found.queries_per_stream,
                           parallelism=f"{streams} instances of the runtime, each on a thread of its own")


def run_bench(context: CellContext) -> dict[str, Any]:
    """Prepared weights/artifact, then: load -> first run -> timed loop -> memory pass -> energy pass -> the
    scenario's own pass.

    Memory samplers (NVML, Jetson meminfo) run only through load and first run and through a
    separate memory pass, never during the timed loop; host peak RSS needs no sampler (VmHWM), so
    without a sampler there is no memory pass.
    """
    cell = context.cell
    device = cell.device
    result: dict[str, Any] = {"status": "ok", "error": None}
    runtime = create_runtime(cell.runtime, context.options())
    if runtime.timed_by:
        if cell.scenario != scenarios.SINGLE_STREAM:
            raise UnsupportedConfiguration(f"{cell.runtime} times its own loop ({runtime.timed_by}): the {cell.scenario} "
                                           "scenario needs a runtime the harness drives query by query (trt)")
        with runtime:
            return run_tool_timed_bench(context, runtime)
    with runtime:
        _import_model_library(context, runtime)
        artifact = context.artifact(runtime)
        inputs = context.feeds()
        host, nvml, jetson = memory.HostRss(), memory.NvmlProcess(device), memory.JetsonUnified()
        with before_any_model():
            runtime.init_device()
        nvml.mark_context()
        host.start()
        samplers = (nvml, jetson)
        for sampler in samplers:
            sampler.start()
        start = time.perf_counter_ns()
        runtime.load(artifact)
        load_s = (time.perf_counter_ns() - start) / 1e9
        runtime.prepare(as_inputs(inputs))
        first_run_ms = _run_once(runtime)
        for sampler in samplers:
            sampler.stop()

        frequency_before, gpu_before = validity.cpu_frequencies_khz(), validity.gpu_clocks(device)
        board_before = board.facts()
        trace = board.ClockTrace() if board_before.get("is_jetson") else None
        if trace is not None:
            trace.start()
        measurement = sample(runtime, context.request.policy, first_run_ms=first_run_ms)
        if trace is not None:
            trace.stop()
        frequency_after, gpu_after = validity.cpu_frequencies_khz(), validity.gpu_clocks(device)
        board_after = board.facts()
        board_during = trace.summary() if trace is not None else None

        sampled = [sampler for sampler in samplers if sampler.reason is None]
        memory_pass_runs = MEMORY_PASS_RUNS if sampled else 0  # VmHWM already holds the host peak
        for sampler in sampled:
            sampler.start()
        for _ in range(memory_pass_runs):
            runtime.run()
            runtime.synchronize()
        for sampler in sampled:
            sampler.stop()
        result["energy"] = _energy_pass(context, runtime)
        outputs = runtime.outputs()
        result["runtime"] = runtime.info()
        device_memory, torch_buffers = runtime.device_memory(), runtime.torch_allocator_memory()
        host_reading, unified_reading = host.reading(), jetson.reading()  # VmHWM: before the passes below
        # after every memory reading: the stages pass prepares the inputs again, offline loads more instances
        result["stages"] = _stages_pass(context, runtime, inputs, measurement.host_ms)
        result["scenario"] = _scenario_pass(context, runtime, artifact, inputs, measurement.host_ms)
    if not context.external_onnx and runtime.consumes != NOTHING:  # the null runtime runs no model
        _check_outputs(outputs, cell.batch_size, context.catalogue_model.task)
        result["outputs"] = described_outputs(outputs, outputs_of(context.catalogue_model.task))
    host_stats = summarize(measurement.host_ms, cell.batch_size).__dict__
    result["prepared"] = context.prepared
    result["cold_start"] = {"library_import_s": context.prepared.library_import_s, "load_s": load_s,
                            "first_run_ms": first_run_ms, "load_includes": runtime.load_includes}
    result["timing"] = {
        "clock": "host perf_counter_ns around run()+synchronize()",
        "warmup_iters": measurement.warmup_iters, "warmup_s": measurement.warmup_s,
        "warmup_stop": measurement.warmup_stop,
        "stop_reason": measurement.stop_reason, "loop_s": measurement.loop_s,
        "host": host_stats,
        "device": summarize(measurement.device_ms, cell.batch_size).__dict__ if measurement.device_ms else None,
        "device_clock": measurement.device_clock,
        "device_method": measurement.device_method,
    }
    result["samples_ms"] = {"host": measurement.host_ms, "device": measurement.device_ms}
    torch_memory = device_memory  # on a CPU: missing, with that reason
    if runtime.own_memory_source != "torch_allocator" and device != "cpu":
        torch_memory = torch_buffers or memory.missing(f"{runtime.name} does not allocate through PyTorch")
    readings = {"host_rss": host_reading, "cuda_nvml": nvml.reading(), "torch_allocator": torch_memory,
                "jetson_unified": unified_reading, "jetson_process": memory.jetson_process(host_reading, unified_reading)}
    if runtime.own_memory_source not in (None, "torch_allocator"):
        readings[runtime.own_memory_source] = device_memory
    result["memory"] = Memory({source: memory_reading(reading) for source, reading in readings.items()},
                              memory_pass_runs)
    gpu = None
    if gpu_before is not None:
        gpu = {"before": gpu_before, "after": gpu_after, "other_processes": nvml.other_processes(),
               "sm_clock_before_mhz": gpu_before.get("sm_clock_mhz"),
               "sm_clock_after_mhz": (gpu_after or {}).get("sm_clock_mhz"),
               "throttle_reasons_after": (gpu_after or {}).get("throttle_reasons")}
    result["validity"] = validity.verdict(host_stats, context.request.policy.min_samples, context.request.max_cv,
                                          frequency_before, frequency_after, gpu, board_before, board_after,
                                          board_during)
    if board_after.get("is_jetson"):
        result["jetson"] = {"before": board_before, "after": board_after, "during_timed_loop": board_during}
    result["input"] = context.describe_feeds(inputs)
    result["complexity"] = context.complexity()
    return result


def reference_outputs_path(run_dir: Path, cell: Cell) -> Path:
    """Where the reference cell of a model and batch size keeps its outputs for the cells compared with it."""
    return run_dir / reference_outputs_file(cell.model, cell.batch_size)


def run_parity(context: CellContext) -> dict[str, Any]:
    """The cell's runtime on the prepared artifact and seeded inputs. The reference cell (PyTorch eager
    fp32, planned first) saves its outputs; every other cell compares its own with them."""
    cell = context.cell
    inputs = context.feeds()
    runtime = create_runtime(cell.runtime, context.options())
    with runtime:
        runtime.load(context.artifact(runtime))
        runtime.prepare(as_inputs(inputs))
        runtime.run()
        runtime.synchronize()
        outputs = runtime.outputs()
        info = runtime.info()
    reference = context.request.reference
    reference_path = reference_outputs_path(context.run_dir, cell)
    input_note = context.describe_feeds(inputs)
    bundled = context.request.reference_outputs
    if bundled is not None:  # a bundle's model: the workstation's reference outputs travel with it
        expected, described = _bundled_reference(bundled, inputs[0]), f"{bundled.source}, from the bundle"
    elif (cell.runtime, cell.precision) == (reference.runtime, reference.precision):
        save_outputs(reference_path, outputs)
        return {"status": "ok", "error": None, "runtime": info, "prepared": context.prepared, "input": input_note,
                "parity": ParityVerdict(True, outputs_file=str(reference_path.relative_to(context.run_dir)))}
    elif not reference_path.is_file():
        raise RuntimeError(f"the reference outputs {reference_path} are missing: the reference cell did not finish")
    else:
        expected, described = load_outputs(reference_path), f"{reference.runtime} {reference.precision}, same " \
                                                            "weights and inputs"
    if len(expected) != len(outputs):
        raise RuntimeError(f"{cell.runtime} gave {len(outputs)} output(s); the reference ({described}) has "
                           f"{len(expected)}")
    parities = compare_outputs(expected, outputs)
    tolerance = TOLERANCES[cell.precision]
    problems = output_violations(parities, tolerance, are_logits(expected))
    return {"status": "parity_failed" if problems else "ok",
            "error": "; ".join(problems) or None,
            "runtime": info, "prepared": context.prepared,
            "parity": ParityVerdict(False, figures=worst(parities), reference=described,
                                    tolerance=dict(tolerance.__dict__),
                                    per_output=[p.as_dict() for p in parities] if len(parities) > 1 else None),
            "input": input_note}


def save_outputs(path: Path, outputs: list[np.ndarray]) -> None:
    """A graph's outputs, as float32, in order, into one .npz (written aside, then moved into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **{f"output_{n}": np.asarray(output, dtype=np.float32) for n, output in enumerate(outputs)})
    tmp.replace(path)


def load_outputs(path: Path) -> list[np.ndarray]:
    """The outputs `save_outputs` wrote, in order."""
    with np.load(path) as stored:
        return [stored[f"output_{n}"] for n in range(len(stored.files))]


def _bundled_reference(bundled: BundledReference, inputs: np.ndarray) -> list[np.ndarray]:
    """The bundle's reference outputs, once the inputs regenerated here are shown to be the ones they came from:
    the first output under the batch's key, any others under the key and their index (bs4.1, bs4.2, ...)."""
    if input_sha256(inputs) != bundled.input_sha256:
        raise RuntimeError(f"the inputs regenerated from seed {bundled.seed} differ from the workstation's "
                           "(another numpy stream?): the bundle's reference outputs cannot be compared")
    with np.load(bundled.file) as stored:
        outputs = [stored[bundled.key]]
        while f"{bundled.key}.{len(outputs)}" in stored.files:
            outputs.append(stored[f"{bundled.key}.{len(outputs)}"])
        return outputs


def predictions_path(run_dir: str | Path, model: str, runtime: str, precision: str) -> Path:
    """Where an accuracy cell keeps its top-5 answers, for the agreement of later cells with the reference."""
    return Path(run_dir) / "predictions" / f"{model}-{runtime.replace(':', '_')}-{precision}.npy"


def run_accuracy(context: CellContext) -> dict[str, Any]:
    """The model's cached crops through the runtime, batch by batch; top-1/top-5 against the labels, and
    top-1 agreement with the reference (PyTorch eager fp32) where its answers are already saved."""
    from harness.accuracy.evaluate import score

    cell, settings, reference = context.cell, context.request.accuracy or {}, context.request.reference
    if context.request.weights == RANDOM:
        raise WeightsUnavailable("accuracy needs trained weights: pass --weights pretrained or a state-dict path")
    crop_set = settings["sets"][cell.model]
    predictions, labels, load_s, info = _evaluate(context, crop_set)
    run_dir = context.run_dir
    own = predictions_path(run_dir, cell.model, cell.runtime, cell.precision)
    _save_array(own, predictions.top5)
    scores = score(predictions.top5, labels)
    figures: dict[str, Any] = {
        "top1": scores.top1, "top5": scores.top5, "images": scores.images,
        "top1_correct": scores.top1_correct, "top5_correct": scores.top5_correct,
        "images_per_s": scores.images / predictions.loop_s if predictions.loop_s > 0 else None,
        "loop_s": predictions.loop_s, "load_s": load_s,
        "loop_includes": "normalizing each batch from the cached uint8 crops, prepare, run, synchronize, outputs, top-5",
        "predictions_file": str(own), "reference": f"{reference.runtime} {reference.precision}",
        "preprocessing": {"geometry": crop_set["geometry"], "normalization": crop_set["normalization"],
                          "from": crop_set["preprocessing_from"]},
        "data": {**settings["data"], "crop_set": crop_set["key"], "images_listed": crop_set["count"],
                 "bad_images": crop_set["count"] - crop_set["valid_count"],
                 "bad_images_listed_in": str(Path(context.in_cache(crop_set["folder"])) / "meta.json")},
    }
    reference_path = predictions_path(run_dir, cell.model, reference.runtime, reference.precision)
    figures.update(_against_reference(predictions.top5, labels, reference_path, is_reference=reference_path == own))
    return {"status": "ok", "error": None, "runtime": info, "prepared": context.prepared,
            "accuracy": AccuracyFigures.from_json(figures)}


def _evaluate(context: CellContext, crop_set: dict[str, Any]) -> tuple[Any, np.ndarray, float, dict[str, Any]]:
    """(predictions, the labels of the evaluated images, load seconds, runtime info)."""
    from harness.accuracy.crop_cache import open_crops
    from harness.accuracy.evaluate import predict
    from harness.accuracy.preprocess import Normalization

    cell = context.cell
    crops, labels, valid = open_crops(Path(context.in_cache(crop_set["folder"])))
    indices = np.flatnonzero(valid)
    normalization = Normalization(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in crop_set["normalization"].items()})
    runtime = create_runtime(cell.runtime, context.options())
    with runtime:
        _import_model_library(context, runtime)
        artifact = context.artifact(runtime)
        start = time.perf_counter_ns()
        runtime.load(artifact)
        load_s = (time.perf_counter_ns() - start) / 1e9
        predictions = predict(runtime, crops, indices, normalization, cell.batch_size)
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


def _check_outputs(outputs: list[np.ndarray], batch_size: int, task: str = CLASSIFICATION) -> None:
    """A catalogue model answers its task's outputs (exporters.tasks), one row per image, all finite: a
    classifier (batch, 1000) logits; a detector its class logits and box regressions; a segmenter its scores."""
    names = outputs_of(task)
    if task == CLASSIFICATION:  # the logits first (what classifiers were always checked on)
        outputs, names = outputs[:1], names[:1]
        if outputs and outputs[0].shape != (batch_size, NUM_CLASSES):
            raise RuntimeError(f"unexpected output shape {outputs[0].shape}, wanted ({batch_size}, {NUM_CLASSES})")
    if len(outputs) != len(names):
        raise RuntimeError(f"the {task} graph answered {len(outputs)} output(s), wanted {len(names)}: "
                           f"{', '.join(names)}")
    for name, output in zip(names, outputs):
        if output.ndim < 2 or output.shape[0] != batch_size:
            raise RuntimeError(f"unexpected {name} shape {output.shape}, wanted ({batch_size}, ...)")
        if not np.isfinite(output).all():
            raise RuntimeError(f"{name} contains NaN or infinity")


def described_outputs(outputs: list[np.ndarray], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """What the graph answered, for the record: each output's name, shape and dtype."""
    return [{"name": name, "shape": list(output.shape), "dtype": str(output.dtype)}
            for name, output in zip(names, outputs)]


def _import_model_library(context: CellContext, runtime: Runtime) -> None:
    """A runtime that builds the module imports its source library first, timed apart from load."""
    if runtime.consumes == TORCH_MODULE and context.recipe is not None:
        start = time.perf_counter()
        import_source(context.recipe.source, hub_needed=context.recipe.weights == PRETRAINED)
        context.prepared.library_import_s = time.perf_counter() - start


def classify(exc: BaseException, runtime_name: str | None, memory_capped: bool) -> str:
    """A failure's status from its type: the runtime names its library's own out-of-memory and
    unsupported errors; an import that fails under the memory cap and succeeds without it ran out of
    memory. Never from the words of a message."""
    if isinstance(exc, UnsupportedConfiguration):
        return "unsupported"
    if isinstance(exc, (MemoryError, OutOfMemory)):
        return "oom"
    if runtime_name is not None:
        try:
            status = runtime_class(runtime_name).classify_failure(exc)
        except (KeyError, RuntimeUnavailable):
            status = None
        if status is not None:
            return status
    if memory_capped and isinstance(exc, ImportError) and _imports_without_cap(exc):
        return "oom"
    return "error"


def _imports_without_cap(exc: ImportError) -> bool:
    """Lift the memory cap (its soft limit) and import the module again: True when it then loads."""
    module = exc.name
    if not module:
        return False
    try:
        lift_memory_limit()
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - it fails without the cap too: an ordinary error
        return False
    return True


def failure(exc: BaseException, runtime_name: str | None = None, memory_capped: bool = False) -> dict[str, Any]:
    return {"status": classify(exc, runtime_name, memory_capped), "error": f"{type(exc).__name__}: {exc}",
            "error_type": type(exc).__name__,
            "traceback": None if isinstance(exc, EXPECTED_FAILURES) else traceback.format_exc(limit=20)}


def run_prepare(context: CellContext) -> dict[str, Any]:
    """Everything a measuring cell needs made beforehand, in this process and not in that one: the
    weights file, params and MACs, and (when asked) the ONNX file. Nothing is timed."""
    if context.recipe is None:
        return {"status": "ok", "error": None, "prepared": context.prepared}
    start = time.perf_counter()
    import_source(context.recipe.source, hub_needed=context.recipe.weights == PRETRAINED)
    context.prepared.library_import_s = time.perf_counter() - start
    context.prepare_weights()
    onnx_precision = context.request.onnx_precision
    if onnx_precision:
        context.export_onnx(onnx_precision)
    context.measure_complexity()
    context.prepared.library_import_s = None
    return {"status": "ok", "error": None, "prepared": context.prepared}


def run_build(context: CellContext) -> dict[str, Any]:
    """The engine for the cell's runtime, precision, device and shapes, from the prepared ONNX file: taken
    from the artifact cache when the cached one is intact and loads, else built (timed here) and stored.
    Why a cached engine was not used is recorded."""
    cell, request = context.cell, context.request
    assert request.shapes is not None, "a build request names the shapes"
    shapes = request.shapes
    runtime = create_runtime(cell.runtime, context.options())
    with runtime:
        with before_any_model():
            runtime.init_device()
        onnx = context.artifact(runtime)
        assert isinstance(onnx, OnnxFileArtifact)
        key = runtime.engine_key(onnx, context.onnx_sha256(), shapes)
        folder = context.store.folder("engines", f"{context.model.name}-{runtime.name}", key)
        entry, not_used_because = context.store.inspect(folder, ENGINE_FILE)
        if entry is not None:
            try:
                runtime.inspect_engine(str(entry.path))
            except IncompatibleEngine as exc:
                context.store.discard(folder)
                entry, not_used_because = None, str(exc)
        hit = entry is not None
        if entry is None:
            entry = _build_engine(context, runtime, onnx, shapes, key, folder)
        info = runtime.info()
    meta = entry.meta
    context.prepared.engine = {
        "folder": str(folder.relative_to(context.cache_dir)), "sha256": meta["sha256"], "cache_hit": hit,
        "rebuilt_because": not_used_because, "build_s": meta["build_s"], "built_at": meta["built_at"],
        "plan_file_bytes": meta["file_bytes"],
        "context_device_memory_bytes": meta["engine"].get("context_device_memory_bytes"),  # trtexec: not stated
        "shapes": shapes.as_dict() | {"label": shapes.label}, "build": meta["build"], "key": key}
    return {"status": "ok", "error": None, "prepared": context.prepared, "runtime": info}


def _build_engine(context: CellContext, runtime: Runtime, onnx: OnnxFileArtifact, shapes: EngineShapes,
                  key: dict[str, Any], folder: Path) -> Entry:
    state_dir = context.cache_dir / runtime.name
    state_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter_ns()
    built = runtime.build_engine(onnx, shapes, str(state_dir))
    build_s = (time.perf_counter_ns() - start) / 1e9
    folder.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(folder)
    staged = folder / f".{ENGINE_FILE}.{socket.gethostname()}.{os.getpid()}.tmp"
    staged.write_bytes(built.plan)
    try:
        engine = runtime.inspect_engine(str(staged))  # what the engine needs on the device, read back once
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    meta = {"key": key, "built_by": f"dnn-harness {__version__}", "build_s": build_s,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build": built.facts, "engine": engine}
    return context.store.commit(folder, ENGINE_FILE, staged, meta)


def _remove_abandoned(folder: Path) -> None:
    """Half-written engines of builds on this host whose process is gone (killed, interrupted, out of disk)."""
    host = socket.gethostname()
    for staged in folder.glob(f".{ENGINE_FILE}.{host}.*.tmp"):
        pid = staged.name.split(".")[-2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            staged.unlink(missing_ok=True)


MODES = {"prepare": run_prepare, "build": run_build, "bench": run_bench, "parity": run_parity, "accuracy": run_accuracy}


def main(argv: list[str]) -> int:
    """`harness.cell.worker ENVELOPE.json RESULT.json`: the envelope holds the request and the executor's
    placement (where the cache is, where to write files) and the memory cap."""
    started = time.perf_counter()
    request_path, result_path = Path(argv[0]), Path(argv[1])
    envelope = json.loads(request_path.read_text())
    cap = envelope.get("max_memory_bytes")
    limit_memory(cap)
    request = CellRequest.from_json(envelope["request"])
    context = CellContext(request, envelope["placement"])
    try:
        answer = MODES[request.mode](context)
    except BaseException as exc:  # everything becomes a record; KeyboardInterrupt included
        runtime = request.cell.runtime if request.mode != "prepare" else None
        answer = {**failure(exc, runtime, memory_capped=cap is not None), "prepared": context.prepared}
    result = CellResult(**answer, host=socket.gethostname(),
                        worker_s=time.perf_counter() - started)  # wall time less interpreter start and imports
    try:
        write_atomically(result_path, json.dumps(result.to_json(), allow_nan=False, default=str))
    except OSError as exc:
        print(f"cannot write the result {result_path}: {exc}", file=sys.stderr)
        return EXIT_RESULT_UNWRITABLE
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
