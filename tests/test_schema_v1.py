"""Runs written with record schema 1 (before records named their host and env.json became one file per
host) still show, report, best and check exactly as before. The fixture is a real run made with schema 1
(`bench --runtime torch,ort --models squeezenet1_1,mobilenet_v2 --batch-sizes 1,2`, 2-core EPYC), and
`expected/` holds what that harness printed for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli

FIXTURE = Path("tests") / "fixtures" / "v1_run"
EXPECTED = Path(__file__).resolve().parent / "fixtures" / "v1_run" / "expected"


@pytest.mark.parametrize("name, args, exit_code", [
    ("show", ["show", str(FIXTURE)], 0),
    ("best", ["best", str(FIXTURE), "--max-memory", "1GB"], 0),
    ("check", ["check", str(FIXTURE), "--profile", "workstation", "--models", "squeezenet1_1,mobilenet_v2"], 1),
])
def test_schema_1_run_prints_as_before(name, args, exit_code, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # FIXTURE is relative, as the expected output names it
    result = run_cli(capsys, *args)
    assert result.returncode == exit_code, result.stderr
    assert result.stdout == (EXPECTED / f"{name}.txt").read_text()


def test_schema_1_run_reports_as_before(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = run_cli(capsys, "report", str(FIXTURE), "--out", str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "tables.md").read_text() == (EXPECTED / "tables.md").read_text()
