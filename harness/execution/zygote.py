"""A zygote: a process that imports the cell's libraries once, then forks one fresh child per cell.

Run as `python -m harness.execution.zygote MODULE ... [source:LIBRARY ...]` by `harness.execution.isolation.Zygote`
(`source:timm` imports a model library the way the worker does, `exporters.torch_models.import_source`).
Starting a new interpreter and importing torch and a model library costs 1-4 s per cell, as much as
the timed loop of a small model. A child forked from here starts with those modules already imported
— the same modules a new interpreter would import for that cell, nothing more, so its memory reading
is the same — and is otherwise a new process: its own memory, its own limit, its own threads (none
were started here: no tensor work and no CUDA happen in the zygote; a library whose import starts threads
is reported, and the parent does not fork from that zygote).

One difference needs undoing for the memory reading: fork copies the page tables of anonymous memory
but not of file-backed mappings (the libraries' code and data), so a fresh child's RSS would leave out
the ~300 MB of library pages that importing torch made resident in a new interpreter. The zygote
therefore lists the file-backed pages present in its own page tables (/proc/self/pagemap), and each
child reads one byte of each before it starts: its RSS then starts where a new interpreter's would.

Protocol, one JSON object per line: the parent writes {"argv": [ENVELOPE, RESULT], "log": PATH}
(the worker caps its own memory, from the envelope); the zygote answers {"pid": P} when the child exists and
{"pid": P, "exit_code": C} when it has ended (C < 0: killed by signal -C). The parent ends a child
with a signal to P. The zygote's own stdout is kept for the protocol; anything a library prints goes
to its stderr.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

import numpy as np

from harness.execution.isolation import die_with_parent


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _preload(modules: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    failed = {}
    for name in modules:
        try:
            if name.startswith("source:"):
                from exporters.torch_models import import_source

                import_source(name.removeprefix("source:"))
            else:
                importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the child will import it, or fail, on its own
            failed[name] = f"{type(exc).__name__}: {exc}"
    return {"ready": True, "import_s": time.perf_counter() - start,
            "preloaded": [name for name in modules if name not in failed], "failed": failed}


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PRESENT_BIT = np.uint64(1 << 63)


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, bytes) runs of readable file-backed mappings whose pages are in this process's page
    tables; empty where /proc/self/pagemap cannot be read (not Linux)."""
    runs: list[tuple[int, int]] = []
    try:
        maps = open("/proc/self/maps")  # noqa: SIM115
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return runs
    with maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[5].startswith("/") or fields[5].startswith("/dev/") \
                    or not fields[1].startswith("r"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            raw = os.pread(pagemap, (end - start) // PAGE_BYTES * 8, start // PAGE_BYTES * 8)
            present = (np.frombuffer(raw, dtype=np.uint64) & PRESENT_BIT) != 0
            runs += _runs_of(present, start)
    os.close(pagemap)
    return runs


def _runs_of(present: np.ndarray, base: int) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], present.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(base + int(a) * PAGE_BYTES, int(b - a) * PAGE_BYTES) for a, b in zip(starts, stops)]


def touch(runs: list[tuple[int, int]]) -> None:
    """Read one byte of each page: the kernel maps them (from the page cache) into this process."""
    for address, length in runs:
        np.ctypeslib.as_array((ctypes.c_uint8 * length).from_address(address))[::PAGE_BYTES].sum()


def _child(request: dict[str, Any], zygote_pid: int, protocol_fd: int, file_pages: list[tuple[int, int]]) -> None:
    """In the forked child: become the cell's process, run the worker, exit. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        die_with_parent()
        if os.getppid() != zygote_pid:  # the zygote died before the line above took effect
            os._exit(1)
        touch(file_pages)
        os.close(protocol_fd)
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        from harness.cell import worker

        code = worker.main(request["argv"])
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the zygote loop
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def main(modules: list[str]) -> int:
    protocol_fd = os.dup(1)
    protocol = os.fdopen(protocol_fd, "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints must not reach the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the cell and the parent; the parent ends us
    die_with_parent()
    ready = _preload(modules)
    # a library that starts threads on import (OpenVINO's thread pool) makes forking unsafe: a thread holding
    # an import lock or a mutex at fork time leaves the child waiting for it forever. The parent then starts
    # new interpreters instead.
    ready["threads"] = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    file_pages = resident_file_pages()
    ready["file_pages_bytes"] = sum(length for _, length in file_pages)
    _send(protocol, ready)
    zygote_pid = os.getpid()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, zygote_pid, protocol_fd, file_pages)
        _send(protocol, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(protocol, {"pid": pid, "exit_code": os.waitstatus_to_exitcode(status)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
