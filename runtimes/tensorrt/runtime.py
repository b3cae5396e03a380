"""`trt`: TensorRT engines the harness built from its own ONNX files, run through the TensorRT Python API.

Execution, as trtexec does it and so comparable with it: the inputs (one array per engine input, in the
engine's order, each input's shape set on the context) are copied to the device once in `prepare()`; `run()`
is `execute_async_v3` on the runtime's own non-default stream (or, with `trt.cuda_graph=on`, one launch of
a CUDA graph that captured that enqueue); `synchronize()` waits on that stream only; the device clock is a
pair of CUDA events on that stream. Output buffers are sized from the execution context once the input shapes
are set, and copied back only in `outputs()`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtimes.base import (COMMON_SOURCES, CUDA, DLA, ONNX_FILE, Artifact, BuiltEngine, DeviceClock, EngineArtifact,
                           EngineShapes, Inputs, OnnxFileArtifact, OptionSpec, Runtime, RuntimeOptions,
                           UnsupportedConfiguration, check_input_count, contiguous, input_arrays)
from runtimes.tensorrt.api import TensorRTApi, onnx_precision_for, parse_version
from runtimes.tensorrt.cuda_buffers import BACKENDS, CudaBackend, CudaError, DeviceBuffer, Graph, open_backend
from runtimes.tensorrt.engine import BuildSettings, Builder, LoadedEngine, engine_key, load_plan

INSTALL_HINT = ("runtime 'trt' needs TensorRT's Python bindings: pip install 'dnn-harness[trt-cu12]' (CUDA 12 "
                "drivers) or 'dnn-harness[trt-cu13]' (CUDA 13 drivers) on x86-64, or on a Jetson JetPack's "
                "python3-libnvinfer in a venv made with --system-site-packages")
PRECISIONS = ("fp32", "fp16", "int8")
MB = 1 << 20


def parse_device(device: str) -> tuple[int, int | None]:
    """(CUDA device index, DLA core or None) from cuda, cuda:N or dla:N (a DLA sits beside GPU 0)."""
    if device.startswith("dla:") and device[4:].isdigit():
        return 0, int(device[4:])
    if device == "cuda":
        return 0, None
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:]), None
    raise UnsupportedConfiguration(f"trt runs on --device cuda, cuda:N or dla:N, not {device}")


def _import_tensorrt() -> TensorRTApi:
    return TensorRTApi(importlib.import_module("tensorrt"))


def _as_engine_type(name: str, array: np.ndarray, dtype: np.dtype, version: str) -> np.ndarray:
    """The array in the engine tensor's type. TensorRT before 9 has no INT64: its ONNX parser makes an int64 input
    an INT32 one (onnx-tensorrt's convertDtype), so int64 values are narrowed, and refused where they do not fit."""
    if array.dtype == np.int64 and dtype == np.int32 and array.size and \
            (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
        raise UnsupportedConfiguration(f"input {name} is int64 with values beyond int32; TensorRT {version} binds "
                                       "int64 inputs as int32 (INT64 I/O came with TensorRT 9/10)")
    return array.astype(dtype, copy=False)


class TensorRTRuntime(Runtime):
    name = "trt"
    consumes = ONNX_FILE
    builds_engine = True
    load_includes = ("deserializing the engine the build job made (building it is recorded apart) and creating its "
                     "execution context and stream")
    preload_modules = ("tensorrt",)
    required_modules = ("tensorrt",)
    install_hint = INSTALL_HINT
    memory_sources = (*COMMON_SOURCES, "tensorrt_engine")
    own_memory_source = "tensorrt_engine"
    devices = (CUDA, DLA)
    packages = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "cuda-python", "cuda-bindings")
    precisions = {"fp32": "GPU only, not on a DLA", "fp16": "", "int8": ""}
    default_for = ("jetson", "cuda")
    option_prefix = "trt"
    option_specs = {
        "profile": OptionSpec("static: one engine per batch size (default); dynamic: one engine with a min/opt/max "
                              "profile over the planned batch sizes", ("static", "dynamic"), "static"),
        "tf32": OptionSpec("TF32 tactics for fp32 layers (Ampere and newer)", ("on", "off"), "on"),
        "cuda_graph": OptionSpec("run() launches a CUDA graph that captured the enqueue (trtexec 11's default)",
                                 ("on", "off"), "off"),
        "buffers": OptionSpec("library for device buffers, the stream and events", ("auto", *BACKENDS), "auto"),
        "workspace_mb": OptionSpec("builder workspace limit in MiB (default: TensorRT's, the device's memory)"),
        "timing_cache": OptionSpec("reuse and extend the persistent timing cache of this GPU and TensorRT version",
                                   ("on", "off"), "on"),
    }

    @classmethod
    def onnx_precision(cls, precision: str, versions: Mapping[str, str | None] | None = None) -> str:
        """fp16 engines come from the fp16 ONNX file on 11.x and from the fp32 one before (builder flag): the
        TensorRT of `versions` (the machine the cell runs on, such as a fleet's node), else this machine's."""
        version = (versions or {}).get("tensorrt")
        if version:
            try:
                return onnx_precision_for(parse_version(version), precision)
            except UnsupportedConfiguration:
                return precision  # the cell will say what is wrong with that TensorRT
        try:
            return _import_tensorrt().onnx_precision(precision)
        except (ImportError, UnsupportedConfiguration):
            return precision  # the cell will say what is missing

    @classmethod
    def shapes_option(cls, extra: dict[str, Any]) -> str:
        return str(extra.get("profile", "static"))

    @classmethod
    def classify_failure(cls, exc: BaseException) -> str | None:
        """Out of device memory from CUDA, and TensorRT's bindings refusing to exist without CUDA (pybind11's
        "factory function returned nullptr"). A profile TensorRT refuses (`set_shape`'s ValueError) is turned
        into UnsupportedConfiguration where it is called (engine.py)."""
        if isinstance(exc, CudaError) and exc.error_name == "cudaErrorMemoryAllocation":
            return "oom"
        if isinstance(exc, TypeError) and "returned nullptr" in str(exc):
            return "unsupported"
        return None

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        self.device_index, self.dla_core = parse_device(options.device)
        if options.precision not in PRECISIONS:
            raise UnsupportedConfiguration(f"trt builds {', '.join(PRECISIONS)} engines, not {options.precision}")
        if self.dla_core is not None and options.precision == "fp32":
            raise UnsupportedConfiguration("the DLA runs fp16 or int8, not fp32: use --precision fp16")
        self.api = _import_tensorrt()
        self.logger = self.api.make_logger()
        extra = options.extra
        self.settings = BuildSettings(precision=options.precision, tf32=extra.get("tf32", "on") == "on",
                                      workspace_bytes=extra["workspace_mb"] * MB if "workspace_mb" in extra else None,
                                      dla_core=self.dla_core, timing_cache=extra.get("timing_cache", "on") == "on")
        self.cuda_graph = extra.get("cuda_graph", "off") == "on"
        self.backend: CudaBackend | None = None
        self.loaded: LoadedEngine | None = None
        self._context: Any = None
        self._stream: Any = None
        self._graph: Graph | None = None
        self._input_names: list[str] = []
        self._host_inputs: dict[str, np.ndarray] = {}  # the prepared inputs, in the engine's types
        self._output_names: list[str] = []
        self._buffers: dict[str, DeviceBuffer] = {}
        self._host_outputs: dict[str, np.ndarray] = {}
        self._context_memory_for_shapes: int | None = None

    # ---------------------------------------------------------------- device and engine

    def init_device(self) -> None:
        """The CUDA context through the buffer library (cuda-python, torch or pycuda), before any TensorRT object:
        without a usable CUDA the real `trt.Builder` raises and a `trt.Runtime` crashes the process when used,
        so CUDA is checked here first (no device, or a driver too old: `unsupported`, with the reason)."""
        if self.backend is None:
            self.backend = open_backend(str(self.options.extra.get("buffers", "auto")), self.device_index)

    def _gpu(self) -> tuple[str, str]:
        self.init_device()
        assert self.backend is not None
        return self.backend.device_properties()

    def engine_key(self, onnx: OnnxFileArtifact, onnx_sha256: str, shapes: EngineShapes) -> dict[str, Any]:
        return engine_key(self.api, onnx_sha256, self._gpu(), shapes, self.settings)

    def build_engine(self, onnx: OnnxFileArtifact, shapes: EngineShapes, state_dir: str) -> BuiltEngine:
        gpu = self._gpu()  # CUDA first
        return Builder(self.api, self.logger).build(onnx.path, shapes, self.settings, gpu, state_dir)

    def inspect_engine(self, plan_path: str) -> dict[str, Any]:
        self.init_device()
        return load_plan(self.api, self.logger, Path(plan_path).read_bytes(), self.dla_core).facts

    def load(self, artifact: Artifact) -> None:
        """Deserialize the engine the build job made (cold start) and create its execution context."""
        if not isinstance(artifact, EngineArtifact):
            raise UnsupportedConfiguration(f"trt loads engines the harness built, not {type(artifact).__name__}")
        self.init_device()
        assert self.backend is not None
        self.loaded = load_plan(self.api, self.logger, Path(artifact.path).read_bytes(), self.dla_core)
        engine = self.loaded.engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of device memory?)")
        self._stream = self.backend.create_stream()
        mode = self.api.trt.TensorIOMode
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._input_names = [n for n in names if engine.get_tensor_mode(n) == mode.INPUT]  # the network's order
        self._output_names = [n for n in names if engine.get_tensor_mode(n) == mode.OUTPUT]

    def _dtype(self, name: str) -> np.dtype:
        assert self.loaded is not None
        return np.dtype(self.api.trt.nptype(self.loaded.engine.get_tensor_dtype(name)))

    def prepare(self, inputs: Inputs) -> None:
        """Inputs to the device once (each in the engine's order, cast to its type, its shape set); output buffers
        sized from the context; addresses set; graph captured."""
        backend, context = self.backend, self._context
        assert backend is not None and context is not None
        arrays = input_arrays(inputs)
        check_input_count(arrays, self._input_names)
        self._host_inputs = {}
        for name, array in zip(self._input_names, arrays):
            host_input = contiguous(_as_engine_type(name, array, self._dtype(name), self.api.version))
            self._host_inputs[name] = host_input
            if not context.set_input_shape(name, tuple(host_input.shape)):
                raise UnsupportedConfiguration(f"the engine does not accept input shape {tuple(host_input.shape)} "
                                               f"for {name}")
            backend.copy_to_device(self._buffer(name, host_input.nbytes), host_input, self._stream)
        for name in self._output_names:
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            self._host_outputs[name] = np.empty(shape, dtype=self._dtype(name))
            self._buffer(name, self._host_outputs[name].nbytes)
        for name, buffer in self._buffers.items():
            if not context.set_tensor_address(name, buffer.ptr):
                raise RuntimeError(f"TensorRT refused the device address of tensor {name} (set_tensor_address "
                                   "returned False); its log in this cell's log says why")
        self._context_memory_for_shapes = self.api.context_memory_for_shapes_bytes(context)
        backend.synchronize(self._stream)
        if self.cuda_graph:
            self._enqueue()  # one plain enqueue first, so TensorRT's lazy set-up is not captured
            backend.synchronize(self._stream)
            self._graph = backend.capture_graph(self._stream, self._enqueue)

    def parallel_requests(self, streams: int) -> "ContextPool":
        """TensorRT's own parallelism (what `trtexec --streams=N` runs): `streams` more execution contexts on the
        one engine, each with its own CUDA stream and device buffers holding the prepared inputs."""
        assert self.backend is not None and self.loaded is not None
        slots = []
        for _ in range(streams):
            context = self.loaded.engine.create_execution_context()
            if context is None:
                raise RuntimeError("TensorRT could not create another execution context (out of device memory?)")
            stream = self.backend.create_stream()
            for name, host_input in self._host_inputs.items():
                if not context.set_input_shape(name, tuple(host_input.shape)):
                    raise UnsupportedConfiguration(f"the engine does not accept input shape "
                                                   f"{tuple(host_input.shape)} for {name}")
                buffer = self.backend.allocate(host_input.nbytes)
                self.backend.copy_to_device(buffer, host_input, stream)
                self._address(context, name, buffer)
            for name in self._output_names:
                shape = tuple(int(d) for d in context.get_tensor_shape(name))
                self._address(context, name, self.backend.allocate(int(np.prod(shape)) * self._dtype(name).itemsize))
            self.backend.synchronize(stream)
            slots.append((context, stream))
        return ContextPool(self.backend, slots, f"{streams} TensorRT execution contexts on one engine, each with its "
                                                f"own CUDA stream and buffers")

    @staticmethod
    def _address(context: Any, name: str, buffer: DeviceBuffer) -> None:
        if not context.set_tensor_address(name, buffer.ptr):
            raise RuntimeError(f"TensorRT refused the device address of tensor {name} (set_tensor_address returned "
                               "False); its log in this cell's log says why")

    def _buffer(self, name: str, nbytes: int) -> DeviceBuffer:
        """The tensor's device buffer, allocated again only when it must grow (accuracy prepares every batch)."""
        assert self.backend is not None
        buffer = self._buffers.get(name)
        if buffer is None or buffer.nbytes < nbytes:
            buffer = self._buffers[name] = self.backend.allocate(nbytes)
        return buffer

    def _enqueue(self) -> None:
        assert self.backend is not None
        if not self._context.execute_async_v3(self.backend.stream_handle(self._stream)):
            raise RuntimeError("execute_async_v3 failed; TensorRT's log in this cell's log says why")

    def run(self) -> None:
        if self._graph is not None:
            self._graph.launch()
        else:
            self._enqueue()

    def synchronize(self) -> None:
        assert self.backend is not None
        self.backend.synchronize(self._stream)

    def outputs(self) -> list[np.ndarray]:
        assert self.backend is not None
        for name in self._output_names:
            self.backend.copy_to_host(self._host_outputs[name], self._buffers[name], self._stream)
        return [self._host_outputs[name].copy() for name in self._output_names]

    def device_clock(self) -> DeviceClock | None:
        assert self.backend is not None
        return self.backend.event_pair(self._stream)

    def device_memory(self) -> dict[str, Any]:
        """What TensorRT states, under its own names: the memory an execution context needs (activations and
        scratch, not weights), that memory for the shapes set (10.x on), the plan file's size (what was
        deserialized: not TensorRT's device weight memory, which it does not report), the harness's I/O buffers."""
        if self.loaded is None:
            return {"missing": "no engine was loaded"}
        return {"context_device_memory_bytes": self.loaded.facts["context_device_memory_bytes"],
                "context_memory_for_shapes_bytes": self._context_memory_for_shapes,
                "plan_file_bytes": self.loaded.facts["plan_file_bytes"],
                "io_buffers_bytes": sum(b.nbytes for b in self._buffers.values()),
                "source": "ICudaEngine.device_memory_size(_v2) (an execution context's activations and scratch), "
                          "IExecutionContext.update_device_memory_size_for_shapes() (10.x on; None before), the "
                          "serialized plan's size (not device weight memory: TensorRT does not state that), and "
                          "the input/output buffers the harness allocated"}

    def torch_allocator_memory(self) -> dict[str, Any] | None:
        """PyTorch's allocator peaks where torch made the input/output buffers (trt.buffers=torch)."""
        return self.backend.allocator_peak() if self.backend is not None else None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.api.version,
            "device": self.options.device,
            "device_name": self.backend.device_properties()[0] if self.backend else None,
            "precision": self.options.precision,
            "options": {
                "buffers": self.backend.name if self.backend else None,
                "cuda_graph": self.cuda_graph,
                "profile": self.shapes_option(self.options.extra),
                "tf32_requested": self.settings.tf32,
                "workspace_bytes": self.settings.workspace_bytes,
                "dla_core": self.dla_core,
                "timing_cache": self.settings.timing_cache,
                "stream": "own non-blocking stream; synchronize() waits on it only",
                "inputs_placed": "once, in prepare()",
                "runtime_options": dict(self.options.extra),
            },
        }

    def _release(self) -> None:
        self._graph = None
        self._context = None
        self.loaded = None
        self._buffers.clear()
        if self.backend is not None:
            self.backend.close()


class ContextPool:
    """Several execution contexts in flight on one engine (runtimes.base.ParallelRequests): queries go to them in
    turn; a context whose last query is still running is waited for (its stream) before it takes the next."""

    def __init__(self, backend: CudaBackend, slots: list[tuple[Any, Any]], description: str) -> None:
        self._backend, self._slots, self.description = backend, slots, description
        self._next = 0
        self._busy = [False] * len(slots)

    def start(self) -> None:
        index = self._next
        context, stream = self._slots[index]
        if self._busy[index]:
            self._backend.synchronize(stream)
        if not context.execute_async_v3(self._backend.stream_handle(stream)):
            raise RuntimeError("execute_async_v3 failed; TensorRT's log in this cell's log says why")
        self._busy[index] = True
        self._next = (index + 1) % len(self._slots)

    def wait_all(self) -> None:
        for index, (_, stream) in enumerate(self._slots):
            if self._busy[index]:
                self._backend.synchronize(stream)
                self._busy[index] = False

    def close(self) -> None:
        """The contexts go; their streams and buffers are the backend's, freed with the runtime."""
        self._slots = []
