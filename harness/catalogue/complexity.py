"""Params, fp32 file size and MACs of a model, computed once per model and cached.

MACs are canonical: one multiply-add = 1; FLOPs = 2 x MACs. They come from PyTorch's built-in
flop counter (which counts 2 FLOPs per multiply-add for convolutions and matrix products) over one
forward pass at batch 1 at the model's own input size, in eval mode: what runs at inference
(auxiliary heads that are off at inference are neither built nor counted). `conv_macs` counts
convolutions only: the paper's convention (Bianco et al. counted nn.Conv2d alone).

Attention: PyTorch's counter has no formula for the kernels attention runs on the CPU at inference —
`scaled_dot_product_attention` as the counter sees it (timm's ViTs), its CPU flash kernel, and the
fused multi-head-attention fast path `_native_multi_head_attention` (torchvision's ViT), which holds
the q/k/v and output projections too — so it counted them as zero (ViT-B/16: 11.27 instead of 17.56
GMACs). `ATTENTION_FORMULAS` adds them: q·kᵀ and attention·v (2 x batch x heads x L x S x head_dim
MACs), plus, for the fused path, the projections (batch x (L + 2 S + L) x E x E MACs).
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
COUNTER = "torch.utils.flop_counter.FlopCounterMode / 2, with attention formulas"


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


def _attention_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    """q @ kᵀ and scores @ v of (batch, heads, L, head_dim) tensors: 2 FLOPs per multiply-add."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _fused_multi_head_attention_flops(query_shape: Any, key_shape: Any, value_shape: Any, embed_dim: int,
                                      num_heads: int, *args: Any, **kwargs: Any) -> int:
    """`_native_multi_head_attention` on (batch, L, E) inputs: the q/k/v projections, attention over all
    heads, and the output projection."""
    batch, query_length, _ = query_shape
    key_length = key_shape[1]
    projections = batch * (query_length + 2 * key_length + query_length) * embed_dim * embed_dim
    attention = 2 * batch * query_length * key_length * embed_dim
    return 2 * (projections + attention)


def attention_formulas() -> dict[Any, Any]:
    import torch

    aten = torch.ops.aten
    formulas: dict[Any, Any] = {aten.scaled_dot_product_attention: _attention_flops,
                                aten._native_multi_head_attention: _fused_multi_head_attention_flops}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = _attention_flops
    return formulas


def measure(module: Any, input_size: int) -> Complexity:
    """Count on the CPU in fp32 with a batch of one random image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = module.eval()
    params = sum(p.numel() for p in module.parameters())
    file_bytes = _ByteCounter()
    torch.save(module.state_dict(), file_bytes)
    x = torch.randn(1, 3, input_size, input_size)
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=attention_formulas()) as counter:
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
        if entry.get("counter") != COUNTER:  # counted by an older counter: count again
            return None
        try:
            return Complexity(**entry)
        except TypeError:
            return None

    def put(self, key: str, value: Complexity) -> None:
        entries = self._read()
        entries[key] = value.as_dict()
        write_atomically(self.path, json.dumps(entries, indent=1, sort_keys=True))
