"""The trials of `diagnose`: a file with some nodes kept in fp32 (int8: quantized with those nodes excluded, cached
by spec in the artifact store; fp16: converted with those nodes blocked, cached likewise), its top-1 answers on
the evaluation images through the chosen runtime, and a JSON record of every trial in the run folder, rewritten
atomically after each one, that a re-run reads back instead of evaluating again.

The answers are taken in this process: a trial is not timed (the speeds of the final files are measured by the
harness's sweep, each cell in a process of its own).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from exporters.quantize import QuantizeSpec, quantize
from exporters.store import Store, sha256_of
from harness.accuracy.evaluate import predict
from harness.accuracy.preprocess import Normalization
from harness.errors import UserError
from harness.paths import write_atomically
from runtimes import create_runtime
from runtimes.base import EngineArtifact, EngineShapes, OnnxFileArtifact, RuntimeOptions

TRIALS_FILE = "trials.json"
TRIALS_FORMAT = 1
UNTOUCHED_OPS = ("Cast", "QuantizeLinear", "DequantizeLinear")


def quantizable_nodes(path: Path) -> list[tuple[str, str]]:
    """(name, op type) of the graph's named nodes that the lower precision touches, in the file's (topological)
    order: what a trial can keep in fp32. onnxruntime's quantize_static quantizes every operator but Cast and
    Q/DQ nodes (its op_types_to_quantize=None), and the fp16 converter converts them all, so not only the compute
    nodes (Conv, MatMul, Gemm): an activation quantized between an Add or a Clip loses precision too."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [(node.name, node.op_type) for node in graph.node if node.op_type not in UNTOUCHED_OPS and node.name]


class FileMaker(Protocol):
    """Makes (or finds cached) the lower-precision file with `kept` nodes in fp32."""

    precision: str  # the precision the runtime is asked for when it reads these files

    def make(self, kept: tuple[str, ...]) -> Path: ...


@dataclass
class Int8Files:
    """int8 Q/DQ files quantized on the calibration feed, with `kept` excluded from quantization."""

    spec: QuantizeSpec  # its exclude_nodes is replaced per trial
    fp32_path: Path
    input_name: str
    batches: Callable[[], Iterable[np.ndarray]]
    store: Store
    precision: str = "int8"

    def make(self, kept: tuple[str, ...]) -> Path:
        entry, _ = quantize(replace(self.spec, exclude_nodes=tuple(sorted(kept))), self.fp32_path, self.input_name,
                            self.batches, self.store)
        return entry.path


@dataclass
class Fp16Files:
    """fp16 files converted the exporter's way (fp32 inputs and outputs), with `kept` left in fp32."""

    model: str
    fp32_path: Path
    store: Store
    precision: str = "fp16"

    def make(self, kept: tuple[str, ...]) -> Path:
        from exporters.onnx_export import fp16_with_blocked

        return fp16_with_blocked(self.model, self.fp32_path, tuple(sorted(kept)), self.store)


@dataclass(frozen=True)
class EvaluationImages:
    """The evaluation images as the runtime reads them: cached uint8 crops, which of them, and their labels
    (None where --data has none)."""

    crops: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    normalization: Normalization


@dataclass
class Answers:
    """Top-1 answers of ONNX files through one runtime, `batch_size` images at a time."""

    runtime: str
    options: RuntimeOptions
    images: EvaluationImages
    batch_size: int

    def top1(self, path: Path, precision: str) -> np.ndarray:
        """The file's top-1 class per evaluation image."""
        runtime = create_runtime(self.runtime, replace(self.options, precision=precision))
        with runtime:
            if runtime.builds_engine:
                with tempfile.TemporaryDirectory() as scratch:
                    self._load_engine(runtime, path, Path(scratch))
            else:
                runtime.load(OnnxFileArtifact(name=path.stem, path=str(path)))
            images = self.images
            predictions = predict(runtime, images.crops, images.indices, images.normalization, self.batch_size)
        return predictions.top5[:, 0].astype(np.int64)

    def _load_engine(self, runtime: Any, path: Path, scratch: Path) -> None:
        """An engine runtime (TensorRT): an engine for every batch up to `batch_size`, built from the file."""
        onnx = OnnxFileArtifact(name=path.stem, path=str(path))
        built = runtime.build_engine(onnx, EngineShapes.dynamic([1, self.batch_size]), str(scratch))
        plan = scratch / "model.engine"
        plan.write_bytes(built.plan)
        runtime.load(EngineArtifact(name=path.stem, path=str(plan), sha256=sha256_of(plan),
                                    description={"onnx_path": str(path)}))


@dataclass
class Trial:
    """One file's answers: the nodes it keeps in fp32 (all of them: the fp32 file; none: the all-quantized
    file), its top-1 per image, where it is and how long making and answering took."""

    kept: tuple[str, ...]
    top1: list[int]
    file: str
    file_sha256: str
    make_s: float
    answer_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"kept": list(self.kept), "top1": self.top1, "file": self.file, "file_sha256": self.file_sha256,
                "make_s": self.make_s, "answer_s": self.answer_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        return cls(tuple(data["kept"]), [int(v) for v in data["top1"]], str(data["file"]), str(data["file_sha256"]),
                   float(data["make_s"]), float(data["answer_s"]))


class TrialLog:
    """Every trial of one diagnosis, by its set of fp32 nodes, in `run_dir/trials.json` (rewritten atomically
    after each trial). `identity` says what the answers depend on; a file made with another is refused."""

    def __init__(self, run_dir: Path, identity: dict[str, Any]) -> None:
        self.path = run_dir / TRIALS_FILE
        self.identity = json.loads(json.dumps(identity, default=str))
        self.trials: dict[frozenset[str], Trial] = {}
        self.reused = 0  # trials read back from an earlier, interrupted run
        self.fp32: Trial | None = None
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.path} cannot be read ({exc}): delete it (its trials are evaluated again) or "
                            "choose another --run-id") from None
        if data.get("identity") != self.identity:
            raise UserError(f"{self.path} holds the trials of another diagnosis (other model, data, runtime or "
                            "settings): choose another --run-id")
        self.fp32 = Trial.from_dict(data["fp32"]) if data.get("fp32") else None
        for item in data.get("trials", []):
            trial = Trial.from_dict(item)
            self.trials[frozenset(trial.kept)] = trial
        self.reused = len(self.trials)

    def _write(self) -> None:
        data = {"format": TRIALS_FORMAT, "identity": self.identity,
                "fp32": self.fp32.as_dict() if self.fp32 else None,
                "trials": [trial.as_dict() for trial in self.trials.values()]}
        write_atomically(self.path, json.dumps(data))

    def get(self, kept: tuple[str, ...]) -> Trial | None:
        return self.trials.get(frozenset(kept))

    def add(self, trial: Trial) -> None:
        self.trials[frozenset(trial.kept)] = trial
        self._write()

    def set_fp32(self, trial: Trial) -> None:
        self.fp32 = trial
        self._write()


def run_trial(kept: tuple[str, ...], files: FileMaker, answers: Answers) -> Trial:
    """Make the file keeping `kept` in fp32 and take its answers."""
    start = time.perf_counter()
    path = files.make(kept)
    made = time.perf_counter()
    top1 = answers.top1(path, files.precision)
    return Trial(kept, [int(v) for v in top1], str(path), sha256_of(path), made - start,
                 time.perf_counter() - made)
