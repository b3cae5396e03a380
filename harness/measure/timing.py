"""The harness's clock: warm-up, the stopping rule, and the statistics of the kept samples.

A timed sample is exactly `runtime.run(); runtime.synchronize()` between two host readings of
`time.perf_counter_ns()`. Inputs were placed by `prepare()` beforehand and outputs are not copied
back inside it. The host samples are the headline figure for every runtime.

Where the runtime has a clock of its own, its samples are kept beside the host ones, made one of two ways
(`Measurement.device_method` records which):
- QUEUED_AHEAD, for clocks that are events on the runtime's stream (CUDA events: `StreamEventClock`): after the
  host loop, a pass of its own that keeps one run queued behind the run being timed, as trtexec does for its
  "GPU Compute Time" (NVIDIA/TensorRT#3493): each run's start event waits on the device for the run before
  it, so the host's enqueue of a run is hidden when it is shorter than the run before it. The host loop
  cannot do this: it synchronizes after every run, so a start event on an idle stream fires at once and the
  device time would count the host's enqueue.
- IN_LOOP, for clocks that stamp themselves (OpenVINO's request latency): marks just inside the host
  readings of each host sample, read after it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from runtimes.base import Runtime, StreamEventClock
from harness.policy import Policy  # noqa: F401 - where the timing policy lives; re-exported

Clock = Callable[[], int]  # nanoseconds, monotonic

QUEUED_AHEAD = ("queued ahead: events around each run with the next run already queued behind it, as trtexec's "
                "GPU Compute Time (the host's enqueue overlapped, not counted), in a pass after the host loop")
IN_LOOP = "in the host loop: the library's own stamps for each run()+synchronize() sample"
QUEUE_DEPTH = 2  # runs in flight in the queued-ahead pass: the one timed and one behind it (trtexec's default)


QUICK = Policy()
THOROUGH = Policy(warmup_min_iters=10, warmup_min_s=2.0, warmup_stable_rel=0.05, warmup_max_s=30.0,
                  min_samples=100, min_duration_s=10.0, max_samples=10_000, max_duration_s=120.0)

# A tail percentile q is reported only when at least this many samples lie beyond it: n * (1 - q) >= 5.
# So p90 needs 50 samples, p95 100 and p99 500; below that the field is null.
SAMPLES_BEYOND_TAIL = 5
TAILS = {"p90": 0.90, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Statistics:
    """Statistics of per-batch times in ms; per-image figures divide by the batch size."""

    samples: int
    median_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    min_ms: float
    max_ms: float
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    per_image_median_ms: float
    images_per_s: float | None  # None only if the median is 0 (below the clock resolution)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(sorted_values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(batch_times_ms: list[float], batch_size: int) -> Statistics:
    if not batch_times_ms:
        raise ValueError("no samples to summarize")
    ordered = sorted(batch_times_ms)
    n = len(ordered)
    median = statistics.median(ordered)
    mean = statistics.fmean(ordered)
    std = statistics.stdev(ordered) if n > 1 else 0.0
    tails = {key: (percentile(ordered, q) if n * (1 - q) >= SAMPLES_BEYOND_TAIL - 1e-9 else None)
             for key, q in TAILS.items()}
    return Statistics(
        samples=n, median_ms=median, mean_ms=mean, std_ms=std, cv=std / mean if mean > 0 else 0.0,
        min_ms=ordered[0], max_ms=ordered[-1],
        p90_ms=tails["p90"], p95_ms=tails["p95"], p99_ms=tails["p99"],
        per_image_median_ms=median / batch_size,
        images_per_s=batch_size * 1000.0 / median if median > 0 else None,
    )


@dataclass
class Measurement:
    """Everything the timed loop produced; every sample is kept."""

    warmup_iters: int
    warmup_s: float
    warmup_stop: str
    host_ms: list[float]
    device_ms: list[float] | None
    stop_reason: str
    loop_s: float
    device_clock: str | None = None  # the device clock's `source`, where the runtime has one
    device_method: str | None = None  # QUEUED_AHEAD or IN_LOOP: how the device samples were taken


@dataclass(frozen=True)
class WarmUp:
    iters: int
    seconds: float
    stop: str  # "minimums met", "stable" or "time cap"


def _one_sample(runtime: Runtime, clock: Clock) -> float:
    start = clock()
    runtime.run()
    runtime.synchronize()
    return (clock() - start) / 1e6


def warm_up(runtime: Runtime, policy: Policy, clock: Clock = time.perf_counter_ns,
            previous_ms: float | None = None) -> WarmUp:
    """Untimed runs (run + synchronize) until the warm-up rule of `Policy` is met.

    `previous_ms` is the cell's first run, the reference for the first warm-up run's stability.
    """
    start = clock()
    iters, last_ms = 0, None
    while True:
        elapsed_s = (clock() - start) / 1e9
        if iters >= policy.warmup_min_iters and elapsed_s >= policy.warmup_min_s:
            if policy.warmup_stable_rel is None:
                return WarmUp(iters, elapsed_s, "minimums met")
            if _steady(previous_ms, last_ms, policy.warmup_stable_rel):
                return WarmUp(iters, elapsed_s, "stable")
        if elapsed_s >= policy.warmup_max_s:
            return WarmUp(iters, elapsed_s, "time cap")
        if last_ms is not None:
            previous_ms = last_ms
        last_ms = _one_sample(runtime, clock)
        iters += 1


def _steady(previous_ms: float | None, last_ms: float | None, tolerance_rel: float) -> bool:
    if previous_ms is None or last_ms is None:
        return False
    return abs(last_ms - previous_ms) <= tolerance_rel * previous_ms


def sample(runtime: Runtime, policy: Policy, clock: Clock = time.perf_counter_ns,
           first_run_ms: float | None = None) -> Measurement:
    """Warm up (after the cell's first run, if given), then take timed samples until the policy says stop."""
    warmup = warm_up(runtime, policy, clock, first_run_ms)
    device_clock = runtime.device_clock()
    in_loop = device_clock if device_clock is not None and not isinstance(device_clock, StreamEventClock) else None
    host_ms: list[float] = []
    device_ms: list[float] | None = [] if in_loop is not None else None
    loop_start = clock()
    while True:
        if in_loop is None:
            host_ms.append(_one_sample(runtime, clock))
        else:
            start = clock()
            in_loop.mark_start()
            runtime.run()
            in_loop.mark_end()
            runtime.synchronize()
            host_ms.append((clock() - start) / 1e6)
            device_ms.append(in_loop.elapsed_ms())  # type: ignore[union-attr]
        elapsed_s = (clock() - loop_start) / 1e9
        reason = _stop_reason(len(host_ms), elapsed_s, policy)
        if reason:
            break
    method = None
    if in_loop is not None:
        method = IN_LOOP
    elif device_clock is not None:
        assert isinstance(device_clock, StreamEventClock)
        device_ms, method = queued_ahead(runtime, device_clock, len(host_ms)), QUEUED_AHEAD
    return Measurement(warmup.iters, warmup.seconds, warmup.stop, host_ms, device_ms, reason, elapsed_s,
                       device_clock.source if device_clock is not None else None, method)


def queued_ahead(runtime: Runtime, first_clock: StreamEventClock, count: int, depth: int = QUEUE_DEPTH) -> list[float]:
    """`count` device times of runs kept `depth` deep in the runtime's stream: run i+1 is queued before the
    harness waits for run i's end event, so run i+1's start event fires when run i ends on the device (not
    when the host queued it). Each clock (event pair) is reused only after its run was read."""
    clocks = [first_clock, *(_stream_clock(runtime) for _ in range(depth - 1))]
    pending: deque[StreamEventClock] = deque()
    times: list[float] = []
    for index in range(count):
        if len(pending) == depth:
            times.append(_read(pending.popleft()))
        clock = clocks[index % depth]
        clock.mark_start()
        runtime.run()
        clock.mark_end()
        pending.append(clock)
    while pending:
        times.append(_read(pending.popleft()))
    runtime.synchronize()
    return times


def _stream_clock(runtime: Runtime) -> StreamEventClock:
    clock = runtime.device_clock()
    assert isinstance(clock, StreamEventClock), "a runtime gives the same kind of clock every time"
    return clock


def _read(clock: StreamEventClock) -> float:
    clock.wait_end()
    return clock.elapsed_ms()


def _stop_reason(n: int, elapsed_s: float, policy: Policy) -> str | None:
    if n >= policy.min_samples and elapsed_s >= policy.min_duration_s:
        return "minimums met"
    if n >= policy.max_samples:
        return "sample cap"
    if elapsed_s >= policy.max_duration_s:
        return "time cap"
    return None


def from_trace(latency_ms: list[float], device_ms: list[float], start_ms: list[float], policy: Policy,
               device_clock: str, device_method: str) -> Measurement:
    """The harness's warm-up and stopping rules applied to a tool's per-run records (trtexec --exportTimes),
    run with the tool's own warm-up off: `latency_ms` plays the host samples (the rules judge it), `device_ms`
    the device clock's, `start_ms` when each run started (ms, any origin). Warm-up drops leading runs until its
    minimum count and time are met and the last run is within `warmup_stable_rel` of the one before (or its
    time cap); sampling then keeps runs until both minimums are met, or a cap; a trace that ends first stops
    with 'trace ended' (the verdict then says too few samples)."""
    if not latency_ms:
        raise ValueError("the tool recorded no run")
    origin, skip, warm_stop = start_ms[0], 0, "minimums met"
    while skip < len(latency_ms):
        elapsed_s = (start_ms[skip] - origin) / 1e3
        if skip >= policy.warmup_min_iters and elapsed_s >= policy.warmup_min_s:
            if policy.warmup_stable_rel is None:
                break
            if skip >= 2 and _steady(latency_ms[skip - 2], latency_ms[skip - 1], policy.warmup_stable_rel):
                warm_stop = "stable"
                break
        if elapsed_s >= policy.warmup_max_s:
            warm_stop = "time cap"
            break
        skip += 1
    loop_start = start_ms[skip] if skip < len(start_ms) else start_ms[-1]
    host: list[float] = []
    device: list[float] = []
    reason, elapsed_s = "trace ended", 0.0
    for index in range(skip, len(latency_ms)):
        host.append(latency_ms[index])
        device.append(device_ms[index])
        elapsed_s = (start_ms[index] + latency_ms[index] - loop_start) / 1e3
        stop = _stop_reason(len(host), elapsed_s, policy)
        if stop:
            reason = stop
            break
    if not host:  # every run went to warm-up: keep the last one rather than none
        host, device, reason = latency_ms[-1:], device_ms[-1:], "trace ended"
    return Measurement(skip, (loop_start - origin) / 1e3, warm_stop, host, device, reason, elapsed_s, device_clock,
                       device_method)
