"""Engines running at once (a Jetson's GPU and each of its DLA cores), and the images per second they give together.

Each engine runs in its own trtexec process, which times its inferences against its own zero: the moment it
logs "Starting inference" (samples/trtexec/trtexec.cpp logs it, then runInference sets cpuStart and records
gpuStart; every exported time is from those). The harness stamps, with its own monotonic clock, when each
process's line arrives through its pipe; that puts every engine's inferences on one time line, to within
the pipe's latency (well under a millisecond against a window of seconds).

The figure is taken over the window where all engines were past their warm-up and still running: from the
last engine's start plus the warm-up, to the first engine's last inference. Each inference counts for the
fraction of its compute span inside the window, so an engine's images/s is its work done in the window
divided by the window's length, and the aggregate is their sum, as jetson_benchmarks reports it (but over
a common window rather than each engine's own run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

START_LINE = "Starting inference"  # what trtexec logs just before its trace's zero (8.2 to 11.x)
MIN_WINDOW_FRACTION = 0.5  # an overlap shorter than half the window asked for is no measurement of "at once"


@dataclass(frozen=True)
class EngineTrace:
    """One engine's run, on the harness's clock."""

    label: str  # 'cuda', 'dla:0', ...
    started_s: float  # the harness's monotonic time at which its process logged START_LINE (its trace's zero)
    spans_ms: list[tuple[float, float]]  # (startComputeMs, endComputeMs) of each inference, from that zero
    batch_size: int


@dataclass(frozen=True)
class Overlap:
    """What the engines did together in their common window."""

    window_s: float  # the common window's length (0 where they never overlapped past warm-up)
    images_per_s: dict[str, float]  # each engine's, while the others ran
    aggregate_images_per_s: float
    inferences: dict[str, float]  # each engine's inferences in the window (fractions at its edges)
    valid: bool
    why: str | None  # why not valid

    def as_dict(self) -> dict[str, Any]:
        return {"window_s": round(self.window_s, 3), "images_per_s": self.images_per_s,
                "aggregate_images_per_s": self.aggregate_images_per_s, "inferences": self.inferences,
                "valid": self.valid, "why": self.why}


def _inside_s(span_s: tuple[float, float], window: tuple[float, float]) -> float:
    return max(0.0, min(span_s[1], window[1]) - max(span_s[0], window[0]))


def overlap(traces: list[EngineTrace], warmup_s: float, wanted_window_s: float) -> Overlap:
    """Each engine's images/s and their sum over the window where all ran past `warmup_s`; invalid (with the
    reason) where that window is shorter than MIN_WINDOW_FRACTION of `wanted_window_s`."""
    if not traces or any(not t.spans_ms for t in traces):
        empty = [t.label for t in traces if not t.spans_ms] or ["no engine"]
        return Overlap(0.0, {}, 0.0, {}, False, f"{', '.join(empty)} ran no inference")
    start = max(t.started_s for t in traces) + warmup_s
    end = min(t.started_s + max(e for _, e in t.spans_ms) / 1e3 for t in traces)
    window_s = max(0.0, end - start)
    counted: dict[str, float] = {}
    rates: dict[str, float] = {}
    for trace in traces:
        done = sum(_inside_s((trace.started_s + s / 1e3, trace.started_s + e / 1e3), (start, end)) / ((e - s) / 1e3)
                   for s, e in trace.spans_ms if e > s)
        counted[trace.label] = round(done, 2)
        rates[trace.label] = done * trace.batch_size / window_s if window_s > 0 else 0.0
    needed_s = MIN_WINDOW_FRACTION * wanted_window_s
    why = None if window_s >= needed_s else \
        (f"the engines ran together for {window_s:.1f} s past warm-up, less than the {needed_s:g} s needed "
         "(one started or ended much later than the others: a slow engine load, or a run cut short)")
    return Overlap(window_s, rates, sum(rates.values()), counted, why is None, why)
