"""The local executor: each job in a fresh process on this machine, one at a time — forked from a
zygote that imported the job's libraries once (`fork`, the default on Linux), or a new interpreter
(`exec`). See `harness.execution.isolation` for the process handling and `harness.execution.zygote` for the zygote."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from harness.execution.executor import Executor, Job, Outcome, Placement, StorageFailed
from harness.cell.limits import EXIT_RESULT_UNWRITABLE
from harness.execution.isolation import ZygoteDied, ZygotePool, run_isolated
from harness.protocol import CellResult

PROCESS_STARTS = ("fork", "exec")


class LocalExecutor(Executor):
    """Runs one job at a time, in submission order, in a fresh local process with a timeout."""

    capacity = 1

    def __init__(self, placement: Placement, process_start: str = "fork") -> None:
        if process_start not in PROCESS_STARTS:
            raise ValueError(f"process_start must be one of {PROCESS_STARTS}")
        self.placement = placement
        self.process_start = process_start
        self.log_dir = placement.run_dir / "cells"
        self._queue: deque[Job] = deque()
        self._zygotes = ZygotePool(self.log_dir) if process_start == "fork" else None

    def submit(self, job: Job) -> None:
        if len(self._queue) >= self.capacity:
            raise RuntimeError("the local executor runs one job at a time: wait() for it first")
        self._queue.append(job)

    def wait(self) -> tuple[Job, Outcome]:
        job = self._queue.popleft()
        zygote, why_not = None, None
        if self._zygotes is not None:
            try:
                zygote = self._zygotes.get(*job.preload)
            except ZygoteDied as exc:  # this job starts a new interpreter instead; the record says so
                zygote, why_not = None, str(exc)
        envelope = {"request": job.request.to_json(), "placement": self.placement.as_dict()}
        try:
            outcome = run_isolated(envelope, self.log_dir, job.log_name, job.timeout_s, job.max_memory_bytes, zygote)
        except OSError as exc:  # the parent could not write the request or read the result
            raise StorageFailed(f"cannot write in {self.log_dir}: {exc.strerror or exc}") from None
        if outcome.exit_code == EXIT_RESULT_UNWRITABLE:
            raise StorageFailed(f"the cell's process could not write its result in {self.log_dir}: "
                                f"{(outcome.result.get('log_tail') or '')[-300:]}")
        self._tidy(job.log_name)
        process = ({"start": "exec", **({"not_forked": why_not} if why_not else {})} if zygote is None else
                   {"start": "fork", "preloaded": zygote.preloaded, "zygote_import_s": zygote.import_s})
        return job, Outcome(_result(outcome.result), outcome.wall_s, process)

    def _tidy(self, stem: str) -> None:
        """The record now holds the result; keep only a non-empty log, cut to its head and tail."""
        for suffix in (".request.json", ".result.json"):
            (self.log_dir / f"{stem}{suffix}").unlink(missing_ok=True)
        log = self.log_dir / f"{stem}.log"
        if log.exists() and log.stat().st_size == 0:
            log.unlink()
        elif log.exists():
            cap_log(log)

    def close(self) -> None:
        """End the zygotes this executor started (idempotent)."""
        if self._zygotes is not None:
            self._zygotes.close()


LOG_KEEP_BYTES = 256 * 1024  # of a cell's log, the first and the last this many bytes are kept


def cap_log(path: Path, keep_bytes: int = LOG_KEEP_BYTES) -> None:
    """A chatty library or plug-in (one wrote 218 MB) leaves at most 2 x keep_bytes of log per cell:
    its head and its tail, with a line saying how much was dropped between them."""
    size = path.stat().st_size
    if size <= 2 * keep_bytes:
        return
    with path.open("rb") as handle:
        head = handle.read(keep_bytes)
        handle.seek(size - keep_bytes)
        tail = handle.read(keep_bytes)
    marker = f"\n[... {size - 2 * keep_bytes:,} bytes of this log dropped by the harness ...]\n".encode()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(head + marker + tail)
    tmp.replace(path)


def _result(answer: dict[str, Any]) -> CellResult:
    """The worker's answer as a result; one the parent cannot read is a crash of that cell, named."""
    try:
        return CellResult.from_json(answer)
    except ValueError as exc:
        return CellResult(status="crashed", error=f"the cell's process wrote a result this harness cannot read: {exc}")


def default_placement(run_dir: Path) -> Placement:
    from harness.paths import cache_dir

    return Placement(cache_dir=cache_dir(), run_dir=run_dir)
