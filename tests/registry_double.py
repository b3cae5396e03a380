"""A runtime that harness/ has never heard of, with a device family and precisions of its own: the registry tests
add it to `runtimes.RUNTIMES` alone (as 'tests.registry_double:PlugInAccelerator', a name a cell's own process
resolves too) and check that --help, --device parsing, the fleet's device names and check --on-device's default
follow what it declares."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtimes.base import NOTHING, DeviceFamily, Runtime, RuntimeOptions, UnsupportedConfiguration

NAME = "tests.registry_double:PlugInAccelerator"
TPU = DeviceFamily("tpu[:N]", "a test double's accelerator")


class PlugInAccelerator(Runtime):
    """Runs no model on a 'tpu' device: outputs are zeros; info() names the device it was given."""

    name = "plugin-accelerator"
    consumes = NOTHING
    devices = (TPU,)
    precisions = {"fp32": "", "int8": "where its second core is free"}
    default_for = ("cpu",)
    packages = ("pluggy",)  # any installed distribution: the environment file records its version

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        if not TPU.matches(options.device):
            raise UnsupportedConfiguration(f"{self.name} runs on tpu[:N], not {options.device}")
        self._batch = 0

    def load(self, artifact: Any) -> None:
        pass

    def prepare(self, inputs: np.ndarray) -> None:
        self._batch = int(inputs.shape[0])

    def run(self) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def outputs(self) -> list[np.ndarray]:
        return [np.zeros((self._batch, 1000), dtype=np.float32)]

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": np.__version__, "device": self.options.device,
                "precision": self.options.precision, "options": {}}
