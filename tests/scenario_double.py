"""A runtime whose every query takes a fixed time (a sleep, which frees Python's lock as a library's kernel
does): the scenario tests know its capacity, so they can tell the server search and offline's streams apart
from noise. Used as the plug-in 'tests.scenario_double:FixedServiceTime'."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from runtimes.base import NOTHING, Runtime

SERVICE_S = 0.002


class FixedServiceTime(Runtime):
    name = "fixed-service-time"
    consumes = NOTHING

    def load(self, artifact: Any) -> None:
        pass

    def prepare(self, inputs: np.ndarray) -> None:
        self._batch = int(inputs.shape[0])

    def run(self) -> None:
        time.sleep(SERVICE_S)

    def synchronize(self) -> None:
        pass

    def outputs(self) -> list[np.ndarray]:
        return [np.zeros((self._batch, 1000), dtype=np.float32)]

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": "1", "device": self.options.device,
                "precision": self.options.precision, "options": {"service_s": SERVICE_S}}
