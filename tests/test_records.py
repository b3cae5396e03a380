from __future__ import annotations

import json

import pytest

from harness.records import SCHEMA_VERSION, append_record, read_records


def _record(i: int, status: str = "ok") -> dict:
    return {"cell_id": f"m|null|fp32|bs{i}|cpu", "status": status, "samples_ms": {"host": [0.1 * i, 0.2]}}


def test_round_trip(tmp_path):
    path = tmp_path / "records.jsonl"
    for i in range(3):
        append_record(path, _record(i))
    read = read_records(path)
    assert read.skipped == []
    assert [r["cell_id"] for r in read.records] == [f"m|null|fp32|bs{i}|cpu" for i in range(3)]
    assert all(r["schema_version"] == SCHEMA_VERSION for r in read.records)
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


def test_appending_after_a_torn_line_keeps_later_records(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _record(1))
    with path.open("ab") as handle:
        handle.write(b'{"schema_version": 1, "cell_id": "half')
    append_record(path, _record(3))
    read = read_records(path)
    # the torn line and the next record share a line: that line is unreadable, the first record survives
    assert [r["cell_id"] for r in read.records] == ["m|null|fp32|bs1|cpu"]
    assert len(read.skipped) == 1


def test_other_schema_versions_are_skipped(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"schema_version": 999, "status": "ok"}) + "\n")
    read = read_records(path)
    assert read.records == [] and "schema_version 999" in read.skipped[0]


def test_status_must_be_known_and_values_finite(tmp_path):
    with pytest.raises(ValueError, match="status"):
        append_record(tmp_path / "r.jsonl", {"status": "fine"})
    with pytest.raises(ValueError):
        append_record(tmp_path / "r.jsonl", {"status": "ok", "x": float("nan")})
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_text() == ""
