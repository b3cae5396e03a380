"""The most accurate model under memory, speed and accuracy constraints, and the Pareto front."""

from __future__ import annotations

from dataclasses import dataclass

from harness.reports.data import NO_MODEL_RUNTIME, Point
from harness.reports.tradeoff import BASE_PRECISION, accuracy_drop

LATENCY_STATS = ("median", "p90")


@dataclass(frozen=True)
class Constraints:
    """Limits a deployment sets. Speed is per image (images/s at the batch size); latency is per batch."""

    max_memory_bytes: int | None = None
    min_fps: float | None = None
    max_latency_ms: float | None = None
    latency_stat: str = "median"  # or p90: the tail a deadline cares about (needs >= 50 samples)
    min_top1: float | None = None
    max_accuracy_drop: float | None = None  # points of measured top-1 below the model's fp32 on the same runtime
    batch_size: int = 1
    runtime: str | None = None
    device: str | None = None  # a part of the device's name, e.g. "H200" or "EPYC"
    precision: str | None = None
    max_watts: float | None = None  # average power while running, from the device's primary energy source
    max_p99_ms: float | None = None  # the stated p99 of a multi-stream or server cell
    at_rate_qps: float | None = None  # a server cell's highest rate that held its p99 bound, at least this

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenarios whose cells answer these limits: server for a rate, multi-stream or server for a p99,
        single-stream (the timed loop) otherwise."""
        if self.at_rate_qps is not None:
            return ("server",)
        return ("multi-stream", "server") if self.max_p99_ms is not None else ("single-stream",)

    def describe(self) -> str:
        parts = [f"batch {self.batch_size}"]
        if self.max_memory_bytes is not None:
            parts.append(f"memory <= {self.max_memory_bytes / 1e9:g} GB")
        if self.min_fps is not None:
            parts.append(f">= {self.min_fps:g} images/s")
        if self.max_latency_ms is not None:
            parts.append(f"{self.latency_stat} batch latency <= {self.max_latency_ms:g} ms")
        if self.min_top1 is not None:
            parts.append(f"top-1 >= {self.min_top1:g} %")
        if self.max_accuracy_drop is not None:
            parts.append(f"top-1 drop from fp32 <= {self.max_accuracy_drop:g} points (measured)")
        if self.max_watts is not None:
            parts.append(f"<= {self.max_watts:g} W while running")
        if self.max_p99_ms is not None:
            parts.append(f"p99 <= {self.max_p99_ms:g} ms")
        if self.at_rate_qps is not None:
            parts.append(f"server holds >= {self.at_rate_qps:g} queries/s")
        if self.scenarios != ("single-stream",):
            parts.append(f"scenario {' or '.join(self.scenarios)}")
        parts += [f"{name} {value}" for name, value in
                  (("runtime", self.runtime), ("device", self.device), ("precision", self.precision)) if value]
        return ", ".join(parts)


def _latency_ms(point: Point, stat: str) -> float | None:
    return point.batch_median_ms if stat == "median" else point.batch_p90_ms


def unmeasured_lower_precision(point: Point, constraints: Constraints) -> bool:
    """Ranking across precisions needs each fp16/bf16/int8 cell's own measured top-1: a published figure is
    fp32's, and would let a faster lower precision win a tie it has not earned. With --precision given, every
    candidate shares the precision, and published figures rank them as before."""
    return (constraints.precision is None and point.precision != BASE_PRECISION
            and (point.accuracy is None or point.accuracy.kind != "measured"))


def in_scope(point: Point, constraints: Constraints) -> bool:
    """Measured at the batch size, on the runtime/device/precision asked for, with an accuracy to rank by (a
    measured one for a lower precision ranked against others); the null runtime's cells (no model ran) only
    when asked for by name."""
    return (point.ok and point.batch_size == constraints.batch_size
            and (point.runtime != NO_MODEL_RUNTIME or constraints.runtime == NO_MODEL_RUNTIME)
            and point.accuracy is not None and point.accuracy.top1 is not None
            and not unmeasured_lower_precision(point, constraints)
            and (constraints.runtime is None or point.runtime == constraints.runtime)
            and (constraints.device is None or constraints.device.lower() in point.device.lower())
            and (constraints.precision is None or point.precision == constraints.precision)
            and point.scenario in constraints.scenarios)


def violations(point: Point, constraints: Constraints, population: list[Point] | None = None) -> list[str]:
    """Why the point does not meet the limits (empty when it does); a figure not measured fails its limit.
    `population`: the points an fp32 counterpart is looked for in (for --max-accuracy-drop)."""
    problems = []
    if constraints.max_accuracy_drop is not None:
        drop = accuracy_drop(point, population or [])
        if drop is None:
            problems.append(f"no measured top-1 for {point.precision} and fp32 on {point.runtime}: the drop is unknown")
        elif drop > constraints.max_accuracy_drop:
            problems.append(f"top-1 {drop:.2f} points below fp32 > {constraints.max_accuracy_drop:g}")
    if constraints.max_memory_bytes is not None:
        memory = point.memory_bytes
        if memory is None:
            problems.append(f"no {point.memory_source} memory reading")
        elif memory > constraints.max_memory_bytes:
            problems.append(f"memory {memory / 1e9:.2f} GB > {constraints.max_memory_bytes / 1e9:g} GB")
    if constraints.max_watts is not None:
        if point.average_watts is None:
            problems.append(f"no {point.energy_source} power reading (an energy pass where it can be read)")
        elif point.average_watts > constraints.max_watts:
            problems.append(f"{point.average_watts:.1f} W > {constraints.max_watts:g} W")
    if constraints.min_fps is not None and (point.images_per_s or 0.0) < constraints.min_fps:
        problems.append(f"{point.images_per_s or 0:.1f} images/s < {constraints.min_fps:g}")
    if constraints.max_latency_ms is not None:
        latency = _latency_ms(point, constraints.latency_stat)
        if latency is None:
            problems.append(f"no {constraints.latency_stat} latency (p90 needs >= 50 samples)")
        elif latency > constraints.max_latency_ms:
            problems.append(f"{constraints.latency_stat} {latency:.1f} ms > {constraints.max_latency_ms:g} ms")
    if constraints.max_p99_ms is not None:
        if point.p99_ms is None:
            problems.append("no stated p99 (too few queries, or no rate held its bound)")
        elif point.p99_ms > constraints.max_p99_ms:
            problems.append(f"p99 {point.p99_ms:.1f} ms > {constraints.max_p99_ms:g} ms")
    if constraints.at_rate_qps is not None and (point.rate_qps or 0.0) < constraints.at_rate_qps:
        held = f"{point.rate_qps:.1f}" if point.rate_qps else "no rate"
        problems.append(f"server holds {held} queries/s < {constraints.at_rate_qps:g}")
    if constraints.min_top1 is not None and point.accuracy.top1 < constraints.min_top1:  # type: ignore[union-attr]
        problems.append(f"top-1 {point.accuracy.top1:.2f} % < {constraints.min_top1:g} %")  # type: ignore[union-attr]
    return problems


def ranked(points: list[Point], constraints: Constraints) -> list[Point]:
    """Every in-scope point that meets the limits, most accurate first (ties: faster first)."""
    fitting = [p for p in points if in_scope(p, constraints) and not violations(p, constraints, points)]
    return sorted(fitting, key=lambda p: (-p.accuracy.top1, -(p.images_per_s or 0.0), p.model))  # type: ignore[union-attr]


def best(points: list[Point], constraints: Constraints) -> Point | None:
    fitting = ranked(points, constraints)
    return fitting[0] if fitting else None


def _dominates(a: Point, b: Point) -> bool:
    """a is at least as accurate, as fast and as small as b, and better in one of them."""
    a_values = (a.accuracy.top1, a.images_per_s or 0.0, -(a.memory_bytes or float("inf")))  # type: ignore[union-attr]
    b_values = (b.accuracy.top1, b.images_per_s or 0.0, -(b.memory_bytes or float("inf")))  # type: ignore[union-attr]
    return all(x >= y for x, y in zip(a_values, b_values)) and a_values != b_values


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on top-1, images/s and memory at once, most accurate first."""
    front = [p for p in points if not any(_dominates(q, p) for q in points if q is not p)]
    return sorted(front, key=lambda p: (-p.accuracy.top1, p.model))  # type: ignore[union-attr]
