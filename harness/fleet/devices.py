"""What one machine offers a fleet: its devices, found by reading, never by running work on them, and the
Ray resources that stand for them.

A node advertises, as Ray custom resources:
- `harness-device:<device>` = 1 for each device (`cpu`, `cuda:0`, `dla:1`, `intel-gpu`, ...): a cell asks
  for one unit of its device, so one cell at a time runs on each device of each node;
- `harness-cell-slot` = 1 (or one per device with `--per-device`): every cell also takes a slot, so by
  default a machine measures one cell at a time, whatever the device — a CPU cell beside a GPU cell would
  take the cores the GPU's launches need;
- `harness-node:<name>` = 1: the node's name, so a plan can pin a device to a machine (`cuda:0@ws1`).
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass

from harness.measure import jetson
from runtimes import cuda_driver

log = logging.getLogger(__name__)

DEVICE_PREFIX = "harness-device:"
NODE_PREFIX = "harness-node:"
SLOT = "harness-cell-slot"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?|dla:\d+|intel-gpu(:\d+)?|npu)$")


def device_resource(device: str) -> str:
    return f"{DEVICE_PREFIX}{device}"


def node_resource(name: str) -> str:
    return f"{NODE_PREFIX}{name}"


def default_node_name() -> str:
    """The host name, cut to what a node name may hold."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63].strip("-.") or "node"
    return name


def check_node_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(f"node name '{name}' must be 1-63 letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit")
    return name


def check_device_name(device: str) -> str:
    if not DEVICE_PATTERN.match(device):
        raise ValueError(f"unknown device '{device}': use cpu, cuda:N, dla:N, intel-gpu[:N] or npu")
    return device


def canonical_device(device: str) -> str:
    """A device as a fleet names it: `cuda` is `cuda:0` and `intel-gpu` is `intel-gpu:0` (the first one)."""
    return f"{device}:0" if device in ("cuda", "intel-gpu") else device


def cuda_devices() -> list[str]:
    """cuda:0 .. cuda:N-1 as the CUDA driver counts them (none where there is no driver)."""
    try:
        count = cuda_driver.device_count()
    except cuda_driver.CudaDriverUnavailable as exc:  # a driver that cannot start: no CUDA devices on this node
        log.info("no CUDA devices: %s", exc)
        return []
    return [f"cuda:{index}" for index in range(count)]


def dla_devices() -> list[str]:
    """dla:0 .. on a Jetson whose module matches a device profile that lists DLA cores."""
    return [f"dla:{core}" for core in range(_dla_cores() or 0)]


def _dla_cores() -> int | None:
    """A Jetson's DLA cores, as its module's device profile lists them: 0 off a Jetson, None on a Jetson whose
    module matches no profile (unknown)."""
    facts = jetson.facts()
    if not facts.get("is_jetson"):
        return 0
    from harness.profiles import available_profiles, load_profile

    module = (facts.get("module") or "").lower()
    for name in available_profiles():
        profile = load_profile(name)
        if profile.kind == "jetson" and any(part.lower() in module for part in profile.device_match):
            return profile.dla_cores
    log.info("Jetson module %r matches no profile: its DLA cores are unknown (name them with --devices)", module)
    return None


def openvino_devices() -> list[str]:
    """OpenVINO's Intel GPUs and NPU, where openvino is installed and its plugins find them."""
    try:
        import openvino
    except ImportError:
        return []
    found = []
    for name in openvino.Core().available_devices:
        family, _, index = name.partition(".")
        if family == "GPU":
            found.append(f"intel-gpu:{index or 0}")
        elif family == "NPU":
            found.append("npu")
    return found


def check_present(device: str) -> str:
    """`device` (canonical: cuda:0, not cuda) if this machine has it; ValueError naming what it has otherwise.
    A Jetson whose module matches no profile may name DLA cores the harness cannot count."""
    family = device.split(":")[0]
    if family == "cpu":
        return device
    if family == "cuda":
        found = cuda_devices()
        if device not in found:
            has = f"the CUDA driver sees {', '.join(found)}" if found else "no CUDA device is visible here"
            raise ValueError(f"--devices {device}: this machine has no {device} ({has}); offer only what it has, or "
                             "leave --devices out to offer every device found")
        return device
    if family == "dla":
        cores = _dla_cores()
        if cores == 0 or (cores is not None and int(device.split(":")[1]) >= cores):
            has = "it is not a Jetson" if not jetson.is_jetson() else f"its module has {cores} DLA core(s)"
            raise ValueError(f"--devices {device}: this machine has no {device} ({has}); offer only what it has")
        return device
    found = openvino_devices()  # intel-gpu:N, npu: what OpenVINO's plugins find
    if device not in found:
        has = "OpenVINO finds " + (", ".join(found) if found else "no Intel GPU or NPU here")
        if not _has_openvino():
            has = "OpenVINO, which reaches Intel GPUs and NPUs, is not installed here"
        raise ValueError(f"--devices {device}: this machine has no {device} ({has}); offer only what it has")
    return device


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def discover() -> list[str]:
    """Every device this machine offers: the CPU, each CUDA GPU, a Jetson's DLA cores, OpenVINO's GPUs/NPU."""
    return ["cpu", *cuda_devices(), *dla_devices(), *openvino_devices()]


@dataclass(frozen=True)
class NodeResources:
    name: str
    devices: tuple[str, ...]
    per_device: bool = False

    def as_ray(self) -> dict[str, float]:
        resources = {device_resource(device): 1.0 for device in self.devices}
        resources[SLOT] = float(len(self.devices) if self.per_device else 1)
        resources[node_resource(self.name)] = 1.0
        return resources
