"""A test double of the `tensorrt` Python module (tests only; never importable by the harness).

It implements exactly the subset the `trt` runtime calls — builder, ONNX parser (with errors), builder
config, optimization profiles, timing cache, serialization, runtime, engine, execution context — and
behind those calls executes the ONNX graph with ONNX Runtime on the CPU, reading inputs from and writing
outputs to the addresses the runtime set (host memory from the cuda-python double standing for device
memory). `make_module(version)` gives the module as that version has it: 8.x needs the EXPLICIT_BATCH
flag and its parser errors know no node names; 10.x has both `device_memory_size` and `_v2`; 11.x has no
FP16 builder flag and takes precision from the graph. Like the real library it refuses what the real
one refuses (an implicit-batch network, a dynamic input without a profile, a shape outside the profile,
a plan from another version or GPU, DLA without fp16 or a core that is not there, missing addresses).

Every public name it offers exists in the real bindings of the version it imitates
(tests/test_tensorrt_api_names.py); 8.5 is checked against 10.3's names, the oldest real bindings the
package registry serves, less the names 8.5 lacks.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import signal
import struct
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from tests.trt_double import device, real_api
from tests.trt_double.device import dla_cores, gpu

MAGIC = b"TRTDOUBLEPLAN\x00"
_LOGGERS: list[Any] = []  # the loggers builders were made with (the newest logs for its configs)
_REFUSE_TIMING_CACHE_ENV = "TRT_DOUBLE_REFUSE_TIMING_CACHE"
OUTPUT_SCALE_ENV = "TRT_DOUBLE_OUTPUT_SCALE"
BUILD_MARKER_ENV, BUILD_SECONDS_ENV = "TRT_DOUBLE_BUILD_MARKER", "TRT_DOUBLE_BUILD_SECONDS"
CACHE_MAGIC = b"TRTDOUBLECACHE\x00"
STANDARD_DOMAINS = ("", "ai.onnx")
# ONNX element types TensorRT's IDequantizeLayer takes (its __doc__: int8, fp8, int4, fp4): INT8, the FLOAT8
# kinds, INT4, FLOAT4E2M1. Anything else (the INT32 biases of onnxruntime's default quantize_static) is refused.
DEQUANTIZABLE = (3, 17, 18, 19, 20, 22, 23)


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor, *_ = version.split(".")
    return int(major), int(minor)


def make_module(version: str) -> types.ModuleType:  # noqa: C901 - one module, built per version
    v = _version_tuple(version)
    has_precision_flags = v < (11, 0)
    strongly_typed_always = v >= (11, 0)

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING,
                                                         Severity.INFO, Severity.VERBOSE)

    class Logger(ILogger):
        def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
            self.min_severity = min_severity

        def log(self, severity: Severity, msg: str) -> None:
            if severity <= self.min_severity:
                print(f"[TensorRT double {severity.name}] {msg}", file=sys.stderr)

    Logger.Severity = Severity

    creation = {"EXPLICIT_BATCH": 0} if v < (11, 0) else {}
    if v >= (9, 0):
        creation["STRONGLY_TYPED"] = 5
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation)

    flags = {"TF32": 7, "GPU_FALLBACK": 3, "DEBUG": 4}
    if has_precision_flags:
        flags.update({"FP16": 0, "INT8": 1})
        if v >= (9, 0):
            flags["BF16"] = 17
    BuilderFlag = enum.IntEnum("BuilderFlag", flags)
    MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1})
    DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
    TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    types_ = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5}
    if v >= (9, 0):
        types_["BF16"] = 7
        types_["INT64"] = 8
    DataType = enum.IntEnum("DataType", types_)

    numpy_of = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
                DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
    # The ONNX parser's convertDtype (onnx-tensorrt onnx2trt_utils.cpp): 8.x makes INT64 an INT32 tensor ("See
    # convertOnnxWeights for sanity check if all values can be safely downcasted to INT32"), 9/10 on keep INT64;
    # any other type (DOUBLE, INT16, UINT32, ...) is "Unsupported ONNX data type" and the input is refused.
    onnx_types = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
                  2: DataType.UINT8, 7: DataType.INT64 if v >= (9, 0) else DataType.INT32}
    if v >= (9, 0):
        numpy_of[DataType.INT64] = np.int64
    # ONNX ops whose input there is a shape (Reshape's shape, Expand's shape, Tile's repeats, ConstantOfShape's
    # input): a network input fed there is a shape tensor (ITensor.is_shape_tensor).
    SHAPE_INPUTS = {("Reshape", 1), ("Expand", 1), ("Tile", 1), ("ConstantOfShape", 0)}

    def nptype(trt_type: Any) -> Any:
        return numpy_of[trt_type]

    class IHostMemory(bytes):
        @property
        def nbytes(self) -> int:
            return len(self)

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: Any, onnx_type: int = 1,
                     shape_tensor: bool = False) -> None:
            self.name, self.shape, self.dtype = name, shape, dtype
            self._onnx_type, self._shape_tensor = onnx_type, shape_tensor

        @property
        def is_shape_tensor(self) -> bool:
            return self._shape_tensor

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self._explicit_batch = v >= (10, 0) or bool(flags & (1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
            self._strongly_typed = strongly_typed_always or (
                "STRONGLY_TYPED" in NetworkDefinitionCreationFlag.__members__
                and bool(flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED)))
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._onnx: bytes | None = None
            self._layer_keys: list[str] = []
            self._graph_fp16 = False

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        @property
        def has_implicit_batch_dimension(self) -> bool:
            return not self._explicit_batch

    class ParserError:
        def __init__(self, desc: str, node: int, node_name: str = "", node_operator: str = "") -> None:
            self._desc, self._node, self._node_name, self._node_operator = desc, node, node_name, node_operator

        def code(self) -> int:
            return 8  # ErrorCode.UNSUPPORTED_NODE

        def desc(self) -> str:
            return self._desc

        def node(self) -> int:
            return self._node

    if v >= (10, 0):  # 8.6.1's real ParserError has node() only
        ParserError.node_name = lambda self: self._node_name
        ParserError.node_operator = lambda self: self._node_operator

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
            self._network, self._logger, self._errors = network, logger, []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def parse_from_file(self, model: str) -> bool:
            import onnx
            import onnx.numpy_helper

            network = self._network
            if network.has_implicit_batch_dimension:
                self._errors.append(ParserError("This version of the ONNX parser only supports TensorRT "
                                                "INetworkDefinitions with an explicit batch dimension", -1))
                return False
            try:
                proto = onnx.load(model)  # resolves external data beside the file, like the real parser
            except Exception as exc:  # noqa: BLE001
                self._errors.append(ParserError(f"Failed to parse ONNX model: {exc}", -1))
                return False
            zero_points = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
            element_types = {t.name: t.data_type for t in proto.graph.initializer}
            for index, node in enumerate(proto.graph.node):
                if (node.domain or "") not in STANDARD_DOMAINS or not onnx.defs.has(node.op_type):
                    self._errors.append(ParserError(f"No importer registered for op: {node.op_type}", index,
                                                    node.name, node.op_type))
                elif node.op_type == "DequantizeLinear" and \
                        element_types.get(node.input[0], DEQUANTIZABLE[0]) not in DEQUANTIZABLE:
                    # IDequantizeLayer takes int8/fp8/int4/fp4 only: an INT32 bias is refused (onnx-tensorrt#850)
                    self._errors.append(ParserError(f"Invalid Node - {node.name}\n{node.name}: only activation types "
                                                    "allowed as input to this layer.", index, node.name, node.op_type))
                elif node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 \
                        and np.any(zero_points.get(node.input[2], np.zeros(1)) != 0):
                    # onnx-tensorrt's importer asserts this (TensorRT's Q/DQ are symmetric)
                    self._errors.append(ParserError("Assertion failed: shiftIsAllZeros(zeroPoint) && \"TensorRT only "
                                                    "supports symmetric quantization. The zero point for the "
                                                    "QuantizeLinear/DequantizeLinear operator must be all zeros.\"",
                                                    index, node.name, node.op_type))
            initializers = {t.name for t in proto.graph.initializer}
            graph_inputs = [i for i in proto.graph.input if i.name not in initializers]
            for graph_input in graph_inputs:
                elem_type = graph_input.type.tensor_type.elem_type
                if elem_type not in onnx_types:
                    self._errors.append(ParserError(f"Failed to convert ONNX date type to TensorRT data type. "
                                                    f"(input {graph_input.name}: Unsupported ONNX data type "
                                                    f"{elem_type})", -1))
            if self._errors:
                return False
            shape_fed = {node.input[index] for node in proto.graph.node for op, index in SHAPE_INPUTS
                         if node.op_type == op and len(node.input) > index}
            network._inputs = [_tensor(i, i.name in shape_fed) for i in graph_inputs]
            network._outputs = [_tensor(o) for o in proto.graph.output]
            network._onnx = proto.SerializeToString()
            network._graph_fp16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
            network._layer_keys = [hashlib.sha1(n.SerializeToString()).hexdigest()[:12] for n in proto.graph.node]
            return True

    def _tensor(value_info: Any, shape_tensor: bool = False) -> ITensor:
        tensor_type = value_info.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        return ITensor(value_info.name, shape, onnx_types.get(tensor_type.elem_type, DataType.FLOAT),
                       tensor_type.elem_type, shape_tensor)

    class IOptimizationProfile:
        def __init__(self) -> None:
            self._shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
            self._valid = True

        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 - the real names
            low, mid, high = tuple(min), tuple(opt), tuple(max)
            if not (len(low) == len(mid) == len(high)) or any(not a <= b <= c for a, b, c in zip(low, mid, high)):
                raise ValueError("min, opt and max must have the same rank and satisfy min <= opt <= max")  # as real
            self._shapes[input] = (low, mid, high)

    class ITimingCache:
        def __init__(self, entries: dict[str, float]) -> None:
            self._entries = dict(entries)

        def serialize(self) -> IHostMemory:
            body = json.dumps({"tensorrt": version, "entries": self._entries}).encode()
            return IHostMemory(CACHE_MAGIC + body)

        def combine(self, input_cache: "ITimingCache", ignore_mismatch: bool) -> bool:
            self._entries.update(input_cache._entries)
            return True

        def reset(self) -> bool:
            self._entries.clear()
            return True

    class IBuilderConfig:
        def __init__(self) -> None:
            self._flags = {BuilderFlag.TF32}  # TensorRT turns TF32 on by default
            self._pools: dict[Any, int] = {}
            self._profiles: list[IOptimizationProfile] = []
            self._timing_cache: ITimingCache | None = None
            self.default_device_type = DeviceType.GPU
            self.DLA_core = -1

        def set_flag(self, flag: Any) -> None:
            self._flags.add(flag)

        def clear_flag(self, flag: Any) -> None:
            self._flags.discard(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self._flags

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            self._pools[pool] = pool_size

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            if not profile._valid:
                return -1
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
            """Like the real one, a cache it cannot use (damaged, another version) is only logged: an empty
            cache comes back."""
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache({})
            body: dict[str, Any] = {}
            if data.startswith(CACHE_MAGIC):
                try:
                    body = json.loads(data[len(CACHE_MAGIC):])
                except ValueError:
                    body = {}
            if body.get("tensorrt") != version:
                _LOGGERS[-1].log(Severity.WARNING, "The timing cache is not valid for this TensorRT version or is "
                                                   "corrupted: discarding it, creating an empty cache")
                return ITimingCache({})
            return ITimingCache(body["entries"])

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if _REFUSE_TIMING_CACHE_ENV in os.environ:
                return False
            self._timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._timing_cache

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            if device.cuda_state() != "ok":  # the real one, when CUDA cannot be initialised
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger
            _LOGGERS.append(logger)  # the builder's config logs through it, as TensorRT's does

        @property
        def num_DLA_cores(self) -> int:  # noqa: N802 - the real name
            return dla_cores()

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def _fail(self, message: str) -> None:
            self.logger.log(Severity.ERROR, message)

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> Any:
            if os.environ.get(BUILD_MARKER_ENV):  # tests interrupt a build: they wait for this file
                Path(os.environ[BUILD_MARKER_ENV]).write_text(str(os.getpid()))
                time.sleep(float(os.environ.get(BUILD_SECONDS_ENV, "0")))
            if network._onnx is None:
                self._fail("the network is empty")
                return None
            inputs = []
            for tensor in network._inputs:
                profile = config._profiles[0]._shapes.get(tensor.name) if config._profiles else None
                if any(d < 0 for d in tensor.shape) and profile is None:
                    self._fail(f"Network has dynamic or shape inputs, but no optimization profile has been defined "
                               f"(input {tensor.name})")
                    return None
                if tensor.is_shape_tensor:
                    self._fail(f"input {tensor.name} is a shape tensor: its optimization profile needs "
                               "set_shape_input")
                    return None
                profile = profile or (tensor.shape, tensor.shape, tensor.shape)
                for dims in profile:
                    if len(dims) != len(tensor.shape) or any(s >= 0 and d != s for d, s in zip(dims, tensor.shape)):
                        self._fail(f"profile {dims} does not match input {tensor.name} {tensor.shape}")
                        return None
                inputs.append({"name": tensor.name, "dtype": int(tensor.dtype), "onnx_type": tensor._onnx_type,
                               "shape": list(tensor.shape), "profile": [list(d) for d in profile]})
            fp16 = (network._strongly_typed and network._graph_fp16) or \
                (has_precision_flags and BuilderFlag.FP16 in config._flags)
            on_dla = config.default_device_type == DeviceType.DLA
            if on_dla:
                if not 0 <= config.DLA_core < dla_cores():
                    self._fail(f"DLA core {config.DLA_core} asked for; {dla_cores()} present")
                    return None
                if not fp16 and BuilderFlag.GPU_FALLBACK not in config._flags:
                    self._fail("DLA runs fp16 or int8 layers only and GPU fallback is off")
                    return None
            cache = config._timing_cache
            if cache is not None:
                for key in network._layer_keys:
                    cache._entries.setdefault(key, 0.01)
            name, major, minor = gpu()
            header = {"tensorrt": version, "compute_capability": f"{major}.{minor}", "gpu": name,
                      "dla_core": config.DLA_core if on_dla else None,
                      "inputs": inputs, "fp16": bool(fp16),
                      "outputs": [[o.name, int(o.dtype), list(o.shape)] for o in network._outputs],
                      "workspace": config._pools.get(MemoryPoolType.WORKSPACE)}
            encoded = json.dumps(header).encode()
            return IHostMemory(MAGIC + struct.pack("<I", len(encoded)) + encoded + network._onnx)

    class ICudaEngine:
        def __init__(self, header: dict[str, Any], onnx_bytes: bytes) -> None:
            self._header, self._onnx = header, onnx_bytes
            self._inputs = {i["name"]: i for i in header["inputs"]}
            self._names = [*self._inputs, *(o[0] for o in header["outputs"])]

        @property
        def num_io_tensors(self) -> int:
            return len(self._names)

        @property
        def num_optimization_profiles(self) -> int:
            return 1

        def get_tensor_name(self, index: int) -> str:
            return self._names[index]

        def get_tensor_mode(self, name: str) -> Any:
            if name in self._inputs:
                return TensorIOMode.INPUT
            return TensorIOMode.OUTPUT if name in self._names else TensorIOMode.NONE

        def get_tensor_dtype(self, name: str) -> Any:
            if name in self._inputs:
                return DataType(self._inputs[name]["dtype"])
            return DataType(dict((o[0], o[1]) for o in self._header["outputs"])[name])

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            if name in self._inputs:
                return tuple(self._inputs[name]["shape"])
            return tuple(dict((o[0], o[2]) for o in self._header["outputs"])[name])

        def _device_memory(self) -> int:
            return 4 * sum(int(np.prod(i["profile"][2])) for i in self._inputs.values())

        def _create_execution_context(self) -> "IExecutionContext":
            return IExecutionContext(self)

    if v >= (10, 0):  # 10.x added the allocation strategy (STATIC, the default, is what the double does)
        ICudaEngine.create_execution_context = lambda self, strategy=None: self._create_execution_context()
    else:
        ICudaEngine.create_execution_context = lambda self: self._create_execution_context()
    if v < (11, 0):
        ICudaEngine.device_memory_size = property(lambda self: self._device_memory())
    if v >= (10, 1):
        ICudaEngine.device_memory_size_v2 = property(lambda self: self._device_memory())

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine = engine
            self._input_shapes: dict[str, tuple[int, ...]] = {}
            self._addresses: dict[str, int] = {}
            self._session: Any = None
            self._output_shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}

        def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
            return profile_index == 0

        def set_input_shape(self, name: str, shape: Any) -> bool:
            described = self.engine._inputs.get(name)
            shape = tuple(int(d) for d in shape)
            if described is None:
                return False
            low, _, high = described["profile"]
            if len(shape) != len(low) or any(not a <= d <= b for a, d, b in zip(low, shape, high)):
                return False
            self._input_shapes[name] = shape
            return True

        def _all_shapes_set(self) -> bool:
            return all(name in self._input_shapes or all(d >= 0 for d in described["shape"])
                       for name, described in self.engine._inputs.items())

        def _input_shape(self, name: str) -> tuple[int, ...]:
            return self._input_shapes.get(name) or tuple(self.engine._inputs[name]["shape"])

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            if name in self.engine._inputs:
                return self._input_shape(name)
            shape = self.engine.get_tensor_shape(name)
            if all(d >= 0 for d in shape) or not self._all_shapes_set():
                return shape  # as the real one: -1 where a dimension depends on input shapes not yet set
            return self._output_shapes_for()[name]

        def _output_shapes_for(self) -> dict[str, tuple[int, ...]]:
            """Every output's shape for the input shapes set, by ONNX shape inference on the graph with those."""
            key = tuple(sorted((n, self._input_shape(n)) for n in self.engine._inputs))
            if key not in self._output_shapes:
                import onnx

                model = onnx.load_from_string(self.engine._onnx)
                for graph_input in model.graph.input:
                    if graph_input.name in self.engine._inputs:
                        dims = graph_input.type.tensor_type.shape.dim
                        for dim, size in zip(dims, self._input_shape(graph_input.name)):
                            dim.Clear()
                            dim.dim_value = size
                inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output
                self._output_shapes[key] = {o.name: tuple(d.dim_value if d.HasField("dim_value") else -1
                                                          for d in o.type.tensor_type.shape.dim) for o in inferred}
            return self._output_shapes[key]

        def set_tensor_address(self, name: str, memory: int) -> bool:
            if name not in self.engine._names:
                return False
            self._addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if not self._all_shapes_set() or set(self._addresses) != set(self.engine._names):
                return False
            stream = device.DEVICE.stream(int(stream_handle))
            if stream is None:
                return False
            arrays = {}
            for name in self.engine._names:
                shape = self.get_tensor_shape(name)
                dtype = np.dtype(nptype(self.engine.get_tensor_dtype(name)))
                nbytes = int(np.prod(shape)) * dtype.itemsize
                if any(d < 0 for d in shape) or not device.DEVICE.allocations.holds(self._addresses[name], nbytes):
                    return False  # an address outside any allocation: an illegal memory access
                arrays[name] = (shape, dtype, nbytes)
            stream.submit(lambda: self._compute(arrays))
            return True

        def _compute(self, arrays: dict[str, tuple[tuple[int, ...], np.dtype, int]]) -> None:
            import ctypes

            import onnx
            import onnxruntime

            if self._session is None:
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3
                self._session = onnxruntime.InferenceSession(self.engine._onnx, options,
                                                             providers=["CPUExecutionProvider"])
            feeds = {}
            for name, described in self.engine._inputs.items():
                shape, dtype, nbytes = arrays[name]
                feed = np.empty(shape, dtype)
                ctypes.memmove(feed.ctypes.data, self._addresses[name], nbytes)
                # the graph computes in its own types (an INT32 binding of an int64 input on 8.x is widened back)
                feeds[name] = feed.astype(onnx.helper.tensor_dtype_to_np_dtype(described["onnx_type"]), copy=False)
            outputs = self._session.run(None, feeds)
            scale = float(os.environ.get(OUTPUT_SCALE_ENV, "1"))  # tests make a wrong engine with it
            outputs = [value * scale for value in outputs] if scale != 1 else outputs
            for output_name, value in zip(self.engine._names[len(self.engine._inputs):], outputs):
                value = np.ascontiguousarray(value, dtype=arrays[output_name][1])
                ctypes.memmove(self._addresses[output_name], value.ctypes.data, arrays[output_name][2])

    if v >= (10, 0):
        def update_device_memory_size_for_shapes(self: IExecutionContext) -> int:
            return 4 * sum(int(np.prod(self._input_shapes.get(name) or described["profile"][2]))
                           for name, described in self.engine._inputs.items())

        IExecutionContext.update_device_memory_size_for_shapes = update_device_memory_size_for_shapes

    class Runtime:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger
            self.DLA_core = -1

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
            if device.cuda_state() != "ok":  # the real trt.Runtime made without CUDA crashes when used
                os.kill(os.getpid(), signal.SIGSEGV)
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
                self.logger.log(Severity.ERROR, "the plan is not a TensorRT engine (bad magic)")
                return None
            (length,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
            start = len(MAGIC) + 4
            try:
                header = json.loads(data[start:start + length])
            except ValueError:
                self.logger.log(Severity.ERROR, "the plan is damaged")
                return None
            _, major, minor = gpu()
            if header.get("tensorrt") != version:
                self.logger.log(Severity.ERROR, f"The engine plan file is not compatible with this version of "
                                                f"TensorRT, expecting library version {version} got "
                                                f"{header.get('tensorrt')}")
                return None
            if header.get("compute_capability") != f"{major}.{minor}":
                self.logger.log(Severity.ERROR, "The engine plan file is generated on an incompatible device")
                return None
            if header.get("dla_core") is not None and header["dla_core"] != self.DLA_core:
                self.logger.log(Severity.ERROR, "the engine was built for another DLA core")
                return None
            return ICudaEngine(header, data[start + length:])

    ILogger.Severity = Severity
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    names = {"Logger": Logger, "ILogger": ILogger, "Builder": Builder, "Runtime": Runtime, "OnnxParser": OnnxParser,
             "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag, "BuilderFlag": BuilderFlag,
             "MemoryPoolType": MemoryPoolType, "DeviceType": DeviceType, "TensorIOMode": TensorIOMode,
             "DataType": DataType, "nptype": nptype, "IHostMemory": IHostMemory, "ITensor": ITensor,
             "INetworkDefinition": INetworkDefinition, "ParserError": ParserError,
             "IOptimizationProfile": IOptimizationProfile, "ITimingCache": ITimingCache,
             "IBuilderConfig": IBuilderConfig, "ICudaEngine": ICudaEngine, "IExecutionContext": IExecutionContext}
    for name, value in names.items():
        setattr(module, name, value)
    _enforce_real_signatures(module, version)
    return module


# Classes a user of the real module constructs; the double makes the others itself, as TensorRT does.
CONSTRUCTED_BY_USERS = ("Logger", "ILogger", "Builder", "Runtime", "OnnxParser")


def _enforce_real_signatures(module: types.ModuleType, version: str) -> None:
    """Every method of the double takes exactly the calls the real binding of `version` takes: argument
    count, keyword names and types by pybind11's rules (tests/trt_double/real_api.py), else TypeError as
    pybind11 raises it. So a call site the real module would refuse fails here too."""
    api = real_api.load(version)
    classes = {name: value for name, value in vars(module).items() if isinstance(value, type)}
    for class_name, cls in classes.items():
        if issubclass(cls, enum.Enum) or not api.has_class(class_name):
            continue
        for attribute, value in list(vars(cls).items()):
            if attribute == "__init__" and class_name not in CONSTRUCTED_BY_USERS:
                continue
            if (attribute.startswith("_") and attribute != "__init__") or not callable(value) \
                    or isinstance(value, type):
                continue
            signatures = api.signatures(class_name, attribute)
            if signatures:
                setattr(cls, attribute, _checked(f"{class_name}.{attribute}", value, signatures, classes, version))


def _checked(qualified: str, method: Any, signatures: list[real_api.Signature], classes: dict[str, type],
             version: str) -> Any:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        refusals = [signature.check(args, kwargs, classes) for signature in signatures]
        if all(refusals):
            raise TypeError(f"{qualified.split('.')[-1]}(): incompatible function arguments (as the real TensorRT "
                            f"{version} binding). The following argument types are supported: "
                            + "; ".join(s.text for s in signatures) + f". Why not: {'; '.join(refusals)}")
        return method(self, *args, **kwargs)

    call.__wrapped__ = method  # type: ignore[attr-defined]
    call.__name__ = method.__name__
    return call


def plan_header(path: str | Path) -> dict[str, Any]:
    """The header of a plan the double built (for tests that inspect or forge engines)."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    return json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + length])


def rewrite_plan_header(path: str | Path, **changes: Any) -> None:
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    header = {**json.loads(data[start:start + length]), **changes}
    encoded = json.dumps(header).encode()
    Path(path).write_bytes(MAGIC + struct.pack("<I", len(encoded)) + encoded + data[start + length:])
