"""A model's preprocessing recipe, split where the work is: geometry (decode, resize, crop -> uint8) and
normalization (value range, channel order, mean/std -> float32).

Geometry is the expensive part and is done once per data set and geometry, then cached as uint8
(harness/accuracy/crop_cache.py); models that share it (most 224-pixel models) share the cache.
Normalization is exact and cheap and runs per batch in the evaluating process. Together they equal
torchvision's `Resize(shorter) -> CenterCrop -> ToTensor -> Normalize` on a PIL image (the same PIL
resize call, the same rounding of the crop offset, the same float32 arithmetic).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Geometry:
    """Decode -> RGB -> resize the shorter side -> center crop to a square; the result is uint8."""

    input_size: int
    resize_shorter_to: int
    interpolation: str

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
        if self.resize_shorter_to < self.input_size:
            raise ValueError(f"resize_shorter_to {self.resize_shorter_to} is smaller than the crop {self.input_size}")

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize_shorter_to

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        return f"{self.interpolation} {self.resize_shorter_to} -> crop {self.input_size}"


@dataclass(frozen=True)
class Normalization:
    """uint8 RGB crop -> float32: scale to `value_range`, reorder to `color`, subtract mean, divide by std.
    mean and std are in the model's own channel order and value range (BGR 0-255 for Caffe models)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recipe_parts(preprocessing: dict[str, Any], input_size: int,
                 crop_pct: float | None = None) -> tuple[Geometry, Normalization]:
    """A catalogue recipe as (geometry, normalization); `crop_pct` replaces the recipe's resize with
    floor(input_size / crop_pct), as timm and the paper's scripts compute it."""
    resize = preprocessing["resize_shorter_to"] if crop_pct is None else math.floor(input_size / crop_pct)
    geometry = Geometry(input_size, int(resize), preprocessing["interpolation"])
    normalization = Normalization(tuple(preprocessing["mean"]), tuple(preprocessing["std"]), preprocessing["color"],
                                  tuple(preprocessing["value_range"]))
    return geometry, normalization


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) with the shorter side at `shorter` and the longer scaled and truncated, as
    torchvision's Resize(int) computes it."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def crop(image: Any, geometry: Geometry) -> np.ndarray:
    """A PIL image -> uint8 array (3, size, size), RGB."""
    from PIL import Image

    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[geometry.interpolation]
    image = image.convert("RGB")
    width, height = resized_size(*image.size, geometry.resize_shorter_to)
    if (width, height) != image.size:
        image = image.resize((width, height), resample)
    size = geometry.input_size
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def normalize(crops: np.ndarray, normalization: Normalization) -> np.ndarray:
    """uint8 (N, 3, H, W) RGB -> float32 (N, 3, H, W) as the model wants it."""
    low, high = (np.float32(v) for v in normalization.value_range)
    values = crops.astype(np.float32)
    if (low, high) == (0.0, 255.0):
        pass
    elif (low, high) == (0.0, 1.0):
        values /= np.float32(255)
    else:
        values = values / np.float32(255) * (high - low) + low
    if normalization.color == "BGR":
        values = values[:, ::-1]
    mean = np.asarray(normalization.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(normalization.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((values - mean) / std, dtype=np.float32)
