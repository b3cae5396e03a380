"""Where a cell's time goes: pre-processing, host-to-device, compute, device-to-host — so a user can see why an
application (which decodes images and copies them every query) is slower than the benchmark's loop (which places
one batch on the device once and times compute).

A pass of its own after the timed loop, each stage on the host clock with the device synchronized at its end, so
a stage's asynchronous copy counts in it; the stages run in a row `MIN_REPEATS` to `REPEATS` times, as many as
fit in `BUDGET_S` (a large batch's compute is not paid ten more times):

- preprocess: decode `batch` JPEG photos (500x375, as ImageNet's typical one; made once, seeded), resize the
  shorter side, center-crop and normalize them into the input tensor, with the model's own recipe (the
  accuracy command's code); missing for an ONNX file made elsewhere (no recipe is known);
- host_to_device: `prepare(inputs)` + synchronize — the inputs placed where `run()` reads them (a copy to the
  GPU, an IO binding; on a CPU, the runtime's own copy or conversion);
- compute: `run()` + synchronize: the timed loop's median (not run again);
- device_to_host: `outputs()` — the outputs copied back and converted to numpy.

A tool-timed runtime (trtexec) states its own per-inference split: enqueue, H2D, compute and D2H from its
`--exportTimes` records; it has no pre-processing of the harness's.
"""

from __future__ import annotations

import io
import statistics
import time
from typing import Any, Callable

import numpy as np

REPEATS = 10
MIN_REPEATS = 3
BUDGET_S = 1.0
PHOTO_SIZE = (500, 375)  # width, height
STAGES = ("preprocess", "host_to_device", "compute", "device_to_host")
INCLUDES = {
    "preprocess": "decoding the batch's JPEG photos, resizing, center-cropping and normalizing them (the model's "
                  "recipe)",
    "host_to_device": "prepare(inputs) + synchronize: the inputs placed where run() reads them",
    "compute": "run() + synchronize: the median of the timed loop",
    "device_to_host": "outputs(): the outputs copied back to the host as numpy arrays",
}
TOOL_INCLUDES = {
    "enqueue": "trtexec's enqueue of one inference (endEnqMs - startEnqMs)",
    "host_to_device": "trtexec's h2dMs (0 under --noDataTransfers, the harness's default)",
    "compute": "trtexec's computeMs",
    "device_to_host": "trtexec's d2hMs (0 under --noDataTransfers)",
}


def photo_jpeg(seed: int) -> bytes:
    """One seeded photo-sized JPEG (smooth noise, so it compresses like a photo rather than like static)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(PHOTO_SIZE[1] // 25, PHOTO_SIZE[0] // 25, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(PHOTO_SIZE, Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def preprocessor(preprocessing: dict[str, Any], input_size: int, batch_size: int, seed: int) -> Callable[[], np.ndarray]:
    """A callable that turns `batch_size` JPEG photos into the model's input tensor with its recipe."""
    from PIL import Image

    from harness.accuracy.preprocess import crop, normalize, recipe_parts

    geometry, normalization = recipe_parts(preprocessing, input_size)
    jpeg = photo_jpeg(seed)

    def run() -> np.ndarray:
        crops = np.stack([crop(Image.open(io.BytesIO(jpeg)), geometry) for _ in range(batch_size)])
        return normalize(crops, normalization)

    return run


def time_stages(steps: dict[str, Callable[[], Any]], repeats: int = REPEATS, min_repeats: int = MIN_REPEATS,
                budget_s: float = BUDGET_S, clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, list[float]]:
    """Each step in order, at least `min_repeats` and at most `repeats` times, stopping once `budget_s` has
    passed; per step its times in ms."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    began = clock()
    for done in range(repeats):
        if done >= min_repeats and (clock() - began) / 1e9 >= budget_s:
            break
        for name, step in steps.items():
            start = clock()
            step()
            times[name].append((clock() - start) / 1e6)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items() if values}


def from_tool_records(records: list[dict[str, Any]]) -> dict[str, float]:
    """Medians of a tool's own split of each inference (trtexec's --exportTimes fields)."""
    columns = {"enqueue": [r["endEnqMs"] - r["startEnqMs"] for r in records],
               "host_to_device": [r["h2dMs"] for r in records], "compute": [r["computeMs"] for r in records],
               "device_to_host": [r["d2hMs"] for r in records]}
    return medians(columns)
