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
from runtimes import cuda_driver, device_families, device_family, device_patterns, discover_devices, runtime_class

log = logging.getLogger(__name__)

DEVICE_PREFIX = "harness-device:"
NODE_PREFIX = "harness-node:"
SLOT = "harness-cell-slot"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


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
    """`device` where it names a family a registered runtime declares; ValueError listing them otherwise."""
    if device_family(device) is None:
        raise ValueError(f"unknown device '{device}': use {', '.join(device_patterns())}")
    return device


def canonical_device(device: str) -> str:
    """A device as a fleet names it: `cuda` is `cuda:0` and `intel-gpu` is `intel-gpu:0` (the first one)."""
    offered = device_family(device)
    return offered.family.canonical(device) if offered is not None else device


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


def declared_devices() -> list[str]:
    """The devices of the other families the registered runtimes declare (Intel GPUs and NPUs through OpenVINO),
    as each family's own discoverer finds them here (none where its library is not installed)."""
    found: list[str] = []
    for offered in device_families():
        if offered.family.name not in HARDWARE_FAMILIES:
            found += [device for device in discover_devices(offered.family) if device not in found]
    return found


HARDWARE_FAMILIES = ("cpu", "cuda", "dla")  # what the harness counts itself: the CUDA driver, a Jetson's profile


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
    offered = device_family(device)
    found = discover_devices(offered.family) if offered is not None else []  # intel-gpu:N, npu: OpenVINO's plugins
    if device not in found:
        raise ValueError(f"--devices {device}: this machine has no {device} ({_not_found(device, found)}); offer only "
                         "what it has")
    return device


def _not_found(device: str, found: list[str]) -> str:
    """Why a declared family's discoverer did not find `device`: what it found, or that no runtime reaching the
    family is installed here (its install line)."""
    offered = device_family(device)
    runtimes = offered.runtimes if offered is not None else ()
    missing = [runtime_class(name, installed_here=False).missing_requirement() for name in runtimes]
    if runtimes and all(missing):
        return "; ".join(m for m in missing if m)
    family = offered.family.name if offered is not None else device
    finds = "finds" if len(runtimes) == 1 else "find"
    return f"{', '.join(runtimes)} {finds} " + (", ".join(found) if found else f"no {family} here")


def discover() -> list[str]:
    """Every device this machine offers: the CPU, each CUDA GPU, a Jetson's DLA cores, and the devices of the other
    families the registered runtimes declare (OpenVINO's GPUs and NPU)."""
    return ["cpu", *cuda_devices(), *dla_devices(), *declared_devices()]


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
