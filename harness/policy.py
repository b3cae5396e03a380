"""The timing policy: when a cell's warm-up stops and when its sampling stops. Chosen by the command
(`--thorough`), carried in each cell's request, applied by `harness.measure.timing.sample`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Policy:
    """When to stop warming up and when to stop sampling.

    Warm-up runs until its minimum count and duration are met and, when `warmup_stable_rel` is set,
    the last run is within that fraction of the run before it (the cell's first run counts as the run
    before the first warm-up run) — so a heavy cell whose first run is already at speed warms up once,
    not three times. `warmup_max_s` stops an unsteady warm-up. Sampling stops when both minimums are
    met, or at either cap.
    """

    warmup_min_iters: int = 1
    warmup_min_s: float = 0.2
    warmup_stable_rel: float | None = 0.10
    warmup_max_s: float = 10.0
    min_samples: int = 10
    min_duration_s: float = 1.0
    max_samples: int = 500
    max_duration_s: float = 60.0

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.max_samples < self.min_samples:
            raise ValueError("need 1 <= min_samples <= max_samples")
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("need min_duration_s <= max_duration_s")
        if self.warmup_max_s < self.warmup_min_s:
            raise ValueError("need warmup_min_s <= warmup_max_s")

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Policy":
        return cls(**data)
