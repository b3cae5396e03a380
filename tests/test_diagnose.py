"""`diagnose`: McNemar's exact test, the ddmin search over nodes with a fake evaluator (fast), the command's
one-line refusals, and (slow) a real EfficientNet-Lite0 whose per-tensor int8 loses top-1 on real photographs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from harness.diagnose.search import blocks, smallest_fp32_set
from harness.diagnose.stats import mcnemar_exact_p, paired

NODES = tuple(f"conv{i}" for i in range(40))


@pytest.mark.parametrize("worse, better", [(0, 0), (1, 0), (6, 0), (7, 0), (5, 2), (10, 3), (3, 10), (30, 12),
                                           (400, 350), (5, 5), (2500, 2400)])
def test_mcnemar_exact_p_equals_scipys_binomial_test(worse, better):
    binomtest = pytest.importorskip("scipy.stats").binomtest
    expected = 1.0 if worse + better == 0 else binomtest(worse, worse + better, 0.5).pvalue
    assert mcnemar_exact_p(worse, better) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_paired_counts_discordant_images_and_the_drop():
    reference = np.array([1, 1, 1, 1, 0, 0, 1, 1], bool)
    other = np.array([1, 0, 0, 1, 1, 0, 0, 1], bool)
    result = paired(reference, other)
    assert (result.worse, result.better, result.images) == (3, 1, 8)
    assert result.drop_points == pytest.approx(100 * 2 / 8)
    assert result.p_value == pytest.approx(mcnemar_exact_p(3, 1))
    with pytest.raises(ValueError):
        paired(reference, other[:4])


def test_blocks_are_contiguous_and_cover_every_node():
    for n in range(1, 9):
        parts = blocks(NODES[:7], n)
        assert tuple(itertools.chain(*parts)) == NODES[:7]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def culprits_evaluator(culprits: set[str], log: list[tuple[str, ...]]):
    """A fake evaluation: the file recovers when every culprit is kept in fp32."""
    def passes(kept: tuple[str, ...]) -> bool:
        log.append(kept)
        return culprits <= set(kept)
    return passes


@pytest.mark.parametrize("culprits", [{"conv0"}, {"conv0", "conv39"}, {"conv3", "conv17", "conv18", "conv30"}])
def test_the_search_finds_exactly_the_nodes_that_recover(culprits):
    log: list[tuple[str, ...]] = []
    result = smallest_fp32_set(NODES, culprits_evaluator(culprits, log), max_trials=200)
    assert result.complete and set(result.kept) == culprits
    assert list(result.kept) == [n for n in NODES if n in culprits]  # topological order kept
    assert result.trials == len(log) == len(set(map(frozenset, log)))  # each set evaluated once
    assert result.trials < len(NODES)  # bisection, not one trial per node


def test_a_set_that_needs_any_two_of_three_nodes_is_one_minimal():
    """Non-monotone, redundant causes: any two of three nodes recover; the answer cannot lose a node."""
    trio = {"conv5", "conv20", "conv33"}

    def passes(kept: tuple[str, ...]) -> bool:
        return len(trio & set(kept)) >= 2
    result = smallest_fp32_set(NODES, passes, max_trials=200)
    assert result.complete and len(result.kept) == 2 and set(result.kept) <= trio


def test_the_cap_returns_the_smallest_passing_set_so_far():
    log: list[tuple[str, ...]] = []
    result = smallest_fp32_set(NODES, culprits_evaluator({"conv3", "conv30"}, log), max_trials=3)
    assert not result.complete and result.trials == 3 == len(log)
    assert {"conv3", "conv30"} <= set(result.kept) and len(result.kept) <= len(NODES)


def test_nothing_recovers_when_every_node_kept_still_fails():
    result = smallest_fp32_set(NODES, lambda kept: False, max_trials=50)
    assert result.kept is None and result.trials == 1 and result.complete


# ---------------------------------------------------------------- the weights' ranking

def test_per_tensor_rounding_hurts_weights_whose_channels_differ_in_scale():
    from harness.diagnose.sensitivity import channel_sqnr_db, rounded, sqnr_db

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * np.logspace(-3, 0, 8).reshape(8, 1, 1, 1)
    per_channel = channel_sqnr_db(weights, rounded(weights, "int8", per_channel=True))
    per_tensor = channel_sqnr_db(weights, rounded(weights, "int8", per_channel=False))
    assert per_channel > 35 > 20 > per_tensor  # the small channels round to nothing with one scale for all
    assert sqnr_db(weights, rounded(weights, "int8", per_channel=False)) > 30  # hidden in the whole tensor's SQNR
    assert channel_sqnr_db(weights, rounded(weights, "fp16")) > 60


def test_nodes_rank_from_the_worst_rounded_weights_unscored_last():
    from harness.diagnose.sensitivity import rank_nodes

    names = ["a", "b", "c", "d"]
    assert rank_nodes({"a": 40.0, "b": None, "c": 20.0, "d": 40.0}, names) == ["c", "a", "d", "b"]


# ---------------------------------------------------------------- trials on a tiny model (fast)

def _tiny_trials(tmp_path, precision="int8"):
    from exporters.quantize import QuantizeSpec
    from exporters.store import Store
    from harness.accuracy.preprocess import Normalization
    from harness.diagnose.trials import Answers, EvaluationImages, Fp16Files, Int8Files
    from runtimes.base import RuntimeOptions
    from tests.test_int8 import CALIBRATION, _conv_classifier, _feed

    fp32 = _conv_classifier(tmp_path / "fp32.onnx", biases=True)
    store = Store(tmp_path / "cache")
    if precision == "int8":
        spec = QuantizeSpec(model="tiny", fp32_sha256="f" * 64, method="minmax", calibration=CALIBRATION)
        files = Int8Files(spec, fp32, "image", _feed, store)
    else:
        files = Fp16Files("tiny", fp32, store)
    crops = np.random.default_rng(2).integers(0, 256, (12, 3, 8, 8), dtype=np.uint8)
    images = EvaluationImages(crops, np.arange(12), None, Normalization((0.5,) * 3, (0.25,) * 3, "RGB", (0.0, 1.0)))
    return fp32, files, Answers("ort", RuntimeOptions(), images, batch_size=5)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_a_trial_keeps_its_nodes_in_fp32_and_answers_every_image(tmp_path, precision):
    import onnx

    from exporters.quantize import left_in_float
    from harness.diagnose.trials import quantizable_nodes, run_trial

    fp32, files, answers = _tiny_trials(tmp_path, precision)
    assert quantizable_nodes(fp32) == [("conv", "Conv"), ("classifier", "Gemm")]  # the named ones
    trial = run_trial(("classifier",), files, answers)
    assert len(trial.top1) == 12 and all(0 <= v < 10 for v in trial.top1)
    graph = onnx.load(trial.file).graph
    if precision == "int8":
        assert left_in_float(Path(trial.file)) == ["classifier (Gemm)"]
    else:  # the blocked Gemm reads fp32 weights, the conv's were converted to fp16
        types = {init.name: init.data_type for init in graph.initializer}
        assert types["w"] == onnx.TensorProto.FLOAT and types["k"] == onnx.TensorProto.FLOAT16
    again = run_trial(("classifier",), files, answers)
    assert again.file == trial.file and again.top1 == trial.top1  # cached by spec, same answers


def test_the_trial_log_is_read_back_and_refuses_another_diagnosis(tmp_path):
    from harness.diagnose.trials import Trial, TrialLog
    from harness.errors import UserError

    log = TrialLog(tmp_path, {"model": "m", "runtime": "ort"})
    log.set_fp32(Trial(("a", "b"), [1, 2, 3], "fp32.onnx", "0" * 64, 0.0, 0.1))
    log.add(Trial(("b",), [1, 2, 4], "x.onnx", "1" * 64, 1.0, 0.1))
    again = TrialLog(tmp_path, {"model": "m", "runtime": "ort"})
    assert again.reused == 1 and again.get(("b",)).top1 == [1, 2, 4] and again.fp32.top1 == [1, 2, 3]
    assert again.get(("a",)) is None
    with pytest.raises(UserError, match="another diagnosis"):
        TrialLog(tmp_path, {"model": "m", "runtime": "ov"})
    (tmp_path / "trials.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot be read"):
        TrialLog(tmp_path, {"model": "m", "runtime": "ort"})


# ---------------------------------------------------------------- the command's refusals: one line each

@pytest.mark.parametrize("change, expected", [
    ({"--models": "no_such_model"}, "no_such_model"),
    ({"--precision": "fp32"}, "nothing to diagnose"),
    ({"--precision": "bf16"}, "int8 or fp16"),
    ({"--runtime": "torch"}, "cannot run the quantized ONNX files"),
    ({"--runtime": "ort,ov"}, "one runtime"),
    ({"--max-drop": "-1"}, "bad --max-drop -1"),
    ({"--alpha": "1.5"}, "bad --alpha"),
    ({"--max-trials": "0"}, "bad --max-trials 0"),
    ({"--weights": "random"}, "trained weights"),
    ({"--precision": "fp16", "--split": None}, "--precision int8"),
    ({"--data": "MISSING"}, "no such"),
    ({"--data": "EMPTY"}, "holds no images"),
    ({"--split": "DROP"}, "int8 needs calibration images"),
    ({"--metric": "accuracy", "--data": "FLAT"}, "no ground truth beside them"),
])
def test_mistakes_are_one_line(tmp_path, capsys, change, expected):
    from tests.helpers import noise_images, one_error_line, run_cli

    places = {"MISSING": str(tmp_path / "nowhere"), "EMPTY": str(tmp_path / "empty"),
              "FLAT": str(noise_images(tmp_path / "flat", 4))}
    (tmp_path / "empty").mkdir()
    options = {"--models": "tf_efficientnet_lite0", "--data": "FLAT", "--split": None, "--out": str(tmp_path / "runs")}
    options.update(change)
    argv = ["diagnose"]
    for flag, value in options.items():
        if value != "DROP":
            argv += [flag] if value is None else [flag, places.get(value, value)]
    line = one_error_line(run_cli(capsys, *argv))
    assert expected in line, line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing made


# ---------------------------------------------------------------- a real model whose int8 visibly loses top-1

@pytest.mark.slow
def test_lite0_per_tensor_int8_is_diagnosed_and_an_interrupted_run_resumes(lite0_weights, tmp_path, capsys,
                                                                            monkeypatch):
    """EfficientNet-Lite0's real ImageNet weights, int8 with one weight scale per tensor (onnxruntime's
    quantize_static default), on 70 crops of seven real photographs split into calibration and evaluation halves:
    the all-int8 file visibly disagrees with fp32; diagnose names a set of nodes to keep in fp32, smaller than
    the graph, whose file is within the bound. The first run is interrupted after two trials; the second goes on
    from the trials it kept."""
    import json

    import onnx

    from harness.cli import diagnose as command
    from tests.helpers import run_cli
    from tools.photo_crops import write_crops

    write_crops(tmp_path / "photos", per_photo=10, seed=0)
    argv = ["diagnose", "--models", "tf_efficientnet_lite0", "--weights", str(lite0_weights), "--data",
            str(tmp_path / "photos"), "--split", "--per-tensor", "--max-drop", "3", "--max-trials", "14",
            "--workers", "2", "--out", str(tmp_path / "runs"), "--run-id", "d"]
    made = []
    real_trial = command.run_trial

    def interrupted(*args, **kwargs):
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(real_trial(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(command, "run_trial", interrupted)
    first = run_cli(capsys, *argv, "--speed", "off")
    assert first.returncode == 130 and "run the same command again" in first.stderr, first.stderr[-2000:]
    assert len(json.loads((tmp_path / "runs" / "d" / "trials.json").read_text())["trials"]) == 2
    monkeypatch.setattr(command, "run_trial", real_trial)

    second = run_cli(capsys, *argv)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "2 trials of an earlier run reused" in second.stdout
    summary = json.loads((tmp_path / "runs" / "d" / "diagnosis.json").read_text())
    lowered, mixed = summary["lowered"]["against_fp32"], summary["mixed"]["against_fp32"]
    assert lowered["images"] == 35 and lowered["drop_points"] > 3 and lowered["p_value"] < 0.05, summary
    assert mixed["drop_points"] <= 3, summary
    kept = [node["name"] for node in summary["kept_in_fp32"]]
    assert 0 < len(kept) < summary["nodes"] and all(name in second.stdout for name in kept[:3])
    model = onnx.load(summary["mixed_file"])
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    kept_conv = [n for n in model.graph.node if n.name in kept and n.op_type == "Conv"]
    assert all(n.input[1] not in dequantized for n in kept_conv)  # the kept convolutions read float weights
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)  # and the rest is int8
    assert all(isinstance(summary["median_ms_batch1"][label], float) for label in ("fp32", "int8", "mixed"))


@pytest.mark.slow
def test_trt_answers_through_engines_built_from_the_symmetric_file(trt_cli, photos_folder, tmp_path):
    """--runtime trt (the TensorRT doubles, which run the engine's ONNX file with onnxruntime): the fp32 and
    all-int8 answers come from engines built in the command's process, from the int8-sym (TensorRT) file."""
    import json

    import torch
    import torchvision

    torch.manual_seed(0)
    weights = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    code, out, err = trt_cli("diagnose", "--models", "squeezenet1_1", "--weights", str(weights), "--runtime", "trt",
                             "--device", "cuda", "--data", str(photos_folder), "--split", "--max-drop", "100",
                             "--workers", "1", "--out", str(tmp_path / "runs"), "--run-id", "t")
    assert code == 0, out[-2000:] + err[-2000:]
    assert "nothing to diagnose" in out
    trials = json.loads((tmp_path / "runs" / "t" / "trials.json").read_text())
    assert trials["identity"]["flavor"] == "int8-sym" and trials["identity"]["runtime"] == "trt"
    (lowered,) = trials["trials"]
    assert lowered["kept"] == [] and len(lowered["top1"]) == len(trials["fp32"]["top1"]) == 12
