"""The ImageNet-1k class order: the 1000 WordNet ids sorted, index 0 = n01440764.

The list is read from the file timm ships (`timm/data/_info/imagenet_synsets.txt`), located without
importing timm (which would import torch into the parent process).
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

from harness.errors import UserError

NUM_CLASSES = 1000
WNID_PATTERN = re.compile(r"^n\d{8}$")


def _timm_info_file(name: str) -> Path:
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the ImageNet class list comes from timm, which is not installed: pip install timm")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / name


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids in class-index order (sorted); checked to be 1000 sorted, distinct ids."""
    path = _timm_info_file("imagenet_synsets.txt")
    wnids = tuple(path.read_text().split())
    if len(wnids) != NUM_CLASSES or list(wnids) != sorted(set(wnids)):
        raise UserError(f"{path} is not the 1000 sorted ImageNet WordNet ids; reinstall timm")
    return wnids


@lru_cache(maxsize=1)
def class_index() -> dict[str, int]:
    return {wnid: index for index, wnid in enumerate(imagenet_wnids())}


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """A short readable name per class index (the first lemma), e.g. 'tabby' for n02123045."""
    path = _timm_info_file("imagenet_synset_to_lemma.txt")
    lemmas = dict(line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)
    return tuple(lemmas.get(wnid, wnid).split(",")[0].strip() for wnid in imagenet_wnids())


def is_wnid(text: str) -> bool:
    return bool(WNID_PATTERN.match(text))
