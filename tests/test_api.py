"""The Python API as a notebook uses it: run a sweep, get typed records, load runs into a DataFrame, write it;
mistakes raise UserError with the CLI's one line; the README's example runs as written."""

from __future__ import annotations

import re

import pandas
import pytest

from harness import api
from tests.helpers import ROOT


def test_bench_returns_typed_records_and_a_frame_with_one_row_per_cell(tmp_path):
    run = api.bench(["squeezenet1_1", "resnet18"], ["null"], batch_sizes=[1, 2], out=tmp_path, run_id="nb")
    assert run.ok and run.run_dir == tmp_path / "nb"
    assert sorted((r.cell.model, r.cell.batch_size) for r in run.records) == \
        [("resnet18", 1), ("resnet18", 2), ("squeezenet1_1", 1), ("squeezenet1_1", 2)]
    frame = run.frame()
    assert len(frame) == 4 and set(frame["runtime"]) == {"null"} and (frame["status"] == "ok").all()
    assert (frame["images_per_s"] > 0).all() and (frame["memory_host_rss_bytes"] > 0).all()
    row = frame.set_index(["model", "batch_size"]).loc[("resnet18", 2)]
    record = next(r for r in run.records if r.cell.model == "resnet18" and r.cell.batch_size == 2)
    assert row["median_ms"] == record.timing.host.median_ms and row["samples"] == record.timing.host.samples


def test_frames_of_several_runs_merge_and_round_trip_through_csv(tmp_path):
    api.bench("squeezenet1_1", "null", batch_sizes=[1], out=tmp_path, run_id="a")
    api.bench("resnet18", "null", batch_sizes=[1], out=tmp_path, run_id="b")
    both = api.frame(tmp_path / "a", tmp_path / "b")
    assert sorted(both["model"]) == ["resnet18", "squeezenet1_1"] and set(both["run_id"]) == {"a", "b"}
    assert len(api.frame(tmp_path)) == 2, "a parent folder reads every run in it"
    both.to_csv(tmp_path / "cells.csv", index=False)
    again = pandas.read_csv(tmp_path / "cells.csv")
    assert list(again.columns) == list(both.columns) and again["images_per_s"].tolist() == \
        pytest.approx(both["images_per_s"].tolist())


def test_resume_returns_the_run_it_resumed(tmp_path):
    """resume= went with a new run id the command ignored: the Run named a folder that does not exist, with no
    records and exit code 0."""
    first = api.bench("squeezenet1_1", "null", batch_sizes=[1, 2], out=tmp_path, run_id="first")
    for resume in ("first", "last"):
        again = api.bench("squeezenet1_1", "null", batch_sizes=[1, 2], out=tmp_path, resume=resume)
        assert again.run_dir == first.run_dir and len(again.records) == 2, resume
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first"]


def test_a_bundle_is_benched_without_models(tmp_path, bundle):
    """models=None leaves --models out, as a bundle's bench and verify need (it was a TypeError)."""
    run = api.bench(None, "null", bundle=str(bundle), batch_sizes=[1], out=tmp_path / "runs")
    assert run.ok and [r.cell.model for r in run.records] == ["squeezenet1_1"]


@pytest.mark.parametrize("call, says", [
    (lambda out: api.bench(["nope"], ["null"], out=out), "unknown model 'nope'"),
    (lambda out: api.bench(["resnet18"], ["null"], batch_sizes=[0], out=out), "batch"),
    (lambda out: api.bench(["resnet18"], ["null"], colour="red", out=out), "bench(): unknown options: --colour red"),
    (lambda out: api.bench(["resnet18"], ["nope"], out=out), "nope"),
    (lambda out: api.frame(out / "missing"), "missing"),
    (lambda out: api.frame(), "which runs?")])
def test_mistakes_raise_the_clis_one_line(tmp_path, call, says):
    with pytest.raises(api.UserError, match=re.escape(says)):
        call(tmp_path)
    assert not list(tmp_path.glob("*/records.jsonl")), "a refused call leaves no run behind"


def test_the_readmes_example_runs_as_written(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md (Python API)", "exec"), namespace)
    assert isinstance(namespace["frame"], pandas.DataFrame) and len(namespace["frame"]) == 2
    assert (tmp_path / "cells.csv").is_file()
