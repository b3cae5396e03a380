"""ONNX files the harness did not make: their inputs and outputs, the shape each input is fed at (symbolic
dimensions fixed by `--input-shape NAME:DxD...`, or the arrays of an .npz), and whether a batch size fits.

The batch: an input whose first dimension is symbolic is batched — each cell sets that dimension to its batch
size, whatever value `--input-shape` wrote there. An input whose first dimension is fixed keeps it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.protocol import InputSpec, OnnxModel

MIN_OPSET = 7  # the oldest default-domain opset onnxruntime still runs
ELEMENT_TYPES = {1: "float32", 10: "float16", 11: "float64", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16",
                 6: "int32", 7: "int64", 12: "uint32", 13: "uint64", 9: "bool"}
UNNAMED = "?"  # a symbolic dimension the graph gives no name


@dataclass(frozen=True)
class GraphInput:
    """One input as the graph declares it: each dimension a fixed size or a symbol's name."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]

    @property
    def batched(self) -> bool:
        return bool(self.dims) and isinstance(self.dims[0], str)

    def shown(self) -> str:
        return f"{self.name} {self.dtype} [{', '.join(map(str, self.dims))}]"


@dataclass(frozen=True)
class OnnxFile:
    name: str
    path: Path
    declared: tuple[GraphInput, ...]
    inputs: tuple[InputSpec, ...]  # each input's shape (batched ones at batch 1), in the graph's order
    outputs: tuple[str, ...]
    opset: int
    precision: str  # of its float weights: fp16 where most float weight bytes are half precision, else fp32
    given_batch: int | None = None  # the batch --input-shape or the .npz gave the batched inputs
    inputs_file: Path | None = None  # the .npz the inputs come from (else generated from the seed)
    rows: int | None = None  # the .npz's rows of each batched input: the largest batch size it feeds
    shapes_given: bool = False  # --input-shape fixed some input's shape

    @property
    def fixed_batch(self) -> int | None:
        """The graph's one batch size where no input's first dimension is symbolic; None where it is free."""
        if any(i.batched for i in self.inputs):
            return None
        first = next((i for i in self.inputs if i.shape), None)
        return first.shape[0] if first else 1

    def default_batch_sizes(self) -> list[int] | None:
        """The batch sizes to run where --batch-sizes is left out: the fixed one, the one --input-shape or the
        .npz gave; None: the command's own default."""
        batch = self.fixed_batch or self.given_batch
        return [batch] if batch else None

    def check_batch_sizes(self, batch_sizes: list[int]) -> None:
        if self.fixed_batch is not None and any(b != self.fixed_batch for b in batch_sizes):
            raise UserError(f"{self.path} has a fixed batch dimension of {self.fixed_batch}: run it with "
                            f"--batch-sizes {self.fixed_batch}, or export it with a dynamic batch")
        if self.rows is not None and max(batch_sizes) > self.rows:
            raise UserError(f"{self.inputs_file} holds {self.rows} rows per batched input: pass --batch-sizes up to "
                            f"{self.rows}, or save more rows")

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
        return OnnxModel(name=self.name, onnx_path=str(self.path), inputs=list(self.inputs),
                         inputs_file=str(self.inputs_file) if self.inputs_file else None)

    def plan_inputs(self) -> dict[str, Any] | None:
        """What of the inputs a run's plan must match on resume: the shapes and the .npz where the user gave
        them (None where the graph's own shapes and seeded inputs are fed, as in plans before these options)."""
        if not self.shapes_given and self.inputs_file is None:
            return None
        return {"shapes": {i.name: list(i.shape) for i in self.inputs},
                "inputs_file": str(self.inputs_file) if self.inputs_file else None}

    def summary(self) -> dict[str, Any]:
        first = self.inputs[0]
        return {"name": self.name, "onnx_path": str(self.path), "input_name": first.name,
                "input_shape": list(first.shape), "input_dtype": first.dtype, "opset": self.opset,
                "inputs": [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape), "batched": i.batched}
                           for i in self.inputs],
                "outputs": list(self.outputs),
                "inputs_file": str(self.inputs_file) if self.inputs_file else None,
                "precision": self.precision, "weights": "as stored in the file", "complexity": None}


def parse_input_shapes(texts: list[str]) -> dict[str, list[int]]:
    """`--input-shape images:1x3x640x640` (repeatable, or comma-separated as trtexec's --shapes) -> {name: dims}.
    A name may hold colons (`input:0`): the dims are after the last one."""
    shapes: dict[str, list[int]] = {}
    for text in (part.strip() for given in texts for part in given.split(",")):
        if not text:
            continue
        name, colon, dims_text = text.rpartition(":")
        dims = dims_text.lower().split("x")
        if not colon or not name or not all(d.isdigit() and int(d) > 0 for d in dims):
            raise UserError(f"bad --input-shape '{text}': write NAME:DIMS with positive sizes, e.g. "
                            "--input-shape images:1x3x640x640")
        if name in shapes:
            raise UserError(f"--input-shape names input '{name}' twice: give each input once")
        shapes[name] = [int(d) for d in dims]
    return shapes


def inspect_onnx(path_text: str, shapes: dict[str, list[int]] | None = None,
                 inputs_file: str | None = None) -> OnnxFile:
    """Read the graph's inputs and outputs (not its weights) and fix the shape of each input; every reason to
    refuse is one clear UserError."""
    if shapes and inputs_file:
        raise UserError("--inputs gives the inputs' shapes with their arrays: drop --input-shape")
    path, model = _load(path_text)
    opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise UserError(f"{path} declares opset {opset}; onnxruntime runs opset {MIN_OPSET} and newer: "
                        "convert it with onnx.version_converter")
    declared = _declared_inputs(path, model)
    outputs = tuple(o.name for o in model.graph.output)
    if inputs_file:
        specs, rows, npz = _from_arrays(path, declared, inputs_file)
        given = rows
    else:
        specs, given = _from_shapes(path, declared, shapes or {})
        rows, npz = None, None
    return OnnxFile(name=path.stem, path=path.resolve(), declared=declared, inputs=specs, outputs=outputs, opset=opset,
                    precision=weights_precision(model), given_batch=given, inputs_file=npz, rows=rows,
                    shapes_given=bool(shapes))


def _load(path_text: str) -> tuple[Path, Any]:
    import onnx

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UserError(f"ONNX file '{path_text}' does not exist")
    if path.stat().st_size == 0:
        raise UserError(f"ONNX file '{path_text}' is empty (0 bytes): an interrupted copy or export? "
                        "Pass a .onnx model")
    try:
        return path, onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UserError(f"'{path_text}' is not an ONNX file ({type(exc).__name__}); pass a .onnx model") from None


def _declared_inputs(path: Path, model: Any) -> tuple[GraphInput, ...]:
    initializers = {init.name for init in model.graph.initializer}
    declared = []
    for graph_input in (i for i in model.graph.input if i.name not in initializers):
        tensor = graph_input.type.tensor_type
        if not graph_input.type.HasField("tensor_type"):
            raise UserError(f"{path}: input '{graph_input.name}' is not a tensor (a sequence or map); the harness "
                            "feeds tensors")
        dtype = ELEMENT_TYPES.get(tensor.elem_type)
        if dtype is None:
            raise UserError(f"{path}: input '{graph_input.name}' has element type {tensor.elem_type}, which the "
                            "harness cannot generate")
        if not tensor.HasField("shape"):
            raise UserError(f"{path}: input '{graph_input.name}' has no shape; the harness needs its rank")
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or UNNAMED) for d in tensor.shape.dim)
        declared.append(GraphInput(graph_input.name, dtype, dims))
    if not declared:
        raise UserError(f"{path} has no inputs to feed (every graph input is an initializer)")
    return tuple(declared)


def _example(graph_input: GraphInput) -> str:
    """A --input-shape for the input: its fixed sizes, 1 for a symbolic batch, N for the others."""
    dims = [str(d) if isinstance(d, int) else "1" if n == 0 else "N" for n, d in enumerate(graph_input.dims)]
    return f"--input-shape {graph_input.name}:{'x'.join(dims)}"


def _from_shapes(path: Path, declared: tuple[GraphInput, ...],
                 shapes: dict[str, list[int]]) -> tuple[tuple[InputSpec, ...], int | None]:
    """Each input's shape: the graph's fixed dims, the given ones, batch 1 on a symbolic first dimension."""
    unknown = sorted(set(shapes) - {i.name for i in declared})
    if unknown:
        raise UserError(f"--input-shape names {', '.join(unknown)}, which {path.name} has no input of: its inputs are "
                        f"{'; '.join(i.shown() for i in declared)}")
    specs, batches = [], set()
    for graph_input in declared:
        given = shapes.get(graph_input.name)
        if given is None:
            open_dims = [f"{n} ({d})" for n, d in enumerate(graph_input.dims) if isinstance(d, str) and n > 0]
            if open_dims:
                raise UserError(f"{path.name}: input '{graph_input.name}' has symbolic dimension(s) "
                                f"{', '.join(open_dims)}: give its shape, e.g. {_example(graph_input)}")
            dims = [d if isinstance(d, int) else 1 for d in graph_input.dims]
        else:
            dims = _check_given(path, graph_input, given, "--input-shape")
            if graph_input.batched:
                batches.add(dims[0])
        if graph_input.batched:
            dims[0] = 1
        specs.append(InputSpec(graph_input.name, graph_input.dtype, dims, graph_input.batched))
    if len(batches) > 1:
        raise UserError(f"--input-shape gives the batched inputs different batches "
                        f"({', '.join(map(str, sorted(batches)))}): give them one (each cell sets it from "
                        "--batch-sizes)")
    return tuple(specs), next(iter(batches), None)


def _check_given(path: Path, graph_input: GraphInput, given: list[int] | tuple[int, ...], what: str) -> list[int]:
    """The given shape where it has the input's rank and its fixed dims (a batched first one excepted)."""
    if len(given) != len(graph_input.dims):
        raise UserError(f"{what} gives '{graph_input.name}' {len(given)} dimension(s); {path.name} declares "
                        f"{len(graph_input.dims)}: {graph_input.shown()}")
    clashes = [f"dimension {n} is {d}, not {g}" for n, (d, g) in enumerate(zip(graph_input.dims, given))
               if isinstance(d, int) and d != g]
    if clashes:
        raise UserError(f"{what} does not fit '{graph_input.name}' ({graph_input.shown()}): {'; '.join(clashes)}")
    return [int(g) for g in given]


def _from_arrays(path: Path, declared: tuple[GraphInput, ...],
                 inputs_file: str) -> tuple[tuple[InputSpec, ...], int | None, Path]:
    """Each input's shape from its array in the .npz (checked against the graph), and the rows the batched
    inputs hold (the largest batch size the file feeds)."""
    arrays = load_arrays(inputs_file)
    names = {i.name for i in declared}
    missing, extra = [n for n in names if n not in arrays], sorted(set(arrays) - names)
    if missing or extra:
        parts = ([f"no array for {', '.join(sorted(missing))}"] if missing else []) + \
                ([f"arrays for no input: {', '.join(extra)}"] if extra else [])
        raise UserError(f"{inputs_file}: {'; '.join(parts)}: save one array per input, named as the graph's inputs "
                        f"({', '.join(i.name for i in declared)})")
    specs, rows = [], set()
    for graph_input in declared:
        array = arrays[graph_input.name]
        if not np.can_cast(array.dtype, np.dtype(graph_input.dtype), casting="same_kind"):
            raise UserError(f"{inputs_file}: array '{graph_input.name}' is {array.dtype}; the input takes "
                            f"{graph_input.dtype}: save it as {graph_input.dtype}")
        dims = _check_given(path, graph_input, array.shape, f"{inputs_file}'s array")
        if graph_input.batched:
            rows.add(dims[0])
            dims[0] = 1
        specs.append(InputSpec(graph_input.name, graph_input.dtype, dims, graph_input.batched))
    if len(rows) > 1:
        raise UserError(f"{inputs_file}: the batched inputs hold different numbers of rows "
                        f"({', '.join(map(str, sorted(rows)))}): save the same number for each")
    return tuple(specs), next(iter(rows), None), Path(inputs_file).expanduser().resolve()


def load_arrays(inputs_file: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz by name (no pickled objects); one line for a file that is not one."""
    path = Path(inputs_file).expanduser()
    if not path.is_file():
        raise UserError(f"inputs file '{inputs_file}' does not exist: save one with numpy.savez(path, name=array)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"'{inputs_file}' is not an .npz of arrays ({type(exc).__name__}): save one with "
                        "numpy.savez(path, name=array)") from None


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
