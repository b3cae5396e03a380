"""fp32 ONNX file -> int8 Q/DQ ONNX file: static post-training quantization with ONNX Runtime's tooling.

The format is QDQ — ONNX Runtime runs Q/DQ graphs on CPU and CUDA, and TensorRT 11 takes INT8 only as explicit
Q/DQ nodes — with weights in signed int8 per output channel and activations calibrated on real images
(MinMax, Entropy or Percentile), in one of two flavors (see FLAVORS): ONNX Runtime's CPU kernels are fast
with unsigned, asymmetric activations (U8S8) and slower than fp32 with signed symmetric ones on the measured
CPU, while TensorRT's explicit quantization needs zero points of 0 (S8S8 symmetric) and float biases: its
IDequantizeLayer takes int8/fp8/int4/fp4 inputs only, so the INT32 bias DequantizeLinear nodes that
`quantize_static` writes by default (`QuantizeBias`) are refused by its ONNX parser (onnx/onnx-tensorrt#850,
NVIDIA/TensorRT#3360). A runtime asks for its flavor (`Runtime.onnx_precision`). The file is cached by content: the fp32 file's hash, the flavor, the
calibration set (method, image count, a hash of the file list, the seed, the preprocessing), the options and
ONNX Runtime's version.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sized

import numpy as np

from exporters.store import Entry, Store

METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class Flavor:
    """How one int8 ONNX precision is quantized."""

    activations: str  # onnxruntime.quantization.QuantType name
    symmetric: bool  # activations with zero points of 0
    quantize_bias: bool  # conv/gemm biases as INT32 DequantizeLinear nodes (False: biases stay float)
    description: str


# ONNX precision -> how it is quantized
FLAVORS = {"int8": Flavor("QUInt8", False, True, "asymmetric uint8 activations (ONNX Runtime's fast CPU kernels, U8S8)"),
           "int8-sym": Flavor("QInt8", True, False, "symmetric int8 activations and float biases (TensorRT explicit "
                                                   "quantization, S8S8)")}


def precision_name(onnx_precision: str) -> str:
    """An ONNX file's precision as a user names it: an int8 flavor is `int8` (the only int8 the command line
    takes), with what sets its file apart; other precisions as they are."""
    flavor = FLAVORS.get(onnx_precision)
    if flavor is None:
        return onnx_precision
    return f"int8 ({'symmetric' if flavor.symmetric else 'asymmetric'} activations)"


MODEL_FILE = "model.onnx"
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


class QuantizationFailed(Exception):
    """The quantization tooling could not quantize the file; the message says why."""


@dataclass(frozen=True)
class QuantizeSpec:
    """Everything that determines the quantized file's content."""

    model: str
    fp32_sha256: str
    method: str  # minmax, entropy or percentile
    calibration: dict[str, Any]  # images, files_sha256, seed, preprocessing (no paths of one machine)
    flavor: str = "int8"  # a key of FLAVORS
    exclude_nodes: tuple[str, ...] = ()
    per_channel: bool = True

    def key_fields(self) -> dict[str, Any]:
        return {**asdict(self), "format": "QDQ", "activations": FLAVORS[self.flavor].activations,
                "quantize_bias": FLAVORS[self.flavor].quantize_bias, "weights": "QInt8",
                "onnxruntime": importlib.metadata.version("onnxruntime")}


class _Batches:
    """The calibration images as ONNX Runtime's CalibrationDataReader reads them: one batch per range.

    quantize_static is given a stride of one batch (its `CalibStridedMinMax` option, which it applies to every
    calibrator), so each collecting pass sees a single batch: the Entropy and Percentile calibrators stack a
    pass's outputs into one array, which failed ("setting an array element with a sequence") when the last
    batch was smaller than the others; and no calibrator holds every batch's activations at once."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._input_name = input_name
        self._count = len(batches) if isinstance(batches, Sized) else None
        if self._count is None:
            batches = list(batches)
            self._count = len(batches)
        self._batches: Iterator[np.ndarray] = iter(batches)
        self._position = 0  # batches handed out so far
        self._end = self._count
        self.images = 0

    def __len__(self) -> int:
        return self._count or 0

    def set_range(self, start_index: int, end_index: int) -> None:
        """The batches [start_index, end_index) are read next; they are read in order, once."""
        if start_index != self._position:
            raise QuantizationFailed(f"the calibration batches are read in order: batch {start_index} was asked "
                                     f"for after {self._position}")
        self._end = end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._position >= self._end:
            return None
        batch = next(self._batches, None)
        if batch is None:
            return None
        self._position += 1
        self.images += len(batch)
        return {self._input_name: batch}

    def rewind(self) -> None:  # every calibrator reads the data once
        raise QuantizationFailed("the calibration data can be read only once")


def left_in_float(path: Path) -> list[str]:
    """Compute nodes (Conv, MatMul, Gemm) whose input or weights do not come through a DequantizeLinear: they
    run in float in the quantized graph, whether the tooling or the user left them so."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantized = {output for node in graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    return [f"{node.name or '(unnamed)'} ({node.op_type})" for node in graph.node
            if node.op_type in COMPUTE_OPS and any(name not in dequantized for name in node.input[:2])]


def quantize(spec: QuantizeSpec, fp32_path: Path, input_name: str, batches: Callable[[], Iterable[np.ndarray]],
             store: Store) -> tuple[Entry, bool]:
    """The cached int8 file for `spec`, quantized now on a miss. Returns (entry, cache_hit)."""
    if spec.method not in METHODS:
        raise QuantizationFailed(f"calibration method must be one of {', '.join(METHODS)}, not {spec.method}")
    if spec.flavor not in FLAVORS:
        raise QuantizationFailed(f"int8 flavor must be one of {', '.join(FLAVORS)}, not {spec.flavor}")
    flavor = FLAVORS[spec.flavor]
    folder = store.folder("onnx-int8", spec.model, spec.key_fields())
    cached = store.lookup(folder, MODEL_FILE)
    if cached is not None:
        return cached, True
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        prepared, built = Path(scratch) / "prepared.onnx", Path(scratch) / MODEL_FILE
        preprocess_note = None
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001 - optional clean-up; quantize the file as it is
            prepared, preprocess_note = fp32_path, f"quant_pre_process skipped: {type(exc).__name__}: {exc}"[:300]
        reader = _Batches(input_name, batches())
        if len(reader) == 0:
            raise QuantizationFailed(f"{spec.model}: no calibration image could be read")
        try:
            quantize_static(str(prepared), str(built), reader, quant_format=QuantFormat.QDQ,
                            per_channel=spec.per_channel, activation_type=getattr(QuantType, flavor.activations),
                            weight_type=QuantType.QInt8, calibrate_method=getattr(CalibrationMethod,
                                                                                  METHODS[spec.method]),
                            nodes_to_exclude=list(spec.exclude_nodes),
                            extra_options={"ActivationSymmetric": flavor.symmetric, "WeightSymmetric": True,
                                           "QuantizeBias": flavor.quantize_bias, "CalibStridedMinMax": 1})
        except QuantizationFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - the tooling's errors have no common base
            raise QuantizationFailed(f"{spec.model}: onnxruntime.quantization failed: {type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}"[:400]) from None
        if reader.images == 0:
            raise QuantizationFailed(f"{spec.model}: no calibration image could be read")
        meta = {"spec": spec.key_fields(), "quantizer": "onnxruntime.quantization.quantize_static (QDQ)",
                "calibration_images_read": reader.images, "left_in_float": left_in_float(built),
                "preprocess_note": preprocess_note, "quantize_s": time.perf_counter() - start}
        entry = store.commit(folder, MODEL_FILE, built, meta)
    return entry, False


@dataclass
class CalibrationFeed:
    """Normalized NCHW float32 batches from a crop set (what the accuracy command caches), `batch` at a time."""

    crops: np.ndarray
    indices: np.ndarray
    normalize: Callable[[np.ndarray], np.ndarray]
    batch: int = 16
    used: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        """The number of batches."""
        return -(-len(self.indices) // self.batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        for first in range(0, len(self.indices), self.batch):
            chosen = self.indices[first:first + self.batch]
            self.used += [int(i) for i in chosen]
            yield self.normalize(self.crops[chosen])
