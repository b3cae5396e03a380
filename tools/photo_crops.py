"""Seeded crops of scikit-image's colour photographs as JPEG files: real images for `diagnose` and its tests.

`python tools/photo_crops.py DIR [--per-photo N] [--seed S]` writes N crops of each photograph (between 35 % and
90 % of its sides, at a seeded position) into DIR. Unlike the test suite's 24 crops of a cat and a coffee cup, which
a trained model answers with confidence, these span seven scenes, some far from ImageNet's classes: answers with
small margins, which a lower precision can flip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "colorwheel", "immunohistochemistry")


def photographs() -> dict[str, np.ndarray]:
    """scikit-image's colour photographs that ship with it (no download), by name."""
    from skimage import data

    pictures = {}
    for name in PHOTOS:
        picture = getattr(data, name)()
        pictures[name] = picture[0] if isinstance(picture, tuple) else picture
    return pictures


def write_crops(folder: Path, per_photo: int = 10, seed: int = 0) -> list[Path]:
    """`per_photo` seeded crops of each photograph as `folder/<photo>-<k>.jpg`; the paths written."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for name, picture in photographs().items():
        height, width = picture.shape[:2]
        for index in range(per_photo):
            fraction = rng.uniform(0.35, 0.9)
            crop_height, crop_width = int(height * fraction), int(width * fraction)
            top, left = rng.integers(0, height - crop_height + 1), rng.integers(0, width - crop_width + 1)
            path = folder / f"{name}-{index}.jpg"
            Image.fromarray(picture[top:top + crop_height, left:left + crop_width]).save(path, quality=90)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-photo", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{len(write_crops(args.folder, args.per_photo, args.seed))} images in {args.folder}")


if __name__ == "__main__":
    main()
