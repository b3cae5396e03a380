"""Params, fp32 file size and MACs of a model, computed once per model and cached.

MACs are canonical: one multiply-add = 1; FLOPs = 2 x MACs. They come from PyTorch's built-in
flop counter (which counts 2 FLOPs per multiply-add for convolutions and matrix products) over one
forward pass at batch 1 at the model's own input size, in eval mode: what runs at inference
(auxiliary heads that are off at inference are neither built nor counted). `conv_macs` counts
convolutions only: the paper's convention (Bianco et al. counted nn.Conv2d alone).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.paths import cache_dir, write_atomically

log = logging.getLogger(__name__)
CACHE_FILE = "complexity.json"
COUNTER = "torch.utils.flop_counter.FlopCounterMode / 2"


@dataclass(frozen=True)
class Complexity:
    params: int
    file_size_bytes: int
    macs: int
    conv_macs: int
    input_size: int
    counter: str = COUNTER

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flops": self.flops}


class _ByteCounter:
    """A write-only file that only counts what is written to it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        return None


def measure(module: Any, input_size: int) -> Complexity:
    """Count on the CPU in fp32 with a batch of one random image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = module.eval()
    params = sum(p.numel() for p in module.parameters())
    file_bytes = _ByteCounter()
    torch.save(module.state_dict(), file_bytes)
    x = torch.randn(1, 3, input_size, input_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    by_op = counter.get_flop_counts().get("Global", {})
    conv_flops = sum(count for op, count in by_op.items() if "convolution" in str(op))
    return Complexity(params=params, file_size_bytes=file_bytes.size, macs=counter.get_total_flops() // 2,
                      conv_macs=conv_flops // 2, input_size=input_size)


def cache_key(name: str, source: str, builder: str, builder_kwargs: dict[str, Any], library_version: str) -> str:
    kwargs = json.dumps(builder_kwargs, sort_keys=True)
    return f"{name}|{source}:{builder}({kwargs})|{library_version}"


class ComplexityCache:
    """A JSON file of Complexity per cache key, rewritten atomically on every store."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / CACHE_FILE

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable complexity cache %s: %s", self.path, exc)
            return {}

    def get(self, key: str) -> Complexity | None:
        entry = self._read().get(key)
        if entry is None:
            return None
        entry = {k: v for k, v in entry.items() if k != "flops"}
        try:
            return Complexity(**entry)
        except TypeError:
            return None

    def put(self, key: str, value: Complexity) -> None:
        entries = self._read()
        entries[key] = value.as_dict()
        write_atomically(self.path, json.dumps(entries, indent=1, sort_keys=True))
