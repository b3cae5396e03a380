"""A Jetson's facts, read from files only (nothing is run or changed), under a root that tests move.

Every path is read under `$HARNESS_JETSON_ROOT` (default `/`), so the readers run in tests on fixture
trees shaped like real boards (tests/fixtures/jetson; the formats are those jetson_stats' jtop reads,
cited there). What is read:

- L4T release from `/etc/nv_tegra_release` (`# R35 (release), REVISION: 2.1, ...` -> 35.2.1) and the
  JetPack it belongs to; the module's name from the device tree (`/proc/device-tree/model`);
- the power mode: its id from `/var/lib/nvpmodel/status` (`pmode:0002`), its name from `/etc/nvpmodel.conf`
  (`< POWER_MODEL ID=2 NAME=15W >`) — what `nvpmodel -q` prints, without running it;
- clocks: CPU cpufreq, the GPU's devfreq (the device whose `of_node/name` is gpu, gp10b, gv11b or ga10b),
  EMC from debugfs (BPMP on Xavier and Orin, `override.emc` before; root only); pinned when the GPU's and
  the EMC's min equal their max (what `jetson_clocks` sets), not pinned when either range is open, and
  unknown (None) where a range cannot be read: unreadable is never "pinned";
- thermal zones with their passive trip points. Only a CPU, GPU or junction (Tj) zone at its passive trip
  caps clocks; other zones have passive trips that do something else (the Nano's PLL-therm trips
  `dram-throttle` at 70 °C, which changes DRAM refresh, not clocks): they are reported as hot, not throttling;
- unified memory from `/proc/meminfo` (NvMapMemUsed: GPU buffers), and this process's own GPU memory from
  `/sys/kernel/debug/nvmap/iovmm/maps` where readable (root, debugfs).
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

from harness.measure.periodic import Periodic

ROOT_ENV = "HARNESS_JETSON_ROOT"
# Zones whose passive trips throttle clocks: CPU-therm / cpu-thermal, GPU-therm / gpu-thermal, Tj-therm / tj-thermal
CLOCK_CAPPING_ZONE = re.compile(r"^(cpu|gpu|tj)[-_]", re.IGNORECASE)
GPU_NODE_NAMES = ("gpu", "gp10b", "gv11b", "ga10b")
CLOCK_CHANGE = 0.10  # a clock that moved by more than this share during a cell makes it invalid
# L4T release -> JetPack (NVIDIA's JetPack archive, as jetson_stats' jtop/core/jetson_variables.py tabulates it)
JETPACK = {"32.1.0": "4.2", "32.2.0": "4.2.1", "32.2.1": "4.2.2", "32.2.3": "4.2.3", "32.3.1": "4.3",
           "32.4.2": "4.4 DP", "32.4.3": "4.4", "32.4.4": "4.4.1", "32.5.0": "4.5", "32.5.1": "4.5.1",
           "32.5.2": "4.5.1", "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3",
           "32.7.4": "4.6.4", "32.7.5": "4.6.5", "32.7.6": "4.6.6", "34.1.0": "5.0 DP", "34.1.1": "5.0.1 DP",
           "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
           "35.6.0": "5.1.4", "35.6.1": "5.1.5", "35.6.2": "5.1.5", "35.6.3": "5.1.5", "35.6.4": "5.1.6",
           "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.2": "6.1 (rev1)", "36.4.3": "6.2",
           "36.4.4": "6.2.1", "36.4.7": "6.2.1", "36.5.0": "6.2.2", "38.2.0": "7.0", "38.2.1": "7.0",
           "38.2.2": "7.0", "38.4.0": "7.1", "39.0.0": "7.2 EA", "39.2.0": "7.2"}
# Module part number (P-number: board id and SKU) -> module (NVIDIA's module data sheets; jtop's table)
MODULES = {"p2180-1000": "Jetson TX1", "p3448-0000": "Jetson Nano (4 GB)",
           "p3448-0002": "Jetson Nano (4 GB, 16 GB eMMC)", "p3448-0003": "Jetson Nano (2 GB)",
           "p3668-0000": "Jetson Xavier NX (developer kit)", "p3668-0001": "Jetson Xavier NX (8 GB)",
           "p3668-0003": "Jetson Xavier NX (16 GB)", "p2888-0001": "Jetson AGX Xavier (16 GB)",
           "p2888-0004": "Jetson AGX Xavier (32 GB)", "p2888-0005": "Jetson AGX Xavier (64 GB)",
           "p3767-0000": "Jetson Orin NX (16 GB)", "p3767-0001": "Jetson Orin NX (8 GB)",
           "p3767-0003": "Jetson Orin Nano (8 GB)", "p3767-0004": "Jetson Orin Nano (4 GB)",
           "p3767-0005": "Jetson Orin Nano (developer kit, 8 GB)", "p3701-0000": "Jetson AGX Orin",
           "p3701-0004": "Jetson AGX Orin (32 GB)", "p3701-0005": "Jetson AGX Orin (64 GB)"}
EEPROM_BUSES = (0, 1, 2, 7)  # where the module's EEPROM (address 0x50) sits, TX2 on bus 7
RELEASE = re.compile(r"#\s*R(?P<major>\d+)\s*\(release\),\s*REVISION:\s*(?P<revision>[\d.]+)")
POWER_MODEL = re.compile(r"<\s*POWER_MODEL\s+ID=(?P<id>\d+)\s+NAME=(?P<name>[^ >]+)")
NVMAP_LINE = re.compile(r"^(?P<user>\S+)\s+(?P<process>\S+)\s+(?P<pid>\d+)\s+(?P<size>\d+)(?P<unit>[KMG]?)\s*$")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def root() -> Path:
    return Path(os.environ.get(ROOT_ENV, "/"))


def _path(relative: str) -> Path:
    return root() / relative.lstrip("/")


def _read(relative: str | Path) -> str | None:
    path = relative if isinstance(relative, Path) else _path(relative)
    try:
        return path.read_text(errors="replace").strip().rstrip("\x00")
    except (OSError, ValueError):  # ValueError: a path with a NUL in it (read from a damaged file)
        return None


def _int(relative: str | Path) -> int | None:
    text = _read(relative)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def installed_packages() -> dict[str, str]:
    """Installed Debian packages -> their versions, from dpkg's own database (/var/lib/dpkg/status)."""
    packages = {}
    for stanza in (_read("/var/lib/dpkg/status") or "").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Status", "").endswith(" installed") and "Package" in fields and "Version" in fields:
            packages[fields["Package"]] = fields["Version"]
    return packages


def is_jetson() -> bool:
    """/etc/nv_tegra_release, or (where an image lacks it) the nvidia-l4t-core package, as jtop falls back to."""
    return _path("/etc/nv_tegra_release").is_file() or "nvidia-l4t-core" in installed_packages()


def l4t_release() -> str | None:
    """'35.2.1' from /etc/nv_tegra_release, else from the nvidia-l4t-core package's version ('36.4.0-2024...')."""
    text = _read("/etc/nv_tegra_release")
    match = RELEASE.search(text or "")
    if match:
        return f"{match['major']}.{match['revision']}"
    core = installed_packages().get("nvidia-l4t-core")
    return core.split("-")[0] if core else None


def board_tensorrt() -> str | None:
    """JetPack's TensorRT version ('8.5.2'), from its libnvinfer package (libnvinfer8, libnvinfer10, ...)."""
    packages = installed_packages()
    names = sorted((name for name in packages if re.fullmatch(r"libnvinfer\d+", name)),
                   key=lambda name: int(name[len("libnvinfer"):]))
    if not names:
        return None
    numbers = re.findall(r"\d+", packages[names[-1]].split("-")[0])
    return ".".join(numbers[:3]) or None


def power_mode() -> dict[str, Any]:
    """{"id", "name", "conf"} of the current nvpmodel mode, the name read from the conf file nvpmodel uses
    (`/var/lib/nvpmodel/conf_file_path` names it; else /etc/nvpmodel.conf), or {"missing": why}."""
    status = _read("/var/lib/nvpmodel/status")
    match = re.search(r"pmode:(\d+)", status or "")
    if not match:
        return {"missing": "no /var/lib/nvpmodel/status (nvpmodel not set up)" if status is None else
                f"/var/lib/nvpmodel/status reads {status[:40]!r}, not pmode:N (damaged)"}
    mode_id = int(match.group(1))
    conf = (_read("/var/lib/nvpmodel/conf_file_path") or "").strip() or "/etc/nvpmodel.conf"
    names = {int(m["id"]): m["name"] for m in POWER_MODEL.finditer(_read(conf) or "")}
    return {"id": mode_id, "name": names.get(mode_id), "conf": conf}


def power_modes(conf: str | None = None) -> dict[str, int]:
    """Mode name -> id in the conf nvpmodel uses (or `conf`)."""
    conf = conf or (_read("/var/lib/nvpmodel/conf_file_path") or "").strip() or "/etc/nvpmodel.conf"
    return {m["name"]: int(m["id"]) for m in POWER_MODEL.finditer(_read(conf) or "")}


def part_number() -> dict[str, str] | None:
    """The module's P-number ('p3448-0003') and where it was read: the device tree's `nvidia,boardids`
    ('3448:0003:...'), the module EEPROM's 699-level part number (bytes 20-48, '699-13448-0003-...'; root
    only), or the device-tree file name ('tegra210-p3448-0000-p3449-0000-b00')."""
    ids = _read("/proc/device-tree/nvidia,boardids")
    match = re.match(r"(\d{4}):(\d{4})", ids or "")
    if match:
        return {"part": f"p{match[1]}-{match[2]}", "from": "/proc/device-tree/nvidia,boardids"}
    for bus in EEPROM_BUSES:
        try:
            data = _path(f"/sys/bus/i2c/devices/{bus}-0050/eeprom").read_bytes()[20:49]
        except OSError:
            continue
        text = data.decode("ascii", errors="replace").rstrip("\x00")
        if re.match(r"\d{3}-\d(\d{4})-(\d{4})", text):
            return {"part": f"p{text[5:9]}-{text[10:14]}", "from": f"the module EEPROM (i2c bus {bus})"}
    match = re.search(r"-(p\d{4}-\d{4})-", _read("/proc/device-tree/nvidia,dtsfilename") or "")
    return {"part": match[1], "from": "/proc/device-tree/nvidia,dtsfilename"} if match else None


def mem_total_bytes() -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def gpu_devfreq() -> Path | None:
    folder = _path("/sys/class/devfreq")
    for device in sorted(folder.glob("*")) if folder.is_dir() else []:
        if _read(device / "device" / "of_node" / "name") in GPU_NODE_NAMES:
            return device
    return None


def clocks() -> dict[str, Any]:
    """Current/min/max of the GPU (Hz), EMC (Hz, root only) and every CPU (kHz), and whether all look pinned."""
    facts: dict[str, Any] = {}
    gpu = gpu_devfreq()
    if gpu is not None:
        facts["gpu_hz"] = {k: _int(gpu / f"{k}_freq") for k in ("cur", "min", "max")}
    emc = _path("/sys/kernel/debug/bpmp/debug/clk/emc")  # Xavier, Orin
    older = _path("/sys/kernel/debug/clk/override.emc/clk_rate")  # Nano, TX1, TX2
    if _int(emc / "rate") is not None:
        facts["emc_hz"] = {"cur": _int(emc / "rate"), "min": _int(emc / "min_rate"), "max": _int(emc / "max_rate")}
    elif _int(older) is not None:
        facts["emc_hz"] = {"cur": _int(older)}
    else:
        facts["emc_hz"] = {"missing": "the EMC clock is in debugfs, readable by root only"}
    cpus = {}
    for cpufreq in sorted(_path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq")):
        cpus[cpufreq.parent.name] = {k: _int(cpufreq / f"scaling_{k}_freq") for k in ("cur", "min", "max")}
    facts["cpu_khz"] = cpus
    facts["pinned"], facts["pinned_why"] = pinned(facts.get("gpu_hz"), facts["emc_hz"])
    return facts


def pinned(gpu: dict[str, Any] | None, emc: dict[str, Any]) -> tuple[bool | None, str]:
    """(pinned, why): True when the GPU's and the EMC's min equal their max, as jetson_clocks leaves them; False
    when either range is open; None (unknown) when a range cannot be read, or reads what no clock is (a
    frequency of 0 or less, min above max): unknown is never pinned."""
    ranges = {"GPU": gpu or {}, "EMC": emc}
    readable = {name: r for name, r in ranges.items() if _plausible_range(r)}
    open_ranges = [f"{name} {r['min'] / 1e6:.0f}-{r['max'] / 1e6:.0f} MHz" for name, r in readable.items()
                   if r["min"] != r["max"]]
    if open_ranges:
        return False, "open range: " + ", ".join(open_ranges)
    unreadable = [name for name in ranges if name not in readable]
    if unreadable:
        garbled = [name for name in unreadable if ranges[name].get("min") is not None
                   and ranges[name].get("max") is not None]
        why = f"{' and '.join(unreadable)} min/max " + ("not a clock range" if garbled else "unreadable")
        return None, why + (" (the EMC's range is in debugfs: run as root)" if "EMC" in unreadable and not garbled
                            else "")
    return True, "GPU and EMC min = max"


def _plausible_range(clock: dict[str, Any]) -> bool:
    """A min and a max that a clock can have: both read, above 0, min not above max."""
    low, high = clock.get("min"), clock.get("max")
    return isinstance(low, int) and isinstance(high, int) and 0 < low <= high


def thermal() -> dict[str, Any]:
    """Each zone's temperature (m°C) and its lowest passive trip point. `throttling`: the CPU, GPU and junction
    zones at or over it (their trips cap clocks); `hot`: other zones at or over theirs (they do not)."""
    zones, throttling, hot = {}, [], []
    for zone in sorted(_path("/sys/class/thermal").glob("thermal_zone*")):
        name, temp = _read(zone / "type") or zone.name, _int(zone / "temp")
        passive = [_int(trip.with_name(trip.name.replace("_type", "_temp")))
                   for trip in sorted(zone.glob("trip_point_*_type")) if _read(trip) == "passive"]
        passive = [t for t in passive if t is not None]
        zones[name] = {"temp_mC": temp, "passive_trip_mC": min(passive) if passive else None}
        if temp is not None and passive and temp >= min(passive):
            (throttling if CLOCK_CAPPING_ZONE.match(name) else hot).append(name)
    return {"zones": zones, "throttling": throttling, "hot": hot}


def process_gpu_memory(pid: int | None = None) -> dict[str, Any]:
    """This process's GPU memory from nvmap's iovmm maps (root, debugfs), or {"missing": why}."""
    text = _read("/sys/kernel/debug/nvmap/iovmm/maps")
    if text is None:
        return {"missing": "/sys/kernel/debug/nvmap/iovmm/maps is not readable (needs root and debugfs)"}
    pid = os.getpid() if pid is None else pid
    total = 0
    for line in text.splitlines():
        match = NVMAP_LINE.match(line.strip())
        if match and int(match["pid"]) == pid:
            total += int(match["size"]) * UNITS[match["unit"]]
    return {"bytes": total, "source": "/sys/kernel/debug/nvmap/iovmm/maps (this process's rows)"}


def facts() -> dict[str, Any]:
    """Everything above, for env.json and every record of a cell run on a Jetson."""
    if not is_jetson():
        return {"is_jetson": False}
    release = l4t_release()
    model = _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")
    part = part_number()
    return {"is_jetson": True, "l4t": release, "jetpack": JETPACK.get(release or ""), "module": model,
            "part_number": part, "module_name": MODULES.get(part["part"]) if part else None,
            "tensorrt": board_tensorrt(), "mem_total_bytes": mem_total_bytes(),
            "power_mode": power_mode(), "clocks": clocks(), "thermal": thermal(), "root": str(root())}


def clock_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """GPU and EMC clocks that moved by more than CLOCK_CHANGE between two `clocks()` readings."""
    changes = []
    for name in ("gpu_hz", "emc_hz"):
        start, end = (before.get(name) or {}).get("cur"), (after.get(name) or {}).get("cur")
        if start and end and abs(end - start) / start > CLOCK_CHANGE:
            changes.append(f"{name[:3].upper()} {start / 1e6:.0f}->{end / 1e6:.0f} MHz")
    return changes


TRACE_INTERVAL_S = 0.1
TRACE_POINTS = 240  # a trace kept in a record is thinned to at most this many points


class ClockTrace:
    """The GPU's and EMC's current clocks and the hottest zone, read every `interval_s` by a thread while the
    timed loop runs: how an unpinned board's clocks moved, instead of two instant readings. Each reading is
    a handful of sysfs reads (microseconds), off the timed thread."""

    def __init__(self, interval_s: float = TRACE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.points: list[tuple[float, float | None, float | None, float | None]] = []
        self._start = 0.0
        self._gpu = gpu_devfreq()
        self._periodic = Periodic(self._read, interval_s, "jetson-clock-trace")

    def _read(self) -> None:
        gpu = _int(self._gpu / "cur_freq") if self._gpu is not None else None
        emc = _int(_path("/sys/kernel/debug/bpmp/debug/clk/emc/rate"))
        emc = emc if emc is not None else _int(_path("/sys/kernel/debug/clk/override.emc/clk_rate"))
        temps = [t for t in (_int(z / "temp") for z in _path("/sys/class/thermal").glob("thermal_zone*")) if t]
        self.points.append((time.perf_counter() - self._start, gpu / 1e6 if gpu else None,
                            emc / 1e6 if emc else None, max(temps) / 1000 if temps else None))

    def start(self) -> None:
        self._start = time.perf_counter()
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def summary(self) -> dict[str, Any]:
        """min / median / max of each series, and the trace thinned to TRACE_POINTS points
        ([seconds, GPU MHz, EMC MHz, hottest zone °C])."""
        def spread(index: int) -> dict[str, float] | None:
            values = [p[index] for p in self.points if p[index] is not None]
            return {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else None

        step = max(1, len(self.points) // TRACE_POINTS)
        return {"interval_s": self.interval_s, "samples": len(self.points), "gpu_mhz": spread(1),
                "emc_mhz": spread(2), "hottest_zone_C": spread(3),
                "trace": [[round(v, 3) if v is not None else None for v in p] for p in self.points[::step]]}
