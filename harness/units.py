"""Sizes with units, as users type them: 700MB, 1.4GB, 2GiB, 512M."""

from __future__ import annotations

import re

from harness.errors import UserError

UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
         "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes for '700MB' (decimal units, as GPU vendors and the paper use) or '2GiB' (binary)."""
    match = SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        raise UserError(f"bad size '{text}': give a number with a unit, e.g. 700MB, 1.4GB or 2GiB")
    value = int(float(match.group(1)) * UNITS[unit])
    if value <= 0:
        raise UserError(f"bad size '{text}': it must be more than zero")
    return value
