"""Building a TensorRT engine from the harness's own cached ONNX file, and reading one back.

A build: parse the ONNX file (`parse_from_file`, which resolves external weights) -> a builder config
(precision, TF32, workspace limit, DLA, one optimization profile: a min/opt/max shape for every input with
dynamic dimensions, the batch from EngineShapes where the first dimension is dynamic, the others from the
shapes the user gave, EngineShapes.input_dims) -> the persistent timing cache of this
GPU and TensorRT version -> `build_serialized_network`. After the build the timing cache is merged into
the file under a lock, so builds in parallel processes add to it rather than overwrite each other.
Nothing here times anything: the harness times the build call.
"""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from runtimes.base import BuiltEngine, EngineShapes, IncompatibleEngine, UnsupportedConfiguration
from runtimes.tensorrt.api import TensorRTApi

ENGINE_FORMAT = 1  # bump when what the harness puts into an engine changes


@dataclass(frozen=True)
class BuildSettings:
    """Every builder option that changes the engine; all of it is in the engine's cache key."""

    precision: str
    tf32: bool
    workspace_bytes: int | None  # None: TensorRT's default (the device's whole memory)
    dla_core: int | None
    timing_cache: bool

    def key_fields(self, api: TensorRTApi) -> dict[str, Any]:
        return {**asdict(self), "gpu_fallback": self.dla_core is not None, "strongly_typed": api.strongly_typed,
                "precision_from": _precision_from(api, self.precision)}


def _precision_from(api: TensorRTApi, precision: str) -> str:
    if precision == "fp32":
        return "fp32 ONNX graph"
    if precision == "int8":
        return "Q/DQ ONNX graph (strongly typed)" if api.strongly_typed else "BuilderFlag.INT8 with the Q/DQ graph"
    return "fp16 ONNX graph (strongly typed)" if api.strongly_typed else "BuilderFlag.FP16 on the fp32 graph"


def engine_key(api: TensorRTApi, onnx_sha256: str, gpu: tuple[str, str], shapes: EngineShapes,
               settings: BuildSettings) -> dict[str, Any]:
    """What names an engine in the cache: the ONNX file's content, TensorRT's version, the GPU (and DLA
    core), precision, shape profile and every builder option."""
    return {"format": ENGINE_FORMAT, "onnx_sha256": onnx_sha256, "tensorrt": api.version, "gpu": gpu[0],
            "compute_capability": gpu[1], "shapes": shapes.as_dict(), "builder": settings.key_fields(api)}


def timing_cache_path(state_dir: str, api: TensorRTApi, gpu: tuple[str, str]) -> Path:
    """One timing cache per GPU model and TensorRT version (tactic timings do not carry across either)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu[0]).strip("-").lower() or "gpu"
    return Path(state_dir) / f"timing-{slug}-sm{gpu[1].replace('.', '')}-trt{api.version}.cache"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Builder:
    """One engine build with the TensorRT API (through `api`, so every version's difference is there)."""

    def __init__(self, api: TensorRTApi, logger: Any) -> None:
        self.api, self.trt, self.logger = api, api.trt, logger

    def build(self, onnx_path: str, shapes: EngineShapes, settings: BuildSettings, gpu: tuple[str, str],
              state_dir: str) -> BuiltEngine:
        trt = self.trt
        try:
            builder = trt.Builder(self.logger)
        except TypeError as exc:  # pybind11: "factory function returned nullptr" when CUDA cannot be initialised
            raise UnsupportedConfiguration(f"TensorRT could not create a builder ({exc}): CUDA could not be "
                                           "initialised for it") from None
        network = builder.create_network(self.api.network_flags())
        parser = trt.OnnxParser(network, self.logger)
        self._parse(parser, onnx_path)
        profiles = self._profile_dims(network, shapes)
        config = builder.create_builder_config()
        if settings.workspace_bytes is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
        precision_from = self.api.apply_precision(config, settings.precision)
        if not settings.tf32:
            config.clear_flag(trt.BuilderFlag.TF32)
        if settings.dla_core is not None:
            self._use_dla(builder, config, settings)
        if profiles:
            self._add_profile(builder, config, profiles)
        cache_file = timing_cache_path(state_dir, self.api, gpu) if settings.timing_cache else None
        cache_facts = self._load_timing_cache(config, cache_file)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError("TensorRT could not build the engine (build_serialized_network returned None); "
                               "its log in this cell's log says why")
        if cache_file is not None and cache_facts["used"]:
            cache_facts.update(self._merge_timing_cache(config, cache_file))
        facts = {"tensorrt": self.api.version, "gpu": gpu[0], "compute_capability": gpu[1],
                 "precision_from": precision_from, "tf32": bool(config.get_flag(trt.BuilderFlag.TF32)),
                 "workspace_bytes": settings.workspace_bytes,
                 "workspace": "TensorRT default (the device's memory)" if settings.workspace_bytes is None
                 else "--runtime-option trt.workspace_mb",
                 "dla_core": settings.dla_core, "gpu_fallback": settings.dla_core is not None,
                 "shapes": _shape_facts(network, shapes, profiles),
                 "strongly_typed": self.api.strongly_typed, "timing_cache": cache_facts}
        return BuiltEngine(bytes(memoryview(plan)), facts)

    def _parse(self, parser: Any, onnx_path: str) -> None:
        if parser.parse_from_file(onnx_path):
            return
        errors = [self.api.parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UnsupportedConfiguration(f"TensorRT {self.api.version}'s ONNX parser rejects {Path(onnx_path).name}: "
                                       + "; ".join(errors or ["no error given"]))

    def _profile_dims(self, network: Any, shapes: EngineShapes) -> dict[str, tuple[tuple[int, ...], ...]]:
        """(min, opt, max) shapes of each network input with dynamic dimensions, in the network's order: a dynamic
        first dimension is the batch (EngineShapes' min/opt/max), the others the sizes given for the input
        (EngineShapes.input_dims). UnsupportedConfiguration for a shape tensor, a dynamic size nobody gave, or
        other batch sizes than a graph without a dynamic batch has."""
        tensors = [network.get_input(i) for i in range(network.num_inputs)]
        for tensor in tensors:
            if tensor.is_shape_tensor:  # its values, not its shape, vary: IOptimizationProfile.set_shape_input
                raise UnsupportedConfiguration(f"input {tensor.name} is a shape tensor (its values set shapes in the "
                                               "graph): TensorRT needs their range (set_shape_input), which the "
                                               "harness does not set")
        return shapes.profiles({t.name: tuple(int(d) for d in t.shape) for t in tensors})

    def _add_profile(self, builder: Any, config: Any, profiles: dict[str, tuple[tuple[int, ...], ...]]) -> None:
        """One optimization profile holding every dynamic input's min/opt/max."""
        profile = builder.create_optimization_profile()
        for name, dims in profiles.items():
            try:
                profile.set_shape(name, *dims)
            except ValueError as exc:  # TensorRT checks min <= opt <= max and the ranks itself
                raise UnsupportedConfiguration(f"TensorRT refused the optimization profile {dims} for {name}: "
                                               f"{exc}") from None
        if config.add_optimization_profile(profile) < 0:
            raise UnsupportedConfiguration(f"TensorRT refused the optimization profile {profiles}")

    def _use_dla(self, builder: Any, config: Any, settings: BuildSettings) -> None:
        trt, core = self.trt, settings.dla_core
        available = int(builder.num_DLA_cores)
        if available == 0:
            raise UnsupportedConfiguration(f"this device has no DLA core (TensorRT {self.api.version} sees none)")
        if core is None or core >= available:
            raise UnsupportedConfiguration(f"DLA core {core} asked for; this device has {available} (dla:0 to "
                                           f"dla:{available - 1})")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    def _load_timing_cache(self, config: Any, path: Path | None) -> dict[str, Any]:
        """Attach the file's timing cache. TensorRT takes a cache of another version or GPU, or a damaged one, by
        logging a warning and starting empty: that is detected (the loaded cache is no larger than an empty
        one) and recorded with TensorRT's own words."""
        if path is None:
            return {"used": False}
        data = path.read_bytes() if path.is_file() else b""
        facts: dict[str, Any] = {"used": True, "path": str(path), "bytes_before": len(data)}
        logged = len(self.logger.messages)
        cache = config.create_timing_cache(data)
        empty_bytes = len(bytes(memoryview(config.create_timing_cache(b"").serialize())))
        if data and (cache is None or len(bytes(memoryview(cache.serialize()))) <= empty_bytes):
            said = "; ".join(self.logger.messages[logged:]) or "nothing in its log"
            facts["discarded"] = f"TensorRT did not take the timing cache file (it said: {said}); this build " \
                                 "starts from an empty cache"
            cache = cache if cache is not None else config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, False):
            facts.update(used=False, refused="TensorRT refused the timing cache (set_timing_cache returned False)")
        return facts

    def _merge_timing_cache(self, config: Any, path: Path) -> dict[str, Any]:
        """Add this build's tactic timings to the file, keeping what other builds wrote meanwhile."""
        ours = config.get_timing_cache()
        facts: dict[str, Any] = {}
        with _locked(path):
            if path.is_file():
                theirs = config.create_timing_cache(path.read_bytes())
                if theirs is not None and not ours.combine(theirs, False):
                    facts["not_merged"] = "TensorRT could not combine the file's cache with this build's " \
                                          "(combine returned False); the file now holds this build's only"
            data = bytes(memoryview(ours.serialize()))
            _write_atomically(path, data)
        return {**facts, "bytes_after": len(data)}


def _shape_facts(network: Any, shapes: EngineShapes,
                 profiles: dict[str, tuple[tuple[int, ...], ...]]) -> dict[str, Any]:
    """The build's shapes: EngineShapes, and the profile of each dynamic input; a graph of one input keeps the
    input/min/opt/max of the records before several inputs (harness.measure.trtexec reads them)."""
    facts: dict[str, Any] = {**shapes.as_dict(),
                             "profiles": {name: dict(zip(("min", "opt", "max"), map(list, dims)))
                                          for name, dims in profiles.items()}}
    if network.num_inputs == 1:
        tensor = network.get_input(0)
        dims = profiles.get(tensor.name) or (tuple(int(d) for d in tensor.shape),) * 3
        facts.update({"input": tensor.name, "min": list(dims[0]), "opt": list(dims[1]), "max": list(dims[2])})
    return facts


@dataclass
class LoadedEngine:
    runtime: Any  # the trt.Runtime that deserialized the engine: it must outlive the engine
    engine: Any
    facts: dict[str, Any]


def load_plan(api: TensorRTApi, logger: Any, plan: bytes, dla_core: int | None) -> LoadedEngine:
    """The engine in a plan, and what it needs; IncompatibleEngine where this TensorRT and device cannot load it."""
    runtime = api.trt.Runtime(logger)
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise IncompatibleEngine(f"TensorRT {api.version} could not deserialize the plan (built by another "
                                 "TensorRT version or for another GPU, or damaged)")
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        tensors.append({"name": name, "mode": engine.get_tensor_mode(name).name,
                        "dtype": engine.get_tensor_dtype(name).name,
                        "shape": [int(d) for d in engine.get_tensor_shape(name)]})
    facts = {"context_device_memory_bytes": api.context_device_memory_bytes(engine), "plan_file_bytes": len(plan),
             "tensors": tensors}
    return LoadedEngine(runtime, engine, facts)
