"""Random weights that are numerically sane, made once and cached as a state-dict file.

Random-init networks in eval mode keep BatchNorm's unit running statistics, so activations grow with
depth (SE-ResNet-152's fp32 output differs from fp64 by ~40 %): comparing runtimes on such weights
measures rounding noise. So "random" weights here are: the library's initialisation under a fixed
seed, then BatchNorm running statistics re-estimated on a few seeded standard-normal batches
(cumulative average, BatchNorm layers alone in train mode). Every runtime then runs the very same
weights, read from one file, and the record says so.

Some libraries initialise a layer to zero on purpose (torchvision's ViT head; the last BatchNorm of
each residual block in timm's ResNets): trained weights never stay that way, but random ones would
make the output constant (ViT-B/16: every logit 0) or switch whole branches off, and a runtime
comparison on them would test nothing. Such layers get ordinary non-zero random weights first
(Linear/conv: their own `reset_parameters()`; norm layers: scale 1).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from exporters.store import Entry, Store
from exporters.tasks import CLASSIFICATION
from exporters.torch_models import RANDOM, ModelRecipe, build_module, import_source

RANDOM_WEIGHTS_VERSION = 2  # 2: zero-initialised layers get non-zero weights
CALIBRATION_BATCHES = 2
CALIBRATION_BATCH_SIZE = 8
WEIGHTS_FILE = "weights.pt"


def reset_zero_initialized(module: Any) -> list[str]:
    """Give every layer whose weight is all zeros ordinary random weights (norm layers: scale 1);
    returns their names. Uses the global torch generator, seeded by the caller."""
    import torch

    norm_types = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)
    reset = []
    with torch.no_grad():
        for name, layer in module.named_modules():
            weight = getattr(layer, "weight", None)
            if not isinstance(weight, torch.nn.Parameter) or not weight.numel() or weight.any():
                continue
            if isinstance(layer, norm_types):
                weight.fill_(1.0)
            elif isinstance(layer, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)):
                layer.reset_parameters()
            else:
                continue
            reset.append(name)
    return reset


def recalibrate_batchnorm(module: Any, input_size: int, seed: int, batches: int = CALIBRATION_BATCHES,
                          batch_size: int = CALIBRATION_BATCH_SIZE) -> int:
    """Re-estimate every BatchNorm's running mean/var on seeded N(0,1) batches; returns how many layers."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [(m, m.momentum) for m in norms]
    module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batches
        norm.train()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(batches):
            module(torch.randn(batch_size, 3, input_size, input_size, generator=generator))
    for norm, momentum in saved:
        norm.momentum = momentum
    module.eval()
    return len(norms)


def random_weights_fields(recipe: ModelRecipe, input_size: int, seed: int, library: str) -> dict[str, Any]:
    """What the cached weights depend on; a detector's or segmenter's task too (its BatchNorm statistics are
    estimated through the task's graph), a classifier's fields as before tasks existed."""
    task = {} if recipe.task == CLASSIFICATION else {"task": recipe.task}
    return {"model": recipe.name, "source": recipe.source, "builder": recipe.builder,
            "builder_kwargs": recipe.builder_kwargs, "library": library, "seed": seed, "input_size": input_size,
            "calibration": [CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE], "torch": _torch_version(),
            "version": RANDOM_WEIGHTS_VERSION, **task}


def _torch_version() -> str:
    """From the package metadata: importing torch here would put it in every ONNX cell's memory."""
    import importlib.metadata

    return importlib.metadata.version("torch")


def random_weights(recipe: ModelRecipe, input_size: int, seed: int, store: Store, library: str) -> Entry:
    """The cached state dict of seeded, BatchNorm-recalibrated random weights; made on first use."""
    fields = random_weights_fields(recipe, input_size, seed, library)
    folder = store.folder("weights", recipe.name, fields)
    cached = store.lookup(folder, WEIGHTS_FILE)
    if cached is not None:
        return cached
    import torch

    import_source(recipe.source)
    start = time.perf_counter()
    torch.manual_seed(seed)
    module = build_module(replace(recipe, weights=RANDOM))
    zero_layers = reset_zero_initialized(module)
    layers = recalibrate_batchnorm(module, input_size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
        torch.save(module.state_dict(), handle)
    zero_note = f"{len(zero_layers)} zero-initialised layers given non-zero weights, " if zero_layers else ""
    meta = {"fields": fields, "batchnorm_layers_recalibrated": layers, "zero_initialized_layers_reset": zero_layers,
            "make_s": time.perf_counter() - start,
            "description": f"random init (seed {seed}), {zero_note}BatchNorm statistics re-estimated on "
                           f"{CALIBRATION_BATCHES} seeded N(0,1) batches of {CALIBRATION_BATCH_SIZE}"}
    return store.commit(folder, WEIGHTS_FILE, Path(handle.name), meta)
