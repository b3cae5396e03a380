"""What a catalogue model's timed graph answers, per task; no torch here (the harness and every cell read it).

A classifier is its own graph (one output: the logits). torchvision's detectors and segmenters in eval mode
do more than the network: a detector resizes and normalizes its images, then decodes its boxes and runs
non-maximum suppression, and answers a list of dicts whose sizes depend on the image; a segmenter answers an
OrderedDict. What deployments benchmark (and export) is the network alone, with fixed-shape tensors out
(exporters.task_heads, wrapped by exporters.torch_models.wrap_for_task):

- detection: backbone -> head, answering (cls_logits [N, anchors, classes], bbox_regression [N, anchors, 4]);
  the input is the already-normalized image at the entry's fixed size, as for classifiers. Box decoding and
  NMS are post-processing outside the timed graph.
- segmentation: backbone -> classifier -> bilinear upsampling to the input size, answering the per-pixel
  class scores `out` [N, classes, H, W] (the auxiliary training head is not run).
"""

from __future__ import annotations

CLASSIFICATION = "classification"
DETECTION = "detection"
SEGMENTATION = "segmentation"
# each task's outputs, in the order the graph answers them (their ONNX output names)
TASK_OUTPUTS: dict[str, tuple[str, ...]] = {CLASSIFICATION: ("logits",),
                                            DETECTION: ("cls_logits", "bbox_regression"),
                                            SEGMENTATION: ("out",)}
TASKS: tuple[str, ...] = tuple(TASK_OUTPUTS)


class NotATaskModel(Exception):
    """The built model lacks the parts its task's graph is made of (e.g. a detector without a head)."""


def outputs_of(task: str) -> tuple[str, ...]:
    """The output names of a task's graph."""
    try:
        return TASK_OUTPUTS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: choose from {', '.join(TASKS)}") from None
