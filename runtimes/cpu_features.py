"""What this CPU's instruction set offers, read from /proc/cpuinfo (no library import)."""

from __future__ import annotations

from pathlib import Path

# flags that mean bf16 arithmetic in hardware: x86 AVX-512 BF16 and AMX BF16 tiles; Arm's BF16 extension
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def parse_flags(cpuinfo_text: str) -> set[str]:
    """The union of every core's 'flags' (x86) or 'Features' (Arm) line of /proc/cpuinfo's text."""
    flags: set[str] = set()
    for line in cpuinfo_text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return flags


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """This CPU's flags; empty where /proc/cpuinfo cannot be read."""
    try:
        return parse_flags(cpuinfo.read_text())
    except OSError:
        return set()


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The flag through which this CPU computes bf16 in hardware, or None (bf16 would be emulated, slower
    than fp32, or /proc/cpuinfo cannot be read)."""
    flags = cpu_flags(cpuinfo)
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)
