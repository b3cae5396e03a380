"""One-off: write the paper's 44 entries of harness/data/models.yaml from ../shared/reference/paper_models.csv.

Kept to show where every figure in models.yaml came from. models.yaml is the source of truth from
now on: edit it by hand, and rerun this only to regenerate the paper entries from the reference CSV
(`python tools/make_paper_catalogue.py > harness/data/models.yaml`).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_models.csv"

# paper name -> (stable name, family, year, source, builder, builder kwargs, pretrained tag)
CHOICES: dict[str, tuple[str, str, int, str, str, dict, str | None]] = {
    "AlexNet": ("alexnet", "AlexNet", 2012, "torchvision", "alexnet", {}, "AlexNet_Weights.IMAGENET1K_V1"),
    "VGG-11": ("vgg11", "VGG", 2014, "torchvision", "vgg11", {}, "VGG11_Weights.IMAGENET1K_V1"),
    "VGG-11 BN": ("vgg11_bn", "VGG", 2014, "torchvision", "vgg11_bn", {}, "VGG11_BN_Weights.IMAGENET1K_V1"),
    "VGG-13": ("vgg13", "VGG", 2014, "torchvision", "vgg13", {}, "VGG13_Weights.IMAGENET1K_V1"),
    "VGG-13 BN": ("vgg13_bn", "VGG", 2014, "torchvision", "vgg13_bn", {}, "VGG13_BN_Weights.IMAGENET1K_V1"),
    "VGG-16": ("vgg16", "VGG", 2014, "torchvision", "vgg16", {}, "VGG16_Weights.IMAGENET1K_V1"),
    "VGG-16 BN": ("vgg16_bn", "VGG", 2014, "torchvision", "vgg16_bn", {}, "VGG16_BN_Weights.IMAGENET1K_V1"),
    "VGG-19": ("vgg19", "VGG", 2014, "torchvision", "vgg19", {}, "VGG19_Weights.IMAGENET1K_V1"),
    "VGG-19 BN": ("vgg19_bn", "VGG", 2014, "torchvision", "vgg19_bn", {}, "VGG19_BN_Weights.IMAGENET1K_V1"),
    "BN-Inception": ("bninception", "Inception", 2015, "pretrainedmodels", "bninception", {}, "imagenet"),
    "GoogLeNet": ("googlenet", "Inception", 2014, "torchvision", "googlenet",
                  {"aux_logits": False, "init_weights": False}, "GoogLeNet_Weights.IMAGENET1K_V1"),
    "SqueezeNet-v1.0": ("squeezenet1_0", "SqueezeNet", 2016, "torchvision", "squeezenet1_0", {},
                        "SqueezeNet1_0_Weights.IMAGENET1K_V1"),
    "SqueezeNet-v1.1": ("squeezenet1_1", "SqueezeNet", 2016, "torchvision", "squeezenet1_1", {},
                        "SqueezeNet1_1_Weights.IMAGENET1K_V1"),
    "ResNet-18": ("resnet18", "ResNet", 2015, "torchvision", "resnet18", {}, "ResNet18_Weights.IMAGENET1K_V1"),
    "ResNet-34": ("resnet34", "ResNet", 2015, "torchvision", "resnet34", {}, "ResNet34_Weights.IMAGENET1K_V1"),
    "ResNet-50": ("resnet50", "ResNet", 2015, "torchvision", "resnet50", {}, "ResNet50_Weights.IMAGENET1K_V1"),
    "ResNet-101": ("resnet101", "ResNet", 2015, "torchvision", "resnet101", {}, "ResNet101_Weights.IMAGENET1K_V1"),
    "ResNet-152": ("resnet152", "ResNet", 2015, "torchvision", "resnet152", {}, "ResNet152_Weights.IMAGENET1K_V1"),
    "Inception-v3": ("inception_v3", "Inception", 2015, "torchvision", "inception_v3",
                     {"aux_logits": False, "init_weights": False}, "Inception_V3_Weights.IMAGENET1K_V1"),
    "Inception-v4": ("inception_v4", "Inception", 2016, "timm", "inception_v4", {}, "tf_in1k"),
    "Inception-ResNet-v2": ("inception_resnet_v2", "Inception", 2016, "timm", "inception_resnet_v2", {}, "tf_in1k"),
    "DenseNet-121 (k=32)": ("densenet121", "DenseNet", 2016, "torchvision", "densenet121", {},
                            "DenseNet121_Weights.IMAGENET1K_V1"),
    "DenseNet-169 (k=32)": ("densenet169", "DenseNet", 2016, "torchvision", "densenet169", {},
                            "DenseNet169_Weights.IMAGENET1K_V1"),
    "DenseNet-201 (k=32)": ("densenet201", "DenseNet", 2016, "torchvision", "densenet201", {},
                            "DenseNet201_Weights.IMAGENET1K_V1"),
    "DenseNet-161 (k=48)": ("densenet161", "DenseNet", 2016, "torchvision", "densenet161", {},
                            "DenseNet161_Weights.IMAGENET1K_V1"),
    "ResNeXt-101 (32x4d)": ("resnext101_32x4d", "ResNeXt", 2016, "pretrainedmodels", "resnext101_32x4d", {},
                            "imagenet"),
    "ResNeXt-101 (64x4d)": ("resnext101_64x4d", "ResNeXt", 2016, "pretrainedmodels", "resnext101_64x4d", {},
                            "imagenet"),
    "Xception": ("xception", "Xception", 2016, "timm", "legacy_xception", {}, "tf_in1k"),
    "DPN-68": ("dpn68", "DPN", 2017, "timm", "dpn68", {}, "mx_in1k"),
    "DPN-98": ("dpn98", "DPN", 2017, "timm", "dpn98", {}, "mx_in1k"),
    "DPN-131": ("dpn131", "DPN", 2017, "timm", "dpn131", {}, "mx_in1k"),
    "SE-ResNet-50": ("se_resnet50", "SENet", 2017, "timm", "legacy_seresnet50", {}, "in1k"),
    "SE-ResNet-101": ("se_resnet101", "SENet", 2017, "timm", "legacy_seresnet101", {}, "in1k"),
    "SE-ResNet-152": ("se_resnet152", "SENet", 2017, "timm", "legacy_seresnet152", {}, "in1k"),
    "SENet-154": ("senet154", "SENet", 2017, "timm", "legacy_senet154", {}, "in1k"),
    "SE-ResNeXt-50 (32x4d)": ("se_resnext50_32x4d", "SENet", 2017, "timm", "legacy_seresnext50_32x4d", {}, "in1k"),
    "SE-ResNeXt-101 (32x4d)": ("se_resnext101_32x4d", "SENet", 2017, "timm", "legacy_seresnext101_32x4d", {},
                               "in1k"),
    "NASNet-A-Large": ("nasnet_a_large", "NASNet", 2017, "timm", "nasnetalarge", {}, "tf_in1k"),
    "NASNet-A-Mobile": ("nasnet_a_mobile", "NASNet", 2017, "pretrainedmodels", "nasnetamobile", {}, "imagenet"),
    "MobileNet-v1": ("mobilenet_v1", "MobileNet", 2017, "timm", "mobilenetv1_100", {}, "ra4_e3600_r224_in1k"),
    "MobileNet-v2": ("mobilenet_v2", "MobileNet", 2018, "torchvision", "mobilenet_v2", {},
                     "MobileNet_V2_Weights.IMAGENET1K_V1"),
    "ShuffleNet": ("shufflenet_v1_g8", "ShuffleNet", 2017, "project", "shufflenet_v1", {"groups": 8}, None),
    "CaffeResNet-101": ("cafferesnet101", "ResNet", 2015, "pretrainedmodels", "cafferesnet101", {}, "imagenet"),
    "FBResNet-152": ("fbresnet152", "ResNet", 2015, "pretrainedmodels", "fbresnet152", {}, "imagenet"),
}

SHUFFLENET_V1_COMPLEXITY = ("Zhang et al. 2017, ShuffleNet (arXiv 1707.01083) Table 1: 137 MFLOPs for 1x, g=8 "
                            "(that paper's FLOPs are multiply-adds)")
SAME_AS_PAPER_FROM_PRETRAINEDMODELS = "pretrainedmodels 0.7.4 carries the weights the paper used (Cadene's port)"


def _floats(text: str) -> list[float]:
    return [float(v) for v in json.loads(text)]


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


def _pretrained(row: dict[str, str], source: str, tag: str | None) -> dict | None:
    if tag is None:
        return None
    if source == "torchvision":
        relation = row["torchvision_weights_relation"]
        same = relation.startswith("torchvision V1")
    elif source == "timm":
        relation = row["timm_weights_relation"]
        same = not relation.startswith("architecture only")
    else:
        relation = SAME_AS_PAPER_FROM_PRETRAINEDMODELS
        same = True
    return {"tag": tag, "same_as_paper": same, "note": relation}


def _published(row: dict[str, str], source: str) -> dict:
    out: dict = {}
    top1, top5 = _num(row["top1_paper_or_cadene"]), _num(row["top5_paper_or_cadene"])
    if top1 is not None:
        out.update(top1=top1, top5=top5, accuracy_source=row["acc_source"])
    elif _num(row["top1_porter_reported"]) is not None:
        out.update(top1=_num(row["top1_porter_reported"]), top5=_num(row["top5_porter_reported"]),
                   accuracy_source=f"porter-reported: {row['porter_source']}")
    if _num(row["params_m"]) is not None:
        out.update(params_m=_num(row["params_m"]), gmacs=_num(row["gflops_or_gmacs"]),
                   complexity_source=f"{row['complexity_source']} ({row['gflops_or_gmacs_kind']})")
    elif source == "torchvision" and row["tv_num_params_m"]:
        out.update(params_m=round(float(row["tv_num_params_m"]), 3), gmacs=_num(row["tv_gflops_meta"]),
                   complexity_source="torchvision 0.29.1 weights meta (num_params, _ops)")
    elif row["timm_param_count_m"]:
        out.update(params_m=_num(row["timm_param_count_m"]), gmacs=_num(row["timm_infer_gmacs"]),
                   complexity_source="timm results/benchmark-infer-amp-nchw-pt291-cu128-4090.csv @aa4b5850 "
                                     "(param_count, infer_gmacs; fvcore, 1 multiply-add = 1)")
    return out


def entry(row: dict[str, str]) -> dict:
    name, family, year, source, builder, kwargs, tag = CHOICES[row["paper_name"]]
    size = int(row["input_size"])
    spec: dict = {
        "name": name,
        "paper_name": row["paper_name"],
        "display_name": row["paper_name"],
        "family": family,
        "year": year,
        "source": source,
        "builder": builder,
    }
    if kwargs:
        spec["builder_kwargs"] = kwargs
    spec["input_size"] = size
    spec["preprocessing"] = {
        "resize_shorter_to": int(row["resize_shorter_side_to"]) or math.floor(size / 0.875),
        "crop_pct": float(row["crop_pct"]),
        "interpolation": "bilinear",
        "mean": _floats(row["mean"]),
        "std": _floats(row["std"]),
        "color": row["input_space"],
        "value_range": _floats(row["input_range"]),
    }
    spec["published"] = _published(row, source)
    if name == "shufflenet_v1_g8":  # no library figure exists; the architecture's own paper gives its MACs
        spec["published"].update(gmacs=0.137, complexity_source=SHUFFLENET_V1_COMPLEXITY)
        row = {**row, "notes": "defined in this project (exporters/shufflenet_v1.py): no maintained library has it, "
                               "and no pretrained weights exist for it in any. " + row["notes"]}
    pretrained = _pretrained(row, source, tag)
    if pretrained:
        spec["pretrained"] = pretrained
    if row["notes"]:
        spec["notes"] = row["notes"]
    return spec


SHUFFLENET_V2 = {
    "name": "shufflenet_v2_x1_0",
    "display_name": "ShuffleNet-v2 1.0x",
    "family": "ShuffleNet",
    "year": 2018,
    "source": "torchvision",
    "builder": "shufflenet_v2_x1_0",
    "input_size": 224,
    "preprocessing": {"resize_shorter_to": 256, "crop_pct": 0.875, "interpolation": "bilinear",
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "color": "RGB",
                      "value_range": [0.0, 1.0]},
    "published": {"top1": 69.362, "top5": 88.316,
                  "accuracy_source": "torchvision 0.29.1 ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1 meta",
                  "params_m": 2.279, "gmacs": 0.145,
                  "complexity_source": "torchvision 0.29.1 weights meta (num_params, _ops)"},
    "pretrained": {"tag": "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1", "same_as_paper": False,
                   "note": "not in the paper: the maintained successor of ShuffleNet v1, listed beside it"},
    "successor_of": "shufflenet_v1_g8",
}


def _flow_lists(dumper, data):  # short lists of numbers read best on one line
    flow = all(isinstance(v, (int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def main() -> None:
    rows = list(csv.DictReader(REFERENCE.open()))
    entries = [entry(row) for row in rows] + [SHUFFLENET_V2]
    import yaml

    yaml.SafeDumper.add_representer(list, _flow_lists)

    header = ("# The model catalogue. Each entry is validated on load (harness/catalogue/registry.py).\n"
              "# The paper's 44 entries were generated by tools/make_paper_catalogue.py from\n"
              "# shared/reference/paper_models.csv; every published figure names its source.\n")
    sys.stdout.write(header + yaml.safe_dump({"models": entries}, sort_keys=False, width=110, allow_unicode=True))


if __name__ == "__main__":
    main()
