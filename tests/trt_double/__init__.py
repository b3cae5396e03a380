"""Test doubles of TensorRT (`tensorrt`) and cuda-python (`cuda.bindings.runtime`), for tests only.

`install(version)` puts both into `sys.modules` of this process; `sitecustomize.py` in this folder does
the same in every interpreter started with the folder on PYTHONPATH (the harness's worker processes),
reading the version from TRT_DOUBLE_VERSION. The harness never imports this package: the doubles reach
it only through `import tensorrt` / `import cuda.bindings.runtime`, as the real libraries would.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from pathlib import Path

VERSION_ENV = "TRT_DOUBLE_VERSION"
DEFAULT_VERSION = "10.3.0"
FOLDER = Path(__file__).resolve().parent


def _module(name: str, module: types.ModuleType | None = None, package: bool = False) -> types.ModuleType:
    module = module or types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=package)
    if package:
        module.__path__ = []
    return module


def modules(version: str | None = None) -> dict[str, types.ModuleType]:
    """The modules to put into sys.modules: tensorrt, and cuda, cuda.bindings, cuda.bindings.runtime."""
    from tests.trt_double import cudart_double, tensorrt_double

    tensorrt = _module("tensorrt", tensorrt_double.make_module(version or os.environ.get(VERSION_ENV,
                                                                                         DEFAULT_VERSION)))
    runtime = _module("cuda.bindings.runtime", cudart_double.make_module())
    bindings = _module("cuda.bindings", package=True)
    bindings.runtime = runtime
    cuda = _module("cuda", package=True)
    cuda.bindings = bindings
    return {"tensorrt": tensorrt, "cuda": cuda, "cuda.bindings": bindings, "cuda.bindings.runtime": runtime}


def install(version: str | None = None) -> None:
    sys.modules.update(modules(version))


def subprocess_env(version: str = DEFAULT_VERSION, **extra: str) -> dict[str, str]:
    """Environment for a harness subprocess whose workers see the doubles (this folder's sitecustomize)."""
    root = FOLDER.parent.parent
    return {"PYTHONPATH": f"{FOLDER}{os.pathsep}{root}", VERSION_ENV: version, **extra}
