"""The calibration set of int8 quantization: images, no labels needed (a folder of images, its sub-folders
too, or a CSV listing them), cropped and normalized by each model's own recipe through the crop cache,
described by what identifies it (method, image count, a hash of the file list, a hash of the files' bytes,
the seed) — the quantized file's key and its records carry that description."""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from exporters.quantize import METHODS
from harness.accuracy.layouts import LabelledImages, open_unlabelled
from harness.catalogue.registry import ModelSpec
from harness.errors import UserError

DEFAULT_IMAGES = 500
READ_BYTES = 1 << 20


def add_calibration_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibration", metavar="DATA",
                        help="with --precision int8: images to calibrate activations on, no labels needed (a "
                             "folder of images, its sub-folders too, or a CSV whose first column lists them)")
    parser.add_argument("--calibration-method", choices=tuple(METHODS), default="minmax",
                        help="how activation ranges are taken from the calibration images (default minmax)")
    parser.add_argument("--calibration-images", type=int, default=DEFAULT_IMAGES, metavar="N",
                        help=f"calibration images, a seeded subset (default {DEFAULT_IMAGES})")


def _relative_names(images: LabelledImages) -> list[str]:
    """The chosen files by their paths relative to the data's root (the same set on any machine)."""
    return [str(p.relative_to(images.root)) if p.is_relative_to(images.root) else p.name for p in images.paths]


def files_sha256(images: LabelledImages) -> str:
    """A hash of the chosen files, by their paths relative to the data's root (the same set on any machine)."""
    return hashlib.sha256("\n".join(sorted(_relative_names(images))).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes; a file that cannot be read is named so (the crop cache lists it as bad)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(READ_BYTES):
                digest.update(chunk)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return digest.hexdigest()


def contents_sha256(images: LabelledImages) -> str:
    """A hash of the chosen files' names and bytes: an image rewritten under its old name changes it, whatever
    its size and modification time."""
    digest = hashlib.sha256()
    for name, path in sorted(zip(_relative_names(images), images.paths)):
        digest.update(f"{name}\t{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def split_halves(images: LabelledImages, seed: int) -> tuple[LabelledImages, LabelledImages]:
    """Disjoint seeded halves of one folder: (calibration, evaluation)."""
    order = np.random.default_rng(seed).permutation(len(images))
    halves = []
    for name, part in (("calibration", np.sort(order[: len(images) // 2])), ("evaluation", np.sort(order[len(images) // 2:]))):
        halves.append(replace(images, paths=tuple(images.paths[i] for i in part),
                              labels=tuple(images.labels[i] for i in part), contents_sha256="",
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
                        "validation images: a folder of them, no labels needed)")
    if args.calibration_images < 1:
        raise UserError(f"bad --calibration-images {args.calibration_images}: give a positive number of images")
    return open_unlabelled(Path(args.calibration), "--calibration").limited(args.calibration_images, args.seed)


def calibration_settings(args: argparse.Namespace, images: LabelledImages, specs: list[ModelSpec],
                         crop_sets: Any) -> dict[str, Any]:
    """What the prepare jobs quantize with: per model its crop set; and what identifies the set, the files'
    bytes included (the crops and the quantized file are made anew when an image changes under its name)."""
    images = replace(images, contents_sha256=contents_sha256(images))
    return {"method": args.calibration_method, "images": len(images), "files_sha256": files_sha256(images),
            "contents_sha256": images.contents_sha256, "seed": args.seed, "layout": images.layout,
            "data": str(Path(args.calibration).expanduser()) if args.calibration else str(images.root),
            "selection": images.selection or f"all {len(images)} images",
            "sets": crop_sets(specs, images, None, getattr(args, "workers", 1))}
