"""Parity figures, tolerances, and proof that the check catches a real defect in an exported file."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from exporters.onnx_export import ExportSpec, export
from exporters.store import Store
from exporters.torch_models import build_module
from exporters.weights import random_weights, recalibrate_batchnorm
from harness.catalogue.recipes import library_version, recipe_for
from harness.cell.worker import make_inputs
from harness.measure.parity import (TOLERANCES, are_logits, compare, compare_outputs, output_violations,
                                    violations, worst)
from runtimes import create_runtime
from runtimes.base import OnnxFileArtifact, RuntimeOptions


def test_identical_outputs():
    a = np.random.default_rng(0).standard_normal((4, 1000)).astype(np.float32)
    parity = compare(a, a.copy())
    assert parity.max_abs_err == 0 and parity.max_rel_err == 0 and parity.rel_l2_err == 0
    assert parity.min_cosine == pytest.approx(1.0) and parity.top1_agreement == 1 and parity.top5_overlap == 1
    assert violations(parity, TOLERANCES["fp32"]) == []


def test_errors_are_relative_to_the_reference_magnitude():
    reference = np.random.default_rng(0).standard_normal((4, 1000)) * 1e6  # huge random-weight logits
    candidate = reference + 1.0  # an absolute error of 1 is tiny here
    parity = compare(reference, candidate)
    assert parity.max_abs_err == pytest.approx(1.0)
    assert parity.max_rel_err == pytest.approx(1.0 / np.abs(reference).max())
    assert violations(parity, TOLERANCES["fp32"]) == []


def test_top1_and_top5():
    reference = np.tile(np.arange(10, dtype=np.float64), (2, 1))  # arg-max 9, top-5 {5..9}
    candidate = reference.copy()
    candidate[1, 0] = 100.0  # row 1: new arg-max 0, top-5 {0, 6, 7, 8, 9}
    parity = compare(reference, candidate)
    assert parity.top1_agreement == 0.5 and parity.top5_overlap == pytest.approx((1 + 4 / 5) / 2)
    problems = violations(parity, TOLERANCES["fp32"])
    assert any("top-1 agreement" in p for p in problems) and any("relative error" in p for p in problems)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shapes differ"):
        compare(np.zeros((2, 10)), np.zeros((2, 11)))


def test_every_output_is_compared_and_the_worst_figures_summarize_them():
    """A detector's two outputs: its scores agree, its boxes are off in one row; the verdict names output 1."""
    rng = np.random.default_rng(3)
    scores, boxes = rng.standard_normal((2, 20, 91)), rng.standard_normal((2, 20, 4))
    wrong_boxes = boxes.copy()
    wrong_boxes[1] = -wrong_boxes[1]
    parities = compare_outputs([scores, boxes], [scores.copy(), wrong_boxes])
    assert parities[0].max_abs_err == 0 and parities[1].min_cosine == pytest.approx(-1.0)
    problems = output_violations(parities, TOLERANCES["fp32"], logits=False)
    assert problems and all(p.startswith("output 1: ") for p in problems)
    summary = worst(parities)
    assert summary["min_cosine"] == pytest.approx(-1.0) and summary["max_abs_err"] == parities[1].max_abs_err
    assert output_violations(compare_outputs([scores, boxes], [scores, boxes]), TOLERANCES["fp32"], False) == []
    with pytest.raises(ValueError, match="1 outputs, the reference has 2"):
        compare_outputs([scores, boxes], [scores])


def test_top1_agreement_is_judged_on_logits_and_reported_on_other_outputs():
    """An arg-max over a row of box offsets, or over a flattened segmentation map (decided by near-ties), says
    nothing: only a classifier's (batch, classes) logits are judged on it; other outputs on error and cosine."""
    reference = np.tile(np.arange(10, dtype=np.float64), (4, 1))
    candidate = reference.copy()
    candidate[:, 8] += 1.5  # arg-max moves to 8 in every row; cosine stays near 1, the error small for int8
    int8 = TOLERANCES["int8"]
    assert are_logits([reference]) and not are_logits([reference, reference])
    assert any("top-1 agreement" in p for p in output_violations(compare_outputs([reference], [candidate]), int8,
                                                                   are_logits([reference])))
    assert output_violations(compare_outputs([reference, reference], [candidate, reference]), int8, False) == []
    class_map = np.zeros((2, 3, 4, 4))
    class_map[:, :2] = 1.0  # classes 0 and 1 tied everywhere
    near_tie = class_map.copy()
    near_tie[:, 1, 0, 0] += 1e-7  # the tie broken the other way: the same map to within rounding
    [parity] = compare_outputs([class_map], [near_tie])
    assert parity.top1_agreement == 0 and not are_logits([class_map])
    assert output_violations([parity], TOLERANCES["fp32"], False) == []


def test_batchnorm_recalibration_tames_random_weights(catalogue):
    import torch

    spec = catalogue.get("resnet50")
    torch.manual_seed(0)
    module = build_module(recipe_for(spec))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = module(x).abs().max().item()
    layers = recalibrate_batchnorm(module, 224, seed=0)
    with torch.inference_mode():
        after = module(x).abs().max().item()
    assert layers == 53 and after < before / 10


def test_zero_initialised_layers_get_random_weights(catalogue, tmp_path):
    """torchvision's ViT head starts at zero: random weights would answer 0 for every class and image."""
    import torch

    spec = catalogue.get("vit_b_16")
    weights = random_weights(recipe_for(spec), spec.input_size, 0, Store(tmp_path), library_version(spec.source))
    assert weights.meta["zero_initialized_layers_reset"] == ["heads.head"]
    module = build_module(replace(recipe_for(spec), weights=str(weights.path)))
    with torch.inference_mode():
        logits = module(torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)))
    assert logits.std(dim=1).min() > 0 and not torch.equal(logits[0], logits[1])


def _reference_and_file(catalogue, tmp_path):
    import torch

    spec = catalogue.get("squeezenet1_1")
    store = Store(tmp_path)
    weights = random_weights(recipe_for(spec), spec.input_size, 0, store, library_version(spec.source))
    recipe = replace(recipe_for(spec), weights=str(weights.path))
    entry, _ = export(ExportSpec(model=spec.name, weights_id=weights.meta["sha256"], input_size=224),
                      lambda: build_module(recipe), store)
    inputs = make_inputs((4, 3, 224, 224), seed=0)
    with torch.inference_mode():
        reference = build_module(recipe)(torch.from_numpy(inputs)).numpy()
    return reference, inputs, entry.path


def _ort_outputs(path, inputs) -> np.ndarray:
    with create_runtime("ort", RuntimeOptions()) as runtime:
        runtime.load(OnnxFileArtifact(name="m", path=str(path)))
        runtime.prepare(inputs)
        runtime.run()
        runtime.synchronize()
        return runtime.outputs()[0]


def test_parity_catches_one_perturbed_weight(catalogue, tmp_path):
    reference, inputs, path = _reference_and_file(catalogue, tmp_path)
    assert violations(compare(reference, _ort_outputs(path, inputs)), TOLERANCES["fp32"]) == []

    model = onnx.load(str(path))
    conv = next(init for init in model.graph.initializer if len(init.dims) == 4)  # the first conv's weights
    weight = numpy_helper.to_array(conv).copy()
    weight.flat[0] += 1.0  # one scalar of one kernel
    conv.CopyFrom(numpy_helper.from_array(weight, conv.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    problems = violations(compare(reference, _ort_outputs(broken, inputs)), TOLERANCES["fp32"])
    assert problems, "a perturbed weight must fail parity"
