"""Every TensorRT and cuda-python name the `trt` runtime uses exists in the real bindings of the versions
it claims, and the test doubles offer no name the real modules lack.

TensorRT: the real bindings cannot be imported here (no TensorRT libraries), so the names come from their
compiled `tensorrt.so` (tests/fixtures/tensorrt_names, made by extract.py there from the registry's
`tensorrt-cu12-bindings` 11.4.0.106 and 10.3.0 wheels). No 8.x bindings wheel is served, so 8.5 and 8.6
are checked against 10.3's names (which still hold 8.x's EXPLICIT_BATCH, FP16 and device_memory_size),
and the double's 8.5 and 8.6 modules lack what 8.x lacks. cuda-python: the real `cuda.bindings.runtime`
imports without a GPU, so it is checked directly.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
from functools import lru_cache
from pathlib import Path

import pytest

from tests.trt_double import cudart_double, tensorrt_double

ROOT = Path(__file__).resolve().parent.parent
NAMES = ROOT / "tests" / "fixtures" / "tensorrt_names"
RUNTIME_SOURCES = sorted((ROOT / "runtimes" / "tensorrt").glob("*.py"))
REAL_LISTS = {"10.3.0": "tensorrt-10.3.0.txt", "11.4.0.106": "tensorrt-11.4.0.106.txt"}
# The versions the runtime claims, each with the real list it is checked against.
CLAIMED = {"8.5.2": "10.3.0", "8.6.1": "10.3.0", "10.3.0": "10.3.0", "11.4.0.106": "11.4.0.106"}
# Names the runtime uses only on some versions, behind runtimes/tensorrt/api.py's branches.
ONLY_BEFORE_11 = {"EXPLICIT_BATCH", "FP16", "device_memory_size"}


@lru_cache(maxsize=None)
def real_names(version: str) -> tuple[frozenset[str], frozenset[str]]:
    """(identifier tails of the .so's strings, top-level names of __init__.py)."""
    lines = (NAMES / REAL_LISTS[version]).read_text().split()
    return (frozenset(line for line in lines if not line.startswith("__init__:")),
            frozenset(line.split(":", 1)[1] for line in lines if line.startswith("__init__:")))


def in_real(name: str, version: str) -> bool:
    """The notes' check `b"name\\0" in data`: the name ends one of the binary's strings, or __init__ defines it."""
    tails, module_level = real_names(version)
    return name in module_level or name in tails or any(tail.endswith(name) for tail in tails)


def test_the_lists_tell_versions_apart():
    """Names 11.x removed are in 10.3's list and not in 11.4's, so a name check can fail."""
    for name in ("FP16", "EXPLICIT_BATCH", "device_memory_size", "platform_has_fast_fp16"):
        assert in_real(name, "10.3.0"), name
        assert not in_real(name, "11.4.0.106"), name
    for name in ("execute_async_v3", "set_input_shape", "device_memory_size_v2", "parse_from_file", "nptype",
                 "create_timing_cache", "combine", "num_DLA_cores", "node_operator"):
        assert in_real(name, "10.3.0") and in_real(name, "11.4.0.106"), name
    assert not in_real("execute_async_v4", "11.4.0.106")


def _offered(module) -> set[str]:
    """Every public name the double's module offers: module attributes, class attributes, enum members."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") and name != "__version__":
            continue
        names.add(name)
        if isinstance(value, type):
            if issubclass(value, enum.Enum):
                names.update(value.__members__)
            else:
                names.update(n for n in vars(value) if not n.startswith("_"))
                for inner in vars(value).values():
                    if isinstance(inner, type) and issubclass(inner, enum.Enum):
                        names.update(inner.__members__)
    return names


@pytest.mark.parametrize("version", sorted(CLAIMED))
def test_the_tensorrt_double_offers_only_real_names(version):
    offered = _offered(tensorrt_double.make_module(version))
    missing = sorted(n for n in offered if not in_real(n, CLAIMED[version]))
    assert not missing, f"the double of {version} offers names the real bindings lack: {missing}"


def test_the_double_lacks_what_each_version_lacks():
    old, v10, v11 = (tensorrt_double.make_module(v) for v in ("8.5.2", "10.3.0", "11.4.0.106"))
    assert not hasattr(old.ICudaEngine, "device_memory_size_v2") and hasattr(old.ICudaEngine, "device_memory_size")
    assert not hasattr(old.ParserError, "node_name") and not hasattr(old.NetworkDefinitionCreationFlag,
                                                                     "STRONGLY_TYPED")
    assert hasattr(v10.BuilderFlag, "FP16") and hasattr(v10.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert not hasattr(v11.BuilderFlag, "FP16") and not hasattr(v11.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert not hasattr(v11.ICudaEngine, "device_memory_size")


def _trt_chains() -> set[tuple[str, ...]]:
    """Attribute chains the runtime reads off the tensorrt module: `trt.X.Y`, `self.trt.X`, `self.api.trt.X`."""
    chains = set()
    for path in RUNTIME_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                parts.insert(0, value.id)
            if "trt" in parts[:-1]:
                chains.add(tuple(parts[parts.index("trt") + 1:]))
    return chains


def test_every_tensorrt_module_name_the_runtime_uses_is_real():
    chains = _trt_chains()
    used = {name for chain in chains for name in chain}
    assert {"BuilderFlag", "TF32", "MemoryPoolType", "WORKSPACE", "TensorIOMode", "Runtime", "OnnxParser",
            "nptype"} <= used, "the scan found too little: it is not reading the runtime's calls"
    for name in sorted(used):
        for version in REAL_LISTS:
            if version.startswith("11") and name in ONLY_BEFORE_11:
                assert not in_real(name, version), f"{name} is gated to < 11 but 11.x has it: drop the gate"
                continue
            assert in_real(name, version), f"the runtime uses tensorrt.…{name}, which TensorRT {version} lacks"


def test_every_method_the_runtime_calls_on_tensorrt_objects_is_real():
    """Calls on builder, network, parser, config, engine, context…: every attribute the runtime's sources
    read that the double implements for some version must be real in the versions that have it."""
    attributes = {node.attr for path in RUNTIME_SOURCES for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Attribute)}
    for version, real in CLAIMED.items():
        offered = _offered(tensorrt_double.make_module(version))
        for name in sorted(attributes & offered):
            assert in_real(name, real), f"{name} (used by the runtime) is not in TensorRT {real}"


# ---------------------------------------------------------------- cuda-python

def _real_cudart():
    """The installed cuda-python runtime module, loaded fresh (tests may have put the double in sys.modules)."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError as exc:
        pytest.skip(f"cuda-bindings is not installed ({exc}); pip install 'dnn-harness[trt-tests]'")


def test_the_cudart_double_offers_only_real_names():
    real = _real_cudart()
    if type(real).__name__ == "module" and real.__spec__ and real.__spec__.loader is None:
        pytest.fail("cuda.bindings.runtime in sys.modules is the double, not the real module")
    for name in cudart_double.OFFERED:
        assert hasattr(real, name), f"the double offers cuda.bindings.runtime.{name}, which the real module lacks"
        value = getattr(cudart_double, name)
        if inspect.isclass(value) and issubclass(value, enum.Enum):
            for member in value.__members__:
                assert hasattr(getattr(real, name), member), f"{name}.{member} is not real"


def test_every_cudart_call_of_the_backend_is_real():
    real = _real_cudart()
    source = (ROOT / "runtimes" / "tensorrt" / "cuda_buffers.py").read_text()
    called = {node.args[0].value for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_call"
              and node.args and isinstance(node.args[0], ast.Constant)}
    called |= {"cudaFree", "cudaStreamDestroy", "cudaEventDestroy", "cudaGraphDestroy", "cudaGraphExecDestroy"}
    assert {"cudaMalloc", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaGraphLaunch"} <= called
    for name in sorted(called):
        assert hasattr(real, name), f"the backend calls cudart.{name}, which cuda.bindings.runtime lacks"
        assert hasattr(cudart_double, name), f"the double lacks {name}: a test would not exercise it"
    for enum_name, member in (("cudaMemcpyKind", "cudaMemcpyHostToDevice"), ("cudaMemcpyKind", "cudaMemcpyDeviceToHost"),
                              ("cudaStreamCaptureMode", "cudaStreamCaptureModeThreadLocal"),
                              ("cudaError_t", "cudaSuccess")):
        assert hasattr(getattr(real, enum_name), member)
    assert hasattr(real, "cudaStreamNonBlocking")
