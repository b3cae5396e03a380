"""Loaded by every interpreter started with this folder on PYTHONPATH (tests only): the TensorRT and
cuda-python test doubles go into sys.modules before the harness imports anything. With
TRT_DOUBLE_DRIVER_DEVICES=N the CUDA driver's device count reads N (the CLI's --device check), for tests
that drive the whole command line in subprocesses."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `tests.trt_double`

from tests.trt_double import install  # noqa: E402

install()

if os.environ.get("TRT_DOUBLE_DRIVER_DEVICES"):
    from runtimes import cuda_driver  # noqa: E402

    _count = int(os.environ["TRT_DOUBLE_DRIVER_DEVICES"])
    cuda_driver.device_count = lambda: _count
