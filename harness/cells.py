"""What a cell is: one (model, runtime, precision, batch size, device, scenario), and how records name it.

The lowest layer's vocabulary: the protocol, the records, the sweep and the reports all speak of cells, so
this module imports nothing of the harness's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

REFERENCE = ("torch", "fp32")  # what every other runtime and precision is compared with: PyTorch eager fp32
ONNX_REFERENCE = ("ort", "fp32")  # the same for an ONNX file made elsewhere (no torch module): ONNX Runtime fp32
EXPORT = "export"  # the runtime column of an export cell: it makes the ONNX file, no runtime runs it
# How queries reach the runtime (harness.measure.scenarios): single-stream is the timed loop every cell runs and
# the default, left out of a cell's JSON and id so that records made before scenarios existed keep theirs.
SCENARIOS = ("single-stream", "multi-stream", "server", "offline")
DEFAULT_SCENARIO = "single-stream"


@dataclass(frozen=True)
class Cell:
    model: str
    runtime: str
    precision: str
    batch_size: int
    device: str
    scenario: str = DEFAULT_SCENARIO

    @property
    def cell_id(self) -> str:
        return cell_id_of(self.as_dict())

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        if data["scenario"] == DEFAULT_SCENARIO:
            del data["scenario"]
        return data


def cell_id_of(cell: dict[str, Any]) -> str:
    """model|runtime|precision|bs<N>|device, and |scenario where it is not single-stream: how records and
    resumes name a cell."""
    scenario = cell.get("scenario") or DEFAULT_SCENARIO
    return (f"{cell['model']}|{cell['runtime']}|{cell['precision']}|bs{cell['batch_size']}|{cell['device']}"
            + ("" if scenario == DEFAULT_SCENARIO else f"|{scenario}"))
