"""Every TensorRT and cuda-python name and call of the `trt` runtime exists in the real bindings of the versions
it claims, with a signature the real binding accepts; and the test doubles offer nothing the real modules lack.

TensorRT: tests/fixtures/tensorrt_api holds the real API of tensorrt_bindings 8.6.1, 10.3.0 and 11.4.0.106, class
by class with every member's `__doc__` signature, dumped by extract.py there from the real wheels (imported
against stand-in libraries; tests/trt_double/real_api.py reads it). 8.5 (JetPack 5.1) is served by no registry:
it is checked against 8.6.1. Names are matched
whole and per class: `execute_async_v3` must be a member of IExecutionContext, not merely the tail of some
string. cuda-python: the real `cuda.bindings.runtime` imports without a GPU, so it is checked directly.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
from pathlib import Path

import pytest

from tests.trt_double import cudart_double, real_api, tensorrt_double

ROOT = Path(__file__).resolve().parent.parent
# The runtime's TensorRT code (cuda_buffers.py talks to CUDA libraries only; its names are checked below).
TENSORRT_SOURCES = sorted(p for p in (ROOT / "runtimes" / "tensorrt").glob("*.py") if p.name != "cuda_buffers.py")
# The versions the runtime claims (runtimes/tensorrt/api.py OLDEST on), each checked against the real API.
CLAIMED = ("8.5.2", "8.6.1", "10.3.0", "11.4.0.106")
# Names the runtime uses only on some versions, behind runtimes/tensorrt/api.py's branches.
ONLY_BEFORE_11 = {("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH"), ("BuilderFlag", "FP16"),
                  ("BuilderFlag", "INT8"), ("ICudaEngine", "device_memory_size")}
ONLY_FROM_10 = {("ParserError", "node_name"), ("ParserError", "node_operator"),  # 8.6.1's has node() only
                ("IExecutionContext", "update_device_memory_size_for_shapes")}
ONLY_FROM_10_1 = {("ICudaEngine", "device_memory_size_v2")}
# What the runtime's variables hold, by name: the class whose members a call or attribute on them must be.
RECEIVERS = {"builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser",
             "config": "IBuilderConfig", "profile": "IOptimizationProfile", "engine": "ICudaEngine",
             "context": "IExecutionContext", "_context": "IExecutionContext", "runtime": "Runtime",
             "cache": "ITimingCache", "ours": "ITimingCache", "theirs": "ITimingCache", "error": "ParserError",
             "tensor": "ITensor", "mode": "TensorIOMode"}


def _gated(pair: tuple[str, str], version: str) -> bool:
    """Whether the runtime uses this member only on other versions than `version`."""
    v = real_api._tuple(version)
    return (pair in ONLY_BEFORE_11 and v >= (11, 0)) or (pair in ONLY_FROM_10 and v < (10, 0)) or \
        (pair in ONLY_FROM_10_1 and v < (10, 1))


def test_the_real_apis_tell_versions_and_classes_apart():
    """Whole names per class: what 11.x removed is gone there, and a member of one class is not one of another."""
    v8, v10, v11 = (real_api.load(v) for v in ("8.6.1", "10.3.0", "11.4.0.106"))
    for owner, name in (("BuilderFlag", "FP16"), ("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH"),
                        ("ICudaEngine", "device_memory_size"), ("Builder", "platform_has_fast_fp16")):
        assert v10.member(owner, name) and not v11.member(owner, name), (owner, name)
    assert v10.member("ParserError", "node_name") and not v8.member("ParserError", "node_name")
    assert v10.member("IExecutionContext", "execute_async_v3") and not v10.member("ICudaEngine", "execute_async_v3")
    assert not v10.member("IExecutionContext", "async_v3"), "a suffix is not a name"
    assert v10.member("Logger", "log"), "members come through TensorRT base classes"
    (shape,) = v10.signatures("IOptimizationProfile", "set_shape")
    assert [p.name for p in shape.params] == ["input", "min", "opt", "max"]


@pytest.mark.parametrize("version", CLAIMED)
def test_the_tensorrt_double_offers_only_real_members_with_real_signatures(version):
    """Every class of the double is a real class; each public member is a member of that same real class, of
    the same kind; each method takes the parameters (names, defaults) of one of the real overloads."""
    api, module = real_api.load(version), tensorrt_double.make_module(version)
    problems = []
    for class_name, cls in vars(module).items():
        if not isinstance(cls, type):
            continue
        if not api.has_class(class_name):
            problems.append(f"class {class_name}")
            continue
        members = cls.__members__ if issubclass(cls, enum.Enum) else \
            {n: v for n, v in vars(cls).items() if not n.startswith("_")}
        for name, value in members.items():
            real = api.member(class_name, name)
            kind = "enum_value" if issubclass(cls, enum.Enum) else "class" if isinstance(value, type) else \
                "property" if isinstance(value, property) else "method" if callable(value) else "attribute"
            if real is None or (real["kind"] != kind and not (kind == "class" and real["kind"] == "enum_value")):
                problems.append(f"{class_name}.{name} ({kind}; real: {real and real['kind']})")
            elif kind == "method":
                ours = [p for p in inspect.signature(inspect.unwrap(value)).parameters.values()][1:]
                shapes = [[(p.name, p.has_default) for p in s.params] for s in api.signatures(class_name, name)]
                if [(p.name, p.default is not inspect.Parameter.empty) for p in ours] not in shapes:
                    problems.append(f"{class_name}.{name}{inspect.signature(inspect.unwrap(value))} is none of "
                                    f"{[s.text for s in api.signatures(class_name, name)]}")
    assert not problems, f"the double of {version} offers what the real bindings lack: {problems}"


def test_the_double_lacks_what_each_version_lacks():
    old, v10, v11 = (tensorrt_double.make_module(v) for v in ("8.5.2", "10.3.0", "11.4.0.106"))
    assert not hasattr(old.ICudaEngine, "device_memory_size_v2") and hasattr(old.ICudaEngine, "device_memory_size")
    assert not hasattr(old.ParserError, "node_name") and not hasattr(old.NetworkDefinitionCreationFlag,
                                                                     "STRONGLY_TYPED")
    assert hasattr(v10.BuilderFlag, "FP16") and hasattr(v10.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert not hasattr(v11.BuilderFlag, "FP16") and not hasattr(v11.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert not hasattr(v11.ICudaEngine, "device_memory_size")


def test_the_double_refuses_calls_the_real_binding_refuses(tmp_path):
    """pybind11's rules, from the real signatures: argument count, keyword names, types."""
    trt = tensorrt_double.make_module("10.3.0")
    config = trt.Builder(trt.Logger()).create_builder_config()
    cache = config.create_timing_cache(b"")
    assert config.set_timing_cache(cache, False) is True
    for bad_call in (lambda: config.set_timing_cache(cache),  # ignore_mismatch is not optional
                     lambda: config.set_flag(0),  # an int is not a BuilderFlag
                     lambda: config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1.5),
                     lambda: config.create_timing_cache("text"),  # str has no buffer protocol
                     lambda: config.set_timing_cache(cache=cache, ignore=False),  # not its keyword
                     lambda: trt.Builder(),
                     lambda: trt.Runtime(logger=None)):
        with pytest.raises(TypeError, match="incompatible function arguments"):
            bad_call()
    profile = trt.Builder(trt.Logger()).create_optimization_profile()
    profile.set_shape("x", (1, 3), [2, 3], (4, 3))  # tuples and lists convert to Dims, as in the real binding
    with pytest.raises(TypeError, match="incompatible function arguments"):
        profile.set_shape("x", (1, 3), (2, 3))
    with pytest.raises(TypeError, match="incompatible function arguments"):
        profile.set_shape("x", (1, 3.5), (2, 3), (4, 3))


def _chain(node: ast.AST) -> list[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.insert(0, node.id)
    return parts


def _uses() -> list[tuple[str, str, ast.AST, bool]]:
    """(class, member, node, assigned) for every TensorRT member the runtime's sources touch: `trt.X.Y` chains,
    and attributes and calls on the variables of RECEIVERS."""
    found = []
    for path in TENSORRT_SOURCES:
        tree = ast.parse(path.read_text())
        assigned = {id(t) for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain = _chain(node)
            if chain[-1].startswith("__") and chain[-1] != "__version__":
                continue  # trt.ILogger.__init__(self) in a subclass
            if "trt" in chain[:-1]:
                rest = chain[chain.index("trt") + 1:]
                if len(rest) >= 2:
                    found.append((rest[-2], rest[-1], node, id(node) in assigned))
                else:
                    found.append(("", rest[0], node, False))
            elif len(chain) >= 2 and chain[-2] in RECEIVERS:
                found.append((RECEIVERS[chain[-2]], chain[-1], node, id(node) in assigned))
    return found


@pytest.mark.parametrize("version", CLAIMED)
def test_every_tensorrt_member_the_runtime_uses_is_real_in_its_class(version):
    api = real_api.load(version)
    uses = _uses()
    assert {("IExecutionContext", "execute_async_v3"), ("IBuilderConfig", "set_timing_cache"),
            ("BuilderFlag", "TF32"), ("", "Runtime")} <= {(c, m) for c, m, _, _ in uses}, "the scan reads too little"
    problems = []
    for owner, name, node, assigned in uses:
        if not owner:
            if not (api.has_class(name) or name in api.functions or name == "__version__"):
                problems.append(f"tensorrt.{name}")
            continue
        real = api.member(owner, name) or ({"kind": "class"} if api.has_class(f"{owner}") and
                                           api.has_class(name) else None)
        if _gated((owner, name), version):
            continue
        if real is None:
            problems.append(f"{owner}.{name} (line {node.lineno})")
        elif assigned and not real.get("settable"):
            problems.append(f"{owner}.{name} is read-only (line {node.lineno})")
    assert not problems, f"TensorRT {version} lacks: {problems}"


def _calls() -> list[tuple[str, str, ast.Call]]:
    """(class, method or '__init__', call) for every call of a TensorRT method or constructor."""
    calls = []
    for path in TENSORRT_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            chain = _chain(node.func)
            if "trt" in chain[:-1] and len(chain) - chain.index("trt") == 2 and chain[-1][:1].isupper():
                calls.append((chain[-1], "__init__", node))  # trt.Builder(logger)
            elif "trt" in chain[:-1] and chain[-2][:1].isupper() and chain[-1][:1].isupper():
                calls.append((chain[-1], "__init__", node))  # trt.Logger.Severity(...) is none of ours
            elif len(chain) >= 2 and chain[-2] in RECEIVERS:
                calls.append((RECEIVERS[chain[-2]], chain[-1], node))
    return calls


@pytest.mark.parametrize("version", ("8.6.1", "10.3.0", "11.4.0.106"))
def test_every_tensorrt_call_fits_a_real_signature(version):
    """Argument count and keywords of each call site fit one of the real overloads (types are checked where
    the calls run, by the double: test_the_double_refuses_calls_the_real_binding_refuses)."""
    api = real_api.load(version)
    calls = _calls()
    assert {("IExecutionContext", "execute_async_v3"), ("Builder", "__init__"), ("OnnxParser", "__init__"),
            ("IOptimizationProfile", "set_shape")} <= {(c, m) for c, m, _ in calls}, "the scan reads too little"
    problems = []
    for owner, name, call in calls:
        if _gated((owner, name), version):
            continue
        signatures = api.signatures(owner, name) if api.has_class(owner) else []
        if not signatures:
            problems.append(f"{owner}.{name} has no real signature (line {call.lineno})")
            continue
        if any(isinstance(a, ast.Starred) for a in call.args):  # profile.set_shape(name, *dims): three Dims
            positional = len(call.args) - 1 + 3
        else:
            positional = len(call.args)
        keywords = {k.arg: None for k in call.keywords if k.arg}
        if all(isinstance(s.bind((None,) * positional, keywords), str) for s in signatures):
            problems.append(f"{owner}.{name}: {positional} positional, keywords {sorted(keywords)} (line "
                            f"{call.lineno}) fit none of {[s.text for s in signatures]}")
    assert not problems, problems


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
