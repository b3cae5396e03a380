"""ONNX Runtime: the CPU execution provider, and CUDA / TensorRT where the installed build offers them.

On CPU, `run()` is `session.run` with the prepared feed (ORT allocates the outputs: that is part of
what a user of `session.run` pays). On CUDA, IO binding keeps inputs and outputs on the device, so
no host<->device copy is inside a timed sample; the CUDA arena grows only as requested
(`kSameAsRequested`) so its memory is not inflated.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

import numpy as np

from runtimes.base import (CPU, CUDA, ONNX_FILE, Artifact, Inputs, OnnxFileArtifact, OptionSpec, Runtime,
                           RuntimeOptions, UnsupportedConfiguration, check_input_count, contiguous, input_arrays)

NUMPY_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
                "tensor(int64)": np.int64, "tensor(bool)": np.bool_, "tensor(uint16)": np.uint16,
                "tensor(int16)": np.int16, "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64}
GRAPH_OPTIMIZATION = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                      "all": "ORT_ENABLE_ALL"}
EXECUTION_MODE = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
# onnxruntime's own exception types (onnxruntime.capi.onnxruntime_pybind11_state) that mean the graph
# needs what this build does not have: an op or a type with no kernel, or an opset/IR version it lacks.
UNSUPPORTED_ERRORS = ("NotImplemented", "InvalidGraph")


ORT_DOMAINS = ("com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental")


def unknown_ops(path: str) -> list[str]:
    """Nodes whose op no ONNX schema (standard domains) and no onnxruntime domain defines, as
    'domain:op (node)'; empty where onnx is not installed or every op is known."""
    try:
        import onnx
    except ImportError:
        return []
    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception:  # noqa: BLE001 - an unreadable file is the session's error to report
        return []
    unknown = []
    for node in graph.node:
        domain = node.domain or ""
        if domain in ORT_DOMAINS or onnx.defs.has(node.op_type, domain):
            continue
        unknown.append(f"{domain or 'ai.onnx'}:{node.op_type} ({node.name or 'unnamed'})")
    return unknown


class OnnxRuntime(Runtime):
    name = "ort"
    consumes = ONNX_FILE
    preload_modules = ("onnxruntime",)
    required_modules = ("onnxruntime",)
    install_hint = "runtime 'ort' needs ONNX Runtime: pip install 'dnn-harness[ort]' (or '[device]' on a board)"
    accelerator_provider = "CUDAExecutionProvider"
    devices = (CPU, CUDA)
    packages = ("onnxruntime", "onnxruntime-gpu")
    precisions = {"fp32": "", "fp16": "", "int8": ""}
    default_for = ("cpu",)
    option_prefix = "ort"
    option_specs = {
        "graph_optimization": OptionSpec("graph optimization level", tuple(GRAPH_OPTIMIZATION), "all"),
        "execution_mode": OptionSpec("operators one at a time, or independent branches in parallel",
                                     tuple(EXECUTION_MODE), "sequential"),
        "inter_op_threads": OptionSpec("threads across operators (parallel execution mode)"),
    }

    @classmethod
    def classify_failure(cls, exc: BaseException) -> str | None:
        return "unsupported" if type(exc).__name__ in UNSUPPORTED_ERRORS else None

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        self._ort = importlib.import_module("onnxruntime")
        self._session: Any = None
        self._binding: Any = None
        self._feed: dict[str, np.ndarray] = {}
        self._result: list[np.ndarray] = []
        self._on_device = options.device.startswith("cuda")
        if options.precision not in ("fp32", "fp16", "int8"):
            raise UnsupportedConfiguration(f"ort runs fp32, fp16 or int8 (Q/DQ) graphs, not {options.precision}")
        if self._on_device and self.accelerator_provider not in self._ort.get_available_providers():
            raise UnsupportedConfiguration(
                f"this onnxruntime build has no {self.accelerator_provider} "
                f"(it offers {', '.join(self._ort.get_available_providers())}); install onnxruntime-gpu")
        if not self._on_device and options.device != "cpu":
            raise UnsupportedConfiguration(f"unknown device {options.device}")

    def _device_id(self) -> int:
        return int(self.options.device.split(":")[1]) if ":" in self.options.device else 0

    def _providers(self) -> list[Any]:
        if not self._on_device:
            return ["CPUExecutionProvider"]
        cuda = ("CUDAExecutionProvider", {"device_id": self._device_id(), "arena_extend_strategy": "kSameAsRequested"})
        return [cuda, "CPUExecutionProvider"]

    def _session_options(self) -> Any:
        extra = self.options.extra
        session_options = self._ort.SessionOptions()
        session_options.graph_optimization_level = getattr(
            self._ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION[extra.get("graph_optimization", "all")])
        session_options.execution_mode = getattr(self._ort.ExecutionMode,
                                                 EXECUTION_MODE[extra.get("execution_mode", "sequential")])
        if "inter_op_threads" in extra:
            session_options.inter_op_num_threads = extra["inter_op_threads"]
        if self.options.threads is not None:
            session_options.intra_op_num_threads = self.options.threads
        session_options.log_severity_level = 3
        return session_options

    def load(self, artifact: Artifact) -> None:
        if not isinstance(artifact, OnnxFileArtifact):
            raise UnsupportedConfiguration(f"ort runs ONNX files, not {type(artifact).__name__}")
        try:
            self._session = self._ort.InferenceSession(artifact.path, sess_options=self._session_options(),
                                                       providers=self._providers())
        except Exception as exc:
            unknown = unknown_ops(artifact.path) if type(exc).__name__ == "Fail" else []
            if unknown or self.classify_failure(exc) == "unsupported":
                detail = f"ops with no schema in ONNX or onnxruntime: {', '.join(unknown)}; " if unknown else ""
                raise UnsupportedConfiguration(f"onnxruntime cannot run {artifact.path}: {detail}{exc}") from None
            raise
        self._inputs_meta = self._session.get_inputs()

    def prepare(self, inputs: Inputs) -> None:
        """Each input cast to the type the session declares; on a GPU, bound once to device memory with the
        outputs (I/O binding), so no copy is in `run()`."""
        arrays = input_arrays(inputs)
        check_input_count(arrays, [meta.name for meta in self._inputs_meta])
        feed = {meta.name: contiguous(array.astype(NUMPY_OF_ORT.get(meta.type, array.dtype), copy=False))
                for meta, array in zip(self._inputs_meta, arrays)}
        if not self._on_device:
            self._feed = feed
            return
        binding = self._session.io_binding()
        values = {name: self._ort.OrtValue.ortvalue_from_numpy(array, "cuda", self._device_id())
                  for name, array in feed.items()}
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        for output in self._session.get_outputs():
            binding.bind_output(output.name, "cuda", self._device_id())
        self._device_inputs, self._binding = values, binding

    def run(self) -> None:
        if self._binding is not None:
            self._session.run_with_iobinding(self._binding)
        else:
            self._result = self._session.run(None, self._feed)

    def synchronize(self) -> None:
        if self._binding is not None:
            self._binding.synchronize_outputs()

    def outputs(self) -> list[np.ndarray]:
        if self._binding is not None:
            return [np.asarray(v) for v in self._binding.copy_outputs_to_cpu()]
        return [np.asarray(v) for v in self._result]

    def info(self) -> dict[str, Any]:
        session_options = self._session.get_session_options() if self._session else self._session_options()
        return {
            "name": self.name,
            "version": self._ort.__version__,
            "device": self.options.device,
            "precision": self.options.precision,
            "options": {
                "providers": self._session.get_providers() if self._session else [],
                "provider_options": self._session.get_provider_options() if self._session else {},
                "intra_op_num_threads": session_options.intra_op_num_threads,
                "threads_requested": self.options.threads,
                "inter_op_num_threads": session_options.inter_op_num_threads,
                "graph_optimization_level": str(session_options.graph_optimization_level),
                "execution_mode": str(session_options.execution_mode),
                "io_binding": self._on_device,
                "runtime_options": dict(self.options.extra),
            },
        }

    def _release(self) -> None:
        self._session = self._binding = None
        self._feed, self._result = {}, []


class OnnxRuntimeTensorRT(OnnxRuntime):
    """The TensorRT execution provider of onnxruntime-gpu (CUDA as its fallback); takes the ort options."""

    name = "ort-trt"
    devices = (CUDA,)
    default_for = ()
    accelerator_provider = "TensorrtExecutionProvider"
    install_hint = "runtime 'ort-trt' needs onnxruntime-gpu built with TensorRT: pip install onnxruntime-gpu"

    @classmethod
    def onnx_precision(cls, precision: str, versions: Mapping[str, str | None] | None = None) -> str:
        """TensorRT underneath needs the symmetric int8 flavor (zero points of 0)."""
        return "int8-sym" if precision == "int8" else precision

    def __init__(self, options: RuntimeOptions) -> None:
        if not options.device.startswith("cuda"):
            raise UnsupportedConfiguration("ort-trt needs --device cuda")
        super().__init__(options)

    def _providers(self) -> list[Any]:
        trt = ("TensorrtExecutionProvider", {"device_id": self._device_id(),
                                             "trt_fp16_enable": self.options.precision == "fp16"})
        return [trt, *super()._providers()]
