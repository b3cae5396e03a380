"""Jetson facts read from fixture trees shaped like real boards (tests/fixtures/jetson, formats cited there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.measure import jetson

BOARDS = Path(__file__).resolve().parent / "fixtures" / "jetson"


@pytest.fixture
def board(monkeypatch):
    def use(name: str) -> None:
        monkeypatch.setenv(jetson.ROOT_ENV, str(BOARDS / name))

    return use


def test_not_a_jetson(monkeypatch, tmp_path):
    monkeypatch.setenv(jetson.ROOT_ENV, str(tmp_path))
    assert jetson.facts() == {"is_jetson": False}


@pytest.mark.parametrize("name, l4t, jetpack, module, mode", [
    ("nano", "32.7.1", "4.6.1", "NVIDIA Jetson Nano Developer Kit", {"id": 0, "name": "MAXN"}),
    ("xavier-nx", "35.2.1", "5.1", "NVIDIA Jetson Xavier NX Developer Kit", {"id": 2, "name": "MODE_15W_6CORE"}),
    ("orin-nano", "36.4.0", "6.1", "NVIDIA Jetson Orin Nano Developer Kit", {"id": 0, "name": "15W"}),
])
def test_release_module_and_power_mode(board, name, l4t, jetpack, module, mode):
    board(name)
    facts = jetson.facts()
    assert facts["is_jetson"] and facts["l4t"] == l4t and facts["jetpack"] == jetpack
    assert facts["module"] == module and facts["power_mode"] == mode


def test_clocks_pinned_or_not(board):
    board("nano")
    nano = jetson.clocks()
    assert nano["gpu_hz"] == {"cur": 921_600_000, "min": 76_800_000, "max": 921_600_000}
    assert nano["emc_hz"] == {"cur": 1_600_000_000} and not nano["pinned"] and len(nano["cpu_khz"]) == 4
    board("orin-nano")
    orin = jetson.clocks()
    assert orin["pinned"] and "root only" in orin["emc_hz"]["missing"]
    board("xavier-nx")
    assert jetson.clocks()["emc_hz"]["max"] == 1_600_000_000


def test_throttling_from_passive_trip_points(board):
    board("xavier-nx")
    assert jetson.thermal()["throttling"] == ["GPU-therm"]
    board("nano")
    zones = jetson.thermal()
    assert zones["throttling"] == [] and zones["zones"]["CPU-therm"]["passive_trip_mC"] == 97_000


def test_process_gpu_memory_from_nvmap(board):
    board("xavier-nx")
    assert jetson.process_gpu_memory(pid=4242)["bytes"] == (81920 + 2048) * 1024
    assert jetson.process_gpu_memory(pid=1)["bytes"] == 0
    board("nano")
    assert "needs root" in jetson.process_gpu_memory()["missing"]


def test_clock_changes_make_a_list():
    before = {"gpu_hz": {"cur": 921_600_000}, "emc_hz": {"cur": 1_600_000_000}}
    after = {"gpu_hz": {"cur": 614_400_000}, "emc_hz": {"cur": 1_600_000_000}}
    assert jetson.clock_changes(before, after) == ["GPU 922->614 MHz"]
    assert jetson.clock_changes(before, before) == []


def test_a_cell_on_a_board_records_its_facts_and_is_invalid_when_throttling(tmp_path):
    """A whole cell (the null runtime) with the worker reading a fixture board: the record carries the board's
    facts before and after, unified memory from its meminfo, and the thermal verdict."""
    import json

    from tests.test_cli import harness

    result = harness("bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "1", "--out",
                     str(tmp_path), "--run-id", "r", env={jetson.ROOT_ENV: str(BOARDS / "xavier-nx")})
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    assert record["jetson"]["after"]["module"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert any("thermal throttling: GPU-therm" in reason for reason in record["validity"]["reasons"])
    assert record["memory"]["jetson_unified"]["baseline_bytes"] == 512000 * 1024
    env = json.loads(next((tmp_path / "r").glob("env-*.json")).read_text())
    assert env["jetson"]["l4t"] == "35.2.1" and env["jetson"]["power_mode"]["name"] == "MODE_15W_6CORE"
