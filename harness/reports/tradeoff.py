"""How much faster, for how much accuracy: each lower precision against fp32 of the same model, runtime and
device at the same batch size — speed-up (ratio of batch medians) beside Δ top-1 (measured on real images;
published accuracy is the same figure for every precision, so it gives no Δ)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.reports.data import Dataset, Point

BASE_PRECISION = "fp32"
LOWER_PRECISIONS = ("fp16", "bf16", "int8")


@dataclass(frozen=True)
class Tradeoff:
    model: str
    display_name: str
    runtime: str
    device: str
    precision: str
    batch_size: int
    speedup: float | None  # fp32 batch median / this precision's; None where either did not run
    top1_fp32: float | None  # measured
    top1: float | None  # measured
    note: str = ""

    @property
    def delta_top1(self) -> float | None:
        if self.top1 is None or self.top1_fp32 is None:
            return None
        return self.top1 - self.top1_fp32


def _measured_top1(point: Point | None) -> float | None:
    if point is None or point.accuracy is None or point.accuracy.kind != "measured":
        return None
    return point.accuracy.top1


def tradeoffs(dataset: Dataset, batch_size: int = 1) -> list[Tradeoff]:
    """One row per lower-precision cell that has an fp32 cell of the same model, runtime and device."""
    by_key = {(p.model, p.runtime, p.device, p.precision, p.batch_size): p for p in dataset.points}
    rows = []
    for point in sorted(dataset.points, key=lambda p: (p.model, p.runtime, p.device, p.precision)):
        if point.precision not in LOWER_PRECISIONS or point.batch_size != batch_size:
            continue
        base = by_key.get((point.model, point.runtime, point.device, BASE_PRECISION, batch_size))
        if base is None:
            continue
        speedup = None
        if base.ok and point.ok and base.batch_median_ms and point.batch_median_ms:
            speedup = base.batch_median_ms / point.batch_median_ms
        note = "" if point.ok and base.ok else f"{BASE_PRECISION} {base.status}, {point.precision} {point.status}"
        rows.append(Tradeoff(point.model, point.display_name, point.runtime, point.device, point.precision, batch_size,
                             speedup, _measured_top1(base), _measured_top1(point), note))
    return rows


def accuracy_drop(point: Point, dataset_points: list[Point]) -> float | None:
    """fp32's measured top-1 minus this point's, same model and runtime (any device); 0 for fp32 itself; None
    where either was not measured."""
    if point.precision == BASE_PRECISION:
        return 0.0
    base = next((p for p in dataset_points if p.model == point.model and p.runtime == point.runtime
                 and p.precision == BASE_PRECISION and _measured_top1(p) is not None), None)
    top1, base_top1 = _measured_top1(point), _measured_top1(base)
    return None if top1 is None or base_top1 is None else base_top1 - top1
