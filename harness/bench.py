"""Run a plan of cells, each in its own process, and append one record per cell."""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from exporters.torch_models import WeightsUnavailable
from harness import environment
from harness.isolation import ZygoteDied, ZygotePool, run_isolated
from harness.models import complexity_key_for, model_summary
from harness.onnx_files import OnnxFile
from harness.paths import cache_dir, write_atomically
from harness.planning import Cell
from harness.records import ENV_FILE, RECORDS_FILE, SCHEMA_VERSION, append_record, read_records
from harness.registry import ModelSpec
from harness.runs import PLAN_FILE, RunLock, finished_cell_ids, plan_signature
from harness.timing import Policy
from runtimes import RuntimeUnavailable, runtime_class

PROCESS_STARTS = ("fork", "exec")
DEFAULT_PROCESS_START = "fork" if sys.platform.startswith("linux") else "exec"  # fork needs /proc/self/pagemap

RESULT_KEYS = ("prepared", "cold_start", "timing", "samples_ms", "input", "parity", "accuracy", "memory", "validity",
               "worker_s", "traceback", "log_tail")


@dataclass(frozen=True)
class BenchSettings:
    policy: Policy
    weights: str = "random"
    threads: int | None = None
    channels_last: bool = False
    timeout_s: float = 900.0
    seed: int = 0
    mode: str = "bench"  # or "parity", "export", "accuracy"
    export: dict[str, Any] = field(default_factory=lambda: {"opset": 18, "simplify": False})
    max_memory_bytes: int | None = None  # enforced on each cell's process (RLIMIT_DATA)
    strict_retries: int = 0  # re-runs of a cell whose verdict is invalid
    max_cv: float = 0.10  # a cell whose samples vary more is invalid
    order: str = "model"
    process_start: str = DEFAULT_PROCESS_START  # "fork": from a zygote that imported the libraries; "exec"
    accuracy: dict[str, Any] | None = None  # accuracy mode: the crop set per model, the reference, the data

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "policy": self.policy.as_dict()}


class Subject:
    """What a cell measures: a catalogue model or an outside ONNX file, as the child and the record need it."""

    def __init__(self, spec: ModelSpec | None = None, onnx_file: OnnxFile | None = None) -> None:
        if (spec is None) == (onnx_file is None):
            raise ValueError("a subject is either a catalogue model or an ONNX file")
        self.spec, self.onnx_file = spec, onnx_file

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.onnx_file.name  # type: ignore[union-attr]

    def request_model(self) -> dict[str, Any]:
        if self.onnx_file:
            return self.onnx_file.request_model()
        spec = self.spec
        return {"name": spec.name, "source": spec.source, "builder": spec.builder,
                "builder_kwargs": dict(spec.builder_kwargs), "input_size": spec.input_size,
                "pretrained_tag": spec.pretrained.tag if spec.pretrained else None,
                "preprocessing": spec.preprocessing.model_dump()}

    def summary(self, weights: str, complexity: dict[str, Any] | None) -> dict[str, Any]:
        if self.onnx_file:
            return self.onnx_file.summary()
        return model_summary(self.spec, weights, complexity)

    def complexity_key(self) -> str | None:
        return complexity_key_for(self.spec) if self.spec else None


def new_run_id() -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_request(cell: Cell, subject: Subject, settings: BenchSettings, run_dir: Path) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "accuracy": settings.accuracy,
        "mode": settings.mode,
        "cell": cell.as_dict(),
        "model": subject.request_model(),
        "weights": settings.weights,
        "threads": settings.threads,
        "channels_last": settings.channels_last,
        "policy": settings.policy.as_dict(),
        "seed": settings.seed,
        "cache_dir": str(cache_dir()),
        "complexity_key": subject.complexity_key(),
        "export": settings.export,
        "max_memory_bytes": settings.max_memory_bytes,
        "max_cv": settings.max_cv,
    }


def build_record(run_id: str, cell: Cell, subject: Subject, settings: BenchSettings, result: dict[str, Any],
                 started_at: str, wall_s: float) -> dict[str, Any]:
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "kind": settings.mode,
        "cell_id": cell.cell_id,
        "cell": cell.as_dict(),
        "status": result["status"],
        "error": result.get("error"),
        "started_at": started_at,
        "wall_s": wall_s,
        "model": subject.summary(settings.weights, result.get("complexity")),
        "runtime": result.get("runtime"),
        "policy": settings.policy.as_dict() if settings.mode == "bench" else None,
    }
    for key in RESULT_KEYS:
        if result.get(key) is not None:
            record[key] = result[key]
    return record


def preload_for(cell: Cell, subject: Subject, weights: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a new process would import for this cell before loading the model: the worker, the
    runtime's libraries and, when the runtime builds the module, the model's source library (not for
    pretrained weights, whose hub settings the worker decides). Returns (modules, sources)."""
    try:
        runtime = runtime_class(cell.runtime)
    except (KeyError, RuntimeUnavailable):
        return ("harness.worker",), ()
    modules = ("harness.worker", runtime.__module__, *runtime.preload_modules)
    builds_torch = runtime.builds_model and runtime.artifact_kind == "torch"
    sources = (subject.spec.source,) if builds_torch and subject.spec and weights != "pretrained" else ()
    return modules, sources


def _group(cell: Cell) -> tuple[str, str, str, str]:
    return (cell.model, cell.runtime, cell.precision, cell.device)


class Sweep:
    """One run folder: env.json, plan.json, records.jsonl and a folder of per-cell logs.

    One writer at a time (a lock); cells already recorded are skipped, so running the same plan into the
    same folder resumes it; a batch size larger than one that ran out of memory is recorded as skipped.
    """

    def __init__(self, out_dir: Path, run_id: str, subjects: dict[str, Subject], settings: BenchSettings) -> None:
        self.run_id = run_id
        self.run_dir = out_dir / run_id
        self.records_path = self.run_dir / RECORDS_FILE
        self.subjects = subjects
        self.settings = settings
        self._oom_batch: dict[tuple[str, str, str, str], int] = {}
        self._weights_missing: dict[str, str] = {}  # model -> why its weights could not be loaded
        self._zygotes: ZygotePool | None = None

    def signature(self, cells: list[Cell]) -> dict[str, Any]:
        return plan_signature([c.as_dict() for c in cells], self.settings.as_dict())

    def start(self, cells: list[Cell]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env_path = self.run_dir / ENV_FILE
        if env_path.exists():  # a resumed run: keep the first environment, add this session's beside it
            env_path = self.run_dir / f"env-resumed-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        write_atomically(env_path, json.dumps(environment.collect(), indent=2, default=str))
        if not (self.run_dir / PLAN_FILE).exists():
            plan = {"run_id": self.run_id, "created_at": _now(), "cells": [c.as_dict() for c in cells],
                    "settings": self.settings.as_dict(), "signature": self.signature(cells)}
            write_atomically(self.run_dir / PLAN_FILE, json.dumps(plan, indent=2))

    def _skip_record(self, cell: Cell, reason: str) -> dict[str, Any]:
        result = {"status": "skipped", "error": reason}
        return build_record(self.run_id, cell, self.subjects[cell.model], self.settings, result, _now(), 0.0)

    def _skip_reason(self, cell: Cell) -> str | None:
        """Why a cell need not run: its model's weights could not be had, or a smaller batch ran out of memory."""
        if cell.model in self._weights_missing:
            why = self._weights_missing[cell.model]
            return f"the weights of {cell.model} could not be loaded in an earlier cell: {why}"
        oom_batch = self._oom_batch.get(_group(cell))
        if oom_batch is not None and cell.batch_size > oom_batch:
            return f"batch size {oom_batch} of the same model, runtime and precision ran out of memory"
        return None

    def run_cell(self, cell: Cell, index: int) -> dict[str, Any]:
        """Run the cell (again, up to strict_retries times while its verdict is invalid) and append its record."""
        reason = self._skip_reason(cell)
        record = self._skip_record(cell, reason) if reason else self._attempts(cell, index)
        self._note(record)
        append_record(self.records_path, record)
        return record

    def _note(self, record: dict[str, Any]) -> None:
        """Remember what makes later cells pointless: an out-of-memory batch, weights that cannot be had."""
        if record["status"] == "oom":
            self._note_oom(Cell(**record["cell"]))
        elif record["status"] == "error" and str(record.get("error")).startswith(WeightsUnavailable.__name__):
            self._weights_missing[record["cell"]["model"]] = record["error"].split(": ", 1)[-1]

    def _note_oom(self, cell: Cell) -> None:
        group = _group(cell)
        self._oom_batch[group] = min(cell.batch_size, self._oom_batch.get(group, cell.batch_size))

    def _attempts(self, cell: Cell, index: int) -> dict[str, Any]:
        earlier: list[list[str]] = []
        while True:
            record = self._attempt(cell, index)
            validity = record.get("validity")
            if record["status"] != "ok" or not validity or validity["valid"] \
                    or len(earlier) >= self.settings.strict_retries:
                break
            earlier.append(validity["reasons"])
        if earlier:
            record["earlier_attempts_invalid_because"] = earlier
        return record

    def _attempt(self, cell: Cell, index: int) -> dict[str, Any]:
        started_at = _now()
        subject = self.subjects[cell.model]
        request = build_request(cell, subject, self.settings, self.run_dir)
        stem = f"{index:04d}-{cell.model}-{cell.runtime.replace(':', '_')}-{cell.precision}-bs{cell.batch_size}"
        zygote = None
        if self._zygotes is not None:
            try:
                zygote = self._zygotes.get(*preload_for(cell, subject, self.settings.weights))
            except ZygoteDied:  # this cell starts a new interpreter instead; the record says so
                zygote = None
        outcome = run_isolated(request, self.run_dir / "cells", stem, self.settings.timeout_s,
                               self.settings.max_memory_bytes, zygote)
        self._tidy(stem)
        record = build_record(self.run_id, cell, subject, self.settings, outcome.result, started_at, outcome.wall_s)
        record["process"] = {"start": "exec"} if zygote is None else \
            {"start": "fork", "preloaded": zygote.preloaded, "zygote_import_s": zygote.import_s}
        return record

    def _tidy(self, stem: str) -> None:
        """The record now holds the result; keep only a non-empty log for reading later."""
        cells = self.run_dir / "cells"
        for suffix in (".request.json", ".result.json"):
            (cells / f"{stem}{suffix}").unlink(missing_ok=True)
        log = cells / f"{stem}.log"
        if log.exists() and log.stat().st_size == 0:
            log.unlink()

    def pending(self, cells: list[Cell]) -> list[Cell]:
        done = finished_cell_ids(self.run_dir)
        return [c for c in cells if c.cell_id not in done]

    def run(self, cells: list[Cell], on_done: Callable[[Cell, dict[str, Any]], None] | None = None,
            on_start: Callable[[Cell], None] | None = None) -> list[dict[str, Any]]:
        """Run the cells not yet recorded; returns the records written in this call."""
        with RunLock(self.run_dir), ZygotePool(self.run_dir / "cells") as zygotes:
            self._zygotes = zygotes if self.settings.process_start == "fork" else None
            try:
                return self._run_pending(cells, on_done, on_start)
            finally:
                self._zygotes = None

    def _run_pending(self, cells: list[Cell], on_done: Callable[[Cell, dict[str, Any]], None] | None,
                     on_start: Callable[[Cell], None] | None) -> list[dict[str, Any]]:
        self.start(cells)
        existing = read_records(self.records_path).records if self.records_path.exists() else []
        done = {record["cell_id"] for record in existing}
        self._oom_batch, self._weights_missing = {}, {}
        for record in existing:
            self._note(record)
        records = []
        for index, cell in enumerate(cells):
            if cell.cell_id in done:
                continue
            if on_start:
                on_start(cell)
            record = self.run_cell(cell, index)
            records.append(record)
            if on_done:
                on_done(cell, record)
        return records


def catalogue_subjects(specs: list[ModelSpec]) -> dict[str, Subject]:
    return {spec.name: Subject(spec=spec) for spec in specs}
