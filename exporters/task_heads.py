"""The wrappers that make a torchvision detector or segmenter its network alone (exporters.tasks says what
each answers). A wrapper holds the model's own submodules under their own names, so its state dict has the
very keys of the model's: weights saved from one load into the other, and torchvision's published weights
load into the wrapper. Imported only when such a model is built (it imports torch)."""

from __future__ import annotations

import torch
from torch import nn

from exporters.tasks import NotATaskModel


class DetectorHead(nn.Module):
    """normalized images -> backbone -> head -> (cls_logits, bbox_regression); no anchors, decoding or NMS."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        maps = [features] if isinstance(features, torch.Tensor) else list(features.values())
        answers = self.head(maps)
        return answers["cls_logits"], answers["bbox_regression"]


class SegmenterHead(nn.Module):
    """normalized images -> backbone -> classifier -> scores upsampled to the input's size (no aux head)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.classifier = model.classifier
        # LR-ASPP's classifier reads several feature maps; DeepLabV3's and FCN's read the last one ("out")
        self.reads_all_features = type(model).__name__ == "LRASPP"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        scores = self.classifier(features if self.reads_all_features else features["out"])
        return nn.functional.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _missing_parts(module: nn.Module, parts: tuple[str, ...]) -> list[str]:
    return [part for part in parts if getattr(module, part, None) is None]


def detector(module: nn.Module, name: str) -> DetectorHead:
    """A one-stage detector (SSD, SSDlite, RetinaNet) as its backbone and head."""
    missing = _missing_parts(module, ("backbone", "head"))
    if missing:
        raise NotATaskModel(f"{name} is not a one-stage detector with a backbone and a head (it has no "
                            f"{', '.join(missing)}): task 'detection' takes torchvision's SSD, SSDlite and RetinaNet")
    return DetectorHead(module)


def segmenter(module: nn.Module, name: str) -> SegmenterHead:
    """A segmenter (DeepLabV3, FCN, LR-ASPP) as its backbone and classifier."""
    missing = _missing_parts(module, ("backbone", "classifier"))
    if missing:
        raise NotATaskModel(f"{name} is not a segmenter with a backbone and a classifier (it has no "
                            f"{', '.join(missing)}): task 'segmentation' takes torchvision's DeepLabV3, FCN and "
                            "LR-ASPP")
    return SegmenterHead(module)
