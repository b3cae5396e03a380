"""One fresh process per cell, with a timeout; whatever happens in it comes back as a result dict.

Two ways to start the cell's process: `exec`, a new interpreter (`python -m harness.cell.worker`) that
imports everything itself; or `fork` (the default where the OS has fork), a child of a zygote
(`harness.execution.zygote`) that imported the cell's libraries once — no CUDA and no tensor work ever happen
in the zygote, so no device or thread state leaks between cells either way. The request and the
result travel through files in the run folder; the child's stdout and stderr go to a log file beside
them. The parent blocks (in `wait()`, or in `select()` on the zygote's pipe), never polls.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.paths import write_atomically

# The folder the harness's packages are imported from (a checkout, or site-packages for a wheel install): put on a
# child's PYTHONPATH so a child started from another folder imports the same code. No data is read from it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
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


def die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _child_setup() -> None:
    """Runs in an exec'd child before exec: die with the parent (the worker caps its own memory)."""
    die_with_parent()


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


class ZygoteDied(RuntimeError):
    """The zygote process ended (or never became ready); its cells cannot run through it."""


class ZygoteUnsafe(ZygoteDied):
    """The zygote's libraries started threads while importing: forking from it is not safe."""


class _LineChannel:
    """JSON lines from a pipe, read with a timeout (select on the raw descriptor, own buffer)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def read(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The next message, or None when `timeout_s` passed first; ZygoteDied at end of file."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise ZygoteDied("the zygote process ended")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


ZYGOTE_START_TIMEOUT_S = 600.0


class Zygote:
    """Parent side of `harness.execution.zygote`: a process that imported `modules` (and the model libraries in
    `sources`) once and forks one child per cell. It dies with the parent, and its children with it."""

    def __init__(self, modules: tuple[str, ...], sources: tuple[str, ...], log_path: Path) -> None:
        self.modules, self.sources = modules, sources
        command = [sys.executable, "-m", "harness.execution.zygote", *modules, *(f"source:{s}" for s in sources)]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,  # noqa: PLW1509
                                            env=_child_environment(), cwd=os.getcwd(),
                                            preexec_fn=_child_setup)
        self.channel = _LineChannel(self.process.stdout.fileno())  # type: ignore[union-attr]
        try:
            ready = self.channel.read(ZYGOTE_START_TIMEOUT_S)
        except ZygoteDied:
            ready = None
        if ready is None:
            self.close()
            raise ZygoteDied(f"the zygote did not start (see {log_path})")
        if ready.get("threads"):
            self.close()
            raise ZygoteUnsafe(f"importing {', '.join(modules)} started threads ({', '.join(ready['threads'])}): a "
                               "fork could leave a cell waiting on a lock one of them held, so these cells start "
                               "a new interpreter")
        self.import_s: float = ready["import_s"]
        self.preloaded: list[str] = ready["preloaded"]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, argv: list[str], log_path: Path, timeout_s: float) -> int | None:
        """Fork a child that runs `harness.cell.worker` with `argv`; its exit code, or None if it timed out and was ended."""
        request = {"argv": argv, "log": str(log_path)}
        self.process.stdin.write((json.dumps(request) + "\n").encode())  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        started = self.channel.read(ZYGOTE_START_TIMEOUT_S)
        if started is None:
            raise ZygoteDied("the zygote did not fork a child")
        pid = started["pid"]
        try:
            ended = self.channel.read(timeout_s)
        except BaseException:  # Ctrl-C in the parent: end the child before going up
            self._end(pid)
            raise
        if ended is None:
            self._end(pid)
            return None
        return ended["exit_code"]

    def _end(self, pid: int) -> None:
        """SIGTERM, then SIGKILL after a grace period; consumes the child's exit message."""
        for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            try:
                if self.channel.read(wait_s) is not None:
                    return
            except ZygoteDied:
                return

    def close(self) -> None:
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def zygotes_to_keep() -> int:
    """An idle zygote holds its imports' private memory (torch + torchvision ~0.4 GB, with
    pretrainedmodels ~0.9 GB): four (torch with three model libraries, and ONNX Runtime) where the
    machine has 16 GB or more, else two."""
    import psutil

    return 4 if psutil.virtual_memory().total >= 16 * 10**9 else 2


class ZygotePool:
    """Zygotes by what they preload, started on first use; at most `max_alive` at once (least recently
    used closed first), since each holds its libraries' memory."""

    def __init__(self, log_dir: Path, max_alive: int | None = None) -> None:
        self.log_dir, self.max_alive = log_dir, max_alive or zygotes_to_keep()
        self.zygotes: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], Zygote] = OrderedDict()
        self.unsafe: dict[tuple[tuple[str, ...], tuple[str, ...]], ZygoteUnsafe] = {}  # never tried again

    def get(self, modules: tuple[str, ...], sources: tuple[str, ...]) -> Zygote:
        key = (modules, sources)
        if key in self.unsafe:
            raise self.unsafe[key]
        zygote = self.zygotes.pop(key, None)
        if zygote is not None and not zygote.alive:
            zygote.close()
            zygote = None
        if zygote is None:
            while len(self.zygotes) >= self.max_alive:
                self.zygotes.popitem(last=False)[1].close()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            try:
                zygote = Zygote(modules, sources, self.log_dir / "zygotes.log")
            except ZygoteUnsafe as exc:
                self.unsafe[key] = exc
                raise
        self.zygotes[key] = zygote
        return zygote

    def close(self) -> None:
        while self.zygotes:
            self.zygotes.popitem()[1].close()

    def __enter__(self) -> ZygotePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _run_exec(argv: list[str], log_path: Path, timeout_s: float) -> int | None:
    """A new interpreter runs `harness.cell.worker` with `argv`; its exit code, or None if it timed out and was ended."""
    command = [sys.executable, "-m", "harness.cell.worker", *argv]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: PLW1509
                                   env=_child_environment(), cwd=os.getcwd(),
                                   preexec_fn=_child_setup)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(process)
            return None
        except BaseException:  # Ctrl-C in the parent: end the child before going up
            _stop(process)
            raise


def run_isolated(envelope: dict[str, Any], work_dir: Path, stem: str, timeout_s: float,
                 max_memory_bytes: int | None = None, zygote: Zygote | None = None) -> CellOutcome:
    """Run one cell in a child process (forked from `zygote`, or a new interpreter without one); a
    raise, a crash or a timeout become a result with a status.

    The child dies with the parent (so a killed parent loses at most the running cell), and with
    `max_memory_bytes` its private memory is capped: running over is recorded as `oom`.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    request_path, result_path = work_dir / f"{stem}.request.json", work_dir / f"{stem}.result.json"
    log_path = work_dir / f"{stem}.log"
    result_path.unlink(missing_ok=True)
    write_atomically(request_path, json.dumps({**envelope, "max_memory_bytes": max_memory_bytes}))
    argv = [str(request_path), str(result_path)]
    start = time.perf_counter()
    try:
        if zygote is None:
            exit_code = _run_exec(argv, log_path, timeout_s)
        else:
            exit_code = zygote.run(argv, log_path, timeout_s)
    except ZygoteDied as exc:
        result = {"status": "crashed", "error": f"{exc}; the cell's process went with it",
                  "log_tail": _log_tail(log_path)}
        return CellOutcome(result, time.perf_counter() - start, None)
    wall_s = time.perf_counter() - start
    if exit_code is None:
        result = {"status": "timeout", "error": f"no result after {timeout_s:g} s; the process was ended",
                  "log_tail": _log_tail(log_path)}
    elif result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        result = _no_result(exit_code, log_path)
    return CellOutcome(result, wall_s, exit_code)


def _no_result(exit_code: int, log_path: Path) -> dict[str, Any]:
    """The process ended without writing its result: a crash (a signal, or an exit before the worker
    could answer). Its log's tail is kept for the reader."""
    how = _signal_name(exit_code) if exit_code < 0 else f"exit code {exit_code}"
    return {"status": "crashed", "error": f"the cell's process ended ({how}) with no result",
            "log_tail": _log_tail(log_path)}
