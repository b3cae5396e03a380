"""NVIDIA's `trtexec` binary: where it is, which TensorRT it is, the flags each version takes, and its files.

Everything here follows trtexec's *own* version, read from the banner it prints first (`&&&& RUNNING
TensorRT.trtexec [TensorRT v8201]`), since JetPack's trtexec is not the Python module's and the flags
differ between versions (read in NVIDIA/TensorRT's samples/common/sampleOptions.cpp per release branch):

| what | 8.2 | 8.4 - 8.6 | 10.x | 11.x |
|---|---|---|---|---|
| build without inference | `--buildOnly` | `--buildOnly` (8.6 also `--skipInference`) | `--skipInference` | same |
| workspace limit | `--workspace=MiB` | `--memPoolSize=workspace:MiB` | same | same |
| fp16 / int8 | `--fp16` / `--int8` (with the Q/DQ graph) | same | same | from the graph's types (strongly typed) |
| inputs already on the device | `--noDataTransfers` | same | same | the default |
| CUDA graph | `--useCudaGraph` | same | same | the default; `--noCudaGraph` |
| exported times (`--exportTimes`) | warm-ups included, with `endToEndMs` | warm-ups left out | same | same |

`--exportTimes` writes one record per inference (`startEnqMs`, `endEnqMs`, `startComputeMs`, `endComputeMs`,
`computeMs`, `latencyMs`, ...: samples/common/sampleReporting.cpp `exportJSONTrace`); `--exportOutput` writes
each output's `name`, `dimensions` ("1x1000") and `values` (`exportJSONOutput`); `--loadInputs=name:file`
reads raw binary tensors. Several inputs: one comma-separated list per flag (`--shapes=a:1x3x8x8,b:1x2`,
`--loadInputs=a:a.bin,b:b.bin`, `--minShapes=...`): sampleOptions.cpp splits each flag's value on ',' and each
item on its last ':' (getShapesBuild, getShapesInference, splitNameAndValue), and reads a flag once, so the
harness never repeats one. A dynamic input given no shape is set to 1 in every dynamic dimension, at build and
at inference (sampleEngines.cpp setupNetworkAndConfig, sampleInference.cpp setUpInference): the harness passes
the shape of every dynamic input. Nothing here times anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

BANNER = re.compile(r"\[TensorRT v(\d{4,8})\]")
GPU_COMPUTE = re.compile(r"GPU Compute Time: min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms, "
                         r"median = ([\d.]+) ms")
JETPACK_PATH = "usr/src/tensorrt/bin/trtexec"  # where JetPack and NVIDIA's containers put it (off PATH)
BOARD_ROOT_ENV = "HARNESS_JETSON_ROOT"  # a board's root (tests: a fixture tree), as the harness reads it
PATH_ENV = "HARNESS_TRTEXEC"  # an explicit trtexec
Run = Callable[..., subprocess.CompletedProcess]
Version = tuple[int, int, int]


def find() -> str | None:
    """$HARNESS_TRTEXEC, else trtexec on PATH, else JetPack's under the board's root; None where none is."""
    if os.environ.get(PATH_ENV):
        return os.environ[PATH_ENV]
    on_path = shutil.which("trtexec")
    if on_path:
        return on_path
    jetpack = Path(os.environ.get(BOARD_ROOT_ENV, "/")) / JETPACK_PATH
    return str(jetpack) if jetpack.is_file() else None


def decode_packed_version(packed: int) -> Version:
    """trtexec's packed version: MAJOR*1000 + MINOR*100 + PATCH up to 8.x (8502: 8.5.2), MAJOR*10000 +
    MINOR*100 + PATCH from 10 on (100300: 10.3.0; 110400: 11.4.0)."""
    if packed >= 100_000:
        return packed // 10_000, packed // 100 % 100, packed % 100
    return packed // 1000, packed // 100 % 10, packed % 100


def read_version(trtexec: str, run: Run = subprocess.run) -> Version | str:
    """trtexec's TensorRT version from the banner it prints first (with no arguments it prints the banner and
    its usage); a sentence saying why where it cannot be read."""
    try:
        done = run([trtexec], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not run {trtexec}: {exc}"
    match = BANNER.search(done.stdout + done.stderr)
    if not match:
        return f"{trtexec} printed no '[TensorRT vNNNN]' banner: cannot tell its TensorRT version"
    return decode_packed_version(int(match.group(1)))


def version_text(version: Version) -> str:
    return ".".join(map(str, version))


def gpu_compute_median_ms(output: str) -> float | None:
    match = GPU_COMPUTE.search(output)
    return float(match.group(4)) if match else None


@dataclass(frozen=True)
class Flags:
    """trtexec's command-line flags, as the trtexec of `version` takes them."""

    version: Version

    @property
    def strongly_typed(self) -> bool:
        return self.version[0] >= 11

    def build(self, onnx: str, plan: str, precision: str, profiles: dict[str, tuple[tuple[int, ...], ...]],
              dla_core: int | None, workspace_mib: int | None, timing_cache: str | None) -> list[str]:
        """Build an engine from `onnx` into `plan` without timing it. `profiles`: (min, opt, max) of each dynamic
        input, all in one --minShapes/--optShapes/--maxShapes each."""
        flags = [f"--onnx={onnx}", f"--saveEngine={plan}",
                 "--skipInference" if self.version >= (8, 6, 0) else "--buildOnly"]
        if not self.strongly_typed and precision in ("fp16", "int8"):
            flags.append(f"--{precision}")
        for index, flag in enumerate(("minShapes", "optShapes", "maxShapes")):
            if profiles:
                flags.append(f"--{flag}=" + shapes_list({name: dims[index] for name, dims in profiles.items()}))
        if dla_core is not None:
            flags += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
        if workspace_mib is not None:
            flags.append(f"--workspace={workspace_mib}" if self.version < (8, 4, 0)
                         else f"--memPoolSize=workspace:{workspace_mib}")
        if timing_cache is not None:
            flags.append(f"--timingCacheFile={timing_cache}")
        return flags

    def infer(self, plan: str, iterations: int, duration_s: int, dla_core: int | None, cuda_graph: bool,
              export_times: str | None = None, inputs: dict[str, str] | None = None,
              export_output: str | None = None, shapes: dict[str, tuple[int, ...]] | None = None) -> list[str]:
        """Run `plan`: at least `iterations` inferences AND at least `duration_s` seconds, no warm-up of trtexec's
        own (the harness applies its warm-up rule to the exported times). Inputs: trtexec's own on the device
        (no copies timed), or `inputs` (name -> raw binary file) loaded and copied; `shapes`: each dynamic
        input's shape (--shapes)."""
        flags = [f"--loadEngine={plan}", f"--iterations={iterations}", f"--duration={duration_s}", "--warmUp=0"]
        if shapes:
            flags.append(f"--shapes={shapes_list(shapes)}")
        if inputs:
            flags.append("--loadInputs=" + ",".join(f"{name}:{path}" for name, path in inputs.items()))
        elif self.version[0] < 11:
            flags.append("--noDataTransfers")
        if self.version[0] < 11 and cuda_graph:
            flags.append("--useCudaGraph")
        elif self.version[0] >= 11 and not cuda_graph:
            flags.append("--noCudaGraph")
        if dla_core is not None:
            flags.append(f"--useDLACore={dla_core}")
        if export_times:
            flags.append(f"--exportTimes={export_times}")
        if export_output:
            flags.append(f"--exportOutput={export_output}")
        return flags


def shapes_list(shapes: dict[str, tuple[int, ...]] | dict[str, list[int]]) -> str:
    """`a:1x3x8x8,b:1x2`: the value of --shapes, --minShapes, --optShapes and --maxShapes."""
    return ",".join(f"{name}:{'x'.join(map(str, dims))}" for name, dims in shapes.items())


TIME_FIELDS = ("startComputeMs", "computeMs", "latencyMs")  # what the harness reads of each record


def read_times(path: Path) -> list[dict[str, float]]:
    """The inference records of an `--exportTimes` file (trtexec writes a JSON list of objects); ValueError naming
    what is missing where the file is not one, is empty, or lacks a field the harness reads."""
    try:
        records = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"trtexec's --exportTimes file is not JSON ({exc})") from None
    if not isinstance(records, list) or not records:
        raise ValueError("trtexec's --exportTimes file holds no inference records")
    for record in records:
        missing = [key for key in TIME_FIELDS if not isinstance(record, dict) or
                   not isinstance(record.get(key), (int, float))]
        if missing:
            raise ValueError(f"trtexec's --exportTimes records lack {', '.join(missing)} (this trtexec writes "
                             "another format): no timing can be read from them")
    return records


def read_outputs(path: Path) -> dict[str, np.ndarray]:
    """Each output of an `--exportOutput` file, by name, shaped by its `dimensions` ('1x1000')."""
    outputs = {}
    for entry in json.loads(path.read_text()):
        dims = [int(d) for d in str(entry["dimensions"]).split("x") if d]
        outputs[entry["name"]] = np.asarray(entry["values"], dtype=np.float32).reshape(dims)
    return outputs


def write_input(path: Path, array: np.ndarray) -> None:
    """A raw binary input for `--loadInputs` (the tensor's bytes, C order)."""
    path.write_bytes(np.ascontiguousarray(array).tobytes())


def tail(done: subprocess.CompletedProcess, lines: int = 3) -> str:
    """The last lines trtexec printed, for an error message (its errors are `[E]` lines)."""
    text = (done.stdout or "") + (done.stderr or "")
    errors = [line for line in text.splitlines() if "[E]" in line or "ERROR" in line]
    chosen = errors[-lines:] or text.strip().splitlines()[-lines:]
    return " | ".join(line.strip() for line in chosen)[:600] or f"exit {done.returncode}, no output"
