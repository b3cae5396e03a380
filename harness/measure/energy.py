"""Energy per image, in a pass of its own after the timed loop and the memory pass.

Sources, each read where it exists and recorded as missing with the reason where it does not:
- `rapl`: the CPU packages' energy counters under /sys/class/powercap (intel-rapl:N, `energy_uj`, wrapping
  at `max_energy_range_uj`): whole sockets, so other processes on them count too;
- `nvml`: the GPU's total energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver
  loaded; Volta and newer): the whole board of that GPU;
- `jetson_rails`: a Jetson's INA3221 power monitors in sysfs, the module's input rail (VDD_IN, or POM_5V_IN
  on older boards; every rail summed where neither exists). They give power, not energy: a thread polls
  them every POLL_INTERVAL_S and the readings are integrated (trapezoids). Formats as jetson_stats reads
  them: JetPack 5+ `hwmon/hwmon*/in<k>_label`, `in<k>_input` (mV), `curr<k>_input` (mA); JetPack 4
  `iio:device*/rail_name_<k>`, `in_power<k>_input` (mW).

The pass: every readable source over IDLE_S with the process asleep (the idle power), then over back-to-back
`run()` + `synchronize()` calls for at least `min_s` (the busy energy). Recorded per source: the gross
energy per image, the idle watts, the net energy per image (gross minus idle power times the busy time:
what the inference itself cost), and the average watts while busy (what the device drew). A source that
fails (set up or mid-pass) is missing with the reason, and the pass runs again without it: never the cell.
"""

from __future__ import annotations

import math
import os
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

from harness.measure import jetson

IDLE_S = 1.0
MIN_BUSY_S = 2.0
MIN_CALLS = 3
POLL_INTERVAL_S = 0.02
POWERCAP_ENV = "HARNESS_POWERCAP_DIR"
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
SOURCES = ("rapl", "nvml", "jetson_rails")


class EnergySource(ABC):
    """One reader: `begin()` then `end()` -> joules in between. `reason` is set when it cannot be read here."""

    name: str = ""
    what: str = ""
    reason: str | None = None

    @abstractmethod
    def begin(self) -> None:
        """Start counting."""

    @abstractmethod
    def end(self) -> float:
        """Joules since `begin()`."""

    def abandon(self) -> None:
        """Stop whatever `begin()` started, without a figure (a pass that failed)."""


# ---------------------------------------------------------------- RAPL

def powercap_dir() -> Path:
    return Path(os.environ.get(POWERCAP_ENV, "/sys/class/powercap"))


MAX_PACKAGE_WATTS = 1000.0  # above any CPU package's power (the largest server parts draw about 500 W)


class RaplPackages(EnergySource):
    name = "rapl"

    def __init__(self) -> None:
        folder = powercap_dir()
        self.domains: list[Path] = []
        self.ranges: list[int] = []
        if not folder.is_dir():
            self.reason = f"no {folder} (a VM, or a kernel without the RAPL powercap driver)"
            return
        self.domains = [d for d in sorted(folder.glob("intel-rapl:*")) if d.name.count(":") == 1
                        and _text(d / "name").startswith("package")]
        if not self.domains:
            self.reason = f"no RAPL package domain (intel-rapl:N named package-N) under {folder}"
            return
        try:
            self.ranges = [_wrap_range(d / "max_energy_range_uj") for d in self.domains]
            self._read()
        except PermissionError as exc:
            self.reason = (f"{exc.filename or self.domains[0] / 'energy_uj'} is readable by root only (Linux 5.10 "
                           "and later, CVE-2020-8694): run as root, or make energy_uj readable")
            return
        except (OSError, ValueError) as exc:
            self.reason = f"cannot read RAPL: {exc}"
            return
        names = ", ".join(_text(d / "name") for d in self.domains)
        self.what = f"CPU package energy (RAPL {names}; whole sockets: other processes count too)"

    def _read(self) -> list[int]:
        """Each package's counter; ValueError naming the file where it is not a number within its wrap range."""
        readings = []
        for domain, top in zip(self.domains, self.ranges):
            path = domain / "energy_uj"
            value = _whole_number(path)
            if not 0 <= value <= top:
                raise ValueError(f"{path} reads {value}, outside its range 0-{top} (max_energy_range_uj)")
            readings.append(value)
        return readings

    def begin(self) -> None:
        self._start = self._read()
        self._start_s = time.perf_counter()

    def end(self) -> float:
        after, elapsed_s = self._read(), max(time.perf_counter() - self._start_s, 1e-9)
        joules = [((b - a) % (r + 1)) / 1e6 for a, b, r in zip(self._start, after, self.ranges)]  # a wrapped counter
        for domain, package_j in zip(self.domains, joules):
            if package_j / elapsed_s > MAX_PACKAGE_WATTS:
                raise ValueError(f"{domain / 'energy_uj'} moved by {package_j:.4g} J in {elapsed_s:.2f} s "
                                 f"(over {MAX_PACKAGE_WATTS:g} W): a counter that was reset or went backwards, not "
                                 "a physical reading")
        return sum(joules)


def _whole_number(path: Path) -> int:
    """A sysfs counter; ValueError naming the file where it is empty or not a whole number."""
    text = path.read_text(errors="replace").strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path} reads {text[:40]!r}, not a whole number") from None


def _wrap_range(path: Path) -> int:
    """A package's `max_energy_range_uj`: where its counter wraps. Missing, garbage or not positive: ValueError
    naming it (the counter's wraps could not be told from resets, so no figure is made)."""
    if not path.is_file():
        raise ValueError(f"no {path} (where the counter wraps is unknown)")
    top = _whole_number(path)
    if top <= 0:
        raise ValueError(f"{path} reads {top}, not a positive range")
    return top


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- NVML

class NvmlEnergy(EnergySource):
    name = "nvml"

    def __init__(self, device: str) -> None:
        if not device.startswith("cuda"):
            self.reason = "the cell does not run on a CUDA GPU"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(int(device.split(":")[1]) if ":" in device else 0)
            self._nvml = pynvml
            self._millijoules()
            name = pynvml.nvmlDeviceGetName(self._handle)
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install 'dnn-harness[gpu]')"
            return
        except Exception as exc:  # NVMLError_NotSupported before Volta, on Jetson; no driver
            self.reason = f"NVML cannot read an energy counter here: {exc}"
            return
        name = name.decode() if isinstance(name, bytes) else name
        self.what = f"GPU board energy ({name}: NVML total energy counter)"

    def _millijoules(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def begin(self) -> None:
        self._start = self._millijoules()

    def end(self) -> float:
        return (self._millijoules() - self._start) / 1e3


# ---------------------------------------------------------------- Jetson rails

def find_rails() -> dict[str, Callable[[], float]]:
    """Every INA3221 rail of the board: its name -> a function reading its power in watts."""
    rails: dict[str, Callable[[], float]] = {}
    devices = jetson._path("/sys/bus/i2c/devices")
    for device in sorted(devices.iterdir()) if devices.is_dir() else []:
        if "ina3221" not in _text(device / "name"):
            continue
        for folder in sorted(device.glob("hwmon/hwmon*")):  # JetPack 5 and later
            for label in sorted(folder.glob("in*_label")):
                port, name = label.name[2:-len("_label")], _text(label)
                unconnected = name == "NC" or port == "7"  # Orin's unused channels; channel 7 sums the shunts
                if name and not unconnected and (folder / f"curr{port}_input").is_file():
                    rails[name] = _volts_times_amps(folder / f"in{port}_input", folder / f"curr{port}_input")
        for folder in sorted(device.glob("iio:device*")):  # JetPack 4
            for label in sorted(folder.glob("rail_name_*")):
                port, name = label.name[len("rail_name_"):], _text(label)
                if name and (folder / f"in_power{port}_input").is_file():
                    rails[name] = _milliwatts(folder / f"in_power{port}_input")
    return rails


MAX_RAIL_WATTS = 500.0  # above any Jetson module's input power (AGX Thor's is about 130 W)


def _number(path: Path) -> int:
    """A sysfs number; OSError where the file cannot be read, or is caught empty mid-update (a lost reading);
    ValueError naming the file where it holds something else than a whole number."""
    words = path.read_text(errors="replace").split()
    if not words:
        raise OSError(f"{path} read empty")
    try:
        return int(words[0])
    except ValueError:
        raise ValueError(f"{path} reads {words[0][:40]!r}, not a whole number") from None


def _volts_times_amps(millivolts: Path, milliamps: Path) -> Callable[[], float]:
    return lambda: _number(millivolts) * _number(milliamps) / 1e6


def _milliwatts(path: Path) -> Callable[[], float]:
    return lambda: _number(path) / 1e3


class JetsonRails(EnergySource):
    name = "jetson_rails"

    def __init__(self) -> None:
        if not jetson.is_jetson():
            self.reason = "not a Jetson (no /etc/nv_tegra_release)"
            return
        rails = find_rails()
        if not rails:
            self.reason = ("no INA3221 power monitor under /sys/bus/i2c/devices (this module has none, or the driver "
                           "is off)")
            return
        total = next((name for name in TOTAL_RAILS if name in rails), None)
        chosen = {total: rails[total]} if total else rails
        self._readers = chosen
        self._unphysical: str | None = None
        try:
            self._watts()
        except (OSError, ValueError) as exc:
            self.reason = f"cannot read the INA3221 rails: {exc}"
            return
        what = f"module input rail {total}" if total else f"the sum of rails {', '.join(chosen)}"
        self.what = f"{what} (INA3221, polled every {POLL_INTERVAL_S * 1e3:.0f} ms and integrated)"
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _watts(self) -> float:
        """The chosen rails' power; ValueError naming the rail where a reading is not physical (negative, or
        beyond any Jetson module's input: a monitor misread or misconfigured)."""
        total = 0.0
        for name, read in self._readers.items():
            watts = read()
            if not 0 <= watts <= MAX_RAIL_WATTS:
                raise ValueError(f"INA3221 rail {name} read {watts:.4g} W, outside 0-{MAX_RAIL_WATTS:g} W: not a "
                                 "physical reading, so no energy figure is made from it")
            total += watts
        return total

    def _poll(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            try:
                self._samples.append((time.perf_counter(), self._watts()))
            except OSError:  # a reading lost: the integral bridges it
                continue
            except ValueError as exc:  # an unphysical reading: the figure is not made (end() says why)
                self._unphysical = self._unphysical or str(exc)

    def abandon(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def begin(self) -> None:
        self._samples = [(time.perf_counter(), self._watts())]
        self._unphysical = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="jetson-rails", daemon=True)
        self._thread.start()

    def end(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            last = self._watts()
        except OSError:  # the closing reading lost: the last one holds to the end, as a lost poll is bridged
            last = self._samples[-1][1]
        samples = [*self._samples, (time.perf_counter(), last)]
        if self._unphysical:
            raise ValueError(self._unphysical)
        return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(samples, samples[1:]))


# ---------------------------------------------------------------- the pass

class Unreadable(EnergySource):
    """A source that could not even be set up (an unexpected failure while looking for it): missing, with why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason

    def begin(self) -> None:
        raise RuntimeError(self.reason)

    def end(self) -> float:
        raise RuntimeError(self.reason)


def sources_for(device: str) -> list[EnergySource]:
    """Every source, readable or not, for a cell on `device` (the CPU packages for every cell: they power
    the host side of a GPU cell too). A source that fails while being set up is missing with the reason: energy
    is never worth a cell."""
    makers: dict[str, Callable[[], EnergySource]] = {
        "rapl": RaplPackages, "nvml": lambda: NvmlEnergy(device), "jetson_rails": JetsonRails}
    sources: list[EnergySource] = []
    for name, make in makers.items():
        try:
            sources.append(make())
        except Exception as exc:  # noqa: BLE001 - whatever a damaged tree or driver raises, the cell goes on
            sources.append(Unreadable(name, f"could not be set up: {type(exc).__name__}: {exc}"))
    return sources


class SourceFailed(Exception):
    """One source failed to read during the pass (its counter vanished, read garbage, or its library raised)."""

    def __init__(self, source: EnergySource, exc: BaseException) -> None:
        super().__init__(f"the energy pass could not read {source.name}: {_said(exc)}")
        self.source = source


def _said(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: {exc}"


def measure(sources: list[EnergySource], run_once: Callable[[], None], images_per_call: int,
            min_busy_s: float = MIN_BUSY_S) -> dict[str, Any]:
    """The idle window, then back-to-back calls for at least `min_busy_s` (and MIN_CALLS): per source its
    energy per image and power; a source that cannot be read is recorded as missing, with the reason. A source
    that fails during the pass is recorded as missing with the reason, and the pass runs again without it
    (the others' figures are kept); an exception from `run_once` (the runtime's) is the cell's, and goes up."""
    figures: dict[str, Any] = {s.name: {"missing": s.reason} for s in sources if s.reason is not None}
    readable = [s for s in sources if s.reason is None]
    while readable:
        try:
            return _pass(readable, run_once, images_per_call, min_busy_s, figures)
        except SourceFailed as failed:
            for source in readable:
                source.abandon()
            figures[failed.source.name] = {"missing": str(failed)}
            readable = [s for s in readable if s is not failed.source]
    return {"sources": figures, "pass": None}


def _pass(readable: list[EnergySource], run_once: Callable[[], None], images_per_call: int, min_busy_s: float,
          figures: dict[str, Any]) -> dict[str, Any]:
    """One idle and one busy window over `readable`; SourceFailed where a source fails or reads an unphysical
    figure (negative or not finite: a counter reset)."""
    calls = 0

    def busy() -> None:
        nonlocal calls
        run_once()
        calls += 1

    idle_j, idle_s = _window(readable, lambda: time.sleep(IDLE_S), 0.0, 1)
    busy_j, busy_s = _window(readable, busy, min_busy_s, MIN_CALLS)
    for source in readable:
        for joules, window in ((idle_j[source.name], "idle"), (busy_j[source.name], "busy")):
            if not math.isfinite(joules) or joules < 0:
                raise SourceFailed(source, ValueError(f"{joules:.4g} J over the {window} window: a counter that "
                                                      "was reset or went backwards, not a physical reading"))
    images = calls * images_per_call
    figures = dict(figures)
    for source in readable:
        idle_w, gross = idle_j[source.name] / idle_s, busy_j[source.name]
        net = gross - idle_w * busy_s
        figures[source.name] = {
            "joules_per_image": net / images if net > 0 else None, "gross_joules_per_image": gross / images,
            "average_watts": gross / busy_s, "idle_watts": idle_w, "what": source.what,
            **({} if net > 0 else {"note": f"busy power {gross / busy_s:.2f} W is not above idle {idle_w:.2f} W: "
                                           "the inference's own energy is within the idle noise"})}
    return {"sources": figures, "pass": {"idle_s": idle_s, "busy_s": busy_s, "calls": calls, "images": images,
                                         "loop_includes": "run() + synchronize() back to back (as the timed "
                                                          "loop), after it; the idle window sleeps"}}


def _window(sources: list[EnergySource], step: Callable[[], None], min_s: float,
            min_steps: int) -> tuple[dict[str, float], float]:
    started: list[EnergySource] = []
    for source in sources:
        _read(source, source.begin)
        started.append(source)
    start, steps = time.perf_counter(), 0
    while steps < min_steps or time.perf_counter() - start < min_s:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    return {source.name: _read(source, source.end) for source in sources}, elapsed


def _read(source: EnergySource, call: Callable[[], Any]) -> Any:
    """`call` (the source's begin or end), any failure of it raised as SourceFailed naming the source."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - an NVMLError, OSError, garbage: that source's figure is lost
        raise SourceFailed(source, exc) from exc
