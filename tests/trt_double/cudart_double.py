"""A test double of cuda-python's `cuda.bindings.runtime` (tests only): the calls the TensorRT runtime's
cuda-python backend makes, on the pretend device of `device.py`. Every name it offers exists in the
real module (tests/test_tensorrt_api_names.py checks against the installed cuda-bindings), and like the
real one each call returns a tuple whose first item is a `cudaError_t`."""

from __future__ import annotations

import ctypes
import enum
import itertools
import time
import types
from typing import Any

from tests.trt_double import device
from tests.trt_double.device import gpu


class cudaError_t(enum.IntEnum):  # noqa: N801 - the real module's names
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorNotReady = 600
    cudaErrorStreamCaptureInvalidated = 901


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class cudaStreamCaptureMode(enum.IntEnum):  # noqa: N801
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


cudaStreamNonBlocking = 1


class cudaStream_t:  # noqa: N801
    def __init__(self, handle: int) -> None:
        self._handle = handle

    def __int__(self) -> int:
        return self._handle


class cudaEvent_t:  # noqa: N801
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id, self.recorded_ns = next(self._ids), None


class cudaGraph_t:  # noqa: N801
    def __init__(self, work: list[Any]) -> None:
        self.work = work


class cudaGraphExec_t:  # noqa: N801
    def __init__(self, graph: cudaGraph_t) -> None:
        self.work = list(graph.work)


class cudaDeviceProp:  # noqa: N801
    def __init__(self) -> None:
        name, self.major, self.minor = gpu()
        self.name = name.encode() + b"\x00" * 8


def _ok(*values: Any) -> tuple[Any, ...]:
    return (cudaError_t.cudaSuccess, *values)


def cudaGetErrorName(error: cudaError_t) -> tuple[Any, bytes]:
    return _ok(cudaError_t(error).name.encode())


CUDA_FAILURES = {"no-device": cudaError_t.cudaErrorNoDevice, "old-driver": cudaError_t.cudaErrorInsufficientDriver}
DRIVER_CUDA = {"ok": 12080, "old-driver": 11040, "no-device": 0}  # what cudaDriverGetVersion answers


def cudaGetDeviceCount() -> tuple[Any, ...]:
    failure = CUDA_FAILURES.get(device.cuda_state())
    return (failure, 0) if failure else _ok(1)


def cudaDriverGetVersion() -> tuple[Any, ...]:
    return _ok(DRIVER_CUDA[device.cuda_state()])


def cudaSetDevice(device_index: int) -> tuple[Any, ...]:
    failure = CUDA_FAILURES.get(device.cuda_state())
    if failure:
        return (failure,)
    return _ok() if device_index == 0 else (cudaError_t.cudaErrorInvalidDevice,)


def cudaGetDeviceProperties(device: int) -> tuple[Any, ...]:
    return _ok(cudaDeviceProp()) if device == 0 else (cudaError_t.cudaErrorInvalidDevice, None)


def cudaMalloc(size: int) -> tuple[Any, ...]:
    return _ok(device.DEVICE.allocations.allocate(size))


def cudaFree(pointer: int) -> tuple[Any, ...]:
    return _ok() if device.DEVICE.allocations.free(int(pointer)) else (cudaError_t.cudaErrorInvalidValue,)


def cudaStreamCreateWithFlags(flags: int) -> tuple[Any, ...]:
    return _ok(cudaStream_t(device.DEVICE.new_stream().handle))


def cudaStreamDestroy(stream: cudaStream_t) -> tuple[Any, ...]:
    return _ok() if device.DEVICE.streams.pop(int(stream), None) else (cudaError_t.cudaErrorInvalidResourceHandle,)


def _stream(stream: Any) -> Any:
    return device.DEVICE.stream(int(stream))


def cudaMemcpyAsync(dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: Any) -> tuple[Any, ...]:
    device_side = {cudaMemcpyKind.cudaMemcpyHostToDevice: dst, cudaMemcpyKind.cudaMemcpyDeviceToHost: src}.get(kind)
    if device_side is None or not device.DEVICE.allocations.holds(int(device_side), count):
        return (cudaError_t.cudaErrorInvalidValue,)
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    target.submit(lambda: ctypes.memmove(int(dst), int(src), count))
    return _ok()


def cudaStreamSynchronize(stream: Any) -> tuple[Any, ...]:
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    return _ok() if target.captured is None else (cudaError_t.cudaErrorStreamCaptureInvalidated,)


def cudaEventCreate() -> tuple[Any, ...]:
    return _ok(cudaEvent_t())


def cudaEventDestroy(event: cudaEvent_t) -> tuple[Any, ...]:
    return _ok()


def cudaEventRecord(event: cudaEvent_t, stream: Any) -> tuple[Any, ...]:
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)

    def mark() -> None:
        event.recorded_ns = time.perf_counter_ns()

    target.submit(mark)
    return _ok()


def cudaEventSynchronize(event: cudaEvent_t) -> tuple[Any, ...]:
    return _ok() if event.recorded_ns is not None else (cudaError_t.cudaErrorInvalidResourceHandle,)


def cudaEventElapsedTime(start: cudaEvent_t, end: cudaEvent_t) -> tuple[Any, ...]:
    if start.recorded_ns is None or end.recorded_ns is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle, 0.0)
    return _ok((end.recorded_ns - start.recorded_ns) / 1e6)


def cudaStreamBeginCapture(stream: Any, mode: cudaStreamCaptureMode) -> tuple[Any, ...]:
    target = _stream(stream)
    if target is None or int(stream) == 0:  # the legacy default stream cannot be captured
        return (cudaError_t.cudaErrorInvalidValue,)
    target.captured = []
    return _ok()


def cudaStreamEndCapture(stream: Any) -> tuple[Any, ...]:
    target = _stream(stream)
    if target is None or target.captured is None:
        return (cudaError_t.cudaErrorInvalidValue, None)
    graph, target.captured = cudaGraph_t(target.captured), None
    return _ok(graph)


def cudaGraphInstantiate(graph: cudaGraph_t, flags: int) -> tuple[Any, ...]:
    return _ok(cudaGraphExec_t(graph))


def cudaGraphLaunch(executable: cudaGraphExec_t, stream: Any) -> tuple[Any, ...]:
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    for work in executable.work:
        target.submit(work)
    return _ok()


def cudaGraphDestroy(graph: cudaGraph_t) -> tuple[Any, ...]:
    return _ok()


def cudaGraphExecDestroy(executable: cudaGraphExec_t) -> tuple[Any, ...]:
    return _ok()


OFFERED = [name for name in dir() if name.startswith("cuda")]


def make_module() -> types.ModuleType:
    """A fresh `cuda.bindings.runtime` double holding only the names above."""
    module = types.ModuleType("cuda.bindings.runtime")
    for name in OFFERED:
        setattr(module, name, globals()[name])
    return module
