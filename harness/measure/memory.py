"""Memory as a vector: one reading per source, each with its baseline and peak, in bytes.

Sources: the cell process's host RSS (the kernel's own high-water mark, VmHWM, reset with
/proc/self/clear_refs before the model is loaded, so no sampler runs at all); the process's GPU
memory from NVML, sampled by a thread only outside the timing loop (through load and first run, and
through a separate memory pass); and on Jetson, where NVML has no memory figures, NvMapMemUsed and
MemAvailable from /proc/meminfo. A runtime's own device memory (the PyTorch allocator's peaks, a
TensorRT engine's) comes from the runtime (`Runtime.device_memory`), and so does the device context
(`Runtime.init_device`): nothing here imports torch. A source that cannot be read is recorded as
missing with the reason, never replaced by another.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from harness.measure.periodic import Periodic

SAMPLE_INTERVAL_S = 0.002
KB = 1024


def missing(reason: str) -> dict[str, str]:
    return {"missing": reason}


def parse_meminfo(text: str) -> dict[str, int]:
    """'/proc/meminfo' lines ('MemAvailable:  123 kB') -> {name: bytes}."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0]) * (KB if len(parts) > 1 and parts[1] == "kB" else 1)
    return values


def _status_bytes(field: str, status_path: Path = Path("/proc/self/status")) -> int:
    return parse_meminfo(status_path.read_text())[field]


class HostRss:
    """Baseline RSS before the model is loaded; peak = VmHWM since then (the kernel tracks it)."""

    def __init__(self) -> None:
        self.baseline_bytes: int | None = None
        self.reason: str | None = None

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.baseline_bytes = _status_bytes("VmRSS")
        except (OSError, KeyError) as exc:
            self.reason = f"cannot reset or read the peak RSS: {exc}"

    def reading(self) -> dict[str, Any]:
        if self.baseline_bytes is None:
            return missing(self.reason or "not started")
        return {"baseline_bytes": self.baseline_bytes, "peak_bytes": _status_bytes("VmHWM"),
                "source": "/proc/self/status VmRSS before load, VmHWM after the memory pass (reset by clear_refs)"}


class Sampler:
    """Calls `read()` every few milliseconds on a thread between start() and stop(); keeps the max."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self.peak: int | None = None  # None until a reading succeeds
        self._periodic = Periodic(self._sample, SAMPLE_INTERVAL_S, "memory-sampler")

    def _sample(self) -> None:
        try:
            value = self._read()
            self.peak = value if self.peak is None else max(self.peak, value)
        except (OSError, KeyError, ValueError):  # a reading that fails is skipped, the next one counts
            pass

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()


class JetsonUnified:
    """NvMapMemUsed (GPU buffers in unified memory) and the lowest MemAvailable seen, system-wide."""

    def __init__(self, meminfo_path: Path | None = None) -> None:
        from harness.measure import jetson

        self.path = meminfo_path or jetson.root() / "proc" / "meminfo"
        self._jetson = jetson
        self.reason: str | None = None
        try:
            values = parse_meminfo(self.path.read_text(errors="replace"))
        except OSError as exc:
            values, self.reason = {}, f"cannot read {self.path}: {exc.strerror}"
        if self.reason is None and "NvMapMemUsed" not in values:
            self.reason = "no NvMapMemUsed in /proc/meminfo" + (" (a Jetson without it: Thor, or a kernel that does not "
                                                                "export it)" if jetson.is_jetson() else " (not a Jetson)")
        self.baseline = values
        self.nvmap = Sampler(lambda: parse_meminfo(self.path.read_text(errors="replace"))["NvMapMemUsed"])
        self.unavailable = Sampler(lambda: -parse_meminfo(self.path.read_text(errors="replace"))["MemAvailable"])

    def start(self) -> None:
        if self.reason is None:
            self.nvmap.start()
            self.unavailable.start()

    def stop(self) -> None:
        if self.reason is None:
            self.nvmap.stop()
            self.unavailable.stop()

    def reading(self) -> dict[str, Any]:
        if self.reason is not None:
            return missing(self.reason)
        return {"baseline_bytes": self.baseline["NvMapMemUsed"], "peak_bytes": self.nvmap.peak,
                "mem_available_baseline_bytes": self.baseline.get("MemAvailable"),
                "mem_available_min_bytes": -self.unavailable.peak if self.unavailable.peak is not None else None,
                "process_nvmap": self._jetson.process_gpu_memory(),
                "source": "/proc/meminfo NvMapMemUsed (system-wide), sampled through load and the memory pass; "
                          "process_nvmap: this process's rows of nvmap's iovmm maps at the end (root only)"}


class NvmlProcess:
    """This process's GPU memory as NVML reports it: CUDA context included (the paper's total memory)."""

    def __init__(self, device: str) -> None:
        self.reason: str | None = None
        self.context_bytes: int | None = None
        self.baseline_bytes: int | None = None
        if not device.startswith("cuda"):
            self.reason = "the cell runs on the CPU"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int(device.split(":")[1]) if ":" in device else 0
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
            self.baseline_bytes = self.used_bytes()
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install 'dnn-harness[gpu]')"
        except Exception as exc:  # NVMLError subclasses, e.g. NotSupported on Jetson
            self.reason = f"NVML cannot report process memory: {exc}"
        self.sampler = Sampler(self.used_bytes)

    def used_bytes(self) -> int:
        processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        return sum(p.usedGpuMemory or 0 for p in processes if p.pid == os.getpid())

    def other_processes(self) -> list[int]:
        if self.reason is not None:
            return []
        return [p.pid for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle) if p.pid != os.getpid()]

    def mark_context(self) -> None:
        if self.reason is None:
            self.context_bytes = self.used_bytes()

    def start(self) -> None:
        if self.reason is None:
            self.sampler.start()

    def stop(self) -> None:
        if self.reason is None:
            self.sampler.stop()

    def reading(self) -> dict[str, Any]:
        if self.reason is not None:
            return missing(self.reason)
        return {"baseline_bytes": self.baseline_bytes, "context_bytes": self.context_bytes,
                "peak_bytes": self.sampler.peak,
                "source": "NVML process used memory, sampled through load, first run and the memory pass"}


def jetson_process(host_rss: dict[str, Any], unified: dict[str, Any]) -> dict[str, Any]:
    """The cell's own memory on a Jetson's unified memory: its host RSS peak (TensorRT's and cuDNN's libraries
    included) plus its GPU buffers, from its own nvmap rows where readable (root) and else from the rise of the
    system-wide NvMapMemUsed during the cell (labelled as such). NvMapMemUsed itself counts every process's
    buffers, so it is shown beside (`system_nvmap_peak_bytes`), not judged."""
    if "missing" in unified:
        return missing(unified["missing"])
    if "missing" in host_rss or host_rss.get("peak_bytes") is None:
        return missing(f"the host RSS is unreadable: {host_rss.get('missing', 'no peak')}")
    own = unified.get("process_nvmap") or {}
    if "bytes" in own:
        gpu, how = int(own["bytes"]), "this process's rows of nvmap's iovmm maps"
    elif unified.get("peak_bytes") is None:  # not a rise of 0: no reading during the cell
        return missing("NvMapMemUsed could not be read during the cell, and this process's own nvmap rows need root: "
                       f"{own.get('missing', 'unreadable')}")
    else:
        gpu = max(0, int(unified.get("peak_bytes") or 0) - int(unified.get("baseline_bytes") or 0))
        how = ("the rise of the system-wide NvMapMemUsed during the cell (its own nvmap rows need root: "
               f"{own.get('missing', 'unreadable')})")
    rss = int(host_rss["peak_bytes"])
    return {"peak_bytes": rss + gpu, "host_rss_peak_bytes": rss, "gpu_buffers_bytes": gpu, "gpu_buffers_from": how,
            "system_nvmap_peak_bytes": unified.get("peak_bytes"),
            "source": "host RSS peak (VmHWM) + the process's GPU buffers; NvMapMemUsed (system-wide) beside"}
