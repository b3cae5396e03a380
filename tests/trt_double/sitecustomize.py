"""Loaded by every interpreter started with this folder on PYTHONPATH (tests only): the TensorRT and
cuda-python test doubles go into sys.modules before the harness imports anything."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `tests.trt_double`

from tests.trt_double import install  # noqa: E402

install()
