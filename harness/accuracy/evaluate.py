"""Run cached crops through a runtime and score the answers: the evaluating process's side.

numpy only (no torch): the same code scores every runtime. Top-k ties are broken by the lower class
index (a stable sort), the same on every runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.accuracy.preprocess import Normalization, normalize
from runtimes.base import Runtime

TOP_K = 5


@dataclass(frozen=True)
class Predictions:
    """Top-5 class indices per evaluated image, best first, and how long producing them took."""

    top5: np.ndarray  # (n, 5) int16
    loop_s: float  # normalization + prepare + run + synchronize + outputs + top-5, over every batch


def top5_of(logits: np.ndarray) -> np.ndarray:
    if logits.ndim != 2 or logits.shape[1] < TOP_K:
        raise ValueError(f"expected logits of shape (batch, classes >= {TOP_K}), got {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("the model's outputs contain NaN or infinity")
    return np.argsort(-logits, axis=1, kind="stable")[:, :TOP_K].astype(np.int16)


def predict(runtime: Runtime, crops: np.ndarray, indices: np.ndarray, normalization: Normalization,
            batch_size: int, on_batch: Callable[[int], None] | None = None) -> Predictions:
    """Top-5 of every image `indices` selects from `crops`, `batch_size` images at a time (the last batch
    may be smaller). The clock spans the whole loop: it is the evaluation's throughput, not a latency."""
    chunks = []
    start = time.perf_counter()
    for first in range(0, len(indices), batch_size):
        batch = normalize(crops[indices[first:first + batch_size]], normalization)
        runtime.prepare(batch)
        runtime.run()
        runtime.synchronize()
        chunks.append(top5_of(runtime.outputs()[0]))
        if on_batch:
            on_batch(first + len(batch))
    loop_s = time.perf_counter() - start
    top5 = np.concatenate(chunks) if chunks else np.zeros((0, TOP_K), dtype=np.int16)
    return Predictions(top5, loop_s)


@dataclass(frozen=True)
class Scores:
    images: int
    top1_correct: int
    top5_correct: int

    @property
    def top1(self) -> float:
        return 100.0 * self.top1_correct / self.images

    @property
    def top5(self) -> float:
        return 100.0 * self.top5_correct / self.images


def score(top5: np.ndarray, labels: np.ndarray) -> Scores:
    if len(top5) != len(labels) or not len(labels):
        raise ValueError(f"{len(top5)} predictions for {len(labels)} labels")
    labels = labels.astype(np.int64).reshape(-1, 1)
    return Scores(len(labels), int((top5[:, :1] == labels).sum()), int((top5 == labels).any(axis=1).sum()))


def agreement(top5: np.ndarray, reference_top5: np.ndarray) -> float:
    """Share (0-1) of images whose top-1 class equals the reference's, image by image."""
    if top5.shape[0] != reference_top5.shape[0]:
        raise ValueError(f"{top5.shape[0]} predictions against {reference_top5.shape[0]} reference predictions")
    return float((top5[:, 0] == reference_top5[:, 0]).mean())
