from __future__ import annotations

import json

import pytest

from harness.errors import UserError
from harness.records import SCHEMA_VERSION, append_record, read_environments, read_records, repair_torn_tail


def _record(i: int, status: str = "ok") -> dict:
    cell = {"model": "m", "runtime": "null", "precision": "fp32", "batch_size": i + 1, "device": "cpu"}
    record = {"cell_id": f"m|null|fp32|bs{i + 1}|cpu", "cell": cell, "status": status, "kind": "bench",
              "samples_ms": {"host": [0.1 * i, 0.2]}}
    if status == "ok":
        record["timing"] = {"host": {"median_ms": 0.2, "per_image_median_ms": 0.2, "images_per_s": 5000.0,
                                     "samples": 2}}
    return record


def test_round_trip(tmp_path):
    path = tmp_path / "records.jsonl"
    for i in range(3):
        append_record(path, _record(i))
    read = read_records(path)
    assert read.skipped == []
    assert [r["cell_id"] for r in read.records] == [f"m|null|fp32|bs{i + 1}|cpu" for i in range(3)]
    assert all(r["schema_version"] == SCHEMA_VERSION == 2 for r in read.records)
    assert read.records[2]["samples_ms"]["host"] == [0.2, 0.2]
    assert path.read_text().count("\n") == 3  # one line per record


def test_torn_last_line_is_skipped_and_reported(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _record(1))
    append_record(path, _record(2))
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines()[0][:40])  # a crash in the middle of a third write
    read = read_records(path)
    assert len(read.records) == 2
    assert len(read.skipped) == 1 and "torn last line" in read.skipped[0] and ":3:" in read.skipped[0]


def test_appending_after_a_torn_line_starts_a_fresh_line(tmp_path):
    """Before: the new record was glued onto the fragment, and both were lost to every reader."""
    path = tmp_path / "records.jsonl"
    append_record(path, _record(1))
    with path.open("ab") as handle:
        handle.write(b'{"schema_version": 2, "cell_id": "half')
    append_record(path, _record(3))
    read = read_records(path)
    assert [r["cell_id"] for r in read.records] == ["m|null|fp32|bs2|cpu", "m|null|fp32|bs4|cpu"]
    assert len(read.skipped) == 1 and "unreadable line" in read.skipped[0]


def test_torn_tail_is_repaired_and_kept_aside(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _record(1))
    assert repair_torn_tail(path) is None
    with path.open("ab") as handle:
        handle.write(b'{"schema_version": 2, "cell_id": "half')
    note = repair_torn_tail(path)
    assert note and "torn" in note and "run again" in note
    assert path.read_bytes().endswith(b"}\n") and len(read_records(path).records) == 1
    [aside] = tmp_path.glob("records.jsonl.torn-*")
    assert aside.read_bytes() == b'{"schema_version": 2, "cell_id": "half'


@pytest.mark.parametrize("line", [
    "[1, 2, 3]", '"a string"', "42", "null",
    json.dumps({"schema_version": 1}),
    json.dumps({**_record(0), "schema_version": 2, "cell": {**_record(0)["cell"], "batch_size": "4"}}),
    json.dumps({**_record(0), "schema_version": 2, "status": "fine"}),
    json.dumps({**_record(0), "schema_version": 2, "timing": None}),
    json.dumps({**_record(0), "schema_version": "2"}),
], ids=["list", "string", "number", "null", "only-version", "string-batch", "unknown-status", "ok-without-timing",
        "string-version"])
def test_valid_json_that_is_not_a_record_is_skipped_with_the_reason(tmp_path, line):
    path = tmp_path / "records.jsonl"
    append_record(path, _record(0))
    with path.open("a") as handle:
        handle.write(line + "\n")
    read = read_records(path)
    assert [r["cell_id"] for r in read.records] == ["m|null|fp32|bs1|cpu"]
    assert len(read.skipped) == 1 and ":2: not a record" in read.skipped[0]


def test_a_newer_schema_is_refused_by_every_reader(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"schema_version": 999, "status": "ok"}) + "\n")
    read = read_records(path)
    assert read.records == [] and read.newer_schema == 999
    with pytest.raises(UserError, match="newer harness.*schema 999"):
        read.check_readable(tmp_path)


def test_schema_1_records_are_upgraded_with_the_runs_host(tmp_path):
    (tmp_path / "env.json").write_text(json.dumps({"hostname": "oldbox"}))
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({**_record(0), "schema_version": 1}) + "\n")
    [record] = read_records(path).records
    assert record["schema_version"] == 2 and record["host"] == "oldbox" and record["upgraded_from"] == 1
    environments = read_environments(tmp_path)
    assert environments["oldbox"] == environments[None] == {"hostname": "oldbox"}


def test_status_must_be_known_and_values_finite(tmp_path):
    with pytest.raises(ValueError, match="status"):
        append_record(tmp_path / "r.jsonl", {"status": "fine"})
    with pytest.raises(ValueError):
        append_record(tmp_path / "r.jsonl", {"status": "ok", "x": float("nan")})
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_text() == ""
