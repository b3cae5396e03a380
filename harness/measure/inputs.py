"""The seeded inputs every cell feeds, made the same way on every machine (so a board can regenerate a
bundle's reference inputs from their seed and check them by hash instead of carrying them)."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

import numpy as np

GENERATOR = ("numpy default_rng(seed): standard_normal for floats, integers 0..255 otherwise (input i of several: "
             "seed + i)")


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


def make_feeds(specs: Sequence[Any], batch_size: int, seed: int,
               arrays: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """One array per input, in the graph's order (`specs`: protocol.InputSpec). Generated: input i from seed + i
    (the first input is then the one a single-input cell always fed); from `arrays` (an .npz's): cast to the
    input's type, a batched input's first `batch_size` rows."""
    feeds = []
    for index, spec in enumerate(specs):
        if arrays is None:
            feeds.append(make_inputs(spec.shape_at(batch_size), seed + index, spec.dtype))
            continue
        array = arrays[spec.name][:batch_size] if spec.batched else arrays[spec.name]
        feeds.append(np.require(array.astype(spec.dtype, copy=False), requirements="C"))  # keeps a 0-d array's shape
    return feeds


def describe_feeds(feeds: Sequence[np.ndarray], names: Sequence[str], source: str) -> dict[str, Any]:
    """The record's note of what was fed: the first input's shape and type (as single-input records hold them),
    every input's, and where they came from."""
    return {"shape": list(feeds[0].shape), "dtype": str(feeds[0].dtype), "generator": source,
            **({"inputs": [{"name": name, "shape": list(f.shape), "dtype": str(f.dtype)}
                           for name, f in zip(names, feeds)]} if len(feeds) > 1 else {})}
