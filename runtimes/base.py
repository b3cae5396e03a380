"""The runtime contract: every runtime does the same few things, and never times itself.

The harness owns the clock. One timed sample is `run(); synchronize()` between two
`time.perf_counter_ns()` readings, identical for every runtime. Inputs are placed once by
`prepare()` before timing; `outputs()` copies results back and is never called inside a timed region.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np


class UnsupportedConfiguration(Exception):
    """This runtime cannot run the requested device/precision/option; recorded as `unsupported`."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Every knob that changes a number; all are recorded with each result."""

    device: str = "cpu"  # "cpu" or "cuda" / "cuda:N"
    precision: str = "fp32"  # "fp32" or "fp16"
    threads: int | None = None  # intra-op CPU threads; None keeps the library default (recorded)
    channels_last: bool = False


@dataclass(frozen=True)
class TorchModuleArtifact:
    """A model to be built as a torch module on `load()`; building is part of cold start."""

    name: str
    build: Callable[[], Any]
    description: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OnnxFileArtifact:
    """An ONNX file on disk; creating the session from it is cold start."""

    name: str
    path: str
    description: dict[str, Any] = field(default_factory=dict)


Artifact = TorchModuleArtifact | OnnxFileArtifact


class DeviceClock(Protocol):
    """Device-side timestamps around one `run()`, read after `synchronize()`."""

    def mark_start(self) -> None: ...

    def mark_end(self) -> None: ...

    def elapsed_ms(self) -> float: ...


class Runtime(ABC):
    """Construct cheaply: heavy imports happen in `load()`, never at module import time."""

    name: str = "runtime"
    builds_model: bool = True  # False for runtimes that never build the model (the null runtime)
    artifact_kind: str = "torch"  # "torch": a TorchModuleArtifact; "onnx": an OnnxFileArtifact
    # Libraries a new process imports to run this runtime; a zygote may import them once for many cells.
    preload_modules: tuple[str, ...] = ()

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self._closed = False

    @abstractmethod
    def load(self, artifact: Artifact) -> None:
        """Build the session/engine/module. The harness times this as cold start."""

    @abstractmethod
    def prepare(self, inputs: np.ndarray) -> None:
        """Place the inputs where `run()` reads them (device memory, bindings), once."""

    @abstractmethod
    def run(self) -> None:
        """One inference on the prepared inputs; may return before the work is done."""

    @abstractmethod
    def synchronize(self) -> None:
        """Block until all work queued by `run()` is done."""

    @abstractmethod
    def outputs(self) -> list[np.ndarray]:
        """Copy the last results back to host memory as numpy arrays."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Name, version, device, precision and every option that changes a number."""

    def device_clock(self) -> DeviceClock | None:
        """A device-side clock on the runtime's stream, or None where the host clock is the device clock."""
        return None

    def _release(self) -> None:
        """Free the runtime's resources; called once by `close()`."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
