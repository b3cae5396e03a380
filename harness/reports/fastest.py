"""The fastest runtime per model on each device, from measurements: every runtime and precision that ran the
model at the batch size, as a speed-up over PyTorch eager fp32 on the same device (ratio of batch medians).

A lower precision changes the answers, so each model gets two winners: the fastest at fp32 (the same
accuracy as the model's) and the fastest at any precision, with its measured Δ top-1 beside it where an
accuracy run measured both (—, and a note, where not).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.reports.data import NO_MODEL_RUNTIME, Dataset, Point
from harness.reports.tradeoff import BASE_PRECISION, accuracy_drop
from harness.cells import REFERENCE  # PyTorch eager fp32: what every speed-up is over


@dataclass(frozen=True)
class Contender:
    runtime: str
    precision: str
    batch_median_ms: float
    speedup: float | None  # torch eager fp32's batch median / this one's; None without the reference
    valid: bool  # False where the cell's own checks flagged its timing (noisy, throttled)

    @property
    def label(self) -> str:
        return f"{self.runtime} · {self.precision}"


@dataclass(frozen=True)
class ModelSpeeds:
    model: str
    display_name: str
    family: str
    device: str
    batch_size: int
    reference_ms: float | None  # torch eager fp32
    contenders: tuple[Contender, ...]  # fastest first
    accuracy_drops: dict[str, float | None]  # contender label -> measured top-1 points below fp32 (None: unknown)

    @property
    def fastest(self) -> Contender:
        return self.contenders[0]

    @property
    def fastest_fp32(self) -> Contender | None:
        return next((c for c in self.contenders if c.precision == BASE_PRECISION), None)

    def of(self, label: str) -> Contender | None:
        return next((c for c in self.contenders if c.label == label), None)


def _contender(point: Point, reference: Point | None) -> Contender:
    speedup = None
    if reference is not None and reference.batch_median_ms:
        speedup = reference.batch_median_ms / point.batch_median_ms  # type: ignore[operator]
    return Contender(point.runtime, point.precision, point.batch_median_ms, speedup, point.valid)  # type: ignore[arg-type]


def model_speeds(dataset: Dataset, batch_size: int = 1) -> dict[str, list[ModelSpeeds]]:
    """Per device, one entry per model that ran on at least two runtime·precision pairs there, by model name
    (the null runtime, which runs no model, is no contender)."""
    timed = [p for p in dataset.points if p.ok and p.batch_size == batch_size and p.batch_median_ms
             and p.runtime != NO_MODEL_RUNTIME]
    by_model: dict[tuple[str, str], list[Point]] = {}
    for point in timed:
        by_model.setdefault((point.device, point.model), []).append(point)
    speeds: dict[str, list[ModelSpeeds]] = {}
    for (device, model), points in sorted(by_model.items()):
        if len(points) < 2:
            continue
        reference = next((p for p in points if (p.runtime, p.precision) == REFERENCE), None)
        contenders = sorted((_contender(p, reference) for p in points), key=lambda c: c.batch_median_ms)
        drops = {f"{p.runtime} · {p.precision}": accuracy_drop(p, dataset.points) for p in points}
        first = points[0]
        speeds.setdefault(device, []).append(ModelSpeeds(
            model, first.display_name, first.family, device, batch_size,
            reference.batch_median_ms if reference else None, tuple(contenders), drops))
    return speeds


PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")


def contender_labels(rows: list[ModelSpeeds]) -> list[str]:
    """Every runtime·precision pair that appears, reference first, then by runtime, fp32 before the others."""
    pairs = {(c.runtime, c.precision) for row in rows for c in row.contenders}

    def order(pair: tuple[str, str]) -> tuple:
        runtime, precision = pair
        rank = PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)
        return (pair != REFERENCE, runtime, rank, precision)

    return [f"{runtime} · {precision}" for runtime, precision in sorted(pairs, key=order)]


def wins_by_family(rows: list[ModelSpeeds], fp32_only: bool = False) -> dict[str, Counter[str]]:
    """family -> how many of its models each runtime·precision pair is the fastest for."""
    wins: dict[str, Counter[str]] = {}
    for row in rows:
        winner = row.fastest_fp32 if fp32_only else row.fastest
        if winner is not None:
            wins.setdefault(row.family, Counter())[winner.label] += 1
    return wins
