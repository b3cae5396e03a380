"""The files the harness reads at run time, shipped inside the package as package data: the model catalogue
(`models.yaml`) and the device profiles (`profiles/*.yaml`).

They are read through `importlib.resources`, never through a path relative to the source tree, so a wheel
installed into site-packages reads the same files as a checkout (docs/DECISIONS.md, *Package data*).
"""

from __future__ import annotations

import sys
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

CATALOGUE_FILE = "models.yaml"
PROFILES_FOLDER = "profiles"
PROFILE_SUFFIX = ".yaml"


def shipped_catalogue() -> Traversable:
    """The catalogue the package ships (`harness/data/models.yaml`)."""
    return files(__name__) / CATALOGUE_FILE


def shipped_profiles() -> dict[str, Traversable]:
    """The device profiles the package ships, by name (`jetson-nano` for `profiles/jetson-nano.yaml`)."""
    folder = files(__name__) / PROFILES_FOLDER
    if not folder.is_dir():
        return {}
    return {entry.name[:-len(PROFILE_SUFFIX)]: entry for entry in folder.iterdir()
            if entry.name.endswith(PROFILE_SUFFIX) and entry.is_file()}
