"""Small ONNX files built with onnx.helper, standing for files made outside the harness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, opset: int = 17, domains: tuple[tuple[str, int], ...] = ()) -> Path:
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in domains)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def classifier(path: Path, batch: int | str = "N", opset: int = 17) -> Path:
    """(batch, 3, 8, 8) -> global average pool -> linear 3 -> 10."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32), "w")
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["scores"])]
    graph = helper.make_graph(nodes, "classifier",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 10])], [weight])
    return _save(graph, path, opset)


def two_layer_classifier(path: Path) -> Path:
    """Like `classifier`, with a ReLU and a second linear layer: some layers it shares, some it does not."""
    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array(rng.standard_normal((3, 16)).astype(np.float32), "w1"),
               numpy_helper.from_array(rng.standard_normal((16, 10)).astype(np.float32), "w2")]
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w1"], ["hidden"]),
             helper.make_node("Relu", ["hidden"], ["active"]),
             helper.make_node("MatMul", ["active", "w2"], ["scores"])]
    graph = helper.make_graph(nodes, "two_layers",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])], weights)
    return _save(graph, path)


def detector(path: Path, height: int | str = "height", width: int | str = "width", opset: int = 18) -> Path:
    """Two inputs and two outputs, as RT-DETR's export has: `images` (N, 3, height, width) float with symbolic
    sizes and `orig_target_sizes` (N, 2) int64 -> `scores` (N, 8) and `mask` (N, 1, height, width). Before opset 18
    (TensorRT 8's parsers stop at 17) ReduceMean takes its axes as an attribute."""
    weight = numpy_helper.from_array(np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "channel_axis")
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Cast", ["orig_target_sizes"], ["sizes"], to=TensorProto.FLOAT),
             helper.make_node("Concat", ["flat", "sizes"], ["features"], axis=1),
             helper.make_node("MatMul", ["features", "w"], ["scores"]),
             helper.make_node("ReduceMean", ["images", "channel_axis"], ["mask"], keepdims=1) if opset >= 18 else
             helper.make_node("ReduceMean", ["images"], ["mask"], keepdims=1, axes=[1])]
    graph = helper.make_graph(
        nodes, "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height, width]),
         helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 8]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, height, width])],
        [weight, axes] if opset >= 18 else [weight])
    return _save(graph, path, opset=opset)


def scaled(path: Path) -> Path:
    """A batched input beside a scalar one: `x` (N, 4) float times `scale` (a 0-d float) -> `y` (N, 4)."""
    nodes = [helper.make_node("Mul", ["x", "scale"], ["y"])]
    graph = helper.make_graph(nodes, "scaled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                                                helper.make_tensor_value_info("scale", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    return _save(graph, path)


def unsupported_op(path: Path) -> Path:
    """A node of a custom domain that no onnxruntime build implements."""
    nodes = [helper.make_node("FancyPool", ["image"], ["out"], domain="com.example.vision")]
    graph = helper.make_graph(nodes, "custom", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                              ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])])
    return _save(graph, path, domains=(("com.example.vision", 1),))
