"""Where catalogue models come from: one `ModelSource` per library, registered under the name `models.yaml`
uses (`source:`). A new library is a new class here, not a branch in the code that builds models."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable

LoadState = Callable[[Any, dict[str, Any], str], None]  # (module, state dict, origin): strict, aux heads aside


class ModelSource:
    """How to import a library, check a builder, and build a model with random or published weights."""

    name = ""
    module = ""  # what to import
    install_hint = ""

    def import_library(self, hub_needed: bool = False) -> Any:
        return importlib.import_module(self.module)

    def has_builder(self, library: Any, builder: str) -> bool:
        return callable(getattr(library, builder, None))

    def build(self, library: Any, builder: str, kwargs: dict[str, Any]) -> Any:
        """The architecture with the library's own random initialisation, in fp32 on the CPU."""
        return getattr(library, builder)(**kwargs)

    def build_pretrained(self, library: Any, builder: str, tag: str, kwargs: dict[str, Any],
                         load_state: LoadState) -> Any:
        """The architecture with the library's published weights `tag` (from its cache, or downloaded)."""
        raise NotImplementedError(f"{self.name} publishes no weights")

    def weights_cache_hint(self) -> str:
        import torch.hub

        return f"{self.name} reads {Path(torch.hub.get_dir()) / 'checkpoints'}: put the weights file there"


class Torchvision(ModelSource):
    """Classifiers at `torchvision.models`' top level; detectors and segmenters (in its subpackages) by the name
    they are registered under (`torchvision.models.get_model_builder`)."""

    name = module = "torchvision"

    def _builder(self, library: Any, builder: str) -> Any:
        found = getattr(library.models, builder, None)
        if callable(found):
            return found
        return library.models.get_model_builder(builder) if builder in library.models.list_models() else None

    def has_builder(self, library: Any, builder: str) -> bool:
        return self._builder(library, builder) is not None

    def build(self, library: Any, builder: str, kwargs: dict[str, Any]) -> Any:
        return self._builder(library, builder)(weights=None, **kwargs)

    def build_pretrained(self, library: Any, builder: str, tag: str, kwargs: dict[str, Any],
                         load_state: LoadState) -> Any:
        module = self.build(library, builder, kwargs)
        weights = library.models.get_weight(tag)
        load_state(module, weights.get_state_dict(progress=True, check_hash=True), f"torchvision {tag}")
        return module


class Timm(ModelSource):
    name = module = "timm"

    def import_library(self, hub_needed: bool = False) -> Any:
        if not hub_needed:  # random weights need no hub; without this timm retries it for ~46 s offline
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return super().import_library(hub_needed)

    def has_builder(self, library: Any, builder: str) -> bool:
        return bool(library.is_model(builder))

    def build(self, library: Any, builder: str, kwargs: dict[str, Any]) -> Any:
        return library.create_model(builder, pretrained=False, **kwargs)

    def build_pretrained(self, library: Any, builder: str, tag: str, kwargs: dict[str, Any],
                         load_state: LoadState) -> Any:
        return library.create_model(f"{builder}.{tag}", pretrained=True, **kwargs)

    def weights_cache_hint(self) -> str:
        return ("timm reads the Hugging Face cache (HF_HOME, default ~/.cache/huggingface): "
                "download there on a machine with network access")


class PretrainedModels(ModelSource):
    name = module = "pretrainedmodels"
    install_hint = " (pip install 'dnn-harness[paper]')"

    def has_builder(self, library: Any, builder: str) -> bool:
        return callable(library.__dict__.get(builder))

    def build(self, library: Any, builder: str, kwargs: dict[str, Any]) -> Any:
        return library.__dict__[builder](num_classes=1000, pretrained=None, **kwargs)

    def build_pretrained(self, library: Any, builder: str, tag: str, kwargs: dict[str, Any],
                         load_state: LoadState) -> Any:
        return library.__dict__[builder](num_classes=1000, pretrained=tag)


class Project(ModelSource):
    """Architectures no maintained library carries (ShuffleNet v1), written in this project."""

    name = "project"
    module = "exporters.shufflenet_v1"


class ModuleSource(ModelSource):
    """Any importable module whose callables build models (`source: package.module`), e.g. a test's own."""

    def __init__(self, module: str) -> None:
        self.name = self.module = module


SOURCES: dict[str, ModelSource] = {source.name: source for source in
                                   (Torchvision(), Timm(), PretrainedModels(), Project())}


def source_for(name: str) -> ModelSource:
    """The registered source of that name, else the module of that dotted name."""
    return SOURCES.get(name) or ModuleSource(name)
