"""What crosses the process boundary: a job's request (parent -> child) and its result (child -> parent),
as types both sides share. Each travels as JSON (`to_json()`, `from_json()`); a key the other side does not
know, a missing one or an unknown status fails at once, naming it.

Plain dataclasses, not pydantic: the child imports this module, and every import there is in each cell's
measured memory (pydantic would add ~17 MB to every cell's RSS baseline).

A request carries no paths of the parent's machine except files the user named (an outside ONNX file,
a weights file); the cache and run folders come from the executor's placement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Literal, get_args

from harness.cells import Cell
from harness.parts import AccuracyFigures, Energy, Memory, ParityVerdict, Prepared, ScenarioFigures, StageTimes
from harness.policy import Policy
from runtimes.base import EngineShapes

# what a job does: prepare a model's artifacts, build an engine from them, or measure a cell (bench, parity,
# accuracy)
JobMode = Literal["prepare", "build", "bench", "parity", "accuracy"]
MODES: tuple[str, ...] = get_args(JobMode)
MEASURING_MODES = ("bench", "parity", "accuracy")
# lost: the machine running the cell went away (a fleet node died); the cell runs again on --resume
Status = Literal["ok", "error", "oom", "timeout", "crashed", "unsupported", "parity_failed", "skipped", "lost"]
STATUSES: tuple[str, ...] = get_args(Status)  # the one list: records, results and the sweep read it


def _build(cls: type, data: dict[str, Any], what: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"{what}: {exc}") from None


def reference_outputs_file(model: str, batch_size: int) -> str:
    """Where, in a run folder, a verify run's reference cell leaves its outputs for the cells compared with it."""
    return f"outputs/{model}-bs{batch_size}-reference.npz"


@dataclass(frozen=True)
class CatalogueModel:
    """A catalogue entry as the child builds it."""

    name: str
    source: str
    builder: str
    input_size: int
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained_tag: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"  # exporters.tasks: the graph's outputs, and what the cell checks in them


@dataclass(frozen=True)
class InputSpec:
    """One input of a graph, as the cell feeds it: its element type and shape; `batched`: its first dimension is
    the batch, set to each cell's batch size (the shape holds it at 1)."""

    name: str
    dtype: str
    shape: list[int]
    batched: bool = True

    def shape_at(self, batch_size: int) -> list[int]:
        return [batch_size, *self.shape[1:]] if self.batched else list(self.shape)


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file made elsewhere (or a bundle's): run as it is, fed `inputs` in the graph's order — generated
    from the seed, or the arrays of `inputs_file` (an .npz the user named: one array per input name, the batched
    ones cut to the cell's batch size)."""

    name: str
    onnx_path: str
    inputs: list[InputSpec]
    inputs_file: str | None = None

    def __post_init__(self) -> None:
        typed = [i if isinstance(i, InputSpec) else _build(InputSpec, i, "request.model.inputs") for i in self.inputs]
        object.__setattr__(self, "inputs", typed)


@dataclass(frozen=True)
class Reference:
    """What every other runtime and precision is compared with (harness.cells.REFERENCE)."""

    runtime: str
    precision: str


@dataclass(frozen=True)
class ExportSettings:
    """How a prepare job exports the model's ONNX file, and for int8 the calibration it quantizes on (the crop
    sets per model and what identifies the images: harness.cli.calibration.calibration_settings)."""

    opset: int = 18
    simplify: bool = False
    calibration: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """As plans before this type stored it: the calibration only where there is one."""
        return {"opset": self.opset, "simplify": self.simplify,
                **({"calibration": self.calibration} if self.calibration is not None else {})}


@dataclass(frozen=True)
class ScenarioSettings:
    """How a cell's scenario runs (harness.measure.scenarios): the server's p99 bound (None: 5 x the cell's
    single-stream median) and offline's runtime instances."""

    p99_bound_ms: float | None = None
    streams: int = 2

    def to_json(self) -> dict[str, Any]:
        """Only what differs from the defaults: plans made before scenarios keep their signature."""
        return {k: v for k, v in asdict(self).items() if v != getattr(ScenarioSettings, k)}


@dataclass(frozen=True)
class BundledReference:
    """A bundle's reference outputs for one batch size, made on the workstation: the file and its key, and the
    seed and hash of the inputs they answer (the board regenerates the inputs and checks the hash)."""

    file: str
    key: str
    input_sha256: str
    seed: int
    source: str  # the runtime and precision that made them


@dataclass(frozen=True)
class CellRequest:
    """One job: prepare a model's artifacts, build an engine from them, or measure one cell (bench, parity,
    accuracy)."""

    mode: JobMode
    cell: Cell
    model: CatalogueModel | OnnxModel
    reference: Reference
    weights: str = "random"  # random, pretrained, or the path of a state-dict file the user named
    seed: int = 0
    threads: int | None = None
    channels_last: bool = False
    runtime_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # runtime -> its validated options
    policy: Policy = field(default_factory=Policy)
    max_cv: float = 0.10
    complexity_key: str | None = None
    export: ExportSettings = field(default_factory=ExportSettings)
    accuracy: dict[str, Any] | None = None  # accuracy mode: crop sets per model, the data's description
    onnx_precision: str | None = None  # prepare mode: also export the ONNX file at this precision
    prepared: Prepared = field(default_factory=Prepared)  # what the prepare (and build) jobs made
    shapes: EngineShapes | None = None  # build mode: the engine's batch sizes
    reference_outputs: BundledReference | None = None  # parity mode on a bundle
    energy: bool = True  # bench mode: the energy pass (harness.measure.energy) where a source is readable
    scenario: ScenarioSettings = field(default_factory=ScenarioSettings)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"request: mode must be one of {MODES}, not {self.mode!r}")

    @property
    def outside_onnx(self) -> OnnxModel | None:
        return self.model if isinstance(self.model, OnnxModel) else None

    def runtime_extra(self, runtime: str) -> dict[str, Any]:
        return dict(self.runtime_options.get(runtime, {}))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "prepared": self.prepared.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRequest:
        model = data["model"]
        model_type = OnnxModel if "onnx_path" in model else CatalogueModel
        return _build(cls, {**data, "cell": _build(Cell, data["cell"], "request.cell"),
                            "model": _build(model_type, model, "request.model"),
                            "reference": _build(Reference, data["reference"], "request.reference"),
                            "prepared": _part(Prepared.from_json, data.get("prepared") or {}, "request.prepared"),
                            **{name: _build(kind, data[name], f"request.{name}") for name, kind in REQUEST_PARTS.items()
                               if data.get(name) is not None}},
                      "request")


# CellRequest's typed settings, each read from its JSON object by field name
REQUEST_PARTS: dict[str, type] = {"policy": Policy, "export": ExportSettings, "shapes": EngineShapes,
                                  "reference_outputs": BundledReference, "scenario": ScenarioSettings}


def _part(read: Callable[[Any], Any], data: Any, what: str) -> Any:
    try:
        return read(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{what}: {exc}") from None


# CellResult's measured parts, typed (harness.parts), and how each is read from its JSON form
PARTS: dict[str, Callable[[Any], Any]] = {"prepared": Prepared.from_json, "memory": Memory.from_json,
                                          "energy": Energy.from_json, "parity": ParityVerdict.from_json,
                                          "accuracy": AccuracyFigures.from_json, "scenario": ScenarioFigures.from_json,
                                          "stages": StageTimes.from_json}


@dataclass
class CellResult:
    """What a job's process answers. Memory, energy, parity, accuracy and the prepared artifacts are typed
    (harness.parts) and written in the records' JSON form; the other measuring parts (runtime facts, cold
    start, timing, validity) are the child's dicts, kept as they are; the fields the parent acts on (status,
    error type, validity) are read by name."""

    status: str
    error: str | None = None
    error_type: str | None = None  # the exception's class: the parent decides by it, never by the message
    traceback: str | None = None
    host: str | None = None
    worker_s: float | None = None
    prepared: Prepared = field(default_factory=Prepared)
    runtime: dict[str, Any] | None = None
    cold_start: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    samples_ms: dict[str, Any] | None = None
    input: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None  # bench mode: each output's shape and dtype (and name where known)
    parity: ParityVerdict | None = None
    accuracy: AccuracyFigures | None = None
    memory: Memory | None = None
    energy: Energy | None = None  # harness.measure.energy: per source, or why it is missing
    scenario: ScenarioFigures | None = None  # bench mode: the cell's scenario (harness.measure.scenarios)
    stages: StageTimes | None = None  # bench mode: where one query's time goes (harness.measure.stages)
    validity: dict[str, Any] | None = None
    complexity: dict[str, Any] | None = None
    jetson: dict[str, Any] | None = None  # a Jetson's facts before and after the timed loop
    log_tail: str | None = None  # from the executor, when the process left no result

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"result: status must be one of {STATUSES}, not {self.status!r}")

    def invalid_reasons(self) -> list[str] | None:
        """The timing verdict's reasons when this finished cell is invalid; None when valid or untimed."""
        if self.status != "ok" or not self.validity or self.validity.get("valid", True):
            return None
        return list(self.validity.get("reasons") or [])

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, **{name: part.to_json() for name in PARTS if (part := data[name]) is not None}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellResult:
        parts = {name: _part(read, data[name], f"result.{name}") for name, read in PARTS.items()
                 if data.get(name) is not None}
        return _build(cls, {**data, **parts}, "result")
