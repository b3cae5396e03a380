"""Build a catalogue model as a torch module, from its source library, with the weights asked for.

Weights are one of: "random" (the library's own initialisation: speed, memory and MACs do not depend
on weight values), "pretrained" (the library's published weights, from the user's cache or a
download), or a path to a state dict for the same builder, loaded with `weights_only=True`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.sources import source_for
from exporters.tasks import CLASSIFICATION, DETECTION, outputs_of

if TYPE_CHECKING:  # torch is imported only when a model is built
    from torch import nn

RANDOM = "random"
PRETRAINED = "pretrained"
# Keys of auxiliary training heads that a deployed (eval) model does not have.
AUX_KEY_MARKERS = ("AuxLogits.", "aux1.", "aux2.", "aux_classifier.")
BATCHNORM_COUNTER = "num_batches_tracked"


class WeightsUnavailable(Exception):
    """The requested weights cannot be had; the message says why and how to provide them."""


class SourceUnavailable(Exception):
    """The model's source library is not installed."""


@dataclass(frozen=True)
class ModelRecipe:
    """What it takes to build one model: its source library, builder and the weights wanted."""

    name: str
    source: str
    builder: str
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained_tag: str | None = None
    weights: str = RANDOM
    task: str = CLASSIFICATION  # exporters.tasks: a detector or segmenter is built as its network alone

    @property
    def weights_label(self) -> str:
        if self.weights in (RANDOM, PRETRAINED):
            return self.weights
        return f"file:{Path(self.weights).name}"


def build_module(recipe: ModelRecipe) -> nn.Module:
    """Build the model in eval mode on the CPU, in fp32, as its task's timed graph (exporters.tasks)."""
    if recipe.weights == PRETRAINED:
        module = _pretrained_module(recipe)
    elif recipe.weights == RANDOM:
        module = _random_module(recipe)
    else:
        module = _module_from_file(recipe, Path(recipe.weights))
    return wrap_for_task(module, recipe.task, f"models.yaml entry '{recipe.name}'").eval()


def _module_from_file(recipe: ModelRecipe, path: Path) -> nn.Module:
    """The architecture built on the meta device (no random init to throw away: VGG-16's takes ~1 s)
    with every tensor then taken from the file. A builder that cannot run on the meta device, or a model
    with tensors the file does not hold (non-persistent buffers), is built the ordinary way instead."""
    import torch

    state = read_state_dict(path)
    try:
        with torch.device("meta"):
            module = _random_module(recipe)
    except Exception:  # noqa: BLE001 - e.g. a builder calling .item() on a tensor: build normally
        module = None
    if module is not None:
        _load_matching(module, state, str(path), assign=True)
        tensors = list(module.parameters()) + list(module.buffers())
        if not any(tensor.is_meta for tensor in tensors):
            return module
    module = _random_module(recipe)
    _load_matching(module, state, str(path))
    return module


def import_source(source: str, hub_needed: bool = False) -> Any:
    """Import the model's source library; without `hub_needed`, timm is kept off the model hub."""
    try:
        return source_for(source).import_library(hub_needed)
    except ImportError as exc:
        raise SourceUnavailable(f"the model's source library '{source}' is not installed"
                                f"{source_for(source).install_hint}: {exc}") from None


class UnknownBuilder(Exception):
    """A catalogue entry names a builder its source library does not have."""


def _random_module(recipe: ModelRecipe) -> nn.Module:
    library = import_source(recipe.source)
    source = source_for(recipe.source)
    if not source.has_builder(library, recipe.builder):
        raise UnknownBuilder(f"models.yaml entry '{recipe.name}': {recipe.source} has no builder "
                             f"'{recipe.builder}'; correct the entry's builder (or install the library version "
                             "that has it)")
    return source.build(library, recipe.builder, dict(recipe.builder_kwargs))


def _pretrained_module(recipe: ModelRecipe) -> nn.Module:
    if recipe.pretrained_tag is None:
        raise WeightsUnavailable(
            f"no pretrained weights exist for '{recipe.name}' in any maintained library; "
            "pass --weights PATH with a state dict for this architecture")
    library = import_source(recipe.source, hub_needed=True)
    source = source_for(recipe.source)
    try:
        return source.build_pretrained(library, recipe.builder, recipe.pretrained_tag, dict(recipe.builder_kwargs),
                                       _load_matching)
    except WeightsUnavailable:
        raise
    except Exception as exc:  # network, hub and cache errors differ per library; all mean "not available"
        raise WeightsUnavailable(
            f"pretrained weights for '{recipe.name}' ({recipe.source} {recipe.pretrained_tag}) could not be loaded: "
            f"{type(exc).__name__}: {exc}. {source.weights_cache_hint()} "
            "or pass --weights PATH with a state dict for this builder") from None


def read_state_dict(path: Path) -> dict[str, Any]:
    """A checkpoint loaded safely (`weights_only=True`), unwrapped from {'state_dict': ...} forms."""
    import torch

    if not path.is_file():
        raise WeightsUnavailable(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"cannot load weights file {path} safely (weights_only): {exc}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def _load_matching(module: nn.Module, state: dict[str, Any], origin: str, assign: bool = False) -> None:
    """Load strictly, except for the auxiliary training heads a deployed model leaves out; `assign`
    makes the file's tensors the module's (for a module built on the meta device)."""
    metadata = getattr(state, "_metadata", None)  # per-module versions some loaders need (torchvision MNASNet)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = set(module.state_dict())
    unexpected = [k for k in state if k not in expected and not k.startswith(AUX_KEY_MARKERS)]
    # BatchNorm's step counter is no weight, and torch fills it in itself: checkpoints made with frozen BatchNorm
    # (torchvision's detectors) have none
    missing = sorted(k for k in expected - set(state) if not k.endswith(BATCHNORM_COUNTER))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise WeightsUnavailable(f"weights from {origin} do not fit this architecture: {detail}")
    kept = OrderedDict((k, v) for k, v in state.items() if k in expected)
    if metadata is not None:
        kept._metadata = OrderedDict((k.removeprefix("module."), v) for k, v in metadata.items())  # type: ignore[attr-defined]
    try:
        module.load_state_dict(kept, strict=True, assign=assign)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise WeightsUnavailable(f"weights from {origin} do not fit this architecture: {first}") from None


def wrap_for_task(module: Any, task: str, name: str = "the model") -> Any:
    """The module whose forward is the task's timed graph: a classifier as it is, a detector or segmenter in
    its wrapper (the same weights, the same state-dict keys). Imports torch only for a wrapper."""
    outputs_of(task)
    if task == CLASSIFICATION:
        return module
    from exporters import task_heads

    return task_heads.detector(module, name) if task == DETECTION else task_heads.segmenter(module, name)
