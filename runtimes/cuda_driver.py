"""The CUDA driver API through ctypes, for what every CUDA runtime needs and none should need torch for:
how many devices the driver sees, and the device's primary context (the one the CUDA runtime API — ONNX
Runtime, TensorRT, PyTorch — uses), created before a model is loaded so its memory is measured alone."""

from __future__ import annotations

import ctypes
from typing import Any

_LIBRARY = "libcuda.so.1"
_retained: list[Any] = []  # contexts kept for the life of the process


class CudaDriverUnavailable(RuntimeError):
    """No NVIDIA driver library here, or it reported an error."""


def _driver() -> Any:
    try:
        driver = ctypes.CDLL(_LIBRARY)
    except OSError as exc:
        raise CudaDriverUnavailable(f"no CUDA driver ({_LIBRARY}): {exc}") from None
    _check(driver, driver.cuInit(0), "cuInit")
    return driver


def _check(driver: Any, code: int, call: str) -> None:
    if code != 0:
        name = ctypes.c_char_p()
        driver.cuGetErrorName(code, ctypes.byref(name))
        raise CudaDriverUnavailable(f"{call} failed: {(name.value or b'error').decode()} ({code})")


def device_index(device: str) -> int:
    return int(device.split(":")[1]) if ":" in device else 0


def device_count() -> int:
    """Devices the driver sees; 0 where there is no driver."""
    try:
        driver = _driver()
    except CudaDriverUnavailable:
        return 0
    count = ctypes.c_int()
    _check(driver, driver.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
    return count.value


def retain_primary_context(device: str) -> None:
    """Create (retain) the primary context of `device` and make it current on this thread."""
    driver = _driver()
    handle, context = ctypes.c_int(), ctypes.c_void_p()
    _check(driver, driver.cuDeviceGet(ctypes.byref(handle), device_index(device)), "cuDeviceGet")
    _check(driver, driver.cuDevicePrimaryCtxRetain(ctypes.byref(context), handle), "cuDevicePrimaryCtxRetain")
    _check(driver, driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    _retained.append(context)


def device_name(index: int) -> str:
    """The device's name as the driver reports it (cuDeviceGetName); CudaDriverUnavailable without a driver."""
    driver = _driver()
    handle, name = ctypes.c_int(), ctypes.create_string_buffer(256)
    _check(driver, driver.cuDeviceGet(ctypes.byref(handle), index), "cuDeviceGet")
    _check(driver, driver.cuDeviceGetName(name, len(name), handle), "cuDeviceGetName")
    return name.value.decode(errors="replace")
