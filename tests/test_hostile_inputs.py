"""Bad inputs and damaged files, as a hostile user tries them: each is one `error:` line and exit code 2
(or a record saying why), never a traceback, never data written where it should not be."""

from __future__ import annotations

import json

import pytest

from harness.records import read_records
from tests import onnx_graphs
from tests.report_fixtures import cpu_records, write_run
from tests.helpers import ROOT, harness, one_error_line, run_cli

NULL = ["bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "1"]


@pytest.mark.parametrize("args, expected", [
    (["--timeout", "inf"], "bad --timeout inf"),
    (["--timeout", "1e400"], "bad --timeout inf"),
    (["--timeout", "nan"], "bad --timeout nan"),
    (["--timeout", "0"], "bad --timeout 0"),
    (["--max-memory", "1.5"], "bare number is ambiguous"),
    (["--seed", "-1"], "bad --seed -1"),
    (["--run-id", "../../x"], "bad --run-id '../../x'"),
    (["--run-id", "a/b"], "bad --run-id 'a/b'"),
    (["--run-id", "r" * 129], "129 characters ('rrrrrrrrrrrrrrrrrrrrrrrr...'), more than the 128 a run id may have"),
    (["--runtime-option", "ort.graph_optimization=basic"], "no requested runtime takes 'ort.' options"),
    (["--runtime-option", "nonsense"], "write RUNTIME.NAME=VALUE"),
    (["--retry-failed"], "add --resume"),
])
def test_bad_numbers_and_names_are_one_line(tmp_path, args, expected, capsys):
    line = one_error_line(run_cli(capsys, *NULL, "--out", str(tmp_path), *args))
    assert expected in line, line
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_runtime_options_are_validated_by_the_runtime(tmp_path, capsys):
    base = ["bench", "--runtime", "ort", "--models", "resnet18", "--batch-sizes", "1", "--out", str(tmp_path)]
    line = one_error_line(run_cli(capsys, *base, "--runtime-option", "ort.graph_optimisation=basic"))
    assert "has no option 'ort.graph_optimisation'" in line and "ort.graph_optimization" in line
    line = one_error_line(run_cli(capsys, *base, "--runtime-option", "ort.graph_optimization=fastest"))
    assert "choose from disable, basic, extended, all" in line


@pytest.mark.parametrize("flag, value", [("--min-fps", "nan"), ("--max-latency", "inf"), ("--min-top1", "-5")])
def test_best_refuses_limits_that_are_no_limits(tmp_path, flag, value, capsys):
    run = write_run(tmp_path / "run", cpu_records())
    assert f"bad {flag}" in one_error_line(run_cli(capsys, "best", str(run), flag, value))


def test_an_existing_run_id_with_another_plan_is_refused(tmp_path, capsys):
    first = run_cli(capsys, *NULL, "--out", str(tmp_path), "--run-id", "r")
    assert first.returncode == 0, first.stderr
    other = ["bench", "--runtime", "null", "--models", "alexnet", "--batch-sizes", "1", "--out", str(tmp_path)]
    line = one_error_line(run_cli(capsys, *other, "--run-id", "r"))
    assert "run 'r'" in line and "planned with other" in line
    assert [r["cell"]["model"] for r in read_records(tmp_path / "r" / "records.jsonl").records] == ["resnet18"]


def test_report_into_an_unwritable_place_is_one_line(tmp_path, capsys):
    run = write_run(tmp_path / "run", cpu_records())
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_error_line(run_cli(capsys, "report", str(run), "--out", str(blocker / "report")))
    assert "cannot write the report" in line and "--out" in line


def test_lines_that_are_not_records_do_not_break_show_or_report(tmp_path, capsys):
    run = write_run(tmp_path / "run", cpu_records())
    with (run / "records.jsonl").open("a") as handle:
        handle.write("[1, 2, 3]\n" + json.dumps({"schema_version": 1}) + "\n")
    for args in (["show", str(run)], ["report", str(run), "--out", str(tmp_path / "rep"), "--quiet"]):
        result = run_cli(capsys, *args)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "not a record" in result.stderr + result.stdout


def test_show_and_report_agree_on_a_newer_schema(tmp_path, capsys):
    record = {**cpu_records()[0], "schema_version": 99}
    run = write_run(tmp_path / "run", [record])
    for args in (["show", str(run)], ["report", str(run), "--out", str(tmp_path / "rep")]):
        assert "newer harness (record schema 99" in one_error_line(run_cli(capsys, *args))


def test_an_fp32_file_is_not_recorded_as_fp16(tmp_path, capsys):
    path = onnx_graphs.classifier(tmp_path / "m.onnx")
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(path), "--precision", "fp16",
                                  "--batch-sizes", "1", "--out", str(tmp_path)))
    assert "holds fp32 weights" in line and "--precision fp32" in line


def test_an_empty_onnx_file(tmp_path, capsys):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    line = one_error_line(run_cli(capsys, "bench", "--runtime", "ort", "--onnx", str(empty), "--batch-sizes", "1"))
    assert "is empty (0 bytes)" in line


@pytest.mark.parametrize("content, expected", [(b"", "is empty"), (b"not weights\n", "is not a PyTorch state dict")])
def test_damaged_weights_files(tmp_path, content, expected, capsys):
    weights = tmp_path / "w.pth"
    weights.write_bytes(content)
    line = one_error_line(run_cli(capsys, *NULL, "--weights", str(weights), "--out", str(tmp_path)))
    assert expected in line and str(weights) in line


def test_a_cache_that_is_not_a_folder_is_caught_up_front(tmp_path, capsys):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    line = one_error_line(run_cli(capsys, "export", "--models", "resnet18", "--cache-dir", str(blocker)))
    assert "cannot write to the artifact cache" in line and "--cache-dir" in line and "--out" not in line
    line = one_error_line(run_cli(capsys, *NULL, "--out", str(tmp_path), "--cache-dir", str(blocker / "sub")))
    assert "artifact cache" in line


def test_output_outside_a_terminal_is_not_cut(tmp_path):
    """Captured by a pipe with no COLUMNS, rich fell back to 80 columns and printed 'Mobile…'."""
    run = write_run(tmp_path / "run", cpu_records())
    env_without_columns = {"COLUMNS": ""}
    result = harness("best", str(run), "--max-memory", "1GB", env=env_without_columns)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and "Mobilenet_v2" in result.stdout


def test_json_outputs_for_scripts(tmp_path, capsys):
    run = write_run(tmp_path / "run", cpu_records())
    best = json.loads(run_cli(capsys, "best", str(run), "--max-memory", "1GB", "--json").stdout)
    assert best["best"]["model"] == "mobilenet_v2" and best["pareto_front"]
    check = run_cli(capsys, "check", str(run), "--profile", "workstation", "--models", "resnet50", "--json")
    verdicts = json.loads(check.stdout)
    assert verdicts["models"] == 1 and verdicts["checks"][0]["criteria"][0]["name"] == "memory"
    shown = json.loads(run_cli(capsys, "show", str(run), "--json").stdout)
    assert len(shown) == 10 and {"model", "batch_size", "images_per_s", "memory_peak_bytes"} <= set(shown[0])


def test_an_unknown_builder_fails_its_models_prepare_job_with_one_line(tmp_path, capsys):
    """Before: an AttributeError in every cell of the model. Now the prepare job, before any measuring
    cell, names the entry; the model's other cells are skipped with that reason."""
    catalogue = tmp_path / "models.yaml"
    shipped = (ROOT / "harness" / "data" / "models.yaml").read_text()
    catalogue.write_text(shipped.replace("builder: resnet18\n", "builder: resnet19\n", 1))
    result = run_cli(capsys, "--catalogue", str(catalogue), "bench", "--runtime", "torch", "--models", "resnet18",
                     "--batch-sizes", "1,2", "--out", str(tmp_path), "--run-id", "r")
    assert result.returncode == 1 and "Traceback" not in result.stdout
    first, second = read_records(tmp_path / "r" / "records.jsonl").records
    assert first["status"] == "error" and first["error_type"] == "UnknownBuilder"
    assert "models.yaml entry 'resnet18': torchvision has no builder 'resnet19'" in first["error"]
    assert second["status"] == "skipped" and "resnet19" in second["error"]


def test_a_dla_core_without_a_gpu_is_named_as_given(monkeypatch):
    """--device dla:9 (with ort or ov too) on a machine without CUDA: the line names dla:9, not the cuda:0 it sits
    beside."""
    from harness.cli.common import check_device
    from harness.errors import UserError
    from runtimes import cuda_driver

    monkeypatch.setattr(cuda_driver, "device_count", lambda: 0)
    with pytest.raises(UserError) as raised:
        check_device("dla:9")
    assert str(raised.value).startswith("device 'dla:9' (a Jetson's DLA core, beside its GPU cuda:0; trt, trtexec "
                                        "only) asked for, but no CUDA device is visible here")


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_full_disk_while_writing_a_report_is_one_line(tmp_path, monkeypatch, capsys, command):
    """report's files and compare --markdown on a full disk were an OSError traceback; now one line naming the
    file and what to do, exit 1."""
    import errno

    from harness.cli.main import main

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("harness.reports.report.write_atomically", full)
    monkeypatch.setattr("harness.cli.compare.write_atomically", full)
    base = write_run(tmp_path / "base", cpu_records("ort"))
    cand = write_run(tmp_path / "cand", cpu_records("ort", speed=0.5))
    args = (["report", str(base), "--out", str(tmp_path / "r"), "--quiet"] if command == "report" else
            ["compare", str(base), str(cand), "--markdown", str(tmp_path / "c.md")])
    assert main(args) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: cannot write ") and "No space left on device; make room" in lines[-1]
    assert "Traceback" not in "\n".join(lines)
