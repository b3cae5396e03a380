"""A runtime that does nothing: it lets the whole pipeline run anywhere and measures the harness's own overhead."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtimes.base import (CPU, NOTHING, PRECISIONS, Artifact, Inputs, Runtime, RuntimeOptions,
                           UnsupportedConfiguration, input_arrays)

NUM_CLASSES = 1000


class NullRuntime(Runtime):
    """`run()` returns at once; `outputs()` is zeros of shape (batch, 1000). No model is ever built."""

    name = "null"
    consumes = NOTHING
    devices = (CPU,)
    precisions = dict.fromkeys(PRECISIONS, "runs no model")  # what a pipeline test at any precision needs

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        if options.device != "cpu":
            raise UnsupportedConfiguration("the null runtime runs on the CPU only")
        self._batch = 0

    def load(self, artifact: Artifact) -> None:
        self._artifact_name = artifact.name

    def prepare(self, inputs: Inputs) -> None:
        self._batch = int(input_arrays(inputs)[0].shape[0])

    def run(self) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def outputs(self) -> list[np.ndarray]:
        return [np.zeros((self._batch, NUM_CLASSES), dtype=np.float32)]

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": np.__version__, "device": "cpu",
                "precision": self.options.precision, "options": {}}
