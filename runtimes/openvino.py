"""OpenVINO: the harness's cached ONNX file, compiled for a CPU (or an Intel GPU or NPU its plugins find).

Precision is always explicit, never OpenVINO's silent default (bf16 on a CPU that has it): fp32 sets
INFERENCE_PRECISION_HINT=f32, bf16 sets bf16 and is `unsupported` where the device does not list BF16
among its optimization capabilities, fp16 likewise with FP16; int8 reads the quantized (Q/DQ) ONNX file
and keeps the layers left in float at f32. The performance hint is LATENCY unless `ov.hint` says
otherwise; streams and threads are recorded as OpenVINO settled them.

Where the cell's input shapes are known (`RuntimeOptions.input_shapes`), the dynamic dimensions of each input
are fixed to them before compiling, as `benchmark_app -shape` does: a static graph is what a deployment
compiles. `run()` is `start_async()` on one infer request whose input tensors `prepare()` set once (sharing
the numpy buffers); `synchronize()` is `wait()`. The runtime's device clock is OpenVINO's own `InferRequest.latency`
(what benchmark_app reports), kept beside the harness's host samples.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

import numpy as np

from runtimes.base import (CPU, ONNX_FILE, Artifact, DeviceClock, DeviceFamily, Inputs, OnnxFileArtifact, OptionSpec,
                           Runtime, RuntimeOptions, UnsupportedConfiguration, check_input_count, contiguous,
                           input_arrays)

# harness precision -> (INFERENCE_PRECISION_HINT, the optimization capability the device must list)
PRECISION_HINTS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16"),
                   "int8": ("f32", "INT8")}
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
# harness device -> OpenVINO device name
DEVICE_FAMILIES = {"cpu": "CPU", "intel-gpu": "GPU", "npu": "NPU"}
# openvino._pyopenvino's own failure kinds that mean the graph needs what this OpenVINO lacks; its frontends
# raise them wrapped in a RuntimeError whose message names the kind ("FrontEnd API failed with ...")
UNSUPPORTED_ERRORS = ("OpConversionFailure", "NotImplementedFailure", "OpValidationFailure")
INTEL_GPU = DeviceFamily("intel-gpu[:N]", "an Intel GPU, through OpenVINO's GPU plugin",
                         discover="runtimes.openvino:present_devices")
NPU = DeviceFamily("npu", "an NPU, through OpenVINO's NPU plugin", discover="runtimes.openvino:present_devices")


def openvino_device(device: str) -> str | None:
    """'cpu' -> CPU, 'intel-gpu' -> GPU, 'intel-gpu:1' -> GPU.1, 'npu' -> NPU; None for any other device."""
    family, _, index = device.partition(":")
    name = DEVICE_FAMILIES.get(family)
    if name is None or (index and not index.isdigit()):
        return None
    return f"{name}.{index}" if index else name


def present_devices() -> list[str]:
    """The Intel GPUs and NPU OpenVINO's plugins find here (intel-gpu:N, npu); none where openvino is not
    installed."""
    try:
        import openvino
    except ImportError:
        return []
    found = []
    for name in openvino.Core().available_devices:
        family, _, index = name.partition(".")
        if family == "GPU":
            found.append(f"intel-gpu:{index or 0}")
        elif family == "NPU":
            found.append("npu")
    return found


class AsyncStreams:
    """Several inferences in flight on one compiled model (runtimes.base.ParallelRequests)."""

    def __init__(self, queue: Any, compiled: Any, tensors: dict[int, Any], description: str) -> None:
        self._queue, self._compiled, self._tensors = queue, compiled, tensors
        self.description = description

    def start(self) -> None:
        """The next idle request on the prepared inputs; blocks while every request is busy."""
        self._queue.start_async(self._tensors, share_inputs=True)

    def wait_all(self) -> None:
        self._queue.wait_all()

    def close(self) -> None:
        self._queue = self._compiled = None


class RequestLatencyClock:
    """OpenVINO's own clock for one inference: `InferRequest.latency`, which its Python binding measures in C++
    from the start of `start_async()` to the request's completion callback, the figure benchmark_app
    reports. It needs no marks; the harness's host clock around `run()` + `synchronize()` also holds the
    Python calls and the wake-up from `wait()`."""

    source = "OpenVINO InferRequest.latency (C++ side: start_async() to the completion callback)"

    def __init__(self, latency_ms: Callable[[], float]) -> None:
        self._latency_ms = latency_ms

    def mark_start(self) -> None:
        """Nothing to mark: the request stamps its own start."""

    def mark_end(self) -> None:
        """Nothing to mark: the request stamps its own end."""

    def elapsed_ms(self) -> float:
        return self._latency_ms()


class OpenVinoRuntime(Runtime):
    name = "ov"
    consumes = ONNX_FILE
    preload_modules = ("openvino",)
    required_modules = ("openvino",)
    install_hint = "runtime 'ov' needs OpenVINO: pip install 'dnn-harness[ov]'"
    load_includes = ("reading the ONNX file into an OpenVINO model, fixing its batch axis, and compiling it for the "
                     "device")
    devices = (CPU, INTEL_GPU, NPU)
    packages = ("openvino",)
    precisions = {"fp32": "", "fp16": "where the device lists it", "bf16": "where the device lists it",
                  "int8": "where the device lists it"}
    option_prefix = "ov"
    option_specs = {
        "hint": OptionSpec("performance hint: latency (one stream, the default) or throughput", tuple(HINTS),
                           "latency"),
        "streams": OptionSpec("NUM_STREAMS, overriding what the hint chose"),
    }

    @classmethod
    def classify_failure(cls, exc: BaseException) -> str | None:
        if type(exc).__name__ in UNSUPPORTED_ERRORS or any(kind in str(exc) for kind in UNSUPPORTED_ERRORS):
            return "unsupported"
        if "bad_alloc" in str(exc):
            return "oom"
        return None

    @classmethod
    def onnx_precision(cls, precision: str, versions: Mapping[str, str | None] | None = None) -> str:
        """Float precisions are hints on the fp32 file; int8 reads the asymmetric Q/DQ file (U8S8, as on ort)."""
        return "int8" if precision == "int8" else "fp32"

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        if options.precision not in PRECISION_HINTS:
            raise UnsupportedConfiguration(f"ov runs {', '.join(PRECISION_HINTS)}, not {options.precision}")
        device = openvino_device(options.device)
        if device is None:
            raise UnsupportedConfiguration(f"ov runs on {', '.join(f.pattern for f in self.devices)}, "
                                          f"not {options.device}")
        self._ov = importlib.import_module("openvino")
        self._core = self._ov.Core()
        self._device = device
        self._check_device()
        self._model: Any = None
        self._compiled: Any = None
        self._request: Any = None
        self._inputs: list[np.ndarray] = []
        self._compiles = 0

    def _check_device(self) -> None:
        """OpenVINO finds the device, and its plugin offers the precision."""
        family = self._device.split(".")[0]
        if not any(d.split(".")[0] == family for d in self._core.available_devices):
            raise UnsupportedConfiguration(f"OpenVINO finds no {family} device here (it finds "
                                           f"{', '.join(self._core.available_devices) or 'none'})")
        capabilities = self._core.get_property(self._device, "OPTIMIZATION_CAPABILITIES")
        needed = PRECISION_HINTS[self.options.precision][1]
        if needed not in capabilities:
            raise UnsupportedConfiguration(f"OpenVINO's {self._device} plugin does not offer {needed} on this "
                                           f"hardware (it offers {', '.join(capabilities)})")

    def _config(self) -> dict[str, Any]:
        extra = self.options.extra
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.options.precision][0],
                                  "PERFORMANCE_HINT": HINTS[extra.get("hint", "latency")]}
        if "streams" in extra:
            config["NUM_STREAMS"] = extra["streams"]
        if self.options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.options.threads
        return config

    def load(self, artifact: Artifact) -> None:
        if not isinstance(artifact, OnnxFileArtifact):
            raise UnsupportedConfiguration(f"ov runs ONNX files, not {type(artifact).__name__}")
        try:
            model = self._core.read_model(artifact.path)
        except RuntimeError as exc:
            if self.classify_failure(exc) != "unsupported":
                raise
            summary = [line.strip() for line in str(exc).splitlines() if "operations" in line or "rule" in line]
            raise UnsupportedConfiguration(f"OpenVINO cannot read {artifact.path}: "
                                           f"{' '.join(summary) or str(exc).splitlines()[-1]}") from None
        self._model = model
        if self.options.input_shapes is not None:
            self._fix_shapes(self.options.input_shapes)
        self._compile()

    def _fix_shapes(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        """Make the dynamic inputs static at `shapes` (what `benchmark_app -shape` does); static ones are left."""
        dynamic = {n: shape for n, (port, shape) in enumerate(zip(self._model.inputs, shapes))
                   if port.get_partial_shape().is_dynamic}
        if dynamic:
            self._reshape(dynamic)

    def _reshape(self, shapes: dict[int, tuple[int, ...]]) -> None:
        """Reshape the inputs by position: {input index: shape}."""
        self._model.reshape({self._model.inputs[n]: list(shape) for n, shape in shapes.items()})

    def _compile(self) -> None:
        self._compiled = self._core.compile_model(self._model, self._device, self._config())
        self._request = self._compiled.create_infer_request()
        self._compiles += 1

    def prepare(self, inputs: Inputs) -> None:
        """The input tensors, set once, sharing the arrays' memory. A static graph compiled for other shapes
        (an accuracy run's last, smaller batch) is recompiled for these, outside any timed region."""
        arrays = input_arrays(inputs)
        check_input_count(arrays, [port.get_any_name() for port in self._compiled.inputs])
        compiled = [port.get_partial_shape() for port in self._compiled.inputs]
        other = {n: array.shape for n, (shape, array) in enumerate(zip(compiled, arrays))
                 if not shape.is_dynamic and tuple(shape.to_shape()) != array.shape}
        if other:
            self._reshape(other)
            self._compile()
        self._inputs = [contiguous(array.astype(port.get_element_type().to_dtype(), copy=False))
                        for port, array in zip(self._compiled.inputs, arrays)]
        for n, array in enumerate(self._inputs):  # a 0-d array shared would be a tensor of shape [1]: copied
            self._request.set_input_tensor(n, self._ov.Tensor(array, shared_memory=array.ndim > 0))

    def parallel_requests(self, streams: int) -> "AsyncStreams":
        """OpenVINO's async streams (what `benchmark_app -hint throughput` runs): the model compiled again with the
        THROUGHPUT hint and `streams` streams, and an AsyncInferQueue of `streams` requests, each given the
        prepared input tensors (shared, read only)."""
        config = {**self._config(), "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
        compiled = self._core.compile_model(self._model, self._device, config)
        queue = self._ov.AsyncInferQueue(compiled, streams)
        tensors = {n: self._ov.Tensor(array, shared_memory=array.ndim > 0) for n, array in enumerate(self._inputs)}
        granted = str(compiled.get_property("NUM_STREAMS"))
        return AsyncStreams(queue, compiled, tensors, f"OpenVINO AsyncInferQueue of {streams} requests on a model "
                                                      f"compiled with PERFORMANCE_HINT=THROUGHPUT, NUM_STREAMS={granted}")

    def run(self) -> None:
        self._request.start_async()

    def synchronize(self) -> None:
        self._request.wait()

    def device_clock(self) -> DeviceClock | None:
        return RequestLatencyClock(self._last_latency_ms)

    def _last_latency_ms(self) -> float:
        """The last inference's latency on the current request (a recompile in `prepare()` makes a new one)."""
        return float(self._request.latency)

    def outputs(self) -> list[np.ndarray]:
        return [np.array(self._request.get_output_tensor(i).data, copy=True)
                for i in range(len(self._compiled.outputs))]

    def _compiled_property(self, name: str) -> Any:
        value = self._compiled.get_property(name)
        if hasattr(value, "get_type_name"):  # an element type: 'f32', 'bf16'
            return value.get_type_name()
        return value if isinstance(value, (int, float, bool, str)) else str(value)

    def info(self) -> dict[str, Any]:
        options: dict[str, Any] = {"openvino_device": self._device, "threads_requested": self.options.threads,
                                   "requested": {k: str(v) for k, v in self._config().items()},
                                   "runtime_options": dict(self.options.extra)}
        if self._compiled is not None:
            for name in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
                         "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "EXECUTION_MODE_HINT", "ENABLE_CPU_PINNING",
                         "ENABLE_HYPER_THREADING"):
                try:
                    options[name.lower()] = self._compiled_property(name)
                except RuntimeError:  # a property this device's plugin does not have
                    options[name.lower()] = None
            shapes = [port.get_partial_shape() for port in self._compiled.inputs]
            options["input_shape"] = str(shapes[0])
            if len(shapes) > 1:
                options["input_shapes"] = [str(shape) for shape in shapes]
            options["static_shape"] = not any(shape.is_dynamic for shape in shapes)
            options["compiles"] = self._compiles
        return {"name": self.name, "version": self._ov.get_version(), "device": self.options.device,
                "device_name": self._core.get_property(self._device, "FULL_DEVICE_NAME"),
                "precision": self.options.precision, "options": options}

    def _release(self) -> None:
        self._request = self._compiled = self._model = None
        self._inputs = []
