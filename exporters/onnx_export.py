"""Torch module -> ONNX file, once per content key, checked and annotated.

Export tries the torch.export-based exporter first (`torch.onnx.export(dynamo=True)`, opset >= 18),
and falls back per model to the TorchScript exporter, recording which one produced the file and why.
Both export a dynamic batch dimension. Then: `onnx.checker` (full check), shape inference, metadata
(model name, preprocessing recipe, weights, exporter, project version), optional simplification with
onnxslim, and for fp16 a converted graph that keeps fp32 inputs and outputs.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from exporters.store import Entry, Store, sha256_of

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
TORCHSCRIPT_MAX_OPSET = 17
DYNAMO_MIN_OPSET = 18  # the torch.export-based exporter writes no older opset (asked for one, it wrote 18)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MODEL_FILE = "model.onnx"
PRECISIONS = ("fp32", "fp16")


class ExportFailed(Exception):
    """Neither exporter produced a valid file; the message names the reason for each."""


@dataclass(frozen=True)
class ExportSpec:
    """Everything that determines the exported file's content."""

    model: str
    weights_id: str  # e.g. the sha256 of the weights file, or "pretrained:<tag>"
    input_size: int
    opset: int = DEFAULT_OPSET
    precision: str = "fp32"
    simplify: bool = False
    metadata: tuple[tuple[str, str], ...] = ()
    output_names: tuple[str, ...] = (OUTPUT_NAME,)  # a detector's graph answers several (exporters.tasks)

    def key_fields(self) -> dict[str, Any]:
        """What the cached file depends on; a classifier's (one output, `logits`) as before outputs were named."""
        outputs = {} if self.output_names == (OUTPUT_NAME,) else {"outputs": list(self.output_names)}
        return {"model": self.model, "weights": self.weights_id, "input_size": self.input_size,
                "opset": self.opset, "precision": self.precision, "simplify": self.simplify,
                "exporter": "torch.onnx dynamo-first from opset 18, torchscript below it or as fallback",
                "versions": exporter_versions(),
                "metadata": list(self.metadata), **outputs}


def exporter_versions() -> dict[str, str | None]:
    versions = {}
    for package in ("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _export_dynamo(module: Any, example: Any, path: Path, opset: int, outputs: tuple[str, ...]) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                                output_names=list(outputs), dynamic_shapes=({0: batch},), verbose=False)
    program.save(str(path))


def _export_torchscript(module: Any, example: Any, path: Path, opset: int, outputs: tuple[str, ...]) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(outputs),
                          dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *outputs)})


def _check_and_annotate(path: Path, metadata: dict[str, str]) -> int:
    """Full checker pass, shape inference, metadata; returns the opset the file declares."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return next(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))


def _simplify(path: Path) -> None:
    import onnx
    import onnxslim

    slim = onnxslim.slim(onnx.load(str(path)))
    onnx.checker.check_model(slim, full_check=True)
    onnx.save(slim, str(path))


def _sort_topologically(graph: Any) -> None:
    """Reorder nodes so each comes after the producers of its inputs (the fp16 converter appends casts last)."""
    available = {i.name for i in graph.input} | {init.name for init in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ExportFailed("the graph has a cycle or an input no node produces")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def _to_fp16(path: Path, blocked: tuple[str, ...] = ()) -> None:
    """Convert the file to fp16 in place, fp32 inputs and outputs kept; `blocked` nodes stay fp32 (casts around
    them), as onnxruntime's converter does it with its node_block_list."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True,
                                     node_block_list=list(blocked) or None)
    _sort_topologically(model.graph)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def export(spec: ExportSpec, build: Callable[[], Any], store: Store) -> tuple[Entry, bool]:
    """The cached file for `spec`, exporting it on a miss. Returns (entry, cache_hit)."""
    if spec.precision not in PRECISIONS:
        raise ExportFailed(f"precision must be one of {PRECISIONS}, got {spec.precision}")
    folder = store.folder("onnx", spec.model, spec.key_fields())
    cached = store.lookup(folder, MODEL_FILE)
    if cached is not None:
        return cached, True
    import torch

    start = time.perf_counter()
    module = build().eval()
    example = torch.randn(2, 3, spec.input_size, spec.input_size)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        built = Path(scratch) / MODEL_FILE
        exporter, fallback_reason = "torch.onnx dynamo", None
        try:
            if spec.opset < DYNAMO_MIN_OPSET:
                raise ExportFailed(f"opset {spec.opset} is below its minimum, {DYNAMO_MIN_OPSET}")
            _export_dynamo(module, example, built, spec.opset, spec.output_names)
            opset = _check_and_annotate(built, dict(spec.metadata) | {"harness.exporter": exporter})
        except Exception as exc:
            fallback_reason = f"dynamo exporter failed: {_first_line(exc)}"
            log.warning("%s: %s; falling back to the TorchScript exporter", spec.model, fallback_reason)
            exporter = "torch.onnx torchscript"
            try:
                built.unlink(missing_ok=True)
                _export_torchscript(module, example, built, min(spec.opset, TORCHSCRIPT_MAX_OPSET),
                                    spec.output_names)
                opset = _check_and_annotate(built, dict(spec.metadata) | {"harness.exporter": exporter})
            except Exception as exc2:
                raise ExportFailed(f"{spec.model}: {fallback_reason}; torchscript exporter failed: "
                                   f"{_first_line(exc2)}") from None
        if opset > spec.opset:
            raise ExportFailed(f"{spec.model}: the {exporter} exporter wrote opset {opset}, newer than the {spec.opset} "
                               "asked for")
        if spec.simplify:
            _simplify(built)
        if spec.precision == "fp16":
            _to_fp16(built)
        meta = {"spec": spec.key_fields(), "exporter": exporter, "fallback_reason": fallback_reason,
                "opset": opset, "export_s": time.perf_counter() - start}
        entry = store.commit(folder, MODEL_FILE, built, meta)
    return entry, False


def metadata_for(model: str, preprocessing: dict[str, Any], weights: str, version: str) -> tuple[tuple[str, str], ...]:
    return (("harness.model", model), ("harness.preprocessing", json.dumps(preprocessing, sort_keys=True)),
            ("harness.weights", weights), ("harness.version", version))


def fp16_with_blocked(model: str, fp32_path: Path, blocked: tuple[str, ...], store: Store) -> Path:
    """The fp32 file converted to fp16 the export's way with the `blocked` nodes left in fp32 (mixed precision),
    cached by the fp32 file's hash, the blocked nodes and onnxruntime's version (its converter)."""
    fields = {"fp32_sha256": sha256_of(fp32_path), "blocked": sorted(blocked), "precision": "fp16",
              "converter": "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)",
              "onnxruntime": importlib.metadata.version("onnxruntime")}
    folder = store.folder("onnx-fp16-mixed", model, fields)
    cached = store.lookup(folder, MODEL_FILE)
    if cached is not None:
        return cached.path
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        built = Path(scratch) / MODEL_FILE
        built.write_bytes(fp32_path.read_bytes())
        _to_fp16(built, blocked)
        entry = store.commit(folder, MODEL_FILE, built, {"spec": fields, "convert_s": time.perf_counter() - start})
    return entry.path
