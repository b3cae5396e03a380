"""Numbers as users type them: sizes with units (700MB, 1.4GB, 2GiB, 512M), seconds, limits and seeds,
each checked with one clear line for a bad value."""

from __future__ import annotations

import math
import re

from harness.errors import UserError

UNITS = {"b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
         "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes for '700MB' (decimal units, as GPU vendors and the paper use) or '2GiB' (binary)."""
    match = SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        hint = " (a bare number is ambiguous: add B, MB, GB or GiB)" if match and not unit else ""
        raise UserError(f"bad size '{text}': give a number with a unit, e.g. 700MB, 1.4GB or 2GiB{hint}")
    value = int(float(match.group(1)) * UNITS[unit])
    if value <= 0:
        raise UserError(f"bad size '{text}': it must be more than zero")
    return value


MAX_SECONDS = 7 * 24 * 3600.0  # a week: beyond it select() and wait() overflow, and no cell needs it


def check_seconds(value: float, flag: str) -> float:
    """A finite, positive number of seconds, at most a week (inf, nan and 1e400 are refused)."""
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise UserError(f"bad {flag} {value:g}: give a positive number of seconds, at most {MAX_SECONDS:g} (a week)")
    return value


def check_positive(value: float | None, flag: str) -> float | None:
    """None (no limit) or a finite number above zero."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"bad {flag} {value:g}: give a finite number above zero, or leave the limit out")
    return value


MAX_SEED = 2**32 - 1  # what numpy's and torch's generators both accept


def check_seed(value: int) -> int:
    if not 0 <= value <= MAX_SEED:
        raise UserError(f"bad --seed {value}: give a whole number from 0 to {MAX_SEED}")
    return value
