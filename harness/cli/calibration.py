"""The calibration set of int8 quantization: images from any layout `accuracy` reads, cropped and normalized
by each model's own recipe through the crop cache, described by what identifies it (method, image count,
a hash of the file list, the seed) — the quantized file's key and its records carry that description."""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from exporters.quantize import METHODS
from harness.accuracy.layouts import LabelledImages, open_images
from harness.catalogue.registry import ModelSpec
from harness.errors import UserError

DEFAULT_IMAGES = 500


def add_calibration_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibration", metavar="DATA",
                        help="with --precision int8: images to calibrate activations on (any layout accuracy reads)")
    parser.add_argument("--calibration-method", choices=tuple(METHODS), default="minmax",
                        help="how activation ranges are taken from the calibration images (default minmax)")
    parser.add_argument("--calibration-images", type=int, default=DEFAULT_IMAGES, metavar="N",
                        help=f"calibration images, a seeded subset (default {DEFAULT_IMAGES})")


def files_sha256(images: LabelledImages) -> str:
    """A hash of the chosen files, by their paths relative to the data's root (the same set on any machine)."""
    names = sorted(str(p.relative_to(images.root)) if p.is_relative_to(images.root) else p.name for p in images.paths)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def split_halves(images: LabelledImages, seed: int) -> tuple[LabelledImages, LabelledImages]:
    """Disjoint seeded halves of one folder: (calibration, evaluation)."""
    order = np.random.default_rng(seed).permutation(len(images))
    halves = []
    for name, part in (("calibration", np.sort(order[: len(images) // 2])), ("evaluation", np.sort(order[len(images) // 2:]))):
        halves.append(replace(images, paths=tuple(images.paths[i] for i in part),
                              labels=tuple(images.labels[i] for i in part),
                              selection=f"the {name} half of {len(images)} images (--split, seed {seed})"))
    return halves[0], halves[1]


def calibration_images(args: argparse.Namespace, precisions: list[str]) -> LabelledImages | None:
    """The calibration images when int8 is asked for (None otherwise); one clear line when they are missing."""
    if "int8" not in precisions:
        if getattr(args, "calibration", None):
            raise UserError("--calibration goes with --precision int8 (it calibrates the quantized file)")
        return None
    if not args.calibration:
        raise UserError("int8 needs calibration images: pass --calibration DATA (e.g. 500 ImageNet training or "
                        "validation images, any layout accuracy reads)")
    if args.calibration_images < 1:
        raise UserError(f"bad --calibration-images {args.calibration_images}: give a positive number of images")
    return open_images(Path(args.calibration)).limited(args.calibration_images, args.seed)


def calibration_settings(args: argparse.Namespace, images: LabelledImages, specs: list[ModelSpec],
                         crop_sets: Any) -> dict[str, Any]:
    """What the prepare jobs quantize with: per model its crop set; and what identifies the set."""
    return {"method": args.calibration_method, "images": len(images), "files_sha256": files_sha256(images),
            "seed": args.seed, "layout": images.layout, "data": str(Path(args.calibration or "").expanduser()),
            "selection": images.selection or f"all {len(images)} images",
            "sets": crop_sets(specs, images, None, getattr(args, "workers", 1))}
