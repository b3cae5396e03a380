"""The seeded inputs every cell feeds, made the same way on every machine (so a board can regenerate a
bundle's reference inputs from their seed and check them by hash instead of carrying them)."""

from __future__ import annotations

import hashlib

import numpy as np

GENERATOR = "numpy default_rng(seed): standard_normal for floats, integers 0..255 otherwise"


def make_inputs(shape: list[int] | tuple[int, ...], seed: int, dtype: str = "float32") -> np.ndarray:
    """Deterministic input: standard normal for floats, uniform 0..255 for integers."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.floating):
        return rng.standard_normal(tuple(shape), dtype=np.float32).astype(dtype, copy=False)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, size=tuple(shape)).astype(np.bool_)
    return rng.integers(0, 256, size=tuple(shape)).astype(dtype)


def input_sha256(array: np.ndarray) -> str:
    """Hash of the array's bytes, shape and dtype."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
