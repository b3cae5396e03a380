"""A plan is the list of cells to run; a cell is one (model, runtime, precision, batch size, device)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product

PAPER_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Cell:
    model: str
    runtime: str
    precision: str
    batch_size: int
    device: str

    @property
    def cell_id(self) -> str:
        return f"{self.model}|{self.runtime}|{self.precision}|bs{self.batch_size}|{self.device}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def plan_cells(models: list[str], runtimes: list[str], precisions: list[str], batch_sizes: list[int],
               device: str) -> list[Cell]:
    """Model-major order: all of one model's cells run together, smaller batch sizes first."""
    return [Cell(model, runtime, precision, batch_size, device)
            for model, runtime, precision, batch_size in product(models, runtimes, precisions, sorted(batch_sizes))]
