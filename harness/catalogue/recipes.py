"""From a catalogue entry to what the other packages need: a build recipe, a complexity key, a summary."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from exporters.torch_models import ModelRecipe
from harness import __version__
from harness.catalogue.complexity import cache_key
from harness.catalogue.registry import SOURCE_PACKAGE, ModelSpec


def library_version(source: str) -> str:
    if source == "project":
        return f"dnn-harness {__version__}"
    package = SOURCE_PACKAGE[source]
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} (not installed)"


def recipe_for(spec: ModelSpec, weights: str = "random") -> ModelRecipe:
    return ModelRecipe(name=spec.name, source=spec.source, builder=spec.builder,
                       builder_kwargs=dict(spec.builder_kwargs),
                       pretrained_tag=spec.pretrained.tag if spec.pretrained else None, weights=weights,
                       task=spec.task)


def complexity_key_for(spec: ModelSpec) -> str:
    return cache_key(spec.name, spec.source, spec.builder, dict(spec.builder_kwargs), library_version(spec.source))


def model_summary(spec: ModelSpec, weights: str, complexity: dict[str, Any] | None) -> dict[str, Any]:
    """What a record says about the model it measured."""
    return {
        "name": spec.name,
        "task": spec.task,
        "display_name": spec.display_name,
        "paper_name": spec.paper_name,
        "family": spec.family,
        "source": spec.source,
        "library": library_version(spec.source),
        "builder": spec.builder,
        "builder_kwargs": dict(spec.builder_kwargs),
        "input_size": spec.input_size,
        "weights": weights,
        "published": spec.published.model_dump(),
        "complexity": complexity,
    }
