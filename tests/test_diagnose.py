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
