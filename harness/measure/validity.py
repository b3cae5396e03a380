"""Is a cell's timing trustworthy? A verdict: valid, or the reasons it is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_CV = {"quick": 0.10, "thorough": 0.05}
FREQUENCY_CHANGE = 0.10  # a CPU whose current frequency moved by more than this share


def cpu_frequencies_khz(root: Path = Path("/sys/devices/system/cpu")) -> dict[str, int] | str:
    """Current frequency per CPU, or the reason it cannot be read."""
    readings = {}
    for path in sorted(root.glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
        try:
            readings[path.parent.parent.name] = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return readings or f"no readable {root}/cpu*/cpufreq/scaling_cur_freq"


def frequency_changes(before: dict[str, int] | str, after: dict[str, int] | str) -> list[str]:
    if isinstance(before, str) or isinstance(after, str):
        return []
    changes = []
    for cpu, start in before.items():
        end = after.get(cpu)
        if end is not None and start > 0 and abs(end - start) / start > FREQUENCY_CHANGE:
            changes.append(f"{cpu} {start / 1e6:.2f}->{end / 1e6:.2f} GHz")
    return changes


def verdict(stats: dict[str, Any], min_samples: int, max_cv: float, frequency_before: dict[str, int] | str,
            frequency_after: dict[str, int] | str, gpu: dict[str, Any] | None = None,
            board_before: dict[str, Any] | None = None, board_after: dict[str, Any] | None = None,
            board_during: dict[str, Any] | None = None) -> dict[str, Any]:
    """valid, or the reasons not; `notes`: what was seen that does not invalidate (an unpinned board's clocks)."""
    reasons, notes = board_findings(board_before or {}, board_after or {}, board_during)
    if stats["samples"] < min_samples:
        reasons.append(f"too few samples: {stats['samples']} < {min_samples} (a cap stopped the loop)")
    if stats["cv"] > max_cv:
        reasons.append(f"coefficient of variation {stats['cv']:.3f} > {max_cv}")
    changes = frequency_changes(frequency_before, frequency_after)
    unpinned_board = (board_after or {}).get("is_jetson") and ((board_after or {}).get("clocks") or {}).get("pinned") \
        is not True
    if changes and unpinned_board:  # its governor moves them all the time: what moved is shown, not judged
        notes.append("CPU frequency moved during the cell (clocks not pinned): " + ", ".join(changes[:4]))
    elif changes:
        reasons.append("CPU frequency changed during the cell: " + ", ".join(changes[:4]))
    gpu = gpu or {}
    if gpu.get("other_processes"):
        reasons.append(f"other processes use the GPU: pids {gpu['other_processes'][:5]}")
    if gpu.get("sm_clock_before_mhz") and gpu.get("sm_clock_after_mhz") \
            and abs(gpu["sm_clock_after_mhz"] - gpu["sm_clock_before_mhz"]) / gpu["sm_clock_before_mhz"] > FREQUENCY_CHANGE:
        reasons.append(f"GPU SM clock changed: {gpu['sm_clock_before_mhz']}->{gpu['sm_clock_after_mhz']} MHz")
    if gpu.get("throttle_reasons_after"):
        reasons.append(f"GPU throttled: {gpu['throttle_reasons_after']}")
    return {"valid": not reasons, "reasons": reasons, "notes": notes, "max_cv": max_cv,
            "cpu_frequency_khz": {"before": frequency_before, "after": frequency_after}, "gpu": gpu or None}


def gpu_clocks(device: str) -> dict[str, Any] | None:
    """SM clock and active throttle reasons (idle and application-clock settings aside), via NVML."""
    if not device.startswith("cuda"):
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(device.split(":")[1]) if ":" in device else 0)
        reasons = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
        benign = pynvml.nvmlClocksThrottleReasonGpuIdle | pynvml.nvmlClocksThrottleReasonApplicationsClocksSetting
        return {"sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "throttle_reasons": int(reasons & ~benign)}
    except Exception as exc:  # no NVML, or a device that does not report clocks
        return {"unreadable": str(exc)}


def board_findings(before: dict[str, Any], after: dict[str, Any],
                   during: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(reasons, notes) from a Jetson's facts before and after the cell and its clock trace during it.

    Pinned clocks (jetson_clocks) that moved or fell below their pinned value mean throttling: invalid. An
    unpinned board's clocks move with its governor all the time: the range seen during the timed loop is
    noted, not judged. CPU, GPU and junction zones at their passive trip throttle clocks: invalid; other zones
    at theirs (the Nano's PLL-therm dram-throttle) are noted.
    """
    from harness.measure.jetson import clock_changes

    if not (before.get("is_jetson") and after.get("is_jetson")):
        return [], []
    reasons, notes = [], []
    clocks = after.get("clocks") or {}
    gpu_range = (during or {}).get("gpu_mhz")
    if clocks.get("pinned") is True:
        changes = clock_changes(before.get("clocks") or {}, clocks)
        if changes:
            reasons.append("pinned Jetson clocks changed during the cell: " + ", ".join(changes))
        pinned_mhz = ((clocks.get("gpu_hz") or {}).get("min") or 0) / 1e6
        if gpu_range and pinned_mhz and gpu_range["min"] < pinned_mhz * 0.9:
            reasons.append(f"GPU clock fell to {gpu_range['min']:.0f} MHz, below its pinned {pinned_mhz:.0f} MHz, "
                           "during the timed loop (throttling)")
    else:
        state = "not pinned" if clocks.get("pinned") is False else "pinning unknown"
        seen = f"; GPU {gpu_range['min']:.0f}-{gpu_range['max']:.0f} MHz (median {gpu_range['median']:.0f}) during " \
               "the timed loop" if gpu_range else ""
        notes.append(f"clocks {state} ({clocks.get('pinned_why', 'no clock readings')}){seen}: sudo jetson_clocks, "
                     "or check --on-device --pin-clocks, pins them")
    hot = sorted(set((before.get("thermal") or {}).get("throttling", [])) |
                 set((after.get("thermal") or {}).get("throttling", [])))
    if hot:
        reasons.append(f"thermal throttling: {', '.join(hot)} at or over the passive trip point")
    warm = sorted(set((before.get("thermal") or {}).get("hot", [])) | set((after.get("thermal") or {}).get("hot", [])))
    if warm:
        notes.append(f"at a passive trip that does not cap clocks: {', '.join(warm)}")
    return reasons, notes
