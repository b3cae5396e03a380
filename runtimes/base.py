"""The runtime contract: every runtime does the same few things, and never times itself.

The harness owns the clock. One timed sample is `run(); synchronize()` between two
`time.perf_counter_ns()` readings, identical for every runtime. Inputs are placed once by
`prepare()` before timing; `outputs()` copies results back and is never called inside a timed region.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np


# What `prepare()` takes: the one array of a single-input graph, or one array per input in the graph's declared
# order (ONNX graph inputs less initializers = a torch module's forward arguments = the order onnxruntime,
# OpenVINO and TensorRT list them in).
Inputs = np.ndarray | Sequence[np.ndarray]


def input_arrays(inputs: Inputs) -> list[np.ndarray]:
    """`prepare()`'s argument as a list of arrays, one per input."""
    return [inputs] if isinstance(inputs, np.ndarray) else list(inputs)


def contiguous(array: np.ndarray) -> np.ndarray:
    """The array in C order, its shape kept (np.ascontiguousarray makes a 0-d array 1-d: a scalar input's shape
    would then be refused)."""
    return np.require(array, requirements="C")


def as_inputs(arrays: Sequence[np.ndarray]) -> Inputs:
    """What the harness hands `prepare()`: the array itself for one input (what a runtime written for image
    classifiers takes), the list for several."""
    return arrays[0] if len(arrays) == 1 else list(arrays)


def check_input_count(arrays: list[np.ndarray], names: Sequence[str]) -> None:
    """One array per input the graph declares, or UnsupportedConfiguration naming them."""
    if len(arrays) != len(names):
        raise UnsupportedConfiguration(f"the graph has {len(names)} input(s) ({', '.join(names)}); "
                                       f"{len(arrays)} array(s) were given")


class UnsupportedConfiguration(Exception):
    """This runtime cannot run the requested device/precision/option; recorded as `unsupported`."""


class CannotRunHere(UnsupportedConfiguration):
    """This runtime cannot run here at all, whatever the model: refused while it was created or its device set
    up (this device, this precision, a missing tool). Recorded as `unsupported`; a verdict on the model (check's
    criteria, verify's exit code) is then unknown, not failed."""


class OutOfMemory(Exception):
    """The runtime's library ran out of memory (host or device); recorded as `oom`."""


class IncompatibleEngine(Exception):
    """A cached engine this library or device cannot load (another version, another GPU, damage the hash
    did not catch); the harness rebuilds it and records why."""


class BadOption(ValueError):
    """A --runtime-option the runtime does not know, or a value it cannot take; the message says which."""


# What a runtime consumes: the harness prepares it, in a process of its own, before the cell runs.
TORCH_MODULE = "torch-module"  # a module built from the prepared weights (building it is cold start)
ONNX_FILE = "onnx-file"  # the cached ONNX file (a runtime may derive its own artifact from it in load())
NOTHING = "nothing"  # the null runtime

# Memory sources (see harness.measure.memory) the harness reads for every runtime; a runtime with a reading of its
# own (device_memory) names it in `own_memory_source`, e.g. "torch_allocator".
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
class DeviceFamily:
    """A family of devices, as `--device` names them, that a runtime declares it runs on.

    `pattern`: the family's name alone ("cpu", "npu"), with an optional index ("cuda[:N]": cuda is cuda:0) or
    with a required one ("dla:N"). `description`: one line for --help. `cuda_gpu`: the CUDA GPU the driver must
    see before a sweep starts: "self" (the device is one), a fixed one ("cuda:0": a Jetson's DLA sits beside
    it), or None (not checked up front; the runtime says in its cell whether it finds the device). `discover`:
    "module:function" returning the devices of this family present on this machine (a fleet node offers them);
    it may import the runtime's library, so it is called only when a node looks.
    """

    pattern: str
    description: str
    cuda_gpu: str | None = None
    discover: str | None = None

    @property
    def name(self) -> str:
        return self.pattern.split("[", 1)[0].split(":", 1)[0]

    @property
    def index(self) -> str:
        """'none', 'optional' or 'required': whether a device of this family takes ':N'."""
        if self.pattern.endswith("[:N]"):
            return "optional"
        return "required" if self.pattern.endswith(":N") else "none"

    def matches(self, device: str) -> bool:
        """Whether `device` (no '@NODE') names one of this family: cuda, cuda:1; not cuda:x or cuda1."""
        name, colon, index = device.partition(":")
        if name != self.name:
            return False
        if not colon:
            return self.index != "required"
        return self.index != "none" and index.isdigit()

    def canonical(self, device: str) -> str:
        """The device as a fleet names it: the first of its family where the index is optional (cuda -> cuda:0)."""
        return f"{device}:0" if self.index == "optional" and ":" not in device else device

    def cuda_device(self, device: str) -> str | None:
        """The CUDA GPU the driver must see for `device` (see `cuda_gpu`), or None."""
        return device if self.cuda_gpu == "self" else self.cuda_gpu


CPU = DeviceFamily("cpu", "the host CPU")
CUDA = DeviceFamily("cuda[:N]", "an NVIDIA GPU, cuda:0 where N is left out", cuda_gpu="self")
DLA = DeviceFamily("dla:N", "a Jetson's DLA core, beside its GPU cuda:0", cuda_gpu="cuda:0")

# The precisions the harness plans cells at (the exporters make their ONNX files); a runtime declares which it takes.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class RuntimeOptions:
    """Every knob that changes a number; all are recorded with each result."""

    device: str = "cpu"  # a device of a family the runtime declares (`Runtime.devices`): "cpu", "cuda:1", "npu"
    precision: str = "fp32"  # "fp32", "fp16", "bf16" or "int8"
    threads: int | None = None  # intra-op CPU threads; None keeps the library default (recorded)
    channels_last: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the runtime's own options, validated by it
    # The shape of each input the cell will feed, in the graph's order, for runtimes that specialize a graph to
    # them before compiling (OpenVINO); None where unknown. prepare() may still be given others (an accuracy
    # run's last batch).
    input_shapes: tuple[tuple[int, ...], ...] | None = None


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


@dataclass(frozen=True)
class EngineArtifact:
    """An engine the harness built from its cached ONNX file in a build job of its own, and verified by hash
    before handing it over; deserializing it is cold start."""

    name: str
    path: str
    sha256: str
    description: dict[str, Any] = field(default_factory=dict)


Artifact = TorchModuleArtifact | OnnxFileArtifact | EngineArtifact


@dataclass(frozen=True)
class EngineShapes:
    """The batch sizes an engine accepts: one (a static engine, what a deployment ships) or a min/opt/max
    profile (one dynamic engine for every planned batch size)."""

    kind: str  # "static" or "dynamic"
    min_batch: int
    opt_batch: int
    max_batch: int
    # Each input's shape at batch 1 (as InputSpec.shape), by name, where the graph has symbolic dimensions besides
    # the batch: the sizes the user gave them (--input-shape), which the engine's profile fixes. None: the graph's
    # own dims (every dimension but a batched first one is fixed).
    input_dims: dict[str, list[int]] | None = None

    @classmethod
    def static(cls, batch_size: int) -> "EngineShapes":
        return cls("static", batch_size, batch_size, batch_size)

    @classmethod
    def dynamic(cls, batch_sizes: list[int]) -> "EngineShapes":
        """min and max over the planned batch sizes; opt the largest (the throughput end of the sweep)."""
        return cls("dynamic", min(batch_sizes), max(batch_sizes), max(batch_sizes))

    @property
    def label(self) -> str:
        return f"bs{self.min_batch}" if self.kind == "static" else \
            f"dynamic-{self.min_batch}-{self.opt_batch}-{self.max_batch}"

    def accepts(self, batch_size: int) -> bool:
        return self.min_batch <= batch_size <= self.max_batch

    def profiles(self, inputs: Mapping[str, Sequence[int]]) -> dict[str, tuple[tuple[int, ...], ...]]:
        """(min, opt, max) shapes of each input with dynamic dimensions (-1), by name in the given order: a dynamic
        first dimension is the batch (min/opt/max batch), the others the sizes of `input_dims`. Unsupported where
        a dynamic size was not given, or where no input has a dynamic batch and other batch sizes are asked for
        (the graph's batch is fixed: the first dimension of its first input)."""
        if not any(dims and dims[0] < 0 for dims in inputs.values()):
            fixed = next((dims[0] for dims in inputs.values() if dims), 1)
            if not self.min_batch == self.max_batch == fixed:
                raise UnsupportedConfiguration(f"the graph's batch size is fixed at {fixed}; it cannot run "
                                               f"{self.label}")
        return {name: self._profile(name, tuple(dims)) for name, dims in inputs.items() if any(d < 0 for d in dims)}

    def _profile(self, name: str, dims: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        given = (self.input_dims or {}).get(name)
        open_dims = [n for n, d in enumerate(dims) if d < 0 and n > 0]
        if open_dims and (given is None or len(given) != len(dims)):
            example = "x".join("1" if n == 0 else str(d) if d >= 0 else "N" for n, d in enumerate(dims))
            raise UnsupportedConfiguration(f"input {name} has dynamic dimension(s) {', '.join(map(str, open_dims))} "
                                           f"besides the batch ({list(dims)}): TensorRT builds an engine for given "
                                           f"sizes; give them with --input-shape {name}:{example}")
        rest = tuple(given[n] if d < 0 and given else d for n, d in enumerate(dims))[1:]
        if dims[0] >= 0:
            return ((dims[0], *rest),) * 3
        return tuple((batch, *rest) for batch in (self.min_batch, self.opt_batch, self.max_batch))

    def as_dict(self) -> dict[str, Any]:
        """The fields, `input_dims` only where given: an engine key of a graph without symbolic sizes stays what
        it was before the field existed."""
        fields = dict(self.__dict__)
        if fields["input_dims"] is None:
            del fields["input_dims"]
        return fields


@dataclass
class BuiltEngine:
    """What `build_engine` made: the serialized plan and the facts of the build (no timings: the harness
    times the call)."""

    plan: bytes
    facts: dict[str, Any] = field(default_factory=dict)


class DeviceClock(Protocol):
    """Device-side timestamps around one `run()`, read after `synchronize()`; `source` says which clock it is
    and what its interval spans (recorded beside the samples)."""

    source: str

    def mark_start(self) -> None: ...

    def mark_end(self) -> None: ...

    def elapsed_ms(self) -> float: ...


class ParallelRequests(Protocol):
    """A runtime's own way to keep several inferences on the prepared inputs in flight at once (OpenVINO's
    AsyncInferQueue on a model compiled for throughput): the offline scenario's queries. `description` says
    what runs them (recorded); `start()` queues one inference, blocking while every request is busy;
    `wait_all()` blocks until every queued one has finished; `close()` frees them."""

    description: str

    def start(self) -> None: ...

    def wait_all(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class StreamEventClock(DeviceClock, Protocol):
    """A device clock whose marks are events on the stream the runs are queued on (CUDA events): the harness can
    then time runs queued one ahead of the run it waits for, as trtexec does (harness.measure.timing)."""

    def wait_end(self) -> None:
        """Block until the device has reached the end mark (the event, not the whole stream)."""


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
    own_memory_source: ClassVar[str | None] = None  # the record's key for device_memory(), e.g. "torch_allocator"
    # Python modules the runtime cannot work without, checked (not imported) before a sweep starts, and
    # the one line that says how to install them.
    required_modules: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    # An engine runtime derives a device-specific engine from the ONNX file in a build job of its own
    # (build_engine), kept in the artifact cache; its cells then load that engine.
    builds_engine: ClassVar[bool] = False
    load_includes: ClassVar[str] = ("building the module or session from the prepared weights/artifact, and moving it "
                                    "to the device")  # what cold start's load() time holds, recorded with it
    option_prefix: ClassVar[str] = ""  # --runtime-option <prefix>.<name>=<value>; "" = none taken
    option_specs: ClassVar[dict[str, OptionSpec]] = {}
    # Where it runs and at what precision, read by the harness without importing the runtime's library: --device
    # parsing and help, --precision help, the README's table. `devices`: the families it runs on. `precisions`:
    # each precision it takes -> "" (always) or the condition, as text ("CUDA only", "where the device lists
    # it"); the runtime still refuses a combination it cannot run, in its cell (`UnsupportedConfiguration`).
    # `default_for`: the device profile kinds (jetson, cuda, cpu) it is `check --on-device`'s runtime for; where
    # several runtimes declare a kind, the first in `runtimes.RUNTIMES` installed here is taken.
    devices: ClassVar[tuple[DeviceFamily, ...]] = (CPU,)
    precisions: ClassVar[dict[str, str]] = {"fp32": ""}
    default_for: ClassVar[tuple[str, ...]] = ()
    # The Python distributions whose versions every run's environment file records (and a fleet compares across
    # nodes), its main library first; () for a runtime that is a tool, not a package.
    packages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self._closed = False

    # A runtime whose inferences are timed by its library's own tool (trtexec) names that clock here and offers
    # measure(); the harness applies its warm-up, stopping rule and statistics to the tool's per-run records.
    timed_by: ClassVar[str | None] = None

    @classmethod
    def missing_requirement(cls) -> str | None:
        """Why this runtime cannot run here (its install hint), or None: by default, a required module missing."""
        import importlib.util
        import sys

        def installed(module: str) -> bool:
            if module in sys.modules:
                return sys.modules[module] is not None
            try:
                return importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                return False

        missing = [m for m in cls.required_modules if not installed(m)]
        return (cls.install_hint or f"runtime '{cls.name}' needs {', '.join(missing)}") if missing else None

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

    @classmethod
    def onnx_precision(cls, precision: str, versions: Mapping[str, str | None] | None = None) -> str:
        """The precision of the ONNX file a cell at `precision` reads: its own, by default. `versions`: the
        package versions of the machine the cell runs on (None: this one), for runtimes whose choice
        depends on their library's version."""
        return precision

    @classmethod
    def shapes_option(cls, extra: dict[str, Any]) -> str:
        """'static' (one engine per batch size) or 'dynamic' (one engine for all); engine runtimes only."""
        return "static"

    # ---------------------------------------------------------------- engine runtimes only

    def engine_key(self, onnx: OnnxFileArtifact, onnx_sha256: str, shapes: EngineShapes) -> dict[str, Any]:
        """Everything that determines the engine: it names the engine in the artifact cache."""
        raise NotImplementedError(f"{self.name} builds no engine")

    def build_engine(self, onnx: OnnxFileArtifact, shapes: EngineShapes, state_dir: str) -> BuiltEngine:
        """Build the engine (the harness times this call). `state_dir` is the runtime's own folder in the
        artifact cache, for what outlives one build (a timing cache)."""
        raise NotImplementedError(f"{self.name} builds no engine")

    def inspect_engine(self, plan_path: str) -> dict[str, Any]:
        """Deserialize a plan and describe it (device memory it needs, its tensors); raises
        IncompatibleEngine where this library and device cannot load it."""
        raise NotImplementedError(f"{self.name} builds no engine")

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
    def prepare(self, inputs: Inputs) -> None:
        """Place the inputs where `run()` reads them (device memory, bindings), once: one array per graph input,
        in the graph's order (`input_arrays`), or the one array of a single-input graph."""

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

    def torch_allocator_memory(self) -> dict[str, Any] | None:
        """PyTorch's allocator peaks where this runtime's device buffers came from it though the runtime is not
        torch (TensorRT with trt.buffers=torch); None where they did not."""
        return None

    def device_clock(self) -> DeviceClock | None:
        """The runtime library's own clock for one run (CUDA events on its stream, OpenVINO's request latency),
        or None where the host clock is the only one."""
        return None

    def parallel_requests(self, streams: int) -> ParallelRequests | None:
        """The library's own parallelism for `streams` inferences at once on the prepared inputs, after
        `prepare()`; None (the default): the harness runs `streams` instances of the runtime on threads."""
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
