"""ONNX files the harness did not make: what their single input is, and whether a batch size fits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.protocol import OnnxModel

MIN_OPSET = 7  # the oldest default-domain opset onnxruntime still runs
ELEMENT_TYPES = {1: "float32", 10: "float16", 11: "float64", 2: "uint8", 3: "int8", 6: "int32", 7: "int64",
                 9: "bool"}


@dataclass(frozen=True)
class OnnxFile:
    name: str
    path: Path
    input_name: str
    input_dtype: str
    input_shape: tuple[int | None, ...]  # None where the graph leaves the dimension symbolic (the batch)
    opset: int
    precision: str  # of its float weights: fp16 where most float weight bytes are half precision, else fp32

    @property
    def fixed_batch(self) -> int | None:
        return self.input_shape[0]

    def check_batch_sizes(self, batch_sizes: list[int]) -> None:
        if self.fixed_batch is not None and any(b != self.fixed_batch for b in batch_sizes):
            raise UserError(f"{self.path} has a fixed batch dimension of {self.fixed_batch}: run it with "
                            f"--batch-sizes {self.fixed_batch}, or export it with a dynamic batch")

    def check_precisions(self, precisions: list[str], runtimes: list[Any] = ()) -> None:
        """An outside file runs as it is: asking for another precision would record what did not run —
        unless every runtime reaches that precision from this file itself (TensorRT before 11 builds fp16
        engines from fp32 graphs)."""
        others = [p for p in precisions if p != self.precision and
                  (not runtimes or any(r.onnx_precision(p) != self.precision for r in runtimes))]
        if others:
            raise UserError(f"{self.path} holds {self.precision} weights and runs as it is; --precision "
                            f"{','.join(others)} would not change it: pass --precision {self.precision} (or convert "
                            "the file yourself)")

    def request_model(self) -> OnnxModel:
        return OnnxModel(name=self.name, onnx_path=str(self.path), input_shape=[d or 1 for d in self.input_shape],
                         input_dtype=self.input_dtype)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "onnx_path": str(self.path), "input_name": self.input_name,
                "input_shape": list(self.input_shape), "input_dtype": self.input_dtype, "opset": self.opset,
                "precision": self.precision,
                "weights": "as stored in the file", "complexity": None}


def inspect_onnx(path_text: str) -> OnnxFile:
    """Read the graph's inputs (not its weights); every reason to refuse is one clear UserError."""
    import onnx

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UserError(f"ONNX file '{path_text}' does not exist")
    if path.stat().st_size == 0:
        raise UserError(f"ONNX file '{path_text}' is empty (0 bytes): an interrupted copy or export? "
                        "Pass a .onnx model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UserError(f"'{path_text}' is not an ONNX file ({type(exc).__name__}); pass a .onnx model") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise UserError(f"{path} has {len(inputs)} inputs ({names}); the harness feeds one image tensor")
    opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise UserError(f"{path} declares opset {opset}; onnxruntime runs opset {MIN_OPSET} and newer: "
                        "convert it with onnx.version_converter")
    tensor = inputs[0].type.tensor_type
    dtype = ELEMENT_TYPES.get(tensor.elem_type)
    if dtype is None:
        raise UserError(f"{path}: input '{inputs[0].name}' has element type {tensor.elem_type}, which the harness "
                        "cannot generate")
    dims: list[int | None] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if not dims:
        raise UserError(f"{path}: input '{inputs[0].name}' has no shape; the harness needs its rank")
    symbolic = [i for i, d in enumerate(dims[1:], start=1) if d is None]
    if symbolic:
        raise UserError(f"{path}: input '{inputs[0].name}' has symbolic dimension(s) {symbolic} besides the batch; "
                        "fix them in the file (e.g. onnxruntime's make_dynamic_shape_fixed)")
    return OnnxFile(name=path.stem, path=path.resolve(), input_name=inputs[0].name, input_dtype=dtype,
                    input_shape=tuple(dims), opset=opset, precision=weights_precision(model))


FLOAT16, FLOAT = 10, 1


def weights_precision(model: Any) -> str:
    """fp16 when half-precision initializers hold more of the float weights' elements than fp32 ones."""
    counts = {FLOAT16: 0, FLOAT: 0}
    for init in model.graph.initializer:
        if init.data_type in counts:
            elements = 1
            for dim in init.dims:
                elements *= dim
            counts[init.data_type] += elements
    return "fp16" if counts[FLOAT16] > counts[FLOAT] else "fp32"
