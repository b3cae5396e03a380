"""Run a plan of cells, each in its own process, and append one record per cell."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from harness import environment
from harness.isolation import run_isolated
from harness.models import complexity_key_for, model_summary
from harness.onnx_files import OnnxFile
from harness.paths import cache_dir, write_atomically
from harness.planning import Cell
from harness.records import ENV_FILE, RECORDS_FILE, SCHEMA_VERSION, append_record
from harness.registry import ModelSpec
from harness.timing import Policy

RESULT_KEYS = ("prepared", "cold_start", "timing", "samples_ms", "input", "parity", "traceback", "log_tail")


@dataclass(frozen=True)
class BenchSettings:
    policy: Policy
    weights: str = "random"
    threads: int | None = None
    channels_last: bool = False
    timeout_s: float = 900.0
    seed: int = 0
    mode: str = "bench"  # or "parity"
    export: dict[str, Any] = field(default_factory=lambda: {"opset": 18, "simplify": False})


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


def build_request(cell: Cell, subject: Subject, settings: BenchSettings) -> dict[str, Any]:
    return {
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


class Sweep:
    """One run folder: env.json, plan.json, records.jsonl and a folder of per-cell logs."""

    def __init__(self, out_dir: Path, run_id: str, subjects: dict[str, Subject], settings: BenchSettings) -> None:
        self.run_id = run_id
        self.run_dir = out_dir / run_id
        self.records_path = self.run_dir / RECORDS_FILE
        self.subjects = subjects
        self.settings = settings

    def start(self, cells: list[Cell]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.run_dir / ENV_FILE, json.dumps(environment.collect(), indent=2, default=str))
        plan = {"run_id": self.run_id, "created_at": _now(), "cells": [c.as_dict() for c in cells],
                "settings": {**self.settings.__dict__, "policy": self.settings.policy.as_dict()}}
        write_atomically(self.run_dir / "plan.json", json.dumps(plan, indent=2))

    def run_cell(self, cell: Cell, index: int) -> dict[str, Any]:
        started_at = _now()
        subject = self.subjects[cell.model]
        request = build_request(cell, subject, self.settings)
        stem = f"{index:04d}-{cell.model}-{cell.runtime.replace(':', '_')}-{cell.precision}-bs{cell.batch_size}"
        outcome = run_isolated(request, self.run_dir / "cells", stem, self.settings.timeout_s)
        record = build_record(self.run_id, cell, subject, self.settings, outcome.result, started_at, outcome.wall_s)
        append_record(self.records_path, record)
        self._tidy(stem)
        return record

    def _tidy(self, stem: str) -> None:
        """The record now holds the result; keep only a non-empty log for reading later."""
        cells = self.run_dir / "cells"
        for suffix in (".request.json", ".result.json"):
            (cells / f"{stem}{suffix}").unlink(missing_ok=True)
        log = cells / f"{stem}.log"
        if log.exists() and log.stat().st_size == 0:
            log.unlink()

    def run(self, cells: list[Cell], on_done: Callable[[Cell, dict[str, Any]], None] | None = None,
            on_start: Callable[[Cell], None] | None = None) -> list[dict[str, Any]]:
        self.start(cells)
        records = []
        for index, cell in enumerate(cells):
            if on_start:
                on_start(cell)
            record = self.run_cell(cell, index)
            records.append(record)
            if on_done:
                on_done(cell, record)
        return records


def catalogue_subjects(specs: list[ModelSpec]) -> dict[str, Subject]:
    return {spec.name: Subject(spec=spec) for spec in specs}
