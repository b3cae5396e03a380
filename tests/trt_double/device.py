"""The pretend GPU behind both test doubles (tests only): host memory standing for device memory, streams
that record work while being captured into a graph, and the device's name, compute capability and DLA
cores (from environment variables, so a subprocess started by a test sees what the test chose)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Callable

GPU_ENV = "TRT_DOUBLE_GPU"  # "NAME:MAJOR.MINOR"
DLA_ENV = "TRT_DOUBLE_DLA_CORES"
CUDA_ENV = "TRT_DOUBLE_CUDA"  # "ok" (default), "no-device" or "old-driver" (a driver older than cuda-python needs)


def cuda_state() -> str:
    return os.environ.get(CUDA_ENV, "ok")


def gpu() -> tuple[str, int, int]:
    name, _, capability = os.environ.get(GPU_ENV, "Double GPU:8.9").rpartition(":")
    major, minor = capability.split(".")
    return name, int(major), int(minor)


def dla_cores() -> int:
    return int(os.environ.get(DLA_ENV, "0"))


class Allocations:
    """Host buffers handed out as device pointers; a copy to or from an address outside them fails, as
    an illegal address would on a GPU."""

    def __init__(self) -> None:
        self.buffers: dict[int, ctypes.Array] = {}

    def allocate(self, nbytes: int) -> int:
        buffer = ctypes.create_string_buffer(nbytes)
        address = ctypes.addressof(buffer)
        self.buffers[address] = buffer
        return address

    def free(self, address: int) -> bool:
        return self.buffers.pop(address, None) is not None

    def holds(self, address: int, nbytes: int) -> bool:
        return any(start <= address and address + nbytes <= start + len(buffer)
                   for start, buffer in self.buffers.items())


@dataclass
class Stream:
    handle: int
    captured: list[Callable[[], None]] | None = None  # work recorded while capturing
    work_done: int = 0

    def submit(self, work: Callable[[], None]) -> None:
        if self.captured is not None:
            self.captured.append(work)
        else:
            work()
            self.work_done += 1


@dataclass
class Device:
    allocations: Allocations = field(default_factory=Allocations)
    streams: dict[int, Stream] = field(default_factory=dict)
    default_stream_uses: int = 0

    def new_stream(self) -> Stream:
        stream = Stream(handle=0x1000 + len(self.streams) + 1)
        self.streams[stream.handle] = stream
        return stream

    def stream(self, handle: int) -> Stream | None:
        if handle == 0:
            self.default_stream_uses += 1
            return Stream(0)
        return self.streams.get(handle)


DEVICE = Device()
