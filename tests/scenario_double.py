"""A runtime whose every query takes a fixed time (a sleep, which frees Python's lock as a library's kernel
does): the scenario tests know its capacity, so they can tell the server search and offline's streams apart
from noise. Used as the plug-in 'tests.scenario_double:FixedServiceTime'."""

from __future__ import annotations

import time
from typing import Any

from runtimes.null import NullRuntime

SERVICE_S = 0.002


class FixedServiceTime(NullRuntime):
    name = "fixed-service-time"

    def run(self) -> None:
        time.sleep(SERVICE_S)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "name": self.name, "options": {"service_s": SERVICE_S}}
