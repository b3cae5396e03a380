"""trtexec, NVIDIA's own timer, run on the very engine a `trt` cell measured: the reference beside the harness's
device clock (bench/gpu_check.py).

trtexec's flags and defaults differ between its versions, and an engine loads only in the TensorRT that built
it, so everything here follows trtexec's *own* version, read from its banner (`&&&& RUNNING TensorRT.trtexec
[TensorRT v100300]`: 10.3.0; `v8502`: 8.5.2), never the Python module's:

| what the cell did | trtexec < 11 | trtexec >= 11 |
|---|---|---|
| inputs already on the device | `--noDataTransfers` | nothing (no transfers is the default) |
| CUDA graph on | `--useCudaGraph` | nothing (graphs are the default) |
| CUDA graph off | nothing | `--noCudaGraph` (unknown to 10.x, which refuses it) |
| a DLA cell (`dla:N`) | `--useDLACore=N` | same |
| dynamic inputs | `--shapes=A:BxCxHxW,B:Bx2` (each dynamic input at the cell's batch) | same |

trtexec's "GPU Compute Time" keeps one inference queued ahead of the one it times (NVIDIA/TensorRT#3493), as
the harness's queued-ahead device clock does (harness.measure.timing), so the two medians compare like with
like. When no comparison can be made, `Comparison.why` says why.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimes.trtexec_tool import (JETPACK_PATH, Run, Version, find, gpu_compute_median_ms, read_version, shapes_list,
                                   version_text)

__all__ = ["Comparison", "EngineRun", "command", "compare", "find", "gpu_compute_median_ms"]

TIMEOUT_S = 600


@dataclass(frozen=True)
class EngineRun:
    """What trtexec needs to run an engine the way a cell ran it."""

    plan: Path
    tensorrt: str  # the TensorRT that built the engine (its build facts)
    batch_size: int
    shapes: dict[str, list[int]]  # each dynamic input's shape at the cell's batch (--shapes)
    cuda_graph: bool
    dla_core: int | None

    @classmethod
    def of_record(cls, record: dict[str, Any], cache_dir: Path) -> "EngineRun | str":
        """From a `trt` cell's record; a sentence saying why not where it cannot be."""
        if record.get("cell", {}).get("runtime") != "trt":
            return "not a TensorRT cell"
        if record.get("status") != "ok":
            return f"the cell did not run ({record.get('status')})"
        engine = (record.get("prepared") or {}).get("engine") or {}
        if not engine.get("folder"):
            return "the record names no engine"
        plan = cache_dir / engine["folder"] / "model.engine"
        if not plan.is_file():
            return f"engine file not found in the cache ({plan})"
        build = engine.get("build") or {}
        shapes = build.get("shapes") or {}
        options = (record.get("runtime") or {}).get("options") or {}
        batch_size = int(record["cell"]["batch_size"])
        return cls(plan=plan, tensorrt=str(build.get("tensorrt") or record["runtime"].get("version")),
                   batch_size=batch_size, shapes=_run_shapes(shapes, batch_size),
                   cuda_graph=bool(options.get("cuda_graph")), dla_core=build.get("dla_core"))


def _run_shapes(facts: dict[str, Any], batch_size: int) -> dict[str, list[int]]:
    """Each profiled input's shape at `batch_size`: its min where min == max (a static engine), else min at the
    batch. Without --shapes, trtexec sets every dynamic dimension to 1, which an engine built for another batch
    refuses. Records before several inputs name one input (input, min, max)."""
    profiles = facts.get("profiles")
    if profiles is None and facts.get("input") and facts.get("min"):
        profiles = {facts["input"]: {"min": facts["min"], "max": facts.get("max") or facts["min"]}}
    return {name: list(p["min"]) if p["min"] == p["max"] else [batch_size, *p["min"][1:]]
            for name, p in (profiles or {}).items()}


def command(trtexec: str, version: Version, engine: EngineRun) -> list[str]:
    """trtexec's command line for timing `engine` as the cell ran it, with the flags of trtexec `version`."""
    flags = [f"--loadEngine={engine.plan}", "--separateProfileRun"]
    if version[0] < 11:
        flags.append("--noDataTransfers")
        if engine.cuda_graph:
            flags.append("--useCudaGraph")
    elif not engine.cuda_graph:
        flags.append("--noCudaGraph")
    if engine.dla_core is not None:
        flags.append(f"--useDLACore={engine.dla_core}")
    if engine.shapes:
        flags.append(f"--shapes={shapes_list(engine.shapes)}")
    return [trtexec, *flags]


@dataclass
class Comparison:
    median_ms: float | None = None  # trtexec's GPU Compute Time median
    why: str = ""  # why there is no median, where there is none
    command: list[str] = field(default_factory=list)
    trtexec_version: str | None = None


def compare(record: dict[str, Any], trtexec: str | None, cache_dir: Path, run: Run = subprocess.run) -> Comparison:
    """trtexec's GPU compute median on the engine of `record`, or why it cannot be had."""
    if trtexec is None:
        return Comparison(why=f"trtexec is not on PATH nor at /{JETPACK_PATH}")
    engine = EngineRun.of_record(record, cache_dir)
    if isinstance(engine, str):
        return Comparison(why=engine)
    version = read_version(trtexec, run)
    if isinstance(version, str):
        return Comparison(why=version)
    ours = version_text(version)
    built_by = tuple(int(p) for p in re.findall(r"\d+", engine.tensorrt)[:3])
    if built_by != version[:len(built_by)]:
        return Comparison(why=f"trtexec is TensorRT {ours}, the engine was built by TensorRT {engine.tensorrt}: an "
                              "engine loads only in the TensorRT that built it; put that TensorRT's trtexec on PATH",
                          trtexec_version=ours)
    argv = command(trtexec, version, engine)
    try:
        done = run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Comparison(why=f"trtexec did not finish: {exc}", command=argv, trtexec_version=ours)
    median = gpu_compute_median_ms(done.stdout)
    if median is None:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        return Comparison(why=f"trtexec printed no GPU Compute Time (exit {done.returncode}): {tail[0][:200]}",
                          command=argv, trtexec_version=ours)
    return Comparison(median_ms=median, command=argv, trtexec_version=ours)
