"""Detectors and segmenters in the catalogue (issue 29): built as their network alone (exporters.tasks), exported
with named outputs, benchmarked on every CPU runtime, their outputs checked and recorded; `list` shows the task,
`accuracy` refuses them, the reports do not take them for classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from tests.helpers import harness, importable, one_error_line, run_cli
from tests.report_fixtures import cpu_records, record, write_run

SSDLITE = "ssdlite320_mobilenet_v3_large"
# each new entry: its task and the shapes of its outputs at batch 1
ENTRIES = {
    SSDLITE: ("detection", [[1, 3234, 91], [1, 3234, 4]]),
    "retinanet_resnet50_fpn": ("detection", [[1, 76725, 91], [1, 76725, 4]]),
    "deeplabv3_mobilenet_v3_large": ("segmentation", [[1, 21, 520, 520]]),
    "lraspp_mobilenet_v3_large": ("segmentation", [[1, 21, 520, 520]]),
}
NAMES = {"detection": ["cls_logits", "bbox_regression"], "segmentation": ["out"]}


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- the catalogue


def test_the_entries_say_their_task_and_classifiers_default_to_classification(catalogue):
    for name, (task, _) in ENTRIES.items():
        spec = catalogue.get(name)
        assert spec.task == task and spec.published.top1 is None, name
        assert (spec.published.box_map if task == "detection" else spec.published.miou) is not None, name
        assert spec.builder_kwargs == {"weights_backbone": None}, name  # random weights download nothing
    assert catalogue.get("resnet18").task == "classification"
    assert [s.name for s in catalogue.select("@detection")] == [SSDLITE, "retinanet_resnet50_fpn"]
    assert {s.name for s in catalogue.select("@segmentation")} == {"deeplabv3_mobilenet_v3_large",
                                                                   "lraspp_mobilenet_v3_large"}
    assert not {s.name for s in catalogue.select("@modern,@mobile")} & set(ENTRIES)  # the paper's sets: classifiers


def test_the_schema_knows_the_tasks_exporters_build():
    from typing import get_args

    from exporters.tasks import TASKS
    from harness.catalogue.registry import Task

    assert get_args(Task) == TASKS


def _entry(**changes: object) -> dict:
    entry = {"name": "det", "display_name": "Det", "family": "SSD", "year": 2019, "source": "torchvision",
             "builder": SSDLITE, "input_size": 320, "task": "detection",
             "preprocessing": {"resize_shorter_to": 320, "crop_pct": 1.0, "interpolation": "bilinear",
                               "mean": [0.5] * 3, "std": [0.5] * 3, "color": "RGB", "value_range": [0.0, 1.0]},
             "published": {"box_map": 21.3, "accuracy_source": "a source"}}
    return {**entry, **changes}


@pytest.mark.parametrize("changes, message", [
    ({"task": "tracking"}, "entry 'det': field 'task': Input should be 'classification', 'detection' or "
                           "'segmentation'"),
    ({"published": {"top1": 70.0, "accuracy_source": "s"}}, "a detection model publishes box_map, not top1"),
    ({"task": "classification"}, "a classification model publishes top1 or top5, not box_map"),
    ({"published": {"box_map": 21.3}}, "accuracy_source is required when top1/top5/box_map/miou are given"),
])
def test_a_malformed_task_entry_is_one_line(tmp_path, changes, message):
    import yaml

    from harness.catalogue.registry import load_catalogue

    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [_entry(**changes)]}))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_catalogue(path)


def test_list_shows_the_task_and_no_top1_for_a_detector(capsys):
    result = run_cli(capsys, "list", "--filter", "@detection,resnet18", "--no-compute", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows[SSDLITE]["task"] == "detection" and rows[SSDLITE]["published_box_map"] == 21.3
    assert rows["resnet18"]["task"] == "classification"
    table = run_cli(capsys, "list", "--filter", "@detection,resnet18", "--no-compute").stdout
    ssd_line = next(line for line in table.splitlines() if SSDLITE in line)
    assert "detection" in ssd_line and "n/a" in ssd_line
    assert "70.14" in next(line for line in table.splitlines() if "resnet18" in line)


def test_accuracy_refuses_a_detector_in_one_line(capsys, tmp_path):
    line = one_error_line(run_cli(capsys, "accuracy", "--models", SSDLITE, "--runtime", "torch", "--data",
                                  str(tmp_path), "--weights", "pretrained"))
    assert line == (f"error: accuracy scores ImageNet classifiers (top-1/top-5), and {SSDLITE} is a detection model: "
                    "leave it out of --models (bench and verify run it)")
    line = one_error_line(run_cli(capsys, "accuracy", "--models", "@segmentation,resnet18", "--runtime", "torch",
                                  "--data", str(tmp_path)))
    assert "deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large are not classifiers" in line


# ---------------------------------------------------------------- building


def test_a_detector_is_its_backbone_and_head_with_the_models_own_keys():
    import torch
    import torchvision

    from exporters.sources import Torchvision
    from exporters.torch_models import wrap_for_task

    assert Torchvision().has_builder(torchvision, SSDLITE)  # in torchvision.models.detection, not at the top
    assert not Torchvision().has_builder(torchvision, "no_such_detector")
    plain = Torchvision().build(torchvision, SSDLITE, {"weights_backbone": None}).eval()
    module = wrap_for_task(plain, "detection")
    assert list(module.state_dict()) == list(plain.state_dict())  # weights files fit both, published ones too
    images = torch.randn(2, 3, 320, 320)
    with torch.inference_mode():
        cls_logits, boxes = module(images)
        expected = plain.head(list(plain.backbone(images).values()))
    assert tuple(cls_logits.shape) == (2, 3234, 91) and tuple(boxes.shape) == (2, 3234, 4)
    assert torch.equal(cls_logits, expected["cls_logits"]) and torch.equal(boxes, expected["bbox_regression"])
    assert wrap_for_task(plain, "classification") is plain


def test_a_classifier_named_a_detector_fails_with_the_reason():
    from exporters.tasks import NotATaskModel
    from exporters.torch_models import ModelRecipe, build_module

    recipe = ModelRecipe(name="sq", source="torchvision", builder="squeezenet1_1", task="detection")
    with pytest.raises(NotATaskModel, match="'sq' is not a one-stage detector with a backbone and a head"):
        build_module(recipe)


def test_weights_without_batchnorm_step_counters_load():
    """torchvision's detection checkpoints were made with frozen BatchNorm (no num_batches_tracked); the
    builder without weights has ordinary BatchNorm: the counters are no weights, and torch fills them in."""
    import torch

    from exporters.torch_models import WeightsUnavailable, _load_matching

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    state = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    _load_matching(module, state, "a frozen-BatchNorm checkpoint")
    del state["1.running_var"]
    with pytest.raises(WeightsUnavailable, match=r"missing \['1.running_var'\]"):
        _load_matching(module, state, "a checkpoint")


def test_the_segmenters_aux_head_of_published_weights_is_left_out():
    import torch

    from exporters.torch_models import _load_matching

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))
    _load_matching(module, {**module.state_dict(), "aux_classifier.0.weight": torch.zeros(1)}, "deeplab weights")


# ---------------------------------------------------------------- the output check


def test_the_output_check_knows_each_task():
    from harness.cell.worker import _check_outputs, described_outputs

    detector = [np.zeros((2, 3234, 91), np.float32), np.zeros((2, 3234, 4), np.float32)]
    _check_outputs(detector, 2, "detection")
    _check_outputs([np.zeros((2, 21, 8, 8), np.float32)], 2, "segmentation")
    _check_outputs([np.zeros((2, 1000), np.float32)], 2)
    with pytest.raises(RuntimeError, match="answered 1 output"):
        _check_outputs(detector[:1], 2, "detection")
    with pytest.raises(RuntimeError, match=r"unexpected bbox_regression shape \(3, 3234, 4\), wanted \(2, ...\)"):
        _check_outputs([detector[0], np.zeros((3, 3234, 4), np.float32)], 2, "detection")
    with pytest.raises(RuntimeError, match="cls_logits contains NaN"):
        _check_outputs([np.full((2, 3234, 91), np.nan, np.float32), detector[1]], 2, "detection")
    with pytest.raises(RuntimeError, match=r"unexpected output shape \(2, 3234, 91\), wanted \(2, 1000\)"):
        _check_outputs(detector, 2)  # a classifier still answers (batch, 1000) logits
    assert described_outputs(detector, ("cls_logits", "bbox_regression")) == [
        {"name": "cls_logits", "shape": [2, 3234, 91], "dtype": "float32"},
        {"name": "bbox_regression", "shape": [2, 3234, 4], "dtype": "float32"}]


# ---------------------------------------------------------------- a run with a detector


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory) -> Path:
    """SSDlite (the smallest detector) benchmarked on ort at batch 1: weights, export, one cell."""
    out = tmp_path_factory.mktemp("detector-run")
    result = harness("bench", "--models", SSDLITE, "--runtime", "ort", "--batch-sizes", "1", "--energy", "off",
                     "--out", str(out), "--run-id", "run")
    assert result.returncode == 0, result.stderr + result.stdout
    return out / "run"


def test_a_detector_runs_on_ort_with_named_outputs_in_the_record(detector_run):
    import onnx

    [bench] = [r for r in _records(detector_run) if r["kind"] == "bench"]
    assert bench["status"] == "ok" and bench["model"]["task"] == "detection"
    assert bench["outputs"] == [{"name": "cls_logits", "shape": [1, 3234, 91], "dtype": "float32"},
                                {"name": "bbox_regression", "shape": [1, 3234, 4], "dtype": "float32"}]
    graph = onnx.load(bench["prepared"]["artifact"]["path"]
                      if Path(bench["prepared"]["artifact"]["path"]).is_absolute()
                      else str(Path(_cache_dir()) / bench["prepared"]["artifact"]["path"])).graph
    assert [o.name for o in graph.output] == ["cls_logits", "bbox_regression"]
    assert all(o.type.tensor_type.shape.dim[0].dim_param for o in graph.output)  # the batch stays dynamic


def _cache_dir() -> str:
    import os

    return os.environ["HARNESS_CACHE_DIR"]


def test_report_and_compare_on_a_detector_run(detector_run, tmp_path, capsys):
    result = run_cli(capsys, "report", str(detector_run), "--out", str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "report.html").is_file()
    line = one_error_line(run_cli(capsys, "best", str(detector_run)))
    assert "best ranks classifiers by top-1, and these records hold detection models only" in line
    from harness.reports.compare import CellChange, _top1_entry
    from harness.records import Record

    [bench] = [Record.model_validate(r) for r in _records(detector_run) if r["kind"] == "bench"]
    change = CellChange(match=None, baseline=bench, candidate=bench, verdicts=["no change"])  # type: ignore[arg-type]
    assert _top1_entry(change).text == "n/a"


def test_the_papers_figures_leave_detectors_out(tmp_path):
    """Fig. 1-4 compare classifiers: a segmenter's memory (its 520x520 score maps) would skew Fig. 4's fits."""
    from harness.reports import data
    from harness.reports.figures import draw_all

    segmenter = record("vgg16", "torch", 1, 5.0, 9_000_000_000)
    segmenter["cell"]["model"] = segmenter["model"]["name"] = "lraspp"
    segmenter["cell_id"] = "lraspp|torch|fp32|bs1|cpu"
    segmenter["model"].update(task="segmentation", published={"miou": 57.9, "accuracy_source": "s"})
    run = write_run(tmp_path / "run", [*cpu_records(), segmenter])
    drawn = draw_all(data.load([run]), tmp_path / "figures")
    [fits] = drawn.memory_fits.values()
    assert fits["all models"].points == 5  # the five classifiers; with the segmenter there would be six


def test_a_detector_exports_to_a_bundle_a_board_benchmarks(detector_run, tmp_path, capsys):
    """The bundle carries the detector's ONNX file (two named outputs) and its task; the board's bench runs it."""
    import onnx

    bundle = tmp_path / "bundle"
    result = run_cli(capsys, "export", "--models", SSDLITE, "--bundle", str(bundle), "--batch-sizes", "1")
    assert result.returncode == 0, result.stderr + result.stdout
    manifest = json.loads((bundle / SSDLITE / "manifest.json").read_text())
    assert manifest["catalogue_entry"]["task"] == "detection"
    [onnx_file] = list((bundle / SSDLITE).glob("*.onnx"))
    assert [o.name for o in onnx.load(str(onnx_file)).graph.output] == ["cls_logits", "bbox_regression"]
    bench = run_cli(capsys, "bench", "--bundle", str(bundle), "--runtime", "ort", "--batch-sizes", "1", "--energy",
                    "off", "--out", str(tmp_path / "runs"), "--run-id", "board")
    assert bench.returncode == 0, bench.stderr + bench.stdout
    [record] = [r for r in _records(tmp_path / "runs" / "board") if r["kind"] == "bench"]
    assert record["status"] == "ok" and record["model"]["task"] == "detection"


# ---------------------------------------------------------------- every entry on three runtimes


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ENTRIES))
def test_each_entry_builds_exports_and_runs_on_torch_ort_and_ov(name, tmp_path, capsys):
    runtimes = [r for r in ("torch", "ort", "ov") if importable(r)]
    result = run_cli(capsys, "bench", "--models", name, "--runtime", ",".join(runtimes), "--batch-sizes", "1",
                     "--energy", "off", "--out", str(tmp_path), "--run-id", "run")
    assert result.returncode == 0, result.stderr + result.stdout
    task, shapes = ENTRIES[name]
    benches = [r for r in _records(tmp_path / "run") if r["kind"] == "bench"]
    assert sorted(r["cell"]["runtime"] for r in benches) == sorted(runtimes)
    for bench in benches:
        assert bench["status"] == "ok", bench.get("error")
        assert [o["name"] for o in bench["outputs"]] == NAMES[task]
        assert [o["shape"] for o in bench["outputs"]] == shapes
        assert bench["model"]["task"] == task
