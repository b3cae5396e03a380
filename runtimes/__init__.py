"""Runtimes behind one contract (`runtimes.base.Runtime`). Importing this package imports no runtime library."""

from __future__ import annotations

import contextlib
import importlib
from typing import Iterator

from runtimes.base import CannotRunHere, Runtime, RuntimeOptions, UnsupportedConfiguration

# name -> (module, class, what it needs installed)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "torch": ("runtimes.torch_eager", "TorchEagerRuntime", "torch"),
    "ort": ("runtimes.onnxruntime", "OnnxRuntime", "onnxruntime (pip install 'dnn-harness[ort]')"),
    "ort-trt": ("runtimes.onnxruntime", "OnnxRuntimeTensorRT", "onnxruntime-gpu with TensorRT"),
    "trt": ("runtimes.tensorrt.runtime", "TensorRTRuntime", "TensorRT's Python bindings"),
    "trtexec": ("runtimes.trtexec", "TrtexecRuntime", "NVIDIA's trtexec (JetPack: /usr/src/tensorrt/bin/trtexec)"),
    "ov": ("runtimes.openvino", "OpenVinoRuntime", "OpenVINO (pip install 'dnn-harness[ov]')"),
    "torch-compile": ("runtimes.torch_compile", "TorchCompileRuntime", "torch"),
    "null": ("runtimes.null", "NullRuntime", "numpy"),
}


class RuntimeUnavailable(Exception):
    """The runtime's library cannot be imported here."""


def runtime_class(name: str, installed_here: bool = True) -> type[Runtime]:
    """The class for a registered name, or for a plug-in given as 'package.module:ClassName'.

    Imports that runtime's module and only it; `installed_here`: its library must be installed on this
    machine too (a fleet's driver plans cells for libraries its nodes have, and need not have them itself).
    """
    if name in RUNTIMES:
        module_name, class_name, requirement = RUNTIMES[name]
    elif ":" in name:
        module_name, class_name = name.split(":", 1)
        requirement = f"the module {module_name}"
    else:
        raise KeyError(name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeUnavailable(f"runtime '{name}' needs {requirement}: {exc}") from None
    runtime = getattr(module, class_name, None)
    if not (isinstance(runtime, type) and issubclass(runtime, Runtime)):
        raise RuntimeUnavailable(f"runtime '{name}': {module_name} has no Runtime subclass {class_name}")
    if installed_here:
        missing = runtime.missing_requirement()
        if missing:
            raise RuntimeUnavailable(missing)
    return runtime


def create_runtime(name: str, options: RuntimeOptions) -> Runtime:
    """The runtime, created for `options`; its refusal (this device, this precision) raised as CannotRunHere."""
    cls = runtime_class(name)
    with before_any_model():
        return cls(options)


@contextlib.contextmanager
def before_any_model() -> Iterator[None]:
    """Around a runtime's creation and device set-up: an UnsupportedConfiguration raised there says the runtime
    cannot run here at all, whatever the model, and goes on as CannotRunHere."""
    try:
        yield
    except CannotRunHere:
        raise
    except UnsupportedConfiguration as exc:
        raise CannotRunHere(str(exc)) from exc
