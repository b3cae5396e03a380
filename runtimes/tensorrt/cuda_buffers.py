"""Device memory, a stream, events and CUDA graphs for the TensorRT runtime, through one small interface
over three libraries, none of which needs building anything:

- `torch`: CUDA tensors as buffers, `torch.cuda.Stream`/`Event`/`CUDAGraph` (when torch with CUDA is here);
- `cuda-python`: `cuda.bindings.runtime` (NVIDIA's choice in its own TensorRT samples);
- `pycuda`: on many Jetson images, and in the project's original package list (no CUDA graphs).

`trt.buffers=auto` takes the first of these that works here; the choice is recorded with each cell.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from runtimes.base import UnsupportedConfiguration

BACKENDS = ("cuda-python", "torch", "pycuda")  # auto tries them in this order (docs/DECISIONS.md)


class CudaError(RuntimeError):
    """A CUDA call through the buffer library failed; the message names the call and the error."""

    def __init__(self, message: str, error_name: str = "") -> None:
        super().__init__(message)
        self.error_name = error_name


class CudaUnusable(UnsupportedConfiguration):
    """The buffer library is installed but CUDA cannot be used through it (no device, a driver too old for it):
    checked before any TensorRT object exists, since TensorRT without CUDA crashes instead of failing."""


@dataclass
class DeviceBuffer:
    ptr: int
    nbytes: int
    handle: Any = None  # what keeps the allocation alive (a tensor, an allocation object)


class CudaBackend(ABC):
    """What the TensorRT runtime needs from CUDA: memory, copies, one stream, events, graphs."""

    name = "backend"

    @abstractmethod
    def device_properties(self) -> tuple[str, str]:
        """(GPU name, compute capability 'major.minor') of the device."""

    @abstractmethod
    def allocate(self, nbytes: int) -> DeviceBuffer: ...

    @abstractmethod
    def create_stream(self) -> Any:
        """A new non-default stream (an opaque object; `stream_handle` gives TensorRT its address)."""

    @abstractmethod
    def stream_handle(self, stream: Any) -> int: ...

    @abstractmethod
    def copy_to_device(self, buffer: DeviceBuffer, array: np.ndarray, stream: Any) -> None: ...

    @abstractmethod
    def copy_to_host(self, array: np.ndarray, buffer: DeviceBuffer, stream: Any) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Any) -> None:
        """Wait for the work queued on `stream`, and only that."""

    @abstractmethod
    def event_pair(self, stream: Any) -> "EventPair": ...

    def allocator_peak(self) -> dict[str, Any] | None:
        """The library's own allocator peaks where the buffers came from one (torch), else None."""
        return None

    def capture_graph(self, stream: Any, enqueue: Callable[[], None]) -> "Graph":
        raise UnsupportedConfiguration(f"CUDA graphs need torch or cuda-python buffers, not {self.name}")

    def close(self) -> None:
        """Free what the backend allocated (buffers go with their owners)."""


class EventPair(ABC):
    """Two CUDA events on the runtime's stream, around one run."""

    source = "CUDA events on the runtime's stream around run()"

    @abstractmethod
    def mark_start(self) -> None: ...

    @abstractmethod
    def mark_end(self) -> None: ...

    @abstractmethod
    def wait_end(self) -> None:
        """Block until the end event has happened on the device."""

    @abstractmethod
    def elapsed_ms(self) -> float: ...


class Graph(ABC):
    @abstractmethod
    def launch(self) -> None:
        """Replay the captured work on the stream it was captured on."""


def _host_bytes(array: np.ndarray) -> np.ndarray:
    if not array.flags.c_contiguous:
        raise ValueError("host arrays for device copies must be C-contiguous")
    return array.reshape(-1).view(np.uint8)


# ---------------------------------------------------------------- torch

class TorchBackend(CudaBackend):
    name = "torch"

    def __init__(self, device_index: int) -> None:
        import torch

        if not torch.cuda.is_available():
            raise UnsupportedConfiguration("torch is installed without CUDA (or sees no GPU)")
        self.torch = torch
        self.device = torch.device("cuda", device_index)
        torch.cuda.set_device(self.device)

    def device_properties(self) -> tuple[str, str]:
        props = self.torch.cuda.get_device_properties(self.device)
        return props.name, f"{props.major}.{props.minor}"

    def allocate(self, nbytes: int) -> DeviceBuffer:
        tensor = self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, device=self.device)
        return DeviceBuffer(tensor.data_ptr(), nbytes, tensor)

    def create_stream(self) -> Any:
        return self.torch.cuda.Stream(self.device)

    def stream_handle(self, stream: Any) -> int:
        return int(stream.cuda_stream)

    def copy_to_device(self, buffer: DeviceBuffer, array: np.ndarray, stream: Any) -> None:
        source = self.torch.from_numpy(_host_bytes(array))
        with self.torch.cuda.stream(stream):
            buffer.handle[:source.numel()].copy_(source, non_blocking=True)

    def copy_to_host(self, array: np.ndarray, buffer: DeviceBuffer, stream: Any) -> None:
        target = self.torch.from_numpy(_host_bytes(array))
        with self.torch.cuda.stream(stream):
            target.copy_(buffer.handle[:target.numel()], non_blocking=False)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def event_pair(self, stream: Any) -> EventPair:
        return _TorchEvents(self.torch, stream)

    def allocator_peak(self) -> dict[str, Any]:
        return {"peak_allocated_bytes": self.torch.cuda.max_memory_allocated(self.device),
                "peak_reserved_bytes": self.torch.cuda.max_memory_reserved(self.device),
                "source": "torch.cuda.max_memory_allocated / max_memory_reserved: the input/output buffers torch "
                          "allocated for TensorRT (TensorRT's own memory is not in it)"}

    def capture_graph(self, stream: Any, enqueue: Callable[[], None]) -> Graph:
        graph = self.torch.cuda.CUDAGraph()
        with self.torch.cuda.graph(graph, stream=stream):
            enqueue()
        return _TorchGraph(self.torch, graph, stream)


class _TorchEvents(EventPair):
    def __init__(self, torch: Any, stream: Any) -> None:
        self.stream = stream
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def mark_start(self) -> None:
        self.start.record(self.stream)

    def mark_end(self) -> None:
        self.end.record(self.stream)

    def wait_end(self) -> None:
        self.end.synchronize()

    def elapsed_ms(self) -> float:
        return float(self.start.elapsed_time(self.end))


class _TorchGraph(Graph):
    def __init__(self, torch: Any, graph: Any, stream: Any) -> None:
        self.torch, self.graph, self.stream = torch, graph, stream

    def launch(self) -> None:
        with self.torch.cuda.stream(self.stream):
            self.graph.replay()


# ---------------------------------------------------------------- cuda-python

def _import_cudart() -> Any:
    """`cuda.bindings.runtime` (cuda-python >= 12.6), or `cuda.cudart` of older cuda-python."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


class CudaPythonBackend(CudaBackend):
    name = "cuda-python"

    def __init__(self, device_index: int) -> None:
        self.cudart = _import_cudart()
        self.device_index = device_index
        self._owned: list[tuple[str, Any]] = []  # (destroy call, object), freed by close()
        try:
            count = int(self._call("cudaGetDeviceCount"))
        except CudaError as exc:
            raise CudaUnusable(self._unusable(exc)) from None
        if device_index >= count:
            raise CudaUnusable(f"CUDA device {device_index} asked for; the driver sees {count}")
        self._call("cudaSetDevice", device_index)

    def _unusable(self, exc: CudaError) -> str:
        """Why CUDA cannot be used, naming the fix: a driver too old for this cuda-python, or no GPU at all."""
        ours = package_version("cuda-bindings") or package_version("cuda-python") or "?"
        if exc.error_name == "cudaErrorInsufficientDriver":
            driver = self.cudart.cudaDriverGetVersion()
            code = int(driver[1]) if isinstance(driver, tuple) and driver[0] == self.cudart.cudaError_t.cudaSuccess \
                else 0
            supports = f"CUDA {code // 1000}.{code % 1000 // 10}" if code else "an unknown CUDA version"
            return (f"the NVIDIA driver is too old for this cuda-python: the driver supports {supports}, "
                    f"cuda-python {ours} needs a CUDA {ours.split('.')[0]} driver; update the driver, or install the "
                    f"cuda-python of the driver's CUDA (pip install 'dnn-harness[trt-cu12]' for CUDA 12 drivers)")
        return f"CUDA cannot be used here ({exc}; cuda-python {ours})"

    def _call(self, name: str, *args: Any) -> Any:
        """Call `cudart.<name>`; cuda-python returns (error, *values): raise on error, return the values."""
        result = getattr(self.cudart, name)(*args)
        error, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if error != self.cudart.cudaError_t.cudaSuccess:
            described = self.cudart.cudaGetErrorName(error)
            label = described[1] if isinstance(described, tuple) else described
            label = label.decode() if isinstance(label, bytes) else str(label)
            raise CudaError(f"{name} failed: {label}", label)
        return values[0] if len(values) == 1 else values

    def device_properties(self) -> tuple[str, str]:
        props = self._call("cudaGetDeviceProperties", self.device_index)
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00"), f"{props.major}.{props.minor}"

    def allocate(self, nbytes: int) -> DeviceBuffer:
        ptr = int(self._call("cudaMalloc", max(nbytes, 1)))
        self._owned.append(("cudaFree", ptr))
        return DeviceBuffer(ptr, nbytes)

    def create_stream(self) -> Any:
        stream = self._call("cudaStreamCreateWithFlags", self.cudart.cudaStreamNonBlocking)
        self._owned.append(("cudaStreamDestroy", stream))
        return stream

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def copy_to_device(self, buffer: DeviceBuffer, array: np.ndarray, stream: Any) -> None:
        host = _host_bytes(array)
        self._call("cudaMemcpyAsync", buffer.ptr, host.ctypes.data, host.nbytes,
                   self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def copy_to_host(self, array: np.ndarray, buffer: DeviceBuffer, stream: Any) -> None:
        host = _host_bytes(array)
        self._call("cudaMemcpyAsync", host.ctypes.data, buffer.ptr, host.nbytes,
                   self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)
        self.synchronize(stream)

    def synchronize(self, stream: Any) -> None:
        self._call("cudaStreamSynchronize", stream)

    def event_pair(self, stream: Any) -> EventPair:
        start, end = self._call("cudaEventCreate"), self._call("cudaEventCreate")
        self._owned += [("cudaEventDestroy", start), ("cudaEventDestroy", end)]
        return _CudartEvents(self, stream, start, end)

    def capture_graph(self, stream: Any, enqueue: Callable[[], None]) -> Graph:
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call("cudaStreamBeginCapture", stream, mode)
        try:
            enqueue()
        finally:
            graph = self._call("cudaStreamEndCapture", stream)
        self._owned.append(("cudaGraphDestroy", graph))
        executable = self._call("cudaGraphInstantiate", graph, 0)
        self._owned.append(("cudaGraphExecDestroy", executable))
        return _CudartGraph(self, executable, stream)

    def close(self) -> None:
        for destroy, handle in reversed(self._owned):
            getattr(self.cudart, destroy)(handle)  # best effort: the process ends soon after
        self._owned.clear()


class _CudartEvents(EventPair):
    def __init__(self, backend: CudaPythonBackend, stream: Any, start: Any, end: Any) -> None:
        self.backend, self.stream, self.start, self.end = backend, stream, start, end

    def mark_start(self) -> None:
        self.backend._call("cudaEventRecord", self.start, self.stream)

    def mark_end(self) -> None:
        self.backend._call("cudaEventRecord", self.end, self.stream)

    def wait_end(self) -> None:
        self.backend._call("cudaEventSynchronize", self.end)

    def elapsed_ms(self) -> float:
        return float(self.backend._call("cudaEventElapsedTime", self.start, self.end))


class _CudartGraph(Graph):
    def __init__(self, backend: CudaPythonBackend, executable: Any, stream: Any) -> None:
        self.backend, self.executable, self.stream = backend, executable, stream

    def launch(self) -> None:
        self.backend._call("cudaGraphLaunch", self.executable, self.stream)


# ---------------------------------------------------------------- pycuda

class PyCudaBackend(CudaBackend):
    """pycuda on the device's primary context (the one TensorRT's runtime API uses), not pycuda.autoinit's."""

    name = "pycuda"

    def __init__(self, device_index: int) -> None:
        self.cuda = importlib.import_module("pycuda.driver")
        self.cuda.init()
        self.device = self.cuda.Device(device_index)
        self.context = self.device.retain_primary_context()
        self.context.push()

    def device_properties(self) -> tuple[str, str]:
        major, minor = self.device.compute_capability()
        return self.device.name(), f"{major}.{minor}"

    def allocate(self, nbytes: int) -> DeviceBuffer:
        allocation = self.cuda.mem_alloc(max(nbytes, 1))
        return DeviceBuffer(int(allocation), nbytes, allocation)

    def create_stream(self) -> Any:
        return self.cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def copy_to_device(self, buffer: DeviceBuffer, array: np.ndarray, stream: Any) -> None:
        self.cuda.memcpy_htod_async(buffer.ptr, _host_bytes(array), stream)

    def copy_to_host(self, array: np.ndarray, buffer: DeviceBuffer, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(_host_bytes(array), buffer.ptr, stream)
        stream.synchronize()

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def event_pair(self, stream: Any) -> EventPair:
        return _PyCudaEvents(self.cuda, stream)

    def close(self) -> None:
        self.context.pop()


class _PyCudaEvents(EventPair):
    def __init__(self, cuda: Any, stream: Any) -> None:
        self.stream, self.start, self.end = stream, cuda.Event(), cuda.Event()

    def mark_start(self) -> None:
        self.start.record(self.stream)

    def mark_end(self) -> None:
        self.end.record(self.stream)

    def wait_end(self) -> None:
        self.end.synchronize()

    def elapsed_ms(self) -> float:
        return float(self.start.time_till(self.end))


# ---------------------------------------------------------------- choice

_CLASSES: dict[str, tuple[type[CudaBackend], str]] = {
    "torch": (TorchBackend, "torch"),
    "cuda-python": (CudaPythonBackend, "cuda"),
    "pycuda": (PyCudaBackend, "pycuda"),
}


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def open_backend(choice: str, device_index: int) -> CudaBackend:
    """The backend asked for, or with 'auto' the first of cuda-python, torch, pycuda that works here, with CUDA
    checked through it; UnsupportedConfiguration saying what each lacked when none does: CUDA itself where a
    library is installed but CUDA is not usable (no device, an old driver), else the missing library."""
    names = BACKENDS if choice == "auto" else (choice,)
    reasons, cuda_unusable = [], False
    for name in names:
        backend_class, module = _CLASSES[name]
        if importlib.util.find_spec(module) is None:
            reasons.append(f"{name}: not installed")
            continue
        try:
            return backend_class(device_index)
        except CudaUnusable as exc:
            reasons.append(f"{name}: {exc}")
            cuda_unusable = True
        except (ImportError, UnsupportedConfiguration, CudaError) as exc:
            reasons.append(f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - pycuda's driver errors have no common base we can import
            reasons.append(f"{name}: {type(exc).__name__}: {exc}")
    if cuda_unusable:
        raise CudaUnusable("CUDA is not usable here: " + "; ".join(reasons))
    raise UnsupportedConfiguration("no CUDA buffer library works here (" + "; ".join(reasons) + "); install "
                                   "cuda-python: pip install 'dnn-harness[trt-cu12]' (CUDA 12 drivers) or "
                                   "'dnn-harness[trt-cu13]' (CUDA 13 drivers)")
