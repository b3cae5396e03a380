"""The lines the paper drew: the accuracy-vs-speed upper bound (Fig. 3) and memory-vs-size fits (Fig. 4)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from harness.reports.data import Point

MB = 10**6


@dataclass(frozen=True)
class Line:
    slope: float
    intercept: float
    points: int
    r2: float | None = None  # None where it is not a least-squares fit of these points

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def linear_fit(xs: list[float], ys: list[float]) -> Line | None:
    """Least squares y = intercept + slope * x; None with fewer than two distinct x."""
    if len(set(xs)) < 2:
        return None
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (intercept + slope * x)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    return Line(float(slope), float(intercept), len(xs), 1.0 - residual / total if total > 0 else 1.0)


def _top1(point: Point) -> float | None:
    return point.accuracy.top1 if point.accuracy else None


def accuracy_speed_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on both top-1 and images/s, fastest first."""
    usable = sorted((p for p in points if _top1(p) is not None and p.images_per_s),
                    key=lambda p: (-p.images_per_s, -_top1(p)))  # type: ignore[operator]
    front: list[Point] = []
    for point in usable:
        if not front or _top1(point) > _top1(front[-1]):  # type: ignore[operator]
            front.append(point)
    return front


def upper_bound(points: list[Point]) -> Line | None:
    """The paper's linear upper bound of top-1 vs images/s (Fig. 3): the slope of the least-squares line
    through the frontier (`accuracy_speed_front`), raised until no point lies above it — so it touches
    the frontier at least once. None with fewer than two frontier points."""
    front = accuracy_speed_front(points)
    fit = linear_fit([p.images_per_s for p in front], [_top1(p) for p in front])  # type: ignore[misc]
    if fit is None:
        return None
    usable = [p for p in points if _top1(p) is not None and p.images_per_s]
    intercept = max(_top1(p) - fit.slope * p.images_per_s for p in usable)  # type: ignore[operator]
    return Line(fit.slope, intercept, len(front))


TOP1_RANGE = (0.0, 100.0)


def bound_curve(bound: Line, xs: list[float], samples: int = 200) -> tuple[list[float], list[float]]:
    """The upper bound drawn over the data's images/s range (log-spaced, for a log axis), keeping only
    the part within 0-100 % top-1: a steep bound through few frontier points would otherwise run far
    above any possible accuracy."""
    if not xs:
        return [], []
    low, high = min(xs), max(xs)
    grid = [low * (high / low) ** (i / (samples - 1)) for i in range(samples)] if high > low else [low]
    kept = [(x, bound.intercept + bound.slope * x) for x in grid]
    kept = [(x, y) for x, y in kept if TOP1_RANGE[0] <= y <= TOP1_RANGE[1]]
    return [x for x, _ in kept], [y for _, y in kept]


def memory_fits(points: list[Point]) -> dict[str, Line]:
    """Memory (MB) vs model size (MB of fp32 parameters) at the points given (batch 1 in Fig. 4): one
    least-squares line for all, and one per family with at least three models (two points always fit)."""
    usable = [p for p in points if p.memory_bytes is not None and p.model_bytes is not None]
    fits: dict[str, Line] = {}
    everything = linear_fit([p.model_bytes / MB for p in usable], [p.memory_bytes / MB for p in usable])  # type: ignore[operator]
    if everything:
        fits["all models"] = everything
    by_family: dict[str, list[Point]] = defaultdict(list)
    for point in usable:
        by_family[point.family].append(point)
    for family, members in sorted(by_family.items()):
        if len(members) >= 3:
            line = linear_fit([p.model_bytes / MB for p in members], [p.memory_bytes / MB for p in members])  # type: ignore[operator]
            if line:
                fits[family] = line
    return fits
