"""A reading taken on a thread of its own, every `interval_s` between start() and stop() and once at each end:
the one mechanism behind the memory samplers, a Jetson's clock trace and the watch on a tool's process."""

from __future__ import annotations

import threading
from typing import Callable


class Periodic:
    def __init__(self, read: Callable[[], None], interval_s: float, name: str) -> None:
        self._read, self.interval_s, self._name = read, interval_s, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read()

    def start(self) -> None:
        self._read()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._read()
