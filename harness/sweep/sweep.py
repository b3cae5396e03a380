"""Run a plan of cells, each in its own process, and append one record per cell."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from exporters.onnx_export import PRECISIONS as EXPORT_PRECISIONS
from exporters.quantize import FLAVORS
from exporters.torch_models import WeightsUnavailable
from harness.catalogue.bundles import BundleModel
from harness.catalogue.onnx_files import OnnxFile
from harness.catalogue.recipes import complexity_key_for, model_summary
from harness.catalogue.registry import ModelSpec
from harness.errors import UserError
from harness.execution.executor import Executor, Job, Outcome, StorageFailed
from harness.execution.local import PROCESS_STARTS, LocalExecutor, default_placement  # noqa: F401 - re-exported
from harness.measure import environment
from harness.policy import Policy
from harness.parts import Prepared
from harness.paths import write_atomically
from harness.protocol import (CatalogueModel, CellRequest, CellResult, ExportSettings, OnnxModel, Reference,
                              ScenarioSettings)
from harness.records import (RECORDS_FILE, SCHEMA_VERSION, Record, append_record, env_file_for, read_records,
                             repair_torn_tail)
from harness.cells import ONNX_REFERENCE, REFERENCE, Cell
from harness.sweep.runs import PLAN_FILE, RunLock, finished_cell_ids, plan_signature, read_plan, same_plan
from runtimes import RuntimeUnavailable, runtime_class
from runtimes.base import NOTHING, ONNX_FILE, TORCH_MODULE, EngineShapes, Runtime

log = logging.getLogger(__name__)
ONNX_PRECISIONS = (*EXPORT_PRECISIONS, *FLAVORS)  # int8 flavors: the fp32 file quantized on the calibration set

DEFAULT_PROCESS_START = "fork" if sys.platform.startswith("linux") else "exec"  # fork needs /proc/self/pagemap

RESULT_KEYS = ("error_type", "prepared", "cold_start", "timing", "samples_ms", "input", "outputs", "parity", "accuracy",
               "memory", "energy", "scenario", "stages", "jetson", "validity", "worker_s", "traceback", "log_tail")


@dataclass(frozen=True)
class BenchSettings:
    policy: Policy
    weights: str = "random"
    threads: int | None = None
    channels_last: bool = False
    timeout_s: float = 900.0
    seed: int = 0
    mode: str = "bench"  # or "parity", "export", "build" (engines ahead of a sweep), "accuracy"
    export: ExportSettings = field(default_factory=ExportSettings)
    max_memory_bytes: int | None = None  # enforced on each cell's process (RLIMIT_DATA)
    strict_retries: int = 0  # re-runs of a cell whose verdict is invalid
    max_cv: float = 0.10  # a cell whose samples vary more is invalid
    order: str = "model"
    process_start: str = DEFAULT_PROCESS_START  # "fork": from a zygote that imported the libraries; "exec"
    accuracy: dict[str, Any] | None = None  # accuracy mode: the crop set per model, the reference, the data
    runtime_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # runtime -> its validated options
    retry_failed: bool = False  # on resume, run again cells recorded as error, crashed or timeout
    energy: bool = True  # bench: the energy pass after the timed loop, where an energy source is readable
    scenario: ScenarioSettings = field(default_factory=ScenarioSettings)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "policy": self.policy.as_dict(), "export": self.export.to_json(),
                "scenario": self.scenario.to_json()}


class Subject:
    """What a cell measures: a catalogue model, an outside ONNX file, or a model of a bundle (ONNX files and
    reference outputs made on a workstation), as the child and the record need it."""

    def __init__(self, spec: ModelSpec | None = None, onnx_file: OnnxFile | None = None,
                 bundle_model: BundleModel | None = None) -> None:
        if sum(x is not None for x in (spec, onnx_file, bundle_model)) != 1:
            raise ValueError("a subject is one of: a catalogue model, an ONNX file, a bundle's model")
        self.spec, self.onnx_file, self.bundle_model = spec, onnx_file, bundle_model

    @property
    def reference(self) -> tuple[str, str]:
        """What its cells are compared with: PyTorch eager fp32; ONNX Runtime fp32 for an ONNX file made elsewhere
        (a bundle's cells compare with the outputs it carries, made by PyTorch eager fp32)."""
        return ONNX_REFERENCE if self.onnx_file else REFERENCE

    @property
    def name(self) -> str:
        for subject in (self.spec, self.onnx_file, self.bundle_model):
            if subject is not None:
                return subject.name
        raise AssertionError("unreachable")

    def request_model(self, cell: Cell,
                      versions: Mapping[str, str | None] | None = None) -> CatalogueModel | OnnxModel:
        """What the cell's process loads; `versions`: those of the machine it runs on (a bundle's file
        can depend on the runtime library's version there)."""
        if self.bundle_model:
            runtime = _runtime_or_none(cell.runtime)
            return self.bundle_model.request_model(runtime.onnx_precision(cell.precision, versions) if runtime
                                                   else cell.precision)
        if self.onnx_file:
            return self.onnx_file.request_model()
        spec = self.spec
        assert spec is not None
        return CatalogueModel(name=spec.name, source=spec.source, builder=spec.builder,
                              builder_kwargs=dict(spec.builder_kwargs), input_size=spec.input_size,
                              pretrained_tag=spec.pretrained.tag if spec.pretrained else None,
                              preprocessing=spec.preprocessing.model_dump(), task=spec.task)

    def summary(self, weights: str, complexity: dict[str, Any] | None) -> dict[str, Any]:
        if self.bundle_model:
            return self.bundle_model.summary()
        if self.onnx_file:
            return self.onnx_file.summary()
        return model_summary(self.spec, weights, complexity)

    def complexity_key(self) -> str | None:
        return complexity_key_for(self.spec) if self.spec else None


def new_run_id() -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_request(cell: Cell, subject: Subject, settings: BenchSettings, mode: str | None = None,
                  versions: Mapping[str, str | None] | None = None, **extra: Any) -> CellRequest:
    """What a job's process reads: no paths of the parent's machine (the executor places the job);
    `versions`: the package versions where it runs (None: this machine's)."""
    mode = mode or settings.mode
    if mode == "parity" and subject.bundle_model is not None:
        extra.setdefault("reference_outputs", subject.bundle_model.reference_outputs(cell.batch_size))
    return CellRequest(mode=mode, cell=cell, model=subject.request_model(cell, versions),
                       reference=Reference(*subject.reference), weights=settings.weights, seed=settings.seed,
                       threads=settings.threads, channels_last=settings.channels_last,
                       runtime_options=settings.runtime_options, policy=settings.policy,
                       max_cv=settings.max_cv, complexity_key=subject.complexity_key(), export=settings.export,
                       accuracy=settings.accuracy, energy=settings.energy, scenario=settings.scenario, **extra)


def build_record(run_id: str, cell: Cell, subject: Subject, settings: BenchSettings, result: CellResult,
                 started_at: str, wall_s: float) -> dict[str, Any]:
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "host": result.host or socket.gethostname(),
        "kind": settings.mode,
        "cell_id": cell.cell_id,
        "cell": cell.as_dict(),
        "status": result.status,
        "error": result.error,
        "started_at": started_at,
        "wall_s": wall_s,
        "model": subject.summary(settings.weights, result.complexity or result.prepared.complexity),
        "runtime": result.runtime,
        "policy": settings.policy.as_dict() if settings.mode == "bench" else None,
        "settings": asked_settings(cell, settings),
    }
    answered = result.to_json()
    record.update({key: answered[key] for key in RESULT_KEYS if answered[key] is not None})
    return record


def asked_settings(cell: Cell, settings: BenchSettings) -> dict[str, Any]:
    """What the cell was asked to run with, whatever its runtime reports (compare refuses to judge pairs whose
    settings differ): threads, its runtime's options and, for a runtime that runs a torch module, channels-last."""
    asked: dict[str, Any] = {"threads": settings.threads,
                             "runtime_options": settings.runtime_options.get(cell.runtime, {})}
    if consumes(cell.runtime) == TORCH_MODULE:
        asked["channels_last"] = settings.channels_last
    return asked


def _runtime_or_none(runtime: str) -> type[Runtime] | None:
    """The cell's runtime class, or None where it cannot be had (the cell will say why). Its library need
    not be installed here: a plan needs what the class declares, the process that runs the cell needs the
    library (on a fleet, that is another machine)."""
    try:
        return runtime_class(runtime, installed_here=False)
    except (KeyError, RuntimeUnavailable):
        return None


def consumes(runtime: str) -> str:
    """What the cell's runtime consumes (NOTHING where its class cannot be had: the cell will say why)."""
    runtime_type = _runtime_or_none(runtime)
    return runtime_type.consumes if runtime_type else NOTHING


def preload_for(cell: Cell, subject: Subject, weights: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a new process would import for this cell before loading the model: the worker, the
    runtime's libraries and, when the runtime builds the module, the model's source library (not for
    pretrained weights, whose hub settings the worker decides). Returns (modules, sources)."""
    try:
        runtime = runtime_class(cell.runtime)
    except (KeyError, RuntimeUnavailable):
        return ("harness.cell.worker",), ()
    modules = ("harness.cell.worker", runtime.__module__, *runtime.preload_modules)
    sources = (subject.spec.source,) if runtime.consumes == TORCH_MODULE and subject.spec \
        and weights != "pretrained" else ()
    return modules, sources


@dataclass(frozen=True)
class Preparation:
    """Artifacts made before a model's cells, in a process of their own: the weights file, params and
    MACs, and for runtimes that consume ONNX the ONNX file at a precision."""

    model: str
    onnx_precision: str | None

    @property
    def key(self) -> str:
        return f"prepare|{self.model}|{self.onnx_precision or 'weights'}"


@dataclass(frozen=True)
class Build:
    """An engine an engine runtime builds from a prepared ONNX file, in a process of its own on the cell's
    device: one per batch size (static shapes) or one for all the planned batch sizes (dynamic)."""

    preparation: Preparation
    runtime: str
    precision: str
    device: str
    shapes: EngineShapes

    @property
    def key(self) -> str:
        return f"build|{self.preparation.model}|{self.runtime}|{self.precision}|{self.device}|{self.shapes.label}"


Prerequisite = Preparation | Build

# A prepare job imports what a torch cell imports, so one zygote serves both.
PREPARE_MODULES = ("harness.cell.worker", "runtimes.torch_eager", "torch")


def _symbolic_beyond_batch(onnx_file: OnnxFile) -> bool:
    """Whether some input of the graph has a symbolic dimension other than a batched first one: an engine built for
    it depends on the sizes the user gave."""
    return any(isinstance(d, str) for graph_input in onnx_file.declared for d in graph_input.dims[1:])


def _group(cell: Cell) -> tuple[str, str, str, str]:
    return (cell.model, cell.runtime, cell.precision, cell.device)


class Sweep:
    """One run folder: env-<host>.json, plan.json, records.jsonl and a folder of per-cell logs.

    One writer at a time (a lock); cells already recorded are skipped, so running the same plan into the
    same folder resumes it. Cells run through an executor; what must come first is a dependency, not an
    assumption that cells run in sequence: a model's artifacts are prepared before its cells; a batch
    size waits for the smaller ones of its model, runtime and precision (and is skipped after one of
    them ran out of memory); in verify and accuracy runs, a model's cells wait for its reference cell.
    """

    def __init__(self, out_dir: Path, run_id: str, subjects: dict[str, Subject], settings: BenchSettings,
                 executor_factory: Callable[[Path], Executor] | None = None) -> None:
        self.run_id = run_id
        self.run_dir = out_dir / run_id
        self.records_path = self.run_dir / RECORDS_FILE
        self.subjects = subjects
        self.settings = settings
        self.executor_factory = executor_factory or self._local_executor
        self._oom_batch: dict[tuple[str, str, str, str], int] = {}
        self._weights_missing: dict[str, str] = {}  # model -> why its weights could not be loaded
        self._prepared: dict[str, Prepared] = {}  # preparation key -> what it made
        self._prepare_failed: dict[str, Outcome] = {}  # preparation key -> its failed outcome
        self._blamed: set[str] = set()  # failed preparations already recorded on their first cell
        self._earlier_invalid: dict[str, list[list[str]]] = {}
        self._planned_batches: dict[tuple[str, str, str, str], list[int]] = {}
        self._runtime_classes: dict[str, type[Runtime] | None] = {}
        # the package versions of the machine a device's cells run on (None: this one); the executor's, in run()
        self.versions_for: Callable[[str], Mapping[str, str | None] | None] = lambda device: None

    def _local_executor(self, run_dir: Path) -> Executor:
        return LocalExecutor(default_placement(run_dir), self.settings.process_start)

    def signature(self, cells: list[Cell]) -> dict[str, Any]:
        """The plan's cells and settings, with the inputs the user gave an ONNX file (shapes, an .npz): a run
        resumed with others would mix two experiments."""
        given = {name: inputs for name, subject in self.subjects.items()
                 if subject.onnx_file and (inputs := subject.onnx_file.plan_inputs()) is not None}
        return plan_signature([c.as_dict() for c in cells],
                              {**self.settings.as_dict(), **({"onnx_inputs": given} if given else {})})

    def start(self, cells: list[Cell]) -> None:
        self._check_same_plan(cells)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        note = repair_torn_tail(self.records_path)
        if note:
            log.warning(note)
        env_path = self.run_dir / env_file_for(socket.gethostname())
        if env_path.exists():  # a resumed run: keep the first environment, add this session's beside it
            env_path = env_path.with_name(f"{env_path.stem}-resumed-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
        write_atomically(env_path, json.dumps(environment.collect(), indent=2, default=str))
        if not (self.run_dir / PLAN_FILE).exists():
            plan = {"run_id": self.run_id, "created_at": _now(), "cells": [c.as_dict() for c in cells],
                    "settings": self.settings.as_dict(), "signature": self.signature(cells)}
            write_atomically(self.run_dir / PLAN_FILE, json.dumps(plan, indent=2))

    def _check_same_plan(self, cells: list[Cell]) -> None:
        """A run folder holds one plan: writing another plan's cells into it would mix two experiments."""
        plan_path = self.run_dir / PLAN_FILE
        if not plan_path.exists():
            return
        if not same_plan(read_plan(self.run_dir), self.signature(cells)):
            raise UserError(f"run '{self.run_id}' in {self.run_dir.parent} was planned with other models, runtimes, "
                            "batch sizes or settings; choose another --run-id (or repeat that run's own command "
                            "to resume it)")

    # ---------------------------------------------------------------- what a cell needs first

    def runtime_of(self, cell: Cell) -> type[Runtime] | None:
        """The cell's runtime class, looked up once per sweep (the scheduler asks for every pending cell on
        every pass)."""
        if cell.runtime not in self._runtime_classes:
            self._runtime_classes[cell.runtime] = _runtime_or_none(cell.runtime)
        return self._runtime_classes[cell.runtime]

    def preparation(self, cell: Cell) -> Preparation | None:
        """The artifacts the cell's runtime consumes, for a catalogue model; None where it needs none."""
        subject = self.subjects[cell.model]
        runtime = self.runtime_of(cell)
        if subject.spec is None or self.settings.mode == "export" or runtime is None:
            return None
        if runtime.consumes == TORCH_MODULE:
            return Preparation(cell.model, None)
        if runtime.consumes == ONNX_FILE:
            precision = runtime.onnx_precision(cell.precision, self.versions_for(cell.device))
            return Preparation(cell.model, precision if precision in ONNX_PRECISIONS else "fp32")
        return None

    def prerequisites(self, cell: Cell) -> list[Prerequisite]:
        """What must be made before the cell runs, in order: its model's artifacts, then (for an engine
        runtime) the engine. In a build run the cell itself is the build."""
        preparation = self.preparation(cell)
        steps: list[Prerequisite] = [preparation] if preparation else []
        runtime = self.runtime_of(cell)
        if runtime is not None and runtime.builds_engine and self.settings.mode != "build":
            if preparation is None and self.subjects[cell.model].spec is not None:
                return steps  # the runtime cannot be had: the cell will say why
            steps.append(Build(preparation or Preparation(cell.model, None), cell.runtime, cell.precision, cell.device,
                               self.engine_shapes(cell, runtime)))
        return steps

    def engine_shapes(self, cell: Cell, runtime: type[Runtime]) -> EngineShapes:
        """Static at the cell's batch size, or dynamic over the plan's batch sizes of the same model, runtime,
        precision and device; accuracy runs feed a smaller last batch, so theirs go from 1 up. An outside ONNX file
        with symbolic sizes besides the batch adds the shapes its inputs are fed at (--input-shape)."""
        if self.settings.mode == "accuracy":
            shapes = EngineShapes.dynamic([1, cell.batch_size])
        elif runtime.shapes_option(self.settings.runtime_options.get(cell.runtime, {})) == "dynamic":
            shapes = EngineShapes.dynamic(self._planned_batches.get(_group(cell), [cell.batch_size]))
        else:
            shapes = EngineShapes.static(cell.batch_size)
        onnx_file = self.subjects[cell.model].onnx_file
        if onnx_file is not None and _symbolic_beyond_batch(onnx_file):
            shapes = replace(shapes, input_dims={i.name: list(i.shape) for i in onnx_file.inputs})
        return shapes

    def _is_reference(self, cell: Cell) -> bool:
        subject = self.subjects.get(cell.model)
        return (cell.runtime, cell.precision) == (subject.reference if subject else REFERENCE)

    def after(self, cell: Cell, planned: dict[str, Cell]) -> list[str]:
        """Cells of the plan that must be recorded before this one."""
        earlier = [c.cell_id for c in planned.values() if _group(c) == _group(cell) and c.batch_size < cell.batch_size]
        if self.settings.mode in ("parity", "accuracy") and not self._is_reference(cell):
            earlier += [c.cell_id for c in planned.values() if c.model == cell.model and self._is_reference(c)
                        and c.batch_size == cell.batch_size]
        return earlier

    def _skip_reason(self, cell: Cell) -> str | None:
        """Why a cell need not run: its model's weights could not be had, or a smaller batch ran out of memory."""
        if cell.model in self._weights_missing:
            why = self._weights_missing[cell.model]
            return f"the weights of {cell.model} could not be loaded in an earlier cell: {why}"
        oom_batch = self._oom_batch.get(_group(cell))
        if oom_batch is not None and cell.batch_size > oom_batch:
            return f"batch size {oom_batch} of the same model, runtime and precision ran out of memory"
        for step in self.prerequisites(cell):
            if step.key in self._blamed:
                why = self._prepare_failed[step.key].result.error
                what = "building its engine" if isinstance(step, Build) else f"preparing {cell.model}'s artifacts"
                return f"{what} failed in an earlier cell: {why}"
        return None

    def _note(self, record: Record) -> None:
        """Remember what makes later cells pointless: an out-of-memory batch, weights that cannot be had."""
        if record.status == "oom":
            cell = Cell(**record.cell.model_dump())
            group = _group(cell)
            self._oom_batch[group] = min(cell.batch_size, self._oom_batch.get(group, cell.batch_size))
        elif record.status == "error" and (record.error_type or _legacy_error_type(record.error)) \
                == WeightsUnavailable.__name__:
            self._weights_missing[record.cell.model] = (record.error or "").split(": ", 1)[-1]

    # ---------------------------------------------------------------- jobs

    def _job(self, cell: Cell, index: int) -> Job:
        subject = self.subjects[cell.model]
        stem = f"{index:04d}-{cell.model}-{cell.runtime.replace(':', '_')}-{cell.precision}-bs{cell.batch_size}"
        if self.settings.mode == "export":
            request = build_request(cell, subject, self.settings, mode="prepare", onnx_precision=cell.precision,
                                    versions=self.versions_for(cell.device))
            return Job(cell.cell_id, request, stem, self.settings.timeout_s,
                       preload=(PREPARE_MODULES, self._sources(subject)))
        steps = self.prerequisites(cell)
        prepared = self._prepared[steps[-1].key] if steps else Prepared()
        extra: dict[str, Any] = {}
        if self.settings.mode == "build":
            runtime = self.runtime_of(cell)
            shapes = self.engine_shapes(cell, runtime) if runtime else EngineShapes.static(cell.batch_size)
            extra["shapes"] = shapes
        request = build_request(cell, subject, self.settings, prepared=prepared,
                                versions=self.versions_for(cell.device), **extra)
        return Job(cell.cell_id, request, stem,
                   self.settings.timeout_s, self.settings.max_memory_bytes,
                   preload_for(cell, subject, self.settings.weights))

    def _prerequisite_job(self, step: Prerequisite, cell: Cell) -> Job:
        if isinstance(step, Preparation):
            return self._prepare_job(step, cell)
        subject = self.subjects[cell.model]
        prepared = self._prepared.get(step.preparation.key, Prepared())
        request = build_request(cell, subject, self.settings, mode="build", prepared=prepared,
                                versions=self.versions_for(cell.device),
                                shapes=step.shapes)
        stem = f"build-{cell.model}-{cell.runtime}-{cell.precision}-{cell.device.replace(':', '_')}-{step.shapes.label}"
        # like a prepare job, a build is not measured: the --max-memory cap is for measuring cells
        return Job(step.key, request, stem, self.settings.timeout_s,
                   preload=preload_for(cell, subject, self.settings.weights), kind="build")

    def _prepare_job(self, preparation: Preparation, cell: Cell) -> Job:
        subject = self.subjects[preparation.model]
        request = build_request(cell, subject, self.settings, mode="prepare",
                                onnx_precision=preparation.onnx_precision, versions=self.versions_for(cell.device))
        stem = f"prepare-{preparation.model}-{preparation.onnx_precision or 'weights'}"
        return Job(preparation.key, request, stem, self.settings.timeout_s,
                   preload=(PREPARE_MODULES, self._sources(subject)), kind="prepare")

    def _sources(self, subject: Subject) -> tuple[str, ...]:
        return (subject.spec.source,) if subject.spec and self.settings.weights != "pretrained" else ()

    # ---------------------------------------------------------------- running

    def pending(self, cells: list[Cell]) -> list[Cell]:
        done = finished_cell_ids(self.run_dir, retry_failed=self.settings.retry_failed)
        return [c for c in cells if c.cell_id not in done]

    def run(self, cells: list[Cell], on_done: Callable[[Cell, dict[str, Any]], None] | None = None,
            on_start: Callable[[Cell], None] | None = None) -> list[dict[str, Any]]:
        """Run the cells not yet recorded; returns the records written in this call."""
        self._planned_batches = {}
        for cell in cells:
            self._planned_batches.setdefault(_group(cell), []).append(cell.batch_size)
        with RunLock(self.run_dir):
            self.start(cells)
            with self.executor_factory(self.run_dir) as executor:
                self.versions_for = executor.versions_for
                return _Schedule(self, cells, executor, on_done, on_start).run()

    def record(self, cell: Cell, result: CellResult, started_at: str, wall_s: float,
               process: dict[str, Any] | None = None) -> dict[str, Any]:
        record = build_record(self.run_id, cell, self.subjects[cell.model], self.settings, result, started_at, wall_s)
        if process is not None:
            record["process"] = process
        earlier = self._earlier_invalid.pop(cell.cell_id, None)
        if earlier:
            record["earlier_attempts_invalid_because"] = earlier
        self._note(Record.model_validate(record))  # what the harness writes, its readers can read
        try:
            append_record(self.records_path, record)
        except OSError as exc:  # a full disk: the harness failed, not the cell; resume runs it again
            raise StorageFailed(f"cannot append to {self.records_path}: {exc.strerror or exc}") from None
        return record

    def retry_invalid(self, result: CellResult, cell: Cell) -> bool:
        """Under --strict: True when this attempt's timing verdict is invalid and retries remain."""
        reasons = result.invalid_reasons()
        earlier = self._earlier_invalid.setdefault(cell.cell_id, [])
        if reasons is None or len(earlier) >= self.settings.strict_retries:
            return False
        earlier.append(reasons)
        return True


def _legacy_error_type(error: str | None) -> str | None:
    """Records written before `error_type` existed name the exception's class at the start of `error`."""
    return error.split(":", 1)[0] if error and ":" in error else None


class _Schedule:
    """Hands a sweep's ready jobs to the executor, up to its capacity, in plan order; records outcomes
    in whatever order they come back. A cell is ready when the cells it comes after are recorded and
    its model's artifacts are prepared."""

    def __init__(self, sweep: Sweep, cells: list[Cell], executor: Executor,
                 on_done: Callable[[Cell, dict[str, Any]], None] | None,
                 on_start: Callable[[Cell], None] | None) -> None:
        self.sweep, self.executor, self.on_done, self.on_start = sweep, executor, on_done, on_start
        self.index = {c.cell_id: i for i, c in enumerate(cells)}
        existing = read_records(sweep.records_path).typed if sweep.records_path.exists() else []
        done = finished_cell_ids(sweep.run_dir, sweep.settings.retry_failed, existing)
        sweep._oom_batch, sweep._weights_missing = {}, {}
        for record in existing:
            if record.cell_id in done:
                sweep._note(record)
        self.pending = [c for c in cells if c.cell_id not in done]
        planned = {c.cell_id: c for c in cells}
        self.after = {c.cell_id: [d for d in sweep.after(c, planned) if d not in done] for c in self.pending}
        self.recorded: set[str] = set()
        self.in_flight: dict[str, tuple[Cell, str]] = {}  # job key -> (the cell it is for, started at)
        self.records: list[dict[str, Any]] = []

    def run(self) -> list[dict[str, Any]]:
        while self.pending or self.in_flight:
            self._submit_ready()
            if not self.in_flight:
                if self.pending:  # nothing can start and nothing runs: a dependency cycle (a planning bug)
                    raise RuntimeError(f"cells wait on each other: {[c.cell_id for c in self.pending][:5]}")
                break
            job, outcome = self.executor.wait()
            cell, started_at = self.in_flight.pop(job.key)
            if job.kind in ("prepare", "build"):
                self._prepared(job, outcome)
            else:
                self._finished(job, cell, outcome, started_at)
        return self.records

    def _submit_ready(self) -> None:
        for cell in list(self.pending):
            if len(self.in_flight) >= self.executor.capacity:
                return
            if any(d not in self.recorded for d in self.after[cell.cell_id]):
                continue
            if self._busy(cell.device) >= self.executor.slots(cell.device):
                continue
            reason = self.sweep._skip_reason(cell)
            if reason:
                self._done(cell, self.sweep.record(cell, CellResult(status="skipped", error=reason), _now(), 0.0))
                continue
            if self._prerequisites_waiting(cell):
                continue
            self.pending.remove(cell)
            if self.on_start:
                self.on_start(cell)
            self._submit(self.sweep._job(cell, self.index[cell.cell_id]), cell)

    def _busy(self, device: str) -> int:
        return sum(1 for cell, _ in self.in_flight.values() if cell.device == device)

    def _prerequisites_waiting(self, cell: Cell) -> bool:
        """True while something the cell needs is not made yet: the first missing step is started (once).
        A step that failed is recorded on the first cell that needed it."""
        for step in self.sweep.prerequisites(cell):
            if step.key in self.sweep._prepared:
                continue
            failed = self.sweep._prepare_failed.get(step.key)
            if failed is not None:
                self.sweep._blamed.add(step.key)
                self._done(cell, self.sweep.record(cell, failed.result, _now(), failed.wall_s))
            elif step.key not in self.in_flight:
                self._submit(self.sweep._prerequisite_job(step, cell), cell)
            return True
        return False

    def _submit(self, job: Job, cell: Cell) -> None:
        self.executor.submit(job)
        self.in_flight[job.key] = (cell, _now())

    def _prepared(self, job: Job, outcome: Outcome) -> None:
        if outcome.result.status == "ok":
            self.sweep._prepared[job.key] = outcome.result.prepared
        else:
            self.sweep._prepare_failed[job.key] = outcome

    def _finished(self, job: Job, cell: Cell, outcome: Outcome, started_at: str) -> None:
        if self.sweep.retry_invalid(outcome.result, cell):
            self._submit(job, cell)
            return
        self._done(cell, self.sweep.record(cell, outcome.result, started_at, outcome.wall_s, outcome.process))

    def _done(self, cell: Cell, record: dict[str, Any]) -> None:
        if cell in self.pending:
            self.pending.remove(cell)
        self.recorded.add(cell.cell_id)
        self.records.append(record)
        if self.on_done:
            self.on_done(cell, record)


def catalogue_subjects(specs: list[ModelSpec]) -> dict[str, Subject]:
    return {spec.name: Subject(spec=spec) for spec in specs}
