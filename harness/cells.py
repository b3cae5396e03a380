"""What a cell is: one (model, runtime, precision, batch size, device), and how records name it.

The lowest layer's vocabulary: the protocol, the records, the sweep and the reports all speak of cells, so
this module imports nothing of the harness's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

REFERENCE = ("torch", "fp32")  # what every other runtime and precision is compared with: PyTorch eager fp32
EXPORT = "export"  # the runtime column of an export cell: it makes the ONNX file, no runtime runs it


@dataclass(frozen=True)
class Cell:
    model: str
    runtime: str
    precision: str
    batch_size: int
    device: str

    @property
    def cell_id(self) -> str:
        return cell_id_of(self.as_dict())

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cell_id_of(cell: dict[str, Any]) -> str:
    """model|runtime|precision|bs<N>|device: how records and resumes name a cell."""
    return f"{cell['model']}|{cell['runtime']}|{cell['precision']}|bs{cell['batch_size']}|{cell['device']}"
