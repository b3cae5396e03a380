"""What machine and software a run used: written once per run as env.json."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "timm", "pretrainedmodels", "numpy", "onnx", "onnxruntime",
            "nvidia-ml-py", "rich", "pydantic")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                    "CUDA_VISIBLE_DEVICES")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_facts() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"available": False}
    facts: dict[str, Any] = {
        "available": True,
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if facts["cuda_available"]:
        facts["cudnn"] = torch.backends.cudnn.version()
        facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return facts


def _nvml_facts() -> dict[str, Any]:
    try:
        import pynvml
    except ImportError:
        return {"available": False, "reason": "nvidia-ml-py not installed (pip install 'dnn-harness[gpu]')"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError when there is no driver
        return {"available": False, "reason": f"NVML could not start: {exc}"}
    try:
        count = pynvml.nvmlDeviceGetCount()
        gpus = []
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append({"name": pynvml.nvmlDeviceGetName(handle), "memory_total_bytes": int(memory.total)})
        return {"available": True, "driver": pynvml.nvmlSystemGetDriverVersion(), "gpus": gpus}
    finally:
        pynvml.nvmlShutdown()


def collect() -> dict[str, Any]:
    import psutil

    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": psutil.virtual_memory().total,
        "packages": package_versions(),
        "thread_environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "torch": _torch_facts(),
        "nvml": _nvml_facts(),
    }
