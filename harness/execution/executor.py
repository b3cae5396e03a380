"""The executor interface: submit a job (a cell, or the preparation of a cell's artifacts), get its
outcome. How and where the job runs — a fresh local process, a forked one, another machine — is the
executor's business, and so is where the job reads artifacts and writes its files (its `Placement`):
a job's request carries no paths of the parent's machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

# What the sweep does with a job's outcome: a cell's is recorded; a preparation's (a model's weights file, ONNX
# file, params and MACs) and a build's (an engine) are what later jobs run from.
JobKind = Literal["cell", "prepare", "build"]

from harness.protocol import CellRequest, CellResult


@dataclass(frozen=True)
class Job:
    """One unit of work for a fresh process: the request the worker reads, and how to run it."""

    key: str  # unique within a sweep: a cell id, or a preparation's or build's key
    request: CellRequest
    log_name: str  # stem of the job's log file, readable by a person
    timeout_s: float
    max_memory_bytes: int | None = None
    preload: tuple[tuple[str, ...], tuple[str, ...]] = (("harness.cell.worker",), ())  # modules, model libraries
    kind: JobKind = "cell"


@dataclass(frozen=True)
class Placement:
    """Where a job's process finds the artifact cache and writes its files (given by the executor)."""

    cache_dir: Path
    run_dir: Path

    def as_dict(self) -> dict[str, str]:
        return {"cache_dir": str(self.cache_dir), "run_dir": str(self.run_dir)}


@dataclass(frozen=True)
class Outcome:
    """What came back: the worker's result (or a status the executor gave it), and how it ran."""

    result: CellResult
    wall_s: float
    process: dict[str, Any] = field(default_factory=dict)


class StorageFailed(Exception):
    """The harness itself could not write (a full disk, a vanished folder): no cell is to blame, and the
    sweep stops with the cells it could not record left for --resume."""


class Executor(ABC):
    """Runs jobs. `capacity` jobs may be in flight at once; `wait()` returns them as they finish, in any
    order — the sweep orders work through dependencies, never through the order of results."""

    capacity: int = 1

    def slots(self, device: str | None) -> int:
        """How many jobs of `device` may be in flight at once (an executor of several machines may run one per
        machine that offers it); never more than `capacity` in all."""
        return self.capacity

    def versions_for(self, device: str) -> Mapping[str, str | None] | None:
        """The package versions of the machine(s) `device`'s jobs run on, where they are not this machine's
        (None: this machine). Some runtimes pick their input by their library's version (TensorRT's ONNX file)."""
        return None

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Start (or queue) a job; at most `capacity` are unfinished at once."""

    @abstractmethod
    def wait(self) -> tuple[Job, Outcome]:
        """Block until a submitted job has finished; its outcome."""

    def close(self) -> None:
        """Release processes or connections; idempotent."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
