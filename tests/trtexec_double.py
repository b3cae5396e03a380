"""A test double of NVIDIA's `trtexec` (tests only; never importable by the harness), per TensorRT version.

`install(path, version)` writes an executable `trtexec` at `path` (a fixture board's
usr/src/tensorrt/bin/trtexec) that behaves as that version's does in what the harness relies on, read in
NVIDIA/TensorRT's samples/common/sampleOptions.cpp and sampleReporting.cpp of each release branch:
- the banner with the packed version (`[TensorRT v8201]`), and usage with exit 1 when run without arguments;
- only the flags that version knows (8.2: `--workspace`, `--buildOnly`; 8.4+: `--memPoolSize`; 8.6+:
  `--skipInference`; 10 drops `--workspace` and `--buildOnly`; 11 drops `--fp16`/`--int8` and adds
  `--noCudaGraph`); an unknown flag is an error, as in the real one;
- its ONNX parser's opset limit (8.2: 13; 8.5 and 8.6: 17; 10.x: 20);
- several inputs, each flag's value a comma-separated list split on each item's last ':' (`--shapes=a:1x2,b:3`,
  `--loadInputs=a:f,b:g`: sampleOptions.cpp getShapesBuild/getShapesInference/splitNameAndValue); a dynamic input
  given no shape has its dynamic dims set to 1 at build and at inference (sampleEngines.cpp, sampleInference.cpp),
  which a profile that does not reach 1 refuses; --shapes naming no input is refused ("Invalid tensor names found
  in --shapes flag"); a --loadInputs file must hold the binding's bytes (int64 is an INT32 binding before 9);
- plans tied to its version (another version's plan fails to deserialize);
- `--exportTimes` in that version's format (8.2 adds `endToEndMs`), `--exportOutput`, `--loadInputs`.
Behind it ONNX Runtime runs the graph on the CPU.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

MAGIC = b"TRTEXECDOUBLE\x00"
COMMON = {"onnx", "saveEngine", "loadEngine", "minShapes", "optShapes", "maxShapes", "shapes", "useDLACore",
          "allowGPUFallback", "timingCacheFile", "iterations", "duration", "warmUp", "loadInputs", "exportTimes",
          "exportOutput", "noDataTransfers", "useCudaGraph", "separateProfileRun", "useSpinWait"}
MAX_OPSET = {(8, 2): 13, (8, 4): 17, (8, 5): 17, (8, 6): 17, (10, 3): 20, (11, 4): 22}


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in text.split(".")[:3])
    return major, minor, patch


def packed(version: tuple[int, int, int]) -> int:
    major, minor, patch = version
    return major * 10_000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def known_flags(version: tuple[int, int, int]) -> set[str]:
    flags = set(COMMON)
    if version[0] < 11:
        flags |= {"fp16", "int8"}
    if version < (10, 0, 0):
        flags |= {"workspace", "buildOnly"}
    if version >= (8, 4, 0):
        flags.add("memPoolSize")
    if version >= (8, 6, 0):
        flags.add("skipInference")
    if version >= (11, 0, 0):
        flags |= {"noCudaGraph", "includeDataTransfers", "noSpinWait"}
    return flags


def _fail(message: str, argv: list[str], banner: str) -> int:
    print(f"[E] {message}")
    print(f"&&&& FAILED TensorRT.trtexec [TensorRT v{banner}] # trtexec {' '.join(argv)}")
    return 1


def _board_model() -> str:
    model = Path(os.environ.get("HARNESS_JETSON_ROOT", "/")) / "proc" / "device-tree" / "model"
    return model.read_text(errors="replace").strip().rstrip("\x00") if model.is_file() else "Double GPU"


def main(argv: list[str], version_text: str) -> int:
    version = _version(version_text)
    banner = str(packed(version))
    print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v{banner}] # trtexec {' '.join(argv)}")
    if not argv:
        print("=== Model Options ===\n  --onnx=<file>  ONNX model")
        return 1
    options: dict[str, str] = {}
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or key not in known_flags(version):
            print(f"Unknown option: {arg}")
            return _fail(f"Unknown option: {arg}", argv, banner)
        options[key] = value
    if "onnx" in options:
        return _build(options, version, argv, banner)
    if "loadEngine" in options:
        return _infer(options, version, argv, banner)
    return _fail("Model missing or format not recognized", argv, banner)


def _build(options: dict[str, str], version: tuple[int, int, int], argv: list[str], banner: str) -> int:
    import onnx

    model = onnx.load(options["onnx"])
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    limit = MAX_OPSET.get(version[:2], 20)
    if opset > limit:
        print(f"[W] [TRT] onnx2trt_utils.cpp: Your ONNX model has been generated with opset {opset}; this parser "
              f"supports opsets up to {limit}")
        return _fail(f"[TRT] ModelImporter.cpp: Unsupported ONNX opset {opset}\n[E] Failed to parse onnx file",
                     argv, banner)
    initializers = {t.name for t in model.graph.initializer}
    given = {key: _name_list(options.get(key, "")) for key in ("minShapes", "optShapes", "maxShapes")}
    inputs = []
    for tensor in (i for i in model.graph.input if i.name not in initializers):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.type.tensor_type.shape.dim]
        profile = [_dims(given[key][tensor.name]) if tensor.name in given[key] else None for key in given]
        if -1 not in dims:
            profile = [dims] * 3
        elif all(p is None for p in profile):
            ones = [1 if d < 0 else d for d in dims]
            print(f"[W] Dynamic dimensions required for input: {tensor.name}, but no shapes were provided. "
                  f"Automatically overriding shape to: {'x'.join(map(str, ones))}")
            profile = [ones] * 3
        else:  # processShapes: a missing one of min/opt/max is broadcast from the others
            low, mid, high = profile
            profile = [low or mid or high, mid or high or low, high or mid or low]
        if any(len(p) != len(dims) or any(s >= 0 and d != s for d, s in zip(p, dims)) for p in profile) or \
                any(not a <= b <= c for a, b, c in zip(*profile)):
            return _fail(f"Error[4]: [network.cpp::validate] Error Code 4: Internal Error (input {tensor.name}: "
                         f"optimization profile {profile} is not valid for dims {dims})", argv, banner)
        elem_type = tensor.type.tensor_type.elem_type
        binding = "int32" if elem_type == 7 and version[0] < 9 else onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
        inputs.append({"name": tensor.name, "dims": dims, "profile": profile, "binding": binding,
                       "onnx": onnx.helper.tensor_dtype_to_np_dtype(elem_type).name})
    if "useDLACore" in options and int(options["useDLACore"]) >= int(os.environ.get("TRTEXEC_DOUBLE_DLA_CORES", "0")):
        return _fail(f"Cannot create DLA engine, {options['useDLACore']} not available", argv, banner)
    header = {"tensorrt": ".".join(map(str, version)), "gpu": _board_model(), "inputs": inputs,
              "fp16": "fp16" in options, "int8": "int8" in options,
              "dla": options.get("useDLACore"), "outputs": [o.name for o in model.graph.output]}
    encoded = json.dumps(header).encode()
    Path(options["saveEngine"]).write_bytes(MAGIC + len(encoded).to_bytes(4, "little") + encoded +
                                            model.SerializeToString())
    if "timingCacheFile" in options:
        Path(options["timingCacheFile"]).write_text(json.dumps({"tensorrt": header["tensorrt"]}))
    print("[I] Engine built in 0.5 sec.")
    print(f"&&&& PASSED TensorRT.trtexec [TensorRT v{banner}] # trtexec {' '.join(argv)}")
    return 0


def _infer(options: dict[str, str], version: tuple[int, int, int], argv: list[str], banner: str) -> int:
    import numpy as np
    import onnxruntime

    data = Path(options["loadEngine"]).read_bytes()
    if not data.startswith(MAGIC):
        return _fail("Error[1]: [stdArchiveReader.cpp] The magic tag does not match\n[E] Engine deserialization "
                     "failed", argv, banner)
    length = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "little")
    header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + length])
    if header["tensorrt"] != ".".join(map(str, version)):
        return _fail(f"Error[1]: [runtime.cpp::deserializeCudaEngine] The engine plan file is not compatible with "
                     f"this version of TensorRT, expecting library version {'.'.join(map(str, version))} got "
                     f"{header['tensorrt']}, please rebuild.\n[E] Engine deserialization failed", argv, banner)
    core = options.get("useDLACore", header["dla"])
    if core is not None and int(core) >= int(os.environ.get("TRTEXEC_DOUBLE_DLA_CORES", "0")):
        return _fail(f"Error[1]: [dlaUtils.cpp] DLA core {core} is not available on this platform\n"
                     "[E] Engine deserialization failed", argv, banner)
    print("[I] Engine deserialized in 0.0123 sec.")
    session = onnxruntime.InferenceSession(data[len(MAGIC) + 4 + length:], providers=["CPUExecutionProvider"])
    shapes, files = _name_list(options.get("shapes", "")), _name_list(options.get("loadInputs", ""))
    unknown = sorted(set(shapes) - {i["name"] for i in header["inputs"]})
    if unknown:
        return _fail(f"Invalid tensor names found in --shapes flag: {', '.join(unknown)}", argv, banner)
    feeds = {}
    for described in header["inputs"]:
        name, dims = described["name"], described["dims"]
        shape = dims
        if -1 in dims:
            shape = _dims(shapes[name]) if name in shapes else [1 if d < 0 else d for d in dims]
        low, _, high = described["profile"]
        if len(shape) != len(low) or any(not a <= d <= b for a, d, b in zip(low, shape, high)):
            return _fail(f"Error[3]: [executionContext.cpp::setInputShape] Error Code 3: API Usage Error (input "
                         f"{name}: shape {'x'.join(map(str, shape))} is outside the optimization profile)\n"
                         "[E] Inference set up failed", argv, banner)
        binding = np.dtype(described["binding"])
        if name in files:
            raw = Path(files[name]).read_bytes()
            if len(raw) != int(np.prod(shape)) * binding.itemsize:
                return _fail(f"Cannot read {files[name]} for input {name}: {len(raw)} bytes, the binding holds "
                             f"{int(np.prod(shape)) * binding.itemsize}", argv, banner)
            feed = np.frombuffer(raw, dtype=binding).reshape(shape)
        else:
            feed = np.random.default_rng(0).standard_normal(shape).astype(binding)
        feeds[name] = feed.astype(described["onnx"])
    iterations, duration_s = int(options.get("iterations", "10")), float(options.get("duration", "3"))
    print("[I] Starting inference", flush=True)  # as trtexec.cpp logs it, just before its trace's zero
    records, start, outputs = [], time.perf_counter(), None
    while len(records) < iterations or time.perf_counter() - start < duration_s:
        began = (time.perf_counter() - start) * 1e3
        outputs = session.run(None, feeds)
        ended = (time.perf_counter() - start) * 1e3
        compute = ended - began
        record = {"startEnqMs": began, "endEnqMs": began + 0.01, "startH2dMs": began, "endH2dMs": began,
                  "startComputeMs": began, "endComputeMs": ended, "startD2hMs": ended, "endD2hMs": ended,
                  "h2dMs": 0.0, "computeMs": compute, "d2hMs": 0.0, "latencyMs": compute}
        if version < (8, 5, 0):
            record["endToEndMs"] = compute
        records.append(record)
    if "exportTimes" in options:
        Path(options["exportTimes"]).write_text(json.dumps(records))
    if "exportOutput" in options:
        Path(options["exportOutput"]).write_text(json.dumps(
            [{"name": name, "dimensions": "x".join(map(str, value.shape)), "values": value.ravel().tolist()}
             for name, value in zip(header["outputs"], outputs)]))
    median = float(np.median([r["computeMs"] for r in records]))
    print(f"[I] GPU Compute Time: min = {median:.5f} ms, max = {median:.5f} ms, mean = {median:.5f} ms, "
          f"median = {median:.5f} ms, percentile(99%) = {median:.5f} ms")
    print(f"&&&& PASSED TensorRT.trtexec [TensorRT v{banner}] # trtexec {' '.join(argv)}")
    return 0


def _name_list(value: str) -> dict[str, str]:
    """`a:1x2,b:3` -> {a: 1x2, b: 3}: each item split on its last ':', as splitNameAndValue does."""
    return dict(item.rpartition(":")[::2] for item in value.split(",") if item)


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split("x")]


def install(path: Path, version: str) -> Path:
    """An executable trtexec of `version` at `path`, running this module with this interpreter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parent.parent
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(repo)!r})\n"
                    f"from tests.trtexec_double import main\nsys.exit(main(sys.argv[1:], {version!r}))\n")
    path.chmod(0o755)
    return path
