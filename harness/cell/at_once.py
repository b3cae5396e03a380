"""Engines timed alone and then all at once by their tool (trtexec): a Jetson's GPU plus every DLA core.

What jetson_benchmarks reports for a board with DLA cores is the images/s of the GPU and each DLA running the
same model at the same time. Here each engine first runs alone, then all run together, each in a trtexec
process of its own, all measured the same way (harness.measure.concurrent: the work done in a common
window past warm-up, on the harness's clock), so "alone" and "at once" compare like with like. The
engines are the ones the check's ordinary cells built and verified; nothing here builds one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from harness.measure import jetson as board
from harness.measure.concurrent import START_LINE, EngineTrace, overlap
from harness.measure.timing import QUICK

WARMUP_S = 2.0  # left out at the start of each window (clocks rising, caches filling)
START_SLACK_S = 5.0  # extra run time so engines whose loads differ (a DLA plan loads slower) still overlap
STOP_WAIT_S = 30.0  # after Ctrl-C, how long to wait for the killed tools to be reaped


@dataclass(frozen=True)
class Timed:
    """One engine's run: its trace on the harness's clock and the tool command that ran it."""

    trace: EngineTrace
    command: list[str]


def _policy(run_s: float) -> dict[str, Any]:
    """The tool's run: one warm-up inference counted, then at least `run_s` seconds."""
    return replace(QUICK, warmup_min_iters=1, warmup_min_s=0.0, min_samples=1, min_duration_s=run_s,
                   max_duration_s=run_s * 2).as_dict()


def _run_together(runtimes: dict[str, Any], batch_size: int, run_s: float) -> dict[str, Timed]:
    """Every runtime's tool started at the same moment (a thread each); each engine's trace zero stamped when
    its process logs START_LINE. RuntimeError naming the engine where one fails."""
    stamps: dict[str, float] = {}
    runs: dict[str, Any] = {}
    failures: dict[str, BaseException] = {}

    def one(label: str, runtime: Any) -> None:
        def on_line(line: str) -> None:
            if START_LINE in line and label not in stamps:
                stamps[label] = time.monotonic()

        try:
            runs[label] = runtime.measure(_policy(run_s), on_start=pids.append, on_line=on_line)
        except Exception as exc:  # reported below, by engine
            failures[label] = exc
        finally:
            ended[label].set()

    pids: list[int] = []
    ended = {label: threading.Event() for label in runtimes}
    threads = [threading.Thread(target=one, args=item, name=f"at-once-{item[0]}") for item in runtimes.items()]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # Ctrl-C: no tool left running on the board, then the interrupt goes on
        _stop(pids)
        for event in ended.values():  # not join(): an interrupted join marks its thread stopped (bpo-45274)
            event.wait(STOP_WAIT_S)
        raise
    if failures:
        label, exc = next(iter(failures.items()))
        raise RuntimeError(f"the {label} engine failed while running with the others: {exc}")
    silent = [label for label in runtimes if label not in stamps]
    if silent:
        raise RuntimeError(f"trtexec on {', '.join(silent)} never logged '{START_LINE}': its times cannot be put "
                           "on the others' time line")
    return {label: Timed(EngineTrace(label, stamps[label],
                                     [(r["startComputeMs"], r["startComputeMs"] + r["computeMs"])
                                      for r in runs[label].records], batch_size),
                         runs[label].command) for label in runtimes}


def _stop(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # already ended
            pass


def alone_and_at_once(runtimes: dict[str, Any], batch_size: int, window_s: float,
                      progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Each engine alone for `window_s` past warm-up, then all together, with the board's clocks and temperature
    traced while they run together. `runtimes`: loaded tool runtimes by device label ('cuda', 'dla:0')."""
    alone: dict[str, Any] = {}
    for label, runtime in runtimes.items():
        progress(f"{label} alone")
        timed = _run_together({label: runtime}, batch_size, WARMUP_S + window_s)
        alone[label] = overlap([timed[label].trace], WARMUP_S, window_s).as_dict()
    progress(f"{', '.join(runtimes)} at once")
    trace = board.ClockTrace() if board.facts().get("is_jetson") else None
    if trace is not None:
        trace.start()
    try:
        together = _run_together(runtimes, batch_size, WARMUP_S + window_s + START_SLACK_S)
    finally:
        if trace is not None:
            trace.stop()
    at_once = overlap([t.trace for t in together.values()], WARMUP_S, window_s)
    return {"batch_size": batch_size, "window_s": window_s, "warmup_s": WARMUP_S,
            "method": "work done in the window common to all engines past warm-up, per second (compute spans from "
                      "trtexec --exportTimes, on the harness's clock from each process's 'Starting inference' line)",
            "alone": alone, "at_once": at_once.as_dict(),
            "commands": {label: t.command for label, t in together.items()},
            "board_during": trace.summary() if trace is not None else None}
