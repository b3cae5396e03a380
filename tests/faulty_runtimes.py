"""Plug-in runtimes that misbehave on purpose, for the isolation tests (used as 'tests.faulty_runtimes:Name')."""

from __future__ import annotations

import os
import signal
import time

from runtimes.null import NullRuntime
from runtimes.onnxruntime import OnnxRuntime


class RaisingRuntime(NullRuntime):
    def run(self) -> None:
        raise ValueError("this runtime always fails")


class AbortingRuntime(NullRuntime):
    def run(self) -> None:
        os.kill(os.getpid(), signal.SIGABRT)


class HangingRuntime(NullRuntime):
    def run(self) -> None:
        time.sleep(3600)


class OutOfMemoryRuntime(NullRuntime):
    def run(self) -> None:
        raise MemoryError("cannot allocate 64 GiB")


class ExitingRuntime(NullRuntime):
    def run(self) -> None:
        os._exit(3)


class AllocatingRuntime(NullRuntime):
    """Holds a known amount of host memory from load() on: 200 MB, touched so it is resident."""

    ALLOCATED_BYTES = 200 * 10**6

    def load(self, artifact) -> None:
        import numpy as np

        super().load(artifact)
        self._block = np.ones(self.ALLOCATED_BYTES, dtype=np.uint8)


class BatchProportionalRuntime(NullRuntime):
    """Allocates 100 MB per image of the batch in prepare(): large batches run out under a memory cap."""

    def prepare(self, inputs) -> None:
        import numpy as np

        super().prepare(inputs)
        self._block = np.ones(int(inputs.shape[0]) * 100 * 10**6, dtype=np.uint8)


class SlowRuntime(NullRuntime):
    """Each run takes 50 ms, so a sweep of them can be interrupted part-way."""

    def run(self) -> None:
        time.sleep(0.05)


class JitteryRuntime(NullRuntime):
    """Alternates 1 ms and 5 ms runs: a coefficient of variation far above any threshold."""

    def run(self) -> None:
        self._calls = getattr(self, "_calls", 0) + 1
        time.sleep(0.001 if self._calls % 2 else 0.005)


class ImportUnderCapRuntime(NullRuntime):
    """Imports a large library in load() with the memory cap just above what the process already uses, as
    a cap that trips while a forked cell imports its libraries: the import fails for want of memory."""

    def load(self, artifact) -> None:
        import resource

        from harness.measure.memory import _status_bytes

        super().load(artifact)
        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        resource.setrlimit(resource.RLIMIT_DATA, (_status_bytes("VmData") + 16 * 2**20, hard))
        import tests.big_import  # noqa: F401 - needs 64 MB: the import fails for want of memory


class ChattyRuntime(NullRuntime):
    """Prints 3 MB while loading, as a library with debug logging on would."""

    def load(self, artifact) -> None:
        super().load(artifact)
        line = "chatter " * 127 + "\n"
        for _ in range(3 * 1024):
            print(line, end="")
        print("LAST LINE")


class FailsOnceRuntime(NullRuntime):
    """Fails the first time it runs on a machine, as a cell hit by a passing fault would; the marker
    file (next to this module, named by $FAILS_ONCE_MARKER) remembers that it has failed."""

    def run(self) -> None:
        marker = os.environ["FAILS_ONCE_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("a passing fault")


class SecondOutputOffRuntime(OnnxRuntime):
    """ONNX Runtime whose second output comes back negated: a runtime wrong on one output of several."""

    name = "second-output-off"

    def outputs(self):
        first, second, *rest = super().outputs()
        return [first, -second, *rest]
