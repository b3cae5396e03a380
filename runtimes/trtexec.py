"""`trtexec`: TensorRT engines built and run by NVIDIA's own `trtexec` binary, for boards whose TensorRT Python
bindings are out of the harness's reach.

JetPack's TensorRT bindings exist only for the board's system Python (3.6 on JetPack 4.6, 3.8 on 5.1), older
than the harness needs; its `trtexec` (/usr/src/tensorrt/bin/trtexec) needs no Python at all and is on every
JetPack. So this runtime drives it: `build_engine` runs `trtexec --onnx ... --saveEngine` (flags by trtexec's
own version: runtimes/trtexec_tool.py), a numerics run loads the harness's seeded inputs (`--loadInputs`) and
reads the outputs back (`--exportOutput`), and a timing run exports every inference's times
(`--exportTimes`). The timing run is the one place where a library's tool, not the harness, holds the clock:
trtexec is NVIDIA's reference timer, so `measure()` runs it with trtexec's warm-up off and the harness's
minimum count and duration, and hands back its per-inference records; the harness applies its own warm-up
and stopping rules and statistics to them (harness.measure.timing.from_trace) and records which clock made
each figure. `run()` / `synchronize()` / `outputs()` serve numerics and accuracy (one trtexec run per batch).
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from runtimes import cuda_driver
from runtimes.base import (COMMON_SOURCES, CUDA, DLA, ONNX_FILE, Artifact, BuiltEngine, EngineArtifact, EngineShapes,
                           IncompatibleEngine, Inputs, OnnxFileArtifact, OptionSpec, Runtime, RuntimeOptions,
                           UnsupportedConfiguration, check_input_count, input_arrays)
from runtimes.trtexec_tool import (BOARD_ROOT_ENV, Flags, find, read_outputs, read_times, read_version,
                                   tail, version_text, write_input)

INSTALL_HINT = ("runtime 'trtexec' needs NVIDIA's trtexec: JetPack puts it at /usr/src/tensorrt/bin/trtexec; "
                "elsewhere put it on PATH or set HARNESS_TRTEXEC=/path/to/trtexec")
PRECISIONS = ("fp32", "fp16", "int8")
ENGINE_FORMAT = 1
PR_SET_PDEATHSIG = 1
LOADED = re.compile(r"Engine (?:deserialized|loaded) in ([\d.]+) sec")
PARSE_FAILURE = re.compile(r"Failed to parse onnx file|Unsupported ONNX|No importer registered|ModelImporter|"
                           r"only activation types allowed|opset", re.IGNORECASE)
# trtexec's words for a plan it cannot load (not its "Engine deserialized in" line, printed before later failures)
NOT_DESERIALIZED = re.compile(r"deserialization failed|deserializeCudaEngine|version of TensorRT|incompatible device|"
                              r"magic tag", re.IGNORECASE)


@dataclass
class ToolRun:
    """What one timing run of trtexec left: its per-inference records, and what the harness saw of its process."""

    records: list[dict[str, float]]
    command: list[str]
    load_s: float | None  # trtexec's own "Engine deserialized in" figure
    peak_rss_bytes: int | None  # the trtexec process's peak RSS (wait4's ru_maxrss)
    pid: int
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphInput:
    """One input of the graph as trtexec's parser sees it: its dims (-1 where symbolic) and ONNX element type."""

    name: str
    dims: tuple[int, ...]
    elem_type: int

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.dims)


ONNX_INT64, ONNX_INT32 = 7, 6


def _onnx_io(path: str) -> tuple[list[GraphInput], list[str]]:
    """(the graph's inputs in its order, its output names)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [GraphInput(i.name, tuple(d.dim_value if d.HasField("dim_value") else -1
                                       for d in i.type.tensor_type.shape.dim), i.type.tensor_type.elem_type)
              for i in graph.input if i.name not in initializers]
    for graph_input in inputs:
        if "," in graph_input.name:  # trtexec splits its --shapes/--loadInputs lists on ','
            raise UnsupportedConfiguration(f"input '{graph_input.name}' has a ',' in its name, which trtexec's "
                                           "--shapes and --loadInputs cannot name")
    return inputs, [o.name for o in graph.output]


def _binding_dtype(graph_input: GraphInput, version: tuple[int, int, int]) -> np.dtype:
    """The engine binding's type, which --loadInputs' raw files hold: the ONNX type, except int64 before
    TensorRT 9, whose parser binds int64 inputs as int32 (onnx-tensorrt's convertDtype)."""
    import onnx

    if graph_input.elem_type == ONNX_INT64 and version[0] < 9:
        return np.dtype(np.int32)
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(graph_input.elem_type))


def _gpu_name(device_index: int) -> str:
    """The GPU's name from the CUDA driver, else (a board without a readable driver here) the board's model."""
    try:
        return cuda_driver.device_name(device_index)
    except cuda_driver.CudaDriverUnavailable:
        model = Path(os.environ.get(BOARD_ROOT_ENV, "/")) / "proc" / "device-tree" / "model"
        try:
            return model.read_text(errors="replace").strip().rstrip("\x00") or "unknown GPU"
        except OSError:
            return "unknown GPU"


class TrtexecRuntime(Runtime):
    name = "trtexec"
    consumes = ONNX_FILE
    builds_engine = True
    timed_by = "trtexec --exportTimes"  # measure() runs NVIDIA's timer; the harness keeps its rules (module doc)
    load_includes = "checking the engine file (trtexec deserializes the engine in each of its runs; its own " \
                    "'Engine deserialized in' figure is recorded as load_s)"
    install_hint = INSTALL_HINT
    memory_sources = COMMON_SOURCES
    # after trt in RUNTIMES: check --on-device takes it where TensorRT's Python bindings are out of reach (JetPack's
    # bindings exist only for its system Python, which may be older than the harness's)
    devices = (CUDA, DLA)
    precisions = {"fp32": "GPU only, not on a DLA", "fp16": "", "int8": ""}
    default_for = ("jetson", "cuda")
    option_prefix = "trtexec"
    option_specs = {
        "cuda_graph": OptionSpec("run the timed inferences as a CUDA graph (trtexec 11's default)", ("on", "off"),
                                 "off"),
        "workspace_mb": OptionSpec("builder workspace limit in MiB (default: trtexec's)"),
        "timing_cache": OptionSpec("reuse and extend a timing cache per GPU and trtexec version", ("on", "off"), "on"),
    }

    @classmethod
    def missing_requirement(cls) -> str | None:
        trtexec = find()
        if trtexec is None:
            return INSTALL_HINT
        if not (Path(trtexec).is_file() and os.access(trtexec, os.X_OK)):
            return f"runtime 'trtexec': {trtexec} is not an executable file (HARNESS_TRTEXEC or PATH names it)"
        return None

    @classmethod
    def onnx_precision(cls, precision: str, versions: Mapping[str, str | None] | None = None) -> str:
        """int8: the symmetric Q/DQ file; fp16 from the fp16 file on trtexec 11 (strongly typed), else the fp32
        file with --fp16."""
        if precision == "int8":
            return "int8-sym"
        trtexec = find()
        version = read_version(trtexec) if trtexec else None
        return precision if isinstance(version, tuple) and version[0] >= 11 else "fp32"

    @classmethod
    def shapes_option(cls, extra: dict[str, Any]) -> str:
        return "static"

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        device = options.device
        if device.startswith("dla:") and device[4:].isdigit():
            self.device_index, self.dla_core = 0, int(device[4:])
        elif device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
            self.device_index, self.dla_core = cuda_driver.device_index(device), None
        else:
            raise UnsupportedConfiguration(f"trtexec runs on --device cuda, cuda:N or dla:N, not {device}")
        if options.precision not in PRECISIONS:
            raise UnsupportedConfiguration(f"trtexec builds {', '.join(PRECISIONS)} engines, not {options.precision}")
        if self.dla_core is not None and options.precision == "fp32":
            raise UnsupportedConfiguration("the DLA runs fp16 or int8, not fp32: use --precision fp16")
        trtexec = find()
        if trtexec is None:
            raise UnsupportedConfiguration(INSTALL_HINT)
        version = read_version(trtexec)
        if isinstance(version, str):
            raise UnsupportedConfiguration(version)
        self.trtexec, self.version = trtexec, version
        self.flags = Flags(version)
        self.plan: str | None = None
        self._inputs: list[np.ndarray] = []
        self._outputs: list[np.ndarray] = []
        self._output_names: list[str] = []
        self._graph_inputs: list[GraphInput] = []  # from the ONNX file the engine is built from (engine_key, load)
        self._built_profiles: dict[str, tuple[tuple[int, ...], ...]] = {}  # of the engine build_engine made

    def init_device(self) -> None:
        """Nothing: trtexec makes its own CUDA context, in its own process."""

    # ---------------------------------------------------------------- engines

    def _run(self, flags: list[str], timeout_s: float, on_start: Callable[[int], None] | None = None,
             on_line: Callable[[str], None] | None = None) -> tuple[subprocess.CompletedProcess, int | None, int]:
        """trtexec with `flags`; (its result, its peak RSS in bytes from wait4, its pid). `on_line` sees each line
        it prints as the line arrives."""
        command = [self.trtexec, *flags]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                   preexec_fn=_die_with_parent)
        output: list[str] = []

        def pump() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                output.append(line)
                if on_line is not None:
                    on_line(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        if on_start is not None:
            on_start(process.pid)
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        reader.join()
        return (subprocess.CompletedProcess(command, process.returncode, "".join(output), ""),
                int(usage.ru_maxrss) * 1024, process.pid)

    def engine_key(self, onnx: OnnxFileArtifact, onnx_sha256: str, shapes: EngineShapes) -> dict[str, Any]:
        """What names the engine; the graph's inputs are read here too, for the shapes of inspect_engine's run."""
        self._graph_inputs, self._output_names = _onnx_io(onnx.path)
        return {"format": ENGINE_FORMAT, "onnx_sha256": onnx_sha256, "trtexec": version_text(self.version),
                "gpu": _gpu_name(self.device_index), "shapes": shapes.as_dict(), "precision": self.options.precision,
                "dla_core": self.dla_core, "workspace_mb": self.options.extra.get("workspace_mb")}

    def _run_shapes(self, shapes: list[tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
        """--shapes for a run: each dynamic input's shape (those given, else the cell's, RuntimeOptions.input_shapes,
        else the opt shapes of the engine just built): trtexec sets the dynamic dims of an input given none to 1,
        which a profile not reaching 1 refuses."""
        shapes = shapes if shapes is not None else [tuple(s) for s in self.options.input_shapes or ()]
        if len(shapes) != len(self._graph_inputs):
            return {name: dims[1] for name, dims in self._built_profiles.items()}
        return {i.name: tuple(shape) for i, shape in zip(self._graph_inputs, shapes) if i.dynamic}

    def build_engine(self, onnx: OnnxFileArtifact, shapes: EngineShapes, state_dir: str) -> BuiltEngine:
        """trtexec --onnx ... --saveEngine with this cell's precision, shapes, DLA core and workspace."""
        self._graph_inputs, self._output_names = _onnx_io(onnx.path)
        profiles = self._built_profiles = shapes.profiles({i.name: i.dims for i in self._graph_inputs})
        cache = None
        if self.options.extra.get("timing_cache", "on") == "on":
            slug = re.sub(r"[^A-Za-z0-9]+", "-", _gpu_name(self.device_index)).strip("-").lower() or "gpu"
            cache = str(Path(state_dir) / f"timing-{slug}-trtexec{version_text(self.version)}.cache")
        with tempfile.TemporaryDirectory(dir=state_dir) as scratch:
            plan = Path(scratch) / "model.engine"
            flags = self.flags.build(onnx.path, str(plan), self.options.precision, profiles, self.dla_core,
                                     self.options.extra.get("workspace_mb"), cache)
            done, _, _ = self._run(flags, timeout_s=3600)
            if done.returncode != 0 or not plan.is_file():
                message = f"trtexec {version_text(self.version)} could not build the engine: {tail(done)}"
                if PARSE_FAILURE.search(done.stdout):
                    raise UnsupportedConfiguration(message)
                raise RuntimeError(message)
            data = plan.read_bytes()
        precision_from = ("the ONNX graph's types (trtexec 11, strongly typed)" if self.flags.strongly_typed
                          or self.options.precision == "fp32" else f"trtexec --{self.options.precision}")
        return BuiltEngine(data, {"trtexec": version_text(self.version), "trtexec_path": self.trtexec,
                                  "command": [self.trtexec, *flags], "precision_from": precision_from,
                                  "shapes": self._shape_facts(shapes, profiles),
                                  "dla_core": self.dla_core, "timing_cache": cache})

    def _shape_facts(self, shapes: EngineShapes, profiles: dict[str, tuple[tuple[int, ...], ...]]) -> dict[str, Any]:
        """EngineShapes and each dynamic input's profile; a graph of one input keeps the input/min/opt/max of the
        records before several inputs."""
        facts: dict[str, Any] = {**shapes.as_dict(),
                                 "profiles": {name: dict(zip(("min", "opt", "max"), map(list, dims)))
                                              for name, dims in profiles.items()}}
        if len(self._graph_inputs) == 1:
            only = self._graph_inputs[0]
            dims = profiles.get(only.name) or (only.dims,) * 3
            facts.update({"input": only.name, "min": list(dims[0]), "opt": list(dims[1]), "max": list(dims[2])})
        return facts

    def inspect_engine(self, plan_path: str) -> dict[str, Any]:
        """One inference of the plan (at the cell's shapes); IncompatibleEngine where this trtexec cannot
        deserialize it."""
        done, _, _ = self._run(self.flags.infer(plan_path, 1, 0, self.dla_core, False, shapes=self._run_shapes()),
                               timeout_s=600)
        if done.returncode != 0:
            if NOT_DESERIALIZED.search(done.stdout):
                raise IncompatibleEngine(f"trtexec {version_text(self.version)} could not load the plan: {tail(done)}")
            raise RuntimeError(f"trtexec could not run the engine: {tail(done)}")
        return {"plan_file_bytes": Path(plan_path).stat().st_size, "trtexec": version_text(self.version)}

    # ---------------------------------------------------------------- the contract, for numerics and accuracy

    def load(self, artifact: Artifact) -> None:
        """The engine the build job made (trtexec deserializes it in each of its runs)."""
        if not isinstance(artifact, EngineArtifact):
            raise UnsupportedConfiguration(f"trtexec loads engines the harness built, not {type(artifact).__name__}")
        self.plan = artifact.path
        source = artifact.description.get("onnx_path")
        if source:
            self._graph_inputs, self._output_names = _onnx_io(source)

    def prepare(self, inputs: Inputs) -> None:
        """Each input in its engine binding's type (float32 for float inputs; int64 as int32 before TensorRT 9), for
        run()'s --loadInputs."""
        arrays = input_arrays(inputs)
        if not self._graph_inputs:  # an engine loaded without its ONNX file: the one float input of old
            self._inputs = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
            return
        check_input_count(arrays, [i.name for i in self._graph_inputs])
        self._inputs = [np.ascontiguousarray(self._in_binding_type(i, a)) for i, a in zip(self._graph_inputs, arrays)]

    def _in_binding_type(self, graph_input: GraphInput, array: np.ndarray) -> np.ndarray:
        dtype = _binding_dtype(graph_input, self.version)
        if array.dtype == np.int64 and dtype == np.int32 and array.size and \
                (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
            raise UnsupportedConfiguration(f"input {graph_input.name} is int64 with values beyond int32; trtexec "
                                           f"{version_text(self.version)} binds int64 inputs as int32")
        return array.astype(dtype, copy=False)

    def run(self) -> None:
        """One trtexec run of the prepared inputs (--loadInputs, --shapes), its outputs read back (--exportOutput)."""
        assert self.plan is not None and self._inputs
        with tempfile.TemporaryDirectory() as scratch:
            exported = Path(scratch) / "outputs.json"
            names = [i.name for i in self._graph_inputs] or ["input"]
            files = {}
            for index, (name, array) in enumerate(zip(names, self._inputs)):
                files[name] = str(Path(scratch) / f"input{index}.bin")
                write_input(Path(files[name]), array)
            shapes = self._run_shapes([a.shape for a in self._inputs])
            done, _, _ = self._run(self.flags.infer(self.plan, 1, 0, self.dla_core, False, inputs=files,
                                                    export_output=str(exported), shapes=shapes), timeout_s=600)
            if done.returncode != 0 or not exported.is_file():
                raise RuntimeError(f"trtexec could not run the engine on the given inputs: {tail(done)}")
            outputs = read_outputs(exported)
        names = self._output_names or list(outputs)
        self._outputs = [outputs[n] for n in names if n in outputs]

    def synchronize(self) -> None:
        """Nothing: run() returns when trtexec has ended."""

    def outputs(self) -> list[np.ndarray]:
        return [o.copy() for o in self._outputs]

    # ---------------------------------------------------------------- timing, by trtexec

    def measure(self, policy: Mapping[str, Any], on_start: Callable[[int], None] | None = None,
                on_line: Callable[[str], None] | None = None) -> ToolRun:
        """trtexec on the engine for at least the policy's minimum count (warm-up included) AND minimum duration,
        trtexec's own warm-up off, every inference's times exported. Inputs: trtexec's own, on the device.
        `on_start` gets trtexec's pid when it starts, `on_line` each line it prints as it arrives."""
        assert self.plan is not None
        iterations = int(policy["warmup_min_iters"]) + int(policy["min_samples"])
        duration_s = math.ceil(float(policy["warmup_min_s"]) + float(policy["min_duration_s"]))
        timeout_s = float(policy["warmup_max_s"]) + float(policy["max_duration_s"]) + 300
        cuda_graph = self.options.extra.get("cuda_graph", "off") == "on"
        with tempfile.TemporaryDirectory() as scratch:
            times = Path(scratch) / "times.json"
            flags = self.flags.infer(self.plan, iterations, duration_s, self.dla_core, cuda_graph,
                                     export_times=str(times), shapes=self._run_shapes())
            done, peak_rss, pid = self._run(flags, timeout_s, on_start, on_line)
            if done.returncode != 0 or not times.is_file():
                raise RuntimeError(f"trtexec's timing run failed: {tail(done)}")
            records = read_times(times)
        loaded = LOADED.search(done.stdout)
        return ToolRun(records, [self.trtexec, *flags], float(loaded.group(1)) if loaded else None, peak_rss, pid,
                       {"inputs": "trtexec's own, generated on the device (no copies in the times)",
                        "shapes": {name: list(dims) for name, dims in self._run_shapes().items()},
                        "cuda_graph": cuda_graph})

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": version_text(self.version), "device": self.options.device,
                "device_name": _gpu_name(self.device_index), "precision": self.options.precision,
                "options": {"trtexec": self.trtexec, "dla_core": self.dla_core,
                            "cuda_graph": self.options.extra.get("cuda_graph", "off") == "on",
                            "runtime_options": dict(self.options.extra),
                            "timed_by": self.timed_by}}


def _die_with_parent() -> None:
    """Runs in trtexec's process before exec: the kernel kills it when the thread that started it (and waits for
    it) ends, so a harness or cell killed outright leaves no trtexec running on the board beside what runs next."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
