"""The runtime contract: every runtime does the same few things, and never times itself.

The harness owns the clock. One timed sample is `run(); synchronize()` between two
`time.perf_counter_ns()` readings, identical for every runtime. Inputs are placed once by
`prepare()` before timing; `outputs()` copies results back and is never called inside a timed region.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import numpy as np


class UnsupportedConfiguration(Exception):
    """This runtime cannot run the requested device/precision/option; recorded as `unsupported`."""


class OutOfMemory(Exception):
    """The runtime's library ran out of memory (host or device); recorded as `oom`."""


class BadOption(ValueError):
    """A --runtime-option the runtime does not know, or a value it cannot take; the message says which."""


# What a runtime consumes: the harness prepares it, in a process of its own, before the cell runs.
TORCH_MODULE = "torch-module"  # a module built from the prepared weights (building it is cold start)
ONNX_FILE = "onnx-file"  # the cached ONNX file (a runtime may derive its own artifact from it in load())
NOTHING = "nothing"  # the null runtime

# Memory sources (see harness.measure.memory) the harness reads for every runtime; a runtime with a reading of its
# own (device_memory) adds that source's name, e.g. "torch_allocator".
COMMON_SOURCES = ("host_rss", "cuda_nvml", "jetson_unified")


@dataclass(frozen=True)
class OptionSpec:
    """One runtime-specific option: `--runtime-option <prefix>.<name>=<value>`."""

    help: str
    choices: tuple[str, ...] | None = None  # the values it takes; None: a positive whole number
    default: str | None = None

    def parse(self, name: str, text: str) -> str | int:
        if self.choices is not None:
            if text not in self.choices:
                raise BadOption(f"bad value '{text}' for {name}: choose from {', '.join(self.choices)}")
            return text
        if not text.isdigit() or int(text) < 1:
            raise BadOption(f"bad value '{text}' for {name}: give a positive whole number")
        return int(text)


@dataclass(frozen=True)
class RuntimeOptions:
    """Every knob that changes a number; all are recorded with each result."""

    device: str = "cpu"  # "cpu" or "cuda" / "cuda:N"
    precision: str = "fp32"  # "fp32" or "fp16"
    threads: int | None = None  # intra-op CPU threads; None keeps the library default (recorded)
    channels_last: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the runtime's own options, validated by it


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
    """Construct cheaply: heavy imports happen in `load()`, never at module import time.

    Capabilities are declared here, by the class, so the harness never asks a runtime its name: what
    it consumes, which libraries a fresh process imports for it, which memory sources apply, its own
    options, how it starts its device and reads its device memory, and which of its library's errors
    mean out-of-memory or unsupported.
    """

    name: str = "runtime"
    consumes: ClassVar[str] = TORCH_MODULE
    # Libraries a new process imports to run this runtime; a zygote may import them once for many cells.
    preload_modules: ClassVar[tuple[str, ...]] = ()
    memory_sources: ClassVar[tuple[str, ...]] = COMMON_SOURCES
    option_prefix: ClassVar[str] = ""  # --runtime-option <prefix>.<name>=<value>; "" = none taken
    option_specs: ClassVar[dict[str, OptionSpec]] = {}

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self._closed = False

    @classmethod
    def parse_options(cls, raw: dict[str, str]) -> dict[str, Any]:
        """Validate `{name: text}` (names without the prefix) into typed values; BadOption names the problem."""
        parsed = {}
        for name, text in raw.items():
            spec = cls.option_specs.get(name)
            if spec is None:
                known = ", ".join(f"{cls.option_prefix}.{n}" for n in cls.option_specs) or "none"
                raise BadOption(f"runtime {cls.name} has no option '{cls.option_prefix or cls.name}.{name}' "
                                f"(it takes: {known})")
            parsed[name] = spec.parse(f"{cls.option_prefix}.{name}", text)
        return parsed

    @classmethod
    def classify_failure(cls, exc: BaseException) -> str | None:
        """'oom' or 'unsupported' where `exc` is one of the library's own errors that means it; else None."""
        return None

    def init_device(self) -> None:
        """Create the device context before the model is loaded, so it can be measured alone. The
        default makes the CUDA primary context through the driver API (no torch); runtimes that own
        their context another way override it."""
        if self.options.device.startswith("cuda"):
            from runtimes.cuda_driver import retain_primary_context

            retain_primary_context(self.options.device)

    def device_memory(self) -> dict[str, Any]:
        """The runtime's own device-memory reading (e.g. an allocator's peaks), or {"missing": reason}."""
        if not self.options.device.startswith("cuda"):
            return {"missing": "the cell runs on the CPU"}
        return {"missing": f"{self.name} reports no allocator of its own"}

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
