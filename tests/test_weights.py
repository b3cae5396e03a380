"""Random weights by default; a state-dict file loaded safely; clear reasons when weights cannot be had."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from exporters.torch_models import ModelRecipe, WeightsUnavailable, build_module


def _recipe(weights: str = "random", **overrides) -> ModelRecipe:
    base = dict(name="resnet18", source="torchvision", builder="resnet18",
                pretrained_tag="ResNet18_Weights.IMAGENET1K_V1", weights=weights)
    return ModelRecipe(**{**base, **overrides})


def test_state_dict_file_is_loaded(tmp_path):
    torch.manual_seed(123)
    source = build_module(_recipe())
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    loaded = build_module(_recipe(str(path)))
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert not loaded.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source.eval()(x))


def test_state_dict_metadata_reaches_loaders_that_need_it(tmp_path):
    """torchvision's MNASNet refuses a state dict without its per-module version metadata."""
    recipe = _recipe(name="mnasnet0_5", builder="mnasnet0_5", pretrained_tag=None)
    source = build_module(recipe)
    path = tmp_path / "mnasnet.pth"
    torch.save(source.state_dict(), path)
    loaded = build_module(_recipe(str(path), name="mnasnet0_5", builder="mnasnet0_5", pretrained_tag=None))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


class WithNonPersistentBuffer(torch.nn.Module):
    """A tensor the state dict does not hold: the meta-device build cannot fill it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        self.register_buffer("scale", torch.full((2,), 3.0), persistent=False)

    def forward(self, x):
        return self.linear(x) * self.scale


def NeedsRealTensors() -> torch.nn.Module:  # noqa: N802 - a builder, named like one
    """A builder that reads a tensor's value, as timm's drop-path schedules do: fails on the meta device."""
    rate = torch.linspace(0, 0.1, 3)[1].item()
    return torch.nn.Sequential(torch.nn.Dropout(rate), torch.nn.Linear(4, 2))


@pytest.mark.parametrize("builder", ["WithNonPersistentBuffer", "NeedsRealTensors"])
def test_models_the_meta_device_cannot_build_are_built_normally(tmp_path, builder):
    recipe = ModelRecipe(name=builder, source="tests.test_weights", builder=builder)
    source = build_module(recipe)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    loaded = build_module(ModelRecipe(name=builder, source="tests.test_weights", builder=builder, weights=str(path)))
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x), source(x))


def test_unsafe_checkpoint_is_refused(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": object()}, path)  # arbitrary objects need weights_only=False
    with pytest.raises(WeightsUnavailable, match="safely"):
        build_module(_recipe(str(path)))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(build_module(_recipe(builder="resnet34")).state_dict(), path)
    with pytest.raises(WeightsUnavailable, match="do not fit this architecture"):
        build_module(_recipe(str(path)))


def test_aux_head_weights_are_dropped_for_the_deployed_model(tmp_path):
    import torchvision

    with_aux = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save(with_aux.state_dict(), path)
    model = build_module(ModelRecipe(name="inception_v3", source="torchvision", builder="inception_v3",
                                     builder_kwargs={"aux_logits": False, "init_weights": False}, weights=str(path)))
    assert torch.equal(model.fc.weight, with_aux.fc.weight)


def test_pretrained_unavailable_says_why_and_how(monkeypatch, tmp_path):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as error:
        build_module(_recipe("pretrained"))
    message = str(error.value)
    assert "network is unreachable" in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "--weights PATH" in message


def test_model_without_published_weights():
    with pytest.raises(WeightsUnavailable, match="no pretrained weights exist"):
        build_module(ModelRecipe(name="shufflenet_v1_g8", source="project", builder="shufflenet_v1",
                                 builder_kwargs={"groups": 8}, weights="pretrained"))


def test_missing_file():
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        build_module(_recipe("/no/such/file.pth"))
