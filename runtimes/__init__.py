"""Runtimes behind one contract (`runtimes.base.Runtime`). Importing this package imports no runtime library.

The registry: `RUNTIMES` names each built-in runtime; what each class declares (the device families it runs on,
the precisions it takes, the device profile kinds it is the default for) is read here, by importing the
runtime's module and never its library, so that the CLI builds --device parsing and help from it.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Callable, Iterator

from runtimes.base import CannotRunHere, DeviceFamily, Runtime, RuntimeOptions, UnsupportedConfiguration

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


# ---------------------------------------------------------------- what the registered runtimes declare


@dataclass(frozen=True)
class OfferedFamily:
    """A device family and the registered runtimes that declare it, in RUNTIMES order."""

    family: DeviceFamily
    runtimes: tuple[str, ...]


def declared_classes() -> dict[str, type[Runtime]]:
    """Each registered runtime's class, whether or not its library is installed here (none is imported)."""
    return {name: runtime_class(name, installed_here=False) for name in RUNTIMES}


def runtime_packages(main_only: bool = False) -> tuple[str, ...]:
    """The distributions the registered runtimes declare (`Runtime.packages`), each once, in registry order;
    `main_only`: each runtime's main library alone."""
    named: dict[str, None] = {}
    for cls in declared_classes().values():
        for package in cls.packages[:1] if main_only else cls.packages:
            named.setdefault(package)
    return tuple(named)


def device_families() -> list[OfferedFamily]:
    """Every device family a registered runtime declares, in the order first declared, with its runtimes; two
    runtimes that declare a family of the same name must declare the same one."""
    families: dict[str, DeviceFamily] = {}
    takers: dict[str, list[str]] = {}
    for name, cls in declared_classes().items():
        for family in cls.devices:
            known = families.setdefault(family.name, family)
            if known != family:
                raise ValueError(f"runtime '{name}' declares device family '{family.name}' as {family}, another "
                                 f"runtime as {known}: declare one DeviceFamily and share it")
            takers.setdefault(family.name, []).append(name)
    return [OfferedFamily(family, tuple(takers[key])) for key, family in families.items()]


def device_family(device: str) -> OfferedFamily | None:
    """The declared family `device` (no '@NODE') belongs to, or None where no registered runtime runs on it."""
    return next((offered for offered in device_families() if offered.family.matches(device)), None)


def device_patterns() -> list[str]:
    """The --device forms the registry offers: cpu, cuda[:N], dla:N, ..."""
    return [offered.family.pattern for offered in device_families()]


def precision_takers(precision: str) -> dict[str, str]:
    """{runtime: condition} for each registered runtime that takes `precision` ('' = always)."""
    return {name: cls.precisions[precision] for name, cls in declared_classes().items() if precision in cls.precisions}


def default_runtime(kind: str, installed: Callable[[str], bool] | None = None) -> str | None:
    """The runtime `check --on-device` takes for a device profile of `kind`: the first registered runtime that
    declares it the default and that `installed(name)` accepts (None: any), else the first that declares it
    (its install line then says what is missing); None where no runtime declares `kind`."""
    candidates = [name for name, cls in declared_classes().items() if kind in cls.default_for]
    if not candidates:
        return None
    return next((name for name in candidates if installed is None or installed(name)), candidates[0])


def discover_devices(family: DeviceFamily) -> list[str]:
    """The devices of `family` its declared discoverer finds here (it may import the runtime's library)."""
    if family.discover is None:
        return []
    module_name, _, function = family.discover.partition(":")
    return list(getattr(importlib.import_module(module_name), function)())
