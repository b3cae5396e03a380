"""What machine and software a run used: written once per host of a run, as env-<host>.json."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

from harness.measure import jetson
from runtimes.cpu_features import parse_flags
from runtimes import runtime_packages

# The harness's own and its model libraries'; each runtime's come from its declaration (Runtime.packages)
OWN_PACKAGES = ("dnn-harness", "torchvision", "timm", "pretrainedmodels", "numpy", "onnx", "nvidia-ml-py", "rich",
                "pydantic", "ray")


def recorded_packages() -> tuple[str, ...]:
    """Whose versions an environment file records: the harness's own, then every registered runtime's."""
    return (*OWN_PACKAGES, *(p for p in runtime_packages() if p not in OWN_PACKAGES))
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                    "CUDA_VISIBLE_DEVICES")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in recorded_packages():
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


LOW_PRECISION_FLAGS = {  # /proc/cpuinfo flag -> what it speeds up
    "avx512_vnni": "int8 dot products (AVX-512 VNNI)", "avx_vnni": "int8 dot products (AVX-VNNI, 256-bit)",
    "amx_int8": "int8 matrix tiles (AMX)", "avx512_bf16": "bf16 dot products (AVX-512 BF16)",
    "amx_bf16": "bf16 matrix tiles (AMX)", "asimddp": "int8 dot products (Arm SDOT/UDOT)",
    "i8mm": "int8 matrix multiply (Arm I8MM)", "bf16": "bf16 (Arm)"}


def cpu_low_precision(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """Which int8 and bf16 instructions this CPU offers (what INT8 and bf16 speed-ups on it depend on)."""
    try:
        text = cpuinfo.read_text()
    except OSError as exc:
        return {"readable": False, "reason": f"cannot read {cpuinfo}: {exc.strerror}"}
    flags = parse_flags(text)
    offered = {flag: what for flag, what in LOW_PRECISION_FLAGS.items() if flag in flags}
    return {"readable": True, "offered": offered, "int8_dot_product": any("int8" in w for w in offered.values()),
            "source": str(cpuinfo)}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def cpu_frequency_facts(root: Path = Path("/sys/devices/system/cpu")) -> dict[str, Any]:
    """Governor and current/min/max frequency per CPU where cpufreq is readable; else the reason."""
    cpus = {}
    for cpufreq in sorted(root.glob("cpu[0-9]*/cpufreq")):
        cpus[cpufreq.parent.name] = {name: _read(cpufreq / name) for name in
                                     ("scaling_governor", "scaling_cur_freq", "scaling_min_freq", "scaling_max_freq")}
    if not cpus:
        return {"readable": False, "reason": f"no {root}/cpu*/cpufreq (a VM or a kernel without cpufreq)"}
    return {"readable": True, "per_cpu_khz": cpus, "min_equals_max_on_all": _all_pinned(cpus)}


def _all_pinned(cpus: dict[str, dict[str, str | None]]) -> bool | None:
    """True when every CPU's min equals its max; False when one's range is open; else None (unknown: a range
    that cannot be read or is not a frequency range). Unreadable is never pinned."""
    ranges = [(facts["scaling_min_freq"] or "", facts["scaling_max_freq"] or "") for facts in cpus.values()]
    readable = [(int(low), int(high)) for low, high in ranges
                if low.isdigit() and high.isdigit() and 0 < int(low) <= int(high)]
    if any(low != high for low, high in readable):
        return False
    return True if len(readable) == len(ranges) else None


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
        gpus = [_gpu_facts(pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)) for index in range(count)]
        return {"available": True, "driver": pynvml.nvmlSystemGetDriverVersion(),
                "cuda_driver_version": _nvml_try(pynvml.nvmlSystemGetCudaDriverVersion), "gpus": gpus}
    finally:
        pynvml.nvmlShutdown()


def _nvml_try(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except Exception as exc:  # NVMLError_NotSupported and friends: recorded, not fatal
        return f"unreadable: {exc}"


def _gpu_facts(pynvml: Any, handle: Any) -> dict[str, Any]:
    memory = _nvml_try(pynvml.nvmlDeviceGetMemoryInfo, handle)
    return {
        "name": _nvml_try(pynvml.nvmlDeviceGetName, handle),
        "memory_total_bytes": int(memory.total) if hasattr(memory, "total") else memory,
        "sm_clock_mhz": _nvml_try(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
        "mem_clock_mhz": _nvml_try(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": _nvml_try(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM),
        "power_limit_mw": _nvml_try(pynvml.nvmlDeviceGetPowerManagementLimit, handle),
        "persistence_mode": _nvml_try(pynvml.nvmlDeviceGetPersistenceMode, handle),
        "throttle_reasons": _nvml_try(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle),
    }


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
        "cpu_frequency": cpu_frequency_facts(),
        "cpu_low_precision": cpu_low_precision(),
        "torch": _torch_facts(),
        "nvml": _nvml_facts(),
        "jetson": jetson.facts(),
        "note": "read-only: the harness never changes governors, clocks, power models or persistence mode",
    }
