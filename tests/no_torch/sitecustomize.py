"""Loaded by every interpreter started with this folder on PYTHONPATH (tests only): torch, torchvision,
timm and pretrainedmodels look not installed — `importlib.util.find_spec` returns None and `import` raises
ModuleNotFoundError, as in a venv made with `pip install 'dnn-harness[device]'` — in the parent and in
every worker alike. With TRT_DOUBLE_VERSION set, the TensorRT and cuda-python test doubles are installed
too (tests/trt_double), for a board-like process tree that has TensorRT but no torch; with
TRT_DOUBLE_DRIVER_DEVICES the CUDA driver's device count reads that number (alone: a board whose TensorRT
is reached only through trtexec)."""

import importlib.machinery
import os
import sys
from pathlib import Path

HIDDEN = {"torch", "torchvision", "timm", "pretrainedmodels", "functorch", "torchgen"}


class _WithoutTorch:
    """The path finder, blind to the hidden packages."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return self._finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self._finder, attribute)


sys.meta_path[:] = [_WithoutTorch(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
if os.environ.get("TRT_DOUBLE_VERSION"):
    from tests.trt_double import install  # noqa: E402

    install()
if os.environ.get("TRT_DOUBLE_DRIVER_DEVICES"):  # alone: a board whose TensorRT is reached only through trtexec
    from runtimes import cuda_driver  # noqa: E402

    _count = int(os.environ["TRT_DOUBLE_DRIVER_DEVICES"])
    cuda_driver.device_count = lambda: _count
