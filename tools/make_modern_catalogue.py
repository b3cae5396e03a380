"""One-off: write the modern (post-paper) entries of models.yaml.

Figures come from where they are published: torchvision's weight metadata (installed torchvision:
accuracy, num_params, _ops, and the weights' own eval transforms) and, for timm models, timm's
results-imagenet.csv and benchmark CSVs (copies in ../shared/reference/) with the mean/std of the tag's
pretrained config. Kept to show where every figure came from; models.yaml is the source of truth:
`python tools/make_modern_catalogue.py >> harness/data/models.yaml` after removing the old modern entries (from the
line "# Modern entries" on).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import yaml

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
TIMM_RESULTS = "timm results/results-imagenet.csv @aa4b5850"
TIMM_CPU_BENCH = "timm results/benchmark-infer-fp32-nchw-pt240-cpu-i9_10940x-dynamo.csv @aa4b5850"
TIMM_GPU_BENCH = "timm results/benchmark-infer-amp-nchw-pt113-cu117-rtx3090.csv @aa4b5850"
IN1K = "ImageNet-1k"

# name: (display name, family, year, source, builder, tag, sets, pretraining, note)
MODELS: dict[str, tuple[str, str, int, str, str, str, tuple[str, ...], str, str]] = {
    "mobilenet_v3_small": ("MobileNet-v3 Small", "MobileNet", 2019, "torchvision", "mobilenet_v3_small",
                           "MobileNet_V3_Small_Weights.IMAGENET1K_V1", ("mobile",), IN1K, ""),
    "mobilenet_v3_large": ("MobileNet-v3 Large", "MobileNet", 2019, "torchvision", "mobilenet_v3_large",
                           "MobileNet_V3_Large_Weights.IMAGENET1K_V1", ("mobile",), IN1K, ""),
    "mnasnet0_5": ("MNASNet 0.5", "MNASNet", 2018, "torchvision", "mnasnet0_5", "MNASNet0_5_Weights.IMAGENET1K_V1",
                   ("mobile",), IN1K, ""),
    "mnasnet1_0": ("MNASNet 1.0", "MNASNet", 2018, "torchvision", "mnasnet1_0", "MNASNet1_0_Weights.IMAGENET1K_V1",
                   ("mobile",), IN1K, ""),
    "ghostnet_100": ("GhostNet 1.0", "GhostNet", 2019, "timm", "ghostnet_100", "in1k", ("mobile",), IN1K, ""),
    "efficientnet_b0": ("EfficientNet-B0", "EfficientNet", 2019, "torchvision", "efficientnet_b0",
                        "EfficientNet_B0_Weights.IMAGENET1K_V1", ("mobile",), IN1K, ""),
    "efficientnet_b1": ("EfficientNet-B1", "EfficientNet", 2019, "torchvision", "efficientnet_b1",
                        "EfficientNet_B1_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "efficientnet_b2": ("EfficientNet-B2", "EfficientNet", 2019, "torchvision", "efficientnet_b2",
                        "EfficientNet_B2_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "efficientnet_b3": ("EfficientNet-B3", "EfficientNet", 2019, "torchvision", "efficientnet_b3",
                        "EfficientNet_B3_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "efficientnet_b4": ("EfficientNet-B4", "EfficientNet", 2019, "torchvision", "efficientnet_b4",
                        "EfficientNet_B4_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "tf_efficientnet_lite1": ("EfficientNet-Lite1", "EfficientNet", 2020, "timm", "tf_efficientnet_lite1", "in1k",
                              ("mobile",), IN1K, "TensorFlow weights ported to timm"),
    "tf_efficientnet_lite2": ("EfficientNet-Lite2", "EfficientNet", 2020, "timm", "tf_efficientnet_lite2", "in1k",
                              ("mobile",), IN1K, "TensorFlow weights ported to timm"),
    "tf_efficientnet_lite3": ("EfficientNet-Lite3", "EfficientNet", 2020, "timm", "tf_efficientnet_lite3", "in1k",
                              ("mobile",), IN1K, "TensorFlow weights ported to timm"),
    "tf_efficientnet_lite4": ("EfficientNet-Lite4", "EfficientNet", 2020, "timm", "tf_efficientnet_lite4", "in1k",
                              ("mobile",), IN1K, "TensorFlow weights ported to timm"),
    "efficientnet_v2_s": ("EfficientNetV2-S", "EfficientNetV2", 2021, "torchvision", "efficientnet_v2_s",
                          "EfficientNet_V2_S_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "regnet_x_400mf": ("RegNetX-400MF", "RegNet", 2020, "torchvision", "regnet_x_400mf",
                       "RegNet_X_400MF_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "regnet_x_1_6gf": ("RegNetX-1.6GF", "RegNet", 2020, "torchvision", "regnet_x_1_6gf",
                       "RegNet_X_1_6GF_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "regnet_y_400mf": ("RegNetY-400MF", "RegNet", 2020, "torchvision", "regnet_y_400mf",
                       "RegNet_Y_400MF_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "regnet_y_1_6gf": ("RegNetY-1.6GF", "RegNet", 2020, "torchvision", "regnet_y_1_6gf",
                       "RegNet_Y_1_6GF_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "regnet_y_8gf": ("RegNetY-8GF", "RegNet", 2020, "torchvision", "regnet_y_8gf", "RegNet_Y_8GF_Weights.IMAGENET1K_V1",
                     (), IN1K, ""),
    "convnext_tiny": ("ConvNeXt-T", "ConvNeXt", 2022, "torchvision", "convnext_tiny",
                      "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "convnext_small": ("ConvNeXt-S", "ConvNeXt", 2022, "torchvision", "convnext_small",
                       "ConvNeXt_Small_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "vit_small_patch16_224": ("ViT-S/16", "ViT", 2020, "timm", "vit_small_patch16_224", "augreg_in1k", (), IN1K,
                              "AugReg recipe trained on ImageNet-1k only (timm's default tag is ImageNet-21k "
                              "pre-trained: 81.4 %)"),
    "vit_b_16": ("ViT-B/16", "ViT", 2020, "torchvision", "vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1", (), IN1K,
                 "trained from scratch on ImageNet-1k (torchvision's recipe)"),
    "deit_small_patch16_224": ("DeiT-S", "ViT", 2020, "timm", "deit_small_patch16_224", "fb_in1k", (), IN1K,
                               "the non-distilled DeiT weights (Facebook), ImageNet-1k only"),
    "swin_t": ("Swin-T", "Swin", 2021, "torchvision", "swin_t", "Swin_T_Weights.IMAGENET1K_V1", (), IN1K, ""),
    "maxvit_t": ("MaxViT-T", "MaxViT", 2022, "torchvision", "maxvit_t", "MaxVit_T_Weights.IMAGENET1K_V1", (), IN1K,
                 ""),
    "resnet50_tv_v2": ("ResNet-50 (torchvision V2 recipe)", "ResNet", 2021, "torchvision", "resnet50",
                       "ResNet50_Weights.IMAGENET1K_V2", (), IN1K,
                       "the paper's ResNet-50 architecture with torchvision's 2021 training recipe: recipe vs "
                       "architecture (V1 weights: 76.13 %)"),
    "resnet50_a1": ("ResNet-50 (timm A1 recipe)", "ResNet", 2021, "timm", "resnet50", "a1_in1k", (), IN1K,
                    "the paper's ResNet-50 architecture with the 'ResNet strikes back' A1 recipe (timm)"),
    "mobilevit_s": ("MobileViT-S", "MobileViT", 2021, "timm", "mobilevit_s", "cvnets_in1k", ("mobile",), IN1K,
                    "Apple's CVNets weights"),
    "efficientformer_l1": ("EfficientFormer-L1", "EfficientFormer", 2022, "timm", "efficientformer_l1",
                           "snap_dist_in1k", ("mobile",), "ImageNet-1k, distilled from a RegNetY-16GF teacher",
                           "only distilled weights exist"),
    "fastvit_t8": ("FastViT-T8", "FastViT", 2023, "timm", "fastvit_t8", "apple_in1k", ("mobile",), IN1K,
                   "Apple's non-distilled weights"),
}
# Where a benchmark CSV's rounded GMACs is further than 5 % from an exact count, the model's own paper/repo.
COMPLEXITY_OVERRIDES = {
    "ghostnet_100": {"gmacs": 0.141, "complexity_source": 'huawei-noah/Efficient-AI-Backbones readme.md ("141M '
                                                          'Flops (or say MAdds)"); params: ' + TIMM_CPU_BENCH},
}
# The one modern model added earlier (issue 6) gets its sets here too.
EXISTING_SETS = {"tf_efficientnet_lite0": ("modern", "mobile")}


def _rows(name: str) -> list[dict[str, str]]:
    with (REFERENCE / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _torchvision(name: str, builder: str, tag: str) -> tuple[dict, dict, int]:
    import torchvision

    weights = torchvision.models.get_weight(tag)
    transforms, meta = weights.transforms(), weights.meta
    resize, crop = transforms.resize_size[0], transforms.crop_size[0]
    metrics = meta["_metrics"]["ImageNet-1K"]
    source = f"torchvision {torchvision.__version__.split('+')[0]} {tag} meta"
    preprocessing = {"resize_shorter_to": resize, "crop_pct": round(crop / resize, 4),
                     "interpolation": transforms.interpolation.value, "mean": list(transforms.mean),
                     "std": list(transforms.std), "color": "RGB", "value_range": [0.0, 1.0]}
    published = {"top1": metrics["acc@1"], "top5": metrics["acc@5"], "accuracy_source": source,
                 "params_m": round(meta["num_params"] / 1e6, 3), "gmacs": meta["_ops"],
                 "complexity_source": f"{source} (num_params, _ops)"}
    return preprocessing, published, crop


def _timm(builder: str, tag: str) -> tuple[dict, dict, int]:
    import timm

    config = timm.models.get_pretrained_cfg(f"{builder}.{tag}").to_dict()
    size = config["input_size"][-1]
    result = next(r for r in _rows("timm_results_imagenet_all.csv")
                  if r["model"] == f"{builder}.{tag}" and int(r["img_size"]) == size)
    crop_pct = float(result["crop_pct"])
    preprocessing = {"resize_shorter_to": math.floor(size / crop_pct), "crop_pct": crop_pct,
                     "interpolation": result["interpolation"], "mean": [round(v, 6) for v in config["mean"]],
                     "std": [round(v, 6) for v in config["std"]], "color": "RGB", "value_range": [0.0, 1.0]}
    published = {"top1": float(result["top1"]), "top5": float(result["top5"]),
                 "accuracy_source": f'{TIMM_RESULTS} row "{builder}.{tag}" (img_size {size})'}
    cpu = [r for r in _rows("timm_benchmark_infer_fp32_cpu_i9_10940x_pt240_dynamo.csv") if r["model"] == builder]
    if cpu and int(cpu[0]["infer_img_size"]) == size:
        published.update(params_m=float(cpu[0]["param_count"]), gmacs=float(cpu[0]["infer_gmacs"]),
                         complexity_source=f'{TIMM_CPU_BENCH} row "{builder}" (param_count, infer_gmacs; fvcore, '
                                           "1 multiply-add = 1)")
    else:
        gpu = next(r for r in _rows("timm_benchmark_infer.csv")
                   if r["model"] == builder and int(r["infer_img_size"]) == size)
        published.update(params_m=float(gpu["param_count"]), gmacs=float(gpu["infer_gmacs"]),
                         complexity_source=f'{TIMM_GPU_BENCH} row "{builder}" at {size} (param_count, infer_gmacs; '
                                           "fvcore, 1 multiply-add = 1)")
    return preprocessing, published, size


def entry(name: str) -> dict:
    display, family, year, source, builder, tag, sets, pretraining, note = MODELS[name]
    if source == "torchvision":
        preprocessing, published, size = _torchvision(name, builder, tag)
    else:
        preprocessing, published, size = _timm(builder, tag)
    published.update(COMPLEXITY_OVERRIDES.get(name, {}))
    weights_note = f"not in the paper; {source} weights {tag}" + (f": {note}" if note else "")
    return {"name": name, "display_name": display, "family": family, "year": year, "source": source,
            "builder": builder, "input_size": size, "preprocessing": preprocessing, "published": published,
            "pretrained": {"tag": tag, "same_as_paper": False, "pretraining": pretraining, "note": weights_note},
            "sets": ["modern", *sets]}


def _flow_lists(dumper, data):  # short lists of scalars read best on one line
    flow = len(data) <= 3 and all(isinstance(v, (int, float, str)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def main() -> None:
    yaml.SafeDumper.add_representer(list, _flow_lists)
    entries = [entry(name) for name in MODELS]
    sys.stdout.write("# Modern entries: tools/make_modern_catalogue.py\n")
    sys.stdout.write(yaml.safe_dump(entries, sort_keys=False, width=110, allow_unicode=True))


if __name__ == "__main__":
    main()
