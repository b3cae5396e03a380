"""One fresh process per cell, with a timeout; whatever happens in it comes back as a result dict.

The child is a new interpreter (`python -m harness.worker`), never a fork, so no CUDA or thread
state leaks between cells. The request and the result travel through files in the run folder; the
child's stdout and stderr go to a log file beside them. The parent blocks in `wait()` (no polling).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.paths import write_atomically

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KILL_GRACE_S = 5.0
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class CellOutcome:
    result: dict[str, Any]
    wall_s: float
    exit_code: int | None


def _log_tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL_CHARS:].strip()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


PR_SET_PDEATHSIG = 1
OOM_LOG_MARKERS = ("std::bad_alloc", "Cannot allocate memory", "MemoryError", "out of memory")


def _child_setup(max_memory_bytes: int | None) -> None:
    """Runs in the child before exec: die with the parent (Linux), and cap private memory if asked.

    RLIMIT_DATA caps the data segment and private anonymous mappings (malloc, tensors) but not shared
    libraries, so importing torch stays possible under a limit of a few hundred MB.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if max_memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (max_memory_bytes, max_memory_bytes))


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period."""
    process.terminate()
    try:
        process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_isolated(request: dict[str, Any], work_dir: Path, stem: str, timeout_s: float,
                 max_memory_bytes: int | None = None) -> CellOutcome:
    """Run one cell in a child process; a raise, a crash or a timeout become a result with a status.

    The child dies with the parent (so a killed parent loses at most the running cell), and with
    `max_memory_bytes` its private memory is capped: running over is recorded as `oom`.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    request_path, result_path = work_dir / f"{stem}.request.json", work_dir / f"{stem}.result.json"
    log_path = work_dir / f"{stem}.log"
    result_path.unlink(missing_ok=True)
    write_atomically(request_path, json.dumps(request))
    command = [sys.executable, "-m", "harness.worker", str(request_path), str(result_path)]
    start = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: PLW1509
                                   env=_child_environment(), cwd=os.getcwd(),
                                   preexec_fn=lambda: _child_setup(max_memory_bytes))
        try:
            exit_code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(process)
            result = {"status": "timeout", "error": f"no result after {timeout_s:g} s; the process was ended",
                      "log_tail": _log_tail(log_path)}
            return CellOutcome(result, time.perf_counter() - start, None)
        except BaseException:  # Ctrl-C in the parent: end the child before going up
            _stop(process)
            raise
    wall_s = time.perf_counter() - start
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        how = _signal_name(exit_code) if exit_code is not None and exit_code < 0 else f"exit code {exit_code}"
        tail = _log_tail(log_path)
        ran_out = max_memory_bytes is not None and any(marker in tail for marker in OOM_LOG_MARKERS)
        result = {"status": "oom" if ran_out else "crashed",
                  "error": f"the cell's process ended ({how}) with no result"
                           + (f" after running out of its {max_memory_bytes} byte memory limit" if ran_out else ""),
                  "log_tail": tail}
    return CellOutcome(result, wall_s, exit_code)
