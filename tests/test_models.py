"""Every catalogue model builds and runs at its input size, and its params/MACs match published figures.

Tolerances: for every torchvision classifier, params equal torchvision's published `num_params` exactly
and MACs are within 2 % of its published `_ops`; a detector's or segmenter's params and MACs are within 2 % of
the figures its entry cites; every other model's MACs are within 5 % of the GMACs
its catalogue entry cites (ptflops README, timm benchmark, or the ShuffleNet paper).
"""

from __future__ import annotations

import pytest

from exporters.torch_models import build_module
from harness.catalogue.complexity import measure
from harness.catalogue.recipes import recipe_for
from harness.catalogue.registry import load_catalogue

SPECS = load_catalogue().specs
TORCHVISION_MAC_TOLERANCE = 0.02
OTHER_MAC_TOLERANCE = 0.05
# torchvision's num_params counts the auxiliary training heads; the deployed model has none (aux_logits=False).
AUX_HEADS_IN_PUBLISHED_PARAMS = {"inception_v3"}


@pytest.fixture(scope="module")
def measured() -> dict[str, object]:
    return {}


def _complexity(spec, cache):
    if spec.name not in cache:
        import torch

        from exporters.tasks import outputs_of

        module = build_module(recipe_for(spec))
        with torch.inference_mode():
            answered = module(torch.randn(1, 3, spec.input_size, spec.input_size))
        outputs = answered if isinstance(answered, tuple) else (answered,)
        assert len(outputs) == len(outputs_of(spec.task)), spec.name
        if spec.task == "classification":
            assert tuple(outputs[0].shape) == (1, 1000), spec.name
        assert all(output.shape[0] == 1 and torch.isfinite(output).all() for output in outputs), spec.name
        cache[spec.name] = measure(module, spec.input_size)
    return cache[spec.name]


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_builds_runs_and_matches_published_macs(spec, measured):
    complexity = _complexity(spec, measured)
    assert 0 < complexity.conv_macs <= complexity.macs
    assert complexity.file_size_bytes > 4 * complexity.params  # fp32 tensors plus the file's own framing
    if spec.task != "classification":  # the entry's figures: torchvision's own are at another input size or
        # count heads (aux) and frozen BatchNorm the deployed graph does not have
        assert complexity.params / 1e6 == pytest.approx(spec.published.params_m, rel=TORCHVISION_MAC_TOLERANCE)
        if spec.published.gmacs is not None:
            assert complexity.macs / 1e9 == pytest.approx(spec.published.gmacs, rel=TORCHVISION_MAC_TOLERANCE)
    elif spec.source == "torchvision":
        import torchvision

        meta = torchvision.models.get_weight(spec.pretrained.tag).meta
        assert complexity.macs / 1e9 == pytest.approx(meta["_ops"], rel=TORCHVISION_MAC_TOLERANCE)
        if spec.name not in AUX_HEADS_IN_PUBLISHED_PARAMS:
            assert complexity.params == meta["num_params"]
    else:
        assert complexity.macs / 1e9 == pytest.approx(spec.published.gmacs, rel=OTHER_MAC_TOLERANCE)


@pytest.mark.slow
def test_inception_v3_params_with_and_without_aux_head():
    """torchvision publishes 27,161,264 params, aux head included; at inference it is not built or counted."""
    import torchvision

    meta = torchvision.models.get_weight("Inception_V3_Weights.IMAGENET1K_V1").meta
    with_aux = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    assert sum(p.numel() for p in with_aux.parameters()) == meta["num_params"]
    spec = load_catalogue().get("inception_v3")
    deployed = build_module(recipe_for(spec))
    aux = sum(p.numel() for p in with_aux.AuxLogits.parameters())
    assert sum(p.numel() for p in deployed.parameters()) == meta["num_params"] - aux


def test_paper_convention_conv_only_macs_differ_most_for_fc_heavy_models():
    """The paper counted Conv2d only: for AlexNet the FC layers are ~8 % of all MACs."""
    spec = load_catalogue().get("alexnet")
    complexity = measure(build_module(recipe_for(spec)), spec.input_size)
    fc_share = 1 - complexity.conv_macs / complexity.macs
    assert 0.05 < fc_share < 0.12
    assert complexity.flops == 2 * complexity.macs


@pytest.mark.parametrize("groups, paper_mflops", [(1, 143), (2, 140), (3, 137), (4, 133), (8, 137)])
def test_shufflenet_v1_matches_its_paper(groups, paper_mflops):
    """ShuffleNet paper (arXiv 1707.01083) Table 1: complexity of the 1x network per group count."""
    from exporters.shufflenet_v1 import shufflenet_v1

    complexity = measure(shufflenet_v1(groups=groups), 224)
    assert complexity.macs / 1e6 == pytest.approx(paper_mflops, rel=0.02)


def _counted_macs(module, inputs, with_attention: bool) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from harness.catalogue.complexity import attention_formulas

    mapping = attention_formulas() if with_attention else {}
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def test_attention_is_counted_on_the_fused_and_sdpa_paths():
    """nn.MultiheadAttention in eval takes the fused fast path (q/k/v and output projections inside it);
    F.scaled_dot_product_attention is opaque to PyTorch's counter. Both are counted exactly here."""
    import torch

    batch, length, embed, heads = 2, 10, 64, 4
    attention = torch.nn.MultiheadAttention(embed, heads, batch_first=True).eval()
    x = torch.randn(batch, length, embed)
    projections = batch * (length + 2 * length + length) * embed * embed  # q, k, v, out
    scores_and_values = 2 * batch * length * length * embed
    assert _counted_macs(attention, (x, x, x), with_attention=False) < projections  # the gap being fixed
    assert _counted_macs(attention, (x, x, x), with_attention=True) == projections + scores_and_values

    class Sdpa(torch.nn.Module):
        def forward(self, q, k, v):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    q = torch.randn(batch, heads, length, embed // heads)
    k = v = torch.randn(batch, heads, 7, embed // heads)
    assert _counted_macs(Sdpa(), (q, k, v), with_attention=False) == 0
    assert _counted_macs(Sdpa(), (q, k, v), with_attention=True) == 2 * batch * heads * length * 7 * (embed // heads)
