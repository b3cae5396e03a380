"""A plan is the list of cells to run; a cell is one (model, runtime, precision, batch size, device)."""

from __future__ import annotations

import random
from itertools import product

from harness.cells import DEFAULT_SCENARIO, EXPORT, REFERENCE, Cell, cell_id_of

__all__ = ["EXPORT", "ORDERS", "PAPER_BATCH_SIZES", "REFERENCE", "Cell", "cell_id_of", "plan_cells",
           "plan_with_reference"]

PAPER_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
ORDERS = ("model", "interleaved", "random")


def plan_cells(models: list[str], runtimes: list[str], precisions: list[str], batch_sizes: list[int],
               device: str, order: str = "model", seed: int = 0,
               scenarios: tuple[str, ...] = (DEFAULT_SCENARIO,)) -> list[Cell]:
    """The cells in run order.

    model: all of one model's cells together, smaller batch sizes first. interleaved: batch size by
    batch size across all models (each model's batch sizes still ascend, so an out-of-memory batch
    still skips the larger ones), spreading every model over the whole sweep so drift hits all alike.
    random: a seeded shuffle.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}")
    by_model = [Cell(model, runtime, precision, batch_size, device, scenario)
                for model, runtime, precision, batch_size, scenario
                in product(models, runtimes, precisions, sorted(batch_sizes), scenarios)]
    if order == "interleaved":
        return sorted(by_model, key=lambda c: (c.batch_size, models.index(c.model), runtimes.index(c.runtime),
                                               precisions.index(c.precision)))
    if order == "random":
        random.Random(seed).shuffle(by_model)
    return by_model




def plan_with_reference(models: list[str], runtimes: list[str], precisions: list[str], batch_size: int,
                        device: str, reference_device: str | None = None,
                        reference: tuple[str, str] = REFERENCE) -> list[Cell]:
    """Per model: the reference (PyTorch eager fp32) first, whether asked for or not, so each later cell
    can compare its answers with it; then the requested runtimes x precisions. The sweep makes the
    order a dependency: a model's cells wait for its reference cell. The reference runs on
    `reference_device` (default: the cells' device); verify puts it on the CPU, where fp32 means fp32
    (no TF32 convolutions) and a runtime on any accelerator can be checked against it. `reference`: another
    reference (ONNX Runtime fp32 for an ONNX file made elsewhere)."""
    cells = []
    for model in models:
        cells.append(Cell(model, *reference, batch_size, reference_device or device))
        cells += [Cell(model, runtime, precision, batch_size, device)
                  for runtime, precision in product(runtimes, precisions) if (runtime, precision) != reference]
    return cells
