"""Plug-in runtimes that misbehave on purpose, for the isolation tests (used as 'tests.faulty_runtimes:Name')."""

from __future__ import annotations

import os
import signal
import time

from runtimes.null import NullRuntime


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
