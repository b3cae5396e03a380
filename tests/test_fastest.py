"""The fastest runtime per model, and `best` across runtimes and precisions, from hand-written records."""

from __future__ import annotations

import json

from harness.reports import data
from harness.reports.best import Constraints, best, ranked
from harness.reports.fastest import model_speeds, wins_by_family
from harness.reports.report import write_report
from tests.report_fixtures import accuracy_record, cpu_records, record, write_run
from tests.helpers import run_cli

DEVICE = "CPU Test CPU (box)"


def _four_runtimes() -> list[dict]:
    """torch fp32 at the fixture's speeds; ort x2; ov fp32 x1.5 and bf16 x3; torch-compile x2.5 on resnet50 only."""
    rows = cpu_records("torch") + cpu_records("ort", speed=2.0) + cpu_records("ov", speed=1.5)
    rows += [dict(r, cell={**r["cell"], "precision": "bf16"}) for r in cpu_records("ov", speed=3.0)]
    rows += [record("resnet50", "torch-compile", 1, 25.0 * 2.5, 1_300_000_000)]
    return rows


def test_each_model_gets_its_fastest_runtime_at_fp32_and_at_any_precision(tmp_path):
    dataset = data.load([write_run(tmp_path / "run", _four_runtimes())])
    rows = {row.model: row for row in model_speeds(dataset)[DEVICE]}
    resnet = rows["resnet50"]
    assert resnet.reference_ms == 40.0
    assert (resnet.fastest.label, round(resnet.fastest.speedup, 2)) == ("ov · bf16", 3.0)
    assert (resnet.fastest_fp32.label, round(resnet.fastest_fp32.speedup, 2)) == ("torch-compile · fp32", 2.5)
    assert [c.label for c in resnet.contenders] == ["ov · bf16", "torch-compile · fp32", "ort · fp32", "ov · fp32",
                                                    "torch · fp32"]
    assert rows["vgg16"].fastest_fp32.label == "ort · fp32"  # no torch-compile cell for it
    assert resnet.accuracy_drops["ov · bf16"] is None  # no accuracy run
    wins = wins_by_family(list(rows.values()), fp32_only=True)
    assert wins["Fam"] == {"ort · fp32": 2, "torch-compile · fp32": 1} and wins["Other"] == {"ort · fp32": 2}
    assert wins_by_family(list(rows.values()))["Fam"] == {"ov · bf16": 3}


def test_the_null_runtime_is_never_the_fastest(tmp_path):
    """The null runtime runs no model (~0 ms): it was every model's fastest runtime in the report."""
    dataset = data.load([write_run(tmp_path / "run", _four_runtimes() + cpu_records("null", speed=1000.0))])
    rows = {row.model: row for row in model_speeds(dataset)[DEVICE]}
    assert rows["resnet50"].fastest.label == "ov · bf16" and rows["resnet50"].of("null · fp32") is None


def test_a_model_without_the_torch_reference_has_times_but_no_speedup(tmp_path):
    rows = [record("resnet50", "ort", 1, 50.0, 1), record("resnet50", "ov", 1, 40.0, 1)]
    [row] = model_speeds(data.load([write_run(tmp_path / "run", rows)]))[DEVICE]
    assert row.reference_ms is None and row.fastest.runtime == "ort" and row.fastest.speedup is None


def test_report_writes_the_fastest_runtime_table_and_chart(tmp_path):
    rows = _four_runtimes() + [accuracy_record("resnet50", "ov", "fp32", 76.0),
                               accuracy_record("resnet50", "ov", "bf16", 75.8)]
    report = write_report(data.load([write_run(tmp_path / "run", rows)]), tmp_path / "out", "runtimes")
    tables = (tmp_path / "out" / "tables.md").read_text()
    heading = f"### Fastest runtime per model on {DEVICE}, batch 1"
    assert heading in tables
    fastest = tables.split(heading)[1].splitlines()
    resnet = next(line for line in fastest if line.startswith("| Resnet50 "))
    assert "| 40.00 |" in resnet and "torch-compile · fp32 x2.50" in resnet
    assert "ov · bf16 x3.00, Δ top-1 -0.20" in resnet
    squeezenet = next(line for line in fastest if line.startswith("| Squeezenet1_1 "))
    assert "ov · bf16 x3.00, Δ top-1 not measured" in squeezenet
    assert "ov · bf16 (3)" in tables  # wins by family
    names = {path.name for path in report.files}
    assert "fastest-runtime-cpu-test-cpu-box.png" in names and "fastest-runtime-cpu-test-cpu-box.csv" in names
    assert "Fastest runtime per model" in report.html_path.read_text()


def test_best_ranks_lower_precisions_only_on_their_own_measured_top1(tmp_path):
    dataset = data.load([write_run(tmp_path / "run", _four_runtimes())])
    # published top-1 is fp32's: bf16 would tie with it and win on speed, so it stays out of a ranking
    pick = best(dataset.points, Constraints(min_fps=60))
    assert (pick.model, pick.runtime, pick.precision) == ("resnet50", "torch-compile", "fp32")
    assert all(p.precision == "fp32" for p in ranked(dataset.points, Constraints()))
    # asked for by name, bf16 is ranked by the published figures, as one precision alone
    pick = best(dataset.points, Constraints(min_fps=25, precision="bf16"))
    assert (pick.model, pick.runtime, pick.precision) == ("vgg16", "ov", "bf16")
    # with its own measured top-1, bf16 competes: vgg16 reaches 25 images/s only at bf16 (30; ort fp32 gives 20)
    assert best(dataset.points, Constraints(min_fps=25)).model == "resnet50"
    rows = _four_runtimes() + [accuracy_record("vgg16", "ov", "bf16", 79.9)]
    pick = best(data.load([write_run(tmp_path / "measured", rows)]).points, Constraints(min_fps=25))
    assert (pick.model, pick.runtime, pick.precision, pick.accuracy.top1) == ("vgg16", "ov", "bf16", 79.9)


def test_best_on_the_command_line_says_which_cells_it_left_out(tmp_path, capsys):
    run = write_run(tmp_path / "run", _four_runtimes())
    result = run_cli(capsys, "best", str(run), "--min-fps", "60")
    assert result.returncode == 0, result.stderr
    assert "5 bf16 cells left out: their top-1 is not measured" in " ".join(result.stdout.split())
    assert "--precision bf16" in result.stdout
    chosen = json.loads(run_cli(capsys, "best", str(run), "--min-fps", "60", "--precision", "bf16", "--json").stdout)
    assert chosen["best"]["precision"] == "bf16" and chosen["left_out"] == ""
