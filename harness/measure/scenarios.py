"""Deployment scenarios, as MLPerf LoadGen defines them, on any runtime behind the contract.

- single-stream: one query (a batch of the cell's batch size) after another, the next sent when the last
  returns: today's timed loop; its figure is the 90th-percentile latency.
- multi-stream: the same back-to-back queries, judged at the 99th percentile (LoadGen's MultiStream sends
  queries of 8 samples, one after the other; here a query is the cell's batch).
- server: queries arrive at random (a Poisson process: exponential gaps, seeded) at a target rate, and wait in
  line while the runtime is busy; a query's latency runs from its arrival to its answer, queueing included.
  The harness finds the highest rate whose 99th-percentile latency holds a bound, by bisection.
- offline: every query available at once; the runtime's own parallelism (several instances, each on its own
  thread and share of the CPU cores) answers as many as it can: the figure is images per second.

A percentile is stated only where enough queries back it: `percentile_estimate` is LoadGen's early-stopping
estimate — the smallest latency L such that, with 99 % confidence, at least the stated share of queries
finish within L, given how many of the measured ones did not (a one-sided binomial test). With no query over
L it needs ceil(ln(0.01) / ln(p)) queries: 44 for p90, 459 for p99.

Nothing here imports a runtime's library; the loops take a `run_once` callable (the runtime's run +
synchronize), a clock and a sleep, so tests drive them with a fake runtime and a fake clock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from harness.cells import SCENARIOS

SINGLE_STREAM, MULTI_STREAM, SERVER, OFFLINE = SCENARIOS
PERCENTILE = {SINGLE_STREAM: 0.90, MULTI_STREAM: 0.99, SERVER: 0.99}  # the latency percentile each states
CONFIDENCE = 0.99  # of each stated percentile (LoadGen's)
DEFAULT_BOUND_FACTOR = 5.0  # the server's p99 bound where none is given: this many single-stream medians

Clock = Callable[[], float]  # seconds, monotonic
Sleep = Callable[[float], None]


def _log_binomial_cdf(failures: int, trials: int, p_success: float) -> float:
    """log P(X <= failures) for X ~ Binomial(trials, 1 - p_success): at most `failures` of `trials` queries
    over the latency, where each is within it with probability `p_success`."""
    q = 1.0 - p_success
    terms = [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
             + k * math.log(q) + (trials - k) * math.log(p_success) for k in range(failures + 1)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def queries_needed(percentile: float, confidence: float = CONFIDENCE, over: int = 0) -> int:
    """How many queries must be within a latency, with `over` queries beyond it, for the claim "the
    `percentile` latency is at most that" to hold with `confidence` (LoadGen's early-stopping minimum)."""
    within = max(1, math.ceil(math.log(1 - confidence) / math.log(percentile)))
    while _log_binomial_cdf(over, within + over, percentile) > math.log(1 - confidence):
        within += 1
    return within + over


@dataclass(frozen=True)
class PercentileEstimate:
    """The stated percentile of a scenario's latencies, with `confidence`; `latency_ms` None when too few
    queries ran (`queries_needed` says how many it takes with none over)."""

    percentile: float
    confidence: float
    queries: int
    latency_ms: float | None
    over: int | None  # how many measured queries took longer than latency_ms
    queries_needed: int
    empirical_ms: float | None  # the plain order statistic, for comparison: not a claim

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile_estimate(latencies_ms: list[float], percentile: float,
                        confidence: float = CONFIDENCE) -> PercentileEstimate:
    """LoadGen's early-stopping estimate: the smallest measured latency L such that, with `confidence`, at least
    `percentile` of queries finish within L, given the t measured queries over L (the largest t that passes)."""
    ordered = sorted(latencies_ms, reverse=True)
    n = len(ordered)
    needed = queries_needed(percentile, confidence)
    empirical = ordered[min(n - 1, int(math.floor((1 - percentile) * n)))] if n else None
    limit = math.log(1 - confidence)
    best: int | None = None
    for over in range(n):
        if _log_binomial_cdf(over, n, percentile) > limit:
            break
        best = over
    latency = ordered[best] if best is not None else None
    return PercentileEstimate(percentile, confidence, n, latency, best, needed, empirical)


def back_to_back(run_once: Callable[[], float], count: int, min_duration_s: float, max_duration_s: float) -> list[float]:
    """Queries one after the other, each timed by `run_once` (ms), until `count` ran and `min_duration_s` passed,
    or `max_duration_s` passed."""
    start, latencies = time.perf_counter(), []
    while True:
        latencies.append(run_once())
        elapsed_s = time.perf_counter() - start
        if (len(latencies) >= count and elapsed_s >= min_duration_s) or elapsed_s >= max_duration_s:
            return latencies


def poisson_arrivals_s(rate_qps: float, count: int, seed: int) -> list[float]:
    """Arrival times (s from the start) of `count` queries at `rate_qps` on average: exponential gaps, seeded."""
    rng = random.Random(seed)
    now, times = 0.0, []
    for _ in range(count):
        now += rng.expovariate(rate_qps)
        times.append(now)
    return times


def serve(run_once: Callable[[], None], arrivals_s: list[float], clock: Clock, sleep: Sleep) -> list[float]:
    """One server, first come first served: each query starts when it has arrived and the one before it is
    answered; its latency (ms) runs from its arrival to its answer. Inside each query: run + synchronize."""
    start = clock()
    latencies = []
    for arrival in arrivals_s:
        wait = start + arrival - clock()
        if wait > 0:
            sleep(wait)
        run_once()
        latencies.append((clock() - start - arrival) * 1e3)
    return latencies


@dataclass(frozen=True)
class Trial:
    """One target rate of the server scenario: its p99 estimate and whether it held the bound."""

    rate_qps: float
    queries: int
    p99_ms: float | None
    empirical_p99_ms: float | None
    held: bool
    wall_s: float


@dataclass
class ServerResult:
    bound_ms: float
    capacity_qps: float  # back-to-back queries per second (single stream): the rate the bisection starts under
    rate_qps: float | None  # the highest rate that held the bound; None where even the lowest tried did not
    p99_ms: float | None  # the estimate at that rate
    trials: list[Trial] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"bound_ms": self.bound_ms, "capacity_qps": self.capacity_qps, "rate_qps": self.rate_qps,
                "p99_ms": self.p99_ms, "trials": [asdict(t) for t in self.trials]}


def trial(run_once: Callable[[], None], rate_qps: float, bound_ms: float, seed: int, clock: Clock, sleep: Sleep,
          min_queries: int, min_duration_s: float) -> Trial:
    """Queries at `rate_qps` (Poisson), enough of them for the p99 to be stated and to last `min_duration_s`."""
    count = max(min_queries, math.ceil(rate_qps * min_duration_s))
    start = clock()
    latencies = serve(run_once, poisson_arrivals_s(rate_qps, count, seed), clock, sleep)
    estimate = percentile_estimate(latencies, PERCENTILE[SERVER])
    held = estimate.latency_ms is not None and estimate.latency_ms <= bound_ms
    return Trial(rate_qps, count, estimate.latency_ms, estimate.empirical_ms, held, clock() - start)


def highest_rate(run_once: Callable[[], None], capacity_qps: float, bound_ms: float, seed: int, clock: Clock,
                 sleep: Sleep, steps: int = 5, min_duration_s: float = 1.0) -> ServerResult:
    """The highest rate whose p99 holds `bound_ms`, by bisection between 0 and the single-stream capacity (at
    and above it the queue grows without end), starting at half of it: each trial that holds raises the lower
    end, each that does not lowers the upper one. A trial needs at least 459 queries (the p99's minimum), so a
    rate r lasts about 459 / r seconds: the search stops going down below an eighth of the capacity."""
    result = ServerResult(bound_ms, capacity_qps, None, None)
    needed = queries_needed(PERCENTILE[SERVER])
    low, high = 0.0, capacity_qps
    while len(result.trials) < steps:
        rate = (low + high) / 2
        if rate < capacity_qps / 8:
            break
        outcome = trial(run_once, rate, bound_ms, seed + len(result.trials), clock, sleep, needed, min_duration_s)
        result.trials.append(outcome)
        if outcome.held:
            low, result.rate_qps, result.p99_ms = rate, rate, outcome.p99_ms
        else:
            high = rate
    return result


@dataclass(frozen=True)
class OfflineResult:
    streams: int
    queries: int
    images: int
    wall_s: float
    images_per_s: float
    queries_per_stream: list[int] | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def offline_queued(start: Callable[[], None], wait_all: Callable[[], None], streams: int, batch_size: int,
                   duration_s: float, clock: Clock) -> OfflineResult:
    """The runtime's own parallelism: queries queued back to back (`start` blocks while all `streams` requests
    are busy) until `duration_s` has passed, then every one in flight waited for; images per second over the whole
    window, the wait included."""
    queries = 0
    begin = clock()
    deadline = begin + duration_s
    while clock() < deadline:
        start()
        queries += 1
    wait_all()
    wall_s = clock() - begin
    return OfflineResult(streams, queries, queries * batch_size, wall_s, queries * batch_size / wall_s, None)


def offline(run_onces: list[Callable[[], None]], batch_size: int, duration_s: float, clock: Clock) -> OfflineResult:
    """Every instance answers queries back to back on a thread of its own until `duration_s` has passed (each
    finishes the query in hand); images per second over the whole window. Inside each query: run +
    synchronize of that instance (the libraries release Python's lock while they compute)."""
    counts = [0] * len(run_onces)
    start = clock()
    deadline = start + duration_s

    def loop(index: int) -> None:
        while clock() < deadline:
            run_onces[index]()
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,), name=f"offline-{i}") for i in range(len(run_onces))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = clock() - start
    queries = sum(counts)
    return OfflineResult(len(run_onces), queries, queries * batch_size, wall_s, queries * batch_size / wall_s,
                         counts)
