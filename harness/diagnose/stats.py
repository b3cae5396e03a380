"""Paired comparison of two files' per-image outcomes on the same images: McNemar's exact test.

Each image is a pair (was the reference file right, was the other file right), "right" meaning its top-1
answer equals the target (the label, or the fp32 file's own answer). Only discordant images carry evidence:
`worse` (the reference right, the other wrong) and `better` (the other way round). Under the null hypothesis
that the two files are equally accurate, each discordant image is a fair coin, so the exact two-sided p-value
is the binomial tail: p = min(1, 2 * P(X <= min(worse, better))), X ~ Binomial(worse + better, 1/2)
(scipy.stats.binomtest's two-sided p for p=1/2 is the same figure). Computed in log space: exact for any count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def mcnemar_exact_p(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value of `worse` and `better` discordant pairs (1.0 when there are none)."""
    if worse < 0 or better < 0:
        raise ValueError(f"discordant counts must not be negative, got {worse} and {better}")
    n, low = worse + better, min(worse, better)
    if n == 0 or worse == better:
        return 1.0
    log_half_n = n * math.log(0.5)
    terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n for k in range(low + 1)]
    top = max(terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in terms)
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class Paired:
    """Two files' outcomes on the same images, compared: counts, the drop in points and McNemar's p."""

    images: int
    reference_right: int
    other_right: int
    worse: int  # images the reference got right and the other wrong
    better: int  # images the other got right and the reference wrong

    @property
    def drop_points(self) -> float:
        """Points (percent of the images) of top-1 the other file loses against the reference."""
        return 100.0 * (self.reference_right - self.other_right) / self.images

    @property
    def p_value(self) -> float:
        return mcnemar_exact_p(self.worse, self.better)

    def as_dict(self) -> dict[str, float | int]:
        return {"images": self.images, "reference_right": self.reference_right, "other_right": self.other_right,
                "worse": self.worse, "better": self.better, "drop_points": self.drop_points,
                "p_value": self.p_value}


def paired(reference_right: np.ndarray, other_right: np.ndarray) -> Paired:
    """Compare per-image outcomes (booleans, one per image, the same images in the same order)."""
    reference_right, other_right = np.asarray(reference_right, bool), np.asarray(other_right, bool)
    if reference_right.shape != other_right.shape or reference_right.ndim != 1 or not len(reference_right):
        raise ValueError(f"outcomes of {reference_right.shape} and {other_right.shape} images: give one boolean per "
                         "image, the same images for both")
    return Paired(images=len(reference_right), reference_right=int(reference_right.sum()),
                  other_right=int(other_right.sum()), worse=int((reference_right & ~other_right).sum()),
                  better=int((~reference_right & other_right).sum()))
