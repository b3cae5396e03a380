"""Every difference between the TensorRT Python APIs the harness supports (8.5 to 11.x), in one place.

The rest of the runtime calls only names that exist in all of them (name-based I/O, `execute_async_v3`,
`set_input_shape`, memory pools, timing caches, optimization profiles: all present from 8.5 on) and
asks this class for the rest:

| what | 8.5 - 9.x | 10.x | 11.x |
|---|---|---|---|
| network flags | `EXPLICIT_BATCH` bit | none (the flag is deprecated) | none (removed) |
| fp16 | `BuilderFlag.FP16` on the fp32 graph (weakly typed) | same | the fp16 ONNX graph's own types (always strongly typed; the flag is removed) |
| int8 | `BuilderFlag.INT8` with the Q/DQ graph (explicit quantization) | same | the Q/DQ graph alone (the flag is removed) |
| context device memory | `device_memory_size` | `device_memory_size_v2` from 10.1 | `device_memory_size_v2` |
| context memory for the set shapes | none | `update_device_memory_size_for_shapes()` | same |
| parser error's node | `node()` index only | `node_name()`, `node_operator()` | same |

Sources: NVIDIA's 10.x -> 11.x Python migration guide and the real bindings' API, class by class with every
signature (tests/fixtures/tensorrt_api, from tensorrt_bindings 8.6.1, 10.3.0 and 11.4.0.106; checked by
tests/test_tensorrt_api_names.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from runtimes.base import UnsupportedConfiguration

LOG = logging.getLogger("harness.tensorrt")

OLDEST = (8, 5)
WEAKLY_TYPED_FP16 = "BuilderFlag.FP16 on the fp32 ONNX graph (weakly typed: TensorRT may pick fp16 kernels)"
STRONGLY_TYPED_FP16 = "the fp16 ONNX graph's own types (strongly typed network)"
EXPLICIT_INT8 = "BuilderFlag.INT8 with the Q/DQ ONNX graph (explicit quantization: scales from its Q/DQ nodes)"
STRONGLY_TYPED_INT8 = "the Q/DQ ONNX graph (explicit quantization, strongly typed network)"


def parse_version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise UnsupportedConfiguration(f"cannot read the TensorRT version '{text}'") from None


def onnx_precision_for(version: tuple[int, int], precision: str) -> str:
    """The ONNX file's precision for an engine at `precision` on TensorRT `version`: the fp16 graph on 11.x
    (strongly typed), fp32 before; int8 is always the symmetric quantized (Q/DQ) graph (explicit quantization)."""
    if precision == "int8":
        return "int8-sym"  # explicit quantization needs zero points of 0 (exporters.quantize.FLAVORS)
    return precision if version[0] >= 11 else "fp32"


class TensorRTApi:
    """The `tensorrt` module, and the version-dependent calls the runtime makes through it."""

    def __init__(self, trt: Any) -> None:
        self.trt = trt
        self.version: str = trt.__version__
        self.major, self.minor = parse_version(self.version)
        if (self.major, self.minor) < OLDEST:
            raise UnsupportedConfiguration(f"TensorRT {self.version} is older than 8.5, the oldest the harness "
                                           "supports (JetPack 5.1); upgrade TensorRT")

    @property
    def strongly_typed(self) -> bool:
        """11.x networks are always strongly typed: precision comes from the graph's types."""
        return self.major >= 11

    def onnx_precision(self, precision: str) -> str:
        return onnx_precision_for((self.major, self.minor), precision)

    def network_flags(self) -> int:
        if self.major < 10:
            return 1 << int(self.trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        return 0

    def apply_precision(self, config: Any, precision: str) -> str:
        """Set the builder up for `precision`; returns how the precision reaches the engine (recorded)."""
        if precision == "fp32":
            return "fp32 ONNX graph"
        if precision == "int8":
            if self.strongly_typed:
                return STRONGLY_TYPED_INT8
            config.set_flag(self.trt.BuilderFlag.INT8)  # explicit quantization: scales from the Q/DQ nodes
            return EXPLICIT_INT8
        if precision != "fp16":
            raise UnsupportedConfiguration(f"trt builds fp32, fp16 or int8 engines, not {precision}")
        if self.strongly_typed:
            return STRONGLY_TYPED_FP16
        config.set_flag(self.trt.BuilderFlag.FP16)
        return WEAKLY_TYPED_FP16

    def context_device_memory_bytes(self, engine: Any) -> int:
        """The device memory an execution context of the engine needs (activations and scratch, for the largest
        shapes of its profile; not its weights), as TensorRT states it."""
        if (self.major, self.minor) >= (10, 1):
            return int(engine.device_memory_size_v2)
        return int(engine.device_memory_size)

    def context_memory_for_shapes_bytes(self, context: Any) -> int | None:
        """The device memory the context needs for the input shapes now set (10.x on); None before."""
        if self.major < 10:
            return None
        return int(context.update_device_memory_size_for_shapes())

    def make_logger(self) -> "Any":
        """A `trt.ILogger` that writes TensorRT's warnings and errors to this process's stderr (the cell's log)
        and keeps them: TensorRT reports some outcomes only in its log (a timing cache it discards)."""
        trt = self.trt
        warning = int(trt.ILogger.WARNING)

        class RecordingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.messages: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                if int(severity) <= warning:
                    line = f"[TensorRT] {getattr(severity, 'name', severity)}: {msg}"
                    self.messages.append(line)
                    print(line, file=sys.stderr, flush=True)

        return RecordingLogger()

    def parser_error_text(self, error: Any) -> str:
        """One parser error as 'node NAME (OP): message'; 8.x's errors know only the node's index."""
        if self.major >= 10:
            where = f"node {error.node_name() or error.node()} ({error.node_operator() or 'unknown op'})"
        else:
            where = f"node #{error.node()}"
        return f"{where}: {error.desc()}"
