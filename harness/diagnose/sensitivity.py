"""Which nodes look most hurt by the lower precision: the order the search tries them in.

A node's weights are rounded the way the lower precision rounds them (int8: symmetric, one scale per output
channel or, with per-tensor quantization, one for the whole tensor; fp16: half precision), and the signal-to-
quantization-noise ratio of the result, averaged over its output channels, is its score: the lower, the earlier
the search keeps the node in fp32.
Pure numpy on the fp32 file's initializers, no run: it only orders the candidates (activation ranges are not
seen here); the trials, measured on the images, decide. Nodes whose weights are not initializers (a MatMul of two
activations) rank last, in graph order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

MAX_SQNR_DB = 200.0  # what an exactly representable tensor scores
INT8_LEVELS = 127  # symmetric signed int8 weights: -127..127


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10 log10(signal power / noise power) of `other` against `reference`, capped at MAX_SQNR_DB."""
    reference, other = reference.astype(np.float64), other.astype(np.float64)
    noise, signal = float(np.mean((reference - other) ** 2)), float(np.mean(reference ** 2))
    if noise == 0.0:
        return MAX_SQNR_DB
    if signal == 0.0:
        return 0.0
    return min(MAX_SQNR_DB, 10.0 * math.log10(signal / noise))


def rounded(weights: np.ndarray, precision: str, per_channel: bool = True) -> np.ndarray:
    """`weights` as the lower precision stores them, back in float: int8 symmetric (per output channel, axis 0,
    or per tensor) or fp16."""
    weights = weights.astype(np.float32)
    if precision == "fp16":
        return weights.astype(np.float16).astype(np.float32)
    flat = weights.reshape(weights.shape[0], -1) if per_channel and weights.ndim > 1 else weights.reshape(1, -1)
    scale = np.abs(flat).max(axis=1, keepdims=True) / INT8_LEVELS
    scale[scale == 0] = 1.0
    return (np.clip(np.round(flat / scale), -INT8_LEVELS, INT8_LEVELS) * scale).reshape(weights.shape)


def weight_sqnr(path: Path, names: Sequence[str], precision: str, per_channel: bool = True) -> dict[str, float | None]:
    """Per named node: the SQNR (dB) of its weights (second input) rounded to `precision`; None where its weights
    are not an initializer."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initializers = {init.name: init for init in graph.initializer}
    scores: dict[str, float | None] = {name: None for name in names}
    for node in graph.node:
        if node.name in scores and len(node.input) > 1 and node.input[1] in initializers:
            weights = numpy_helper.to_array(initializers[node.input[1]])
            scores[node.name] = channel_sqnr_db(weights, rounded(weights, precision, per_channel))
    return scores


def channel_sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """The mean over output channels (axis 0) of each channel's SQNR: a channel whose small weights round to
    nothing counts as much as a large one (the whole tensor's SQNR would hide it behind the large channels)."""
    if reference.ndim < 2:
        return sqnr_db(reference, other)
    rows = reference.reshape(reference.shape[0], -1), other.reshape(other.shape[0], -1)
    return float(np.mean([sqnr_db(a, b) for a, b in zip(*rows)]))


def rank_nodes(scores: dict[str, float | None], names: Sequence[str]) -> list[str]:
    """`names` from the lowest score (most hurt) to the highest; unscored ones last, each group in graph order."""
    order = {name: index for index, name in enumerate(names)}
    return sorted(names, key=lambda name: (scores.get(name) is None, scores.get(name) or 0.0, order[name]))
