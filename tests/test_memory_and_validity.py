"""Memory readings, the memory cap and OOM skipping, the Jetson meminfo parser, and validity verdicts."""

from __future__ import annotations

import os

import pytest

from harness.measure.memory import JetsonUnified, parse_meminfo
from harness.measure.timing import Policy
from harness.measure.validity import frequency_changes, verdict
from harness.sweep.planning import Cell
from harness.sweep.sweep import BenchSettings, Sweep, catalogue_subjects
from tests.faulty_runtimes import AllocatingRuntime

FAST = Policy(warmup_min_iters=1, warmup_min_s=0.0, min_samples=5, min_duration_s=0.0, max_samples=50,
              max_duration_s=5.0)
PLUGINS = "tests.faulty_runtimes"


def _sweep(tmp_path, catalogue, **settings) -> Sweep:
    return Sweep(tmp_path, "run", catalogue_subjects(catalogue.specs), BenchSettings(policy=FAST, **settings))


def test_host_memory_of_a_cell_that_allocates_a_known_amount(tmp_path, catalogue):
    sweep = _sweep(tmp_path, catalogue)
    [plain, allocating] = sweep.run([Cell("resnet18", "null", "fp32", 1, "cpu"),
                                     Cell("resnet18", f"{PLUGINS}:AllocatingRuntime", "fp32", 1, "cpu")])
    for record in (plain, allocating):
        host = record["memory"]["host_rss"]
        assert 0 < host["baseline_bytes"] <= host["peak_bytes"]
    grew = allocating["memory"]["host_rss"]["peak_bytes"] - allocating["memory"]["host_rss"]["baseline_bytes"]
    assert grew == pytest.approx(AllocatingRuntime.ALLOCATED_BYTES, rel=0.1)
    plain_growth = plain["memory"]["host_rss"]["peak_bytes"] - plain["memory"]["host_rss"]["baseline_bytes"]
    assert plain_growth < 20 * 10**6


def test_a_forked_cell_reads_the_host_memory_a_new_interpreter_would(tmp_path, catalogue):
    """Fork does not copy the page tables of the libraries' files; the zygote's children fault them in,
    so torch's ~300 MB of library pages count in a forked cell's RSS as they do in a new interpreter's."""
    cell = Cell("squeezenet1_1", "torch", "fp32", 1, "cpu")
    readings = {}
    for start in ("exec", "fork"):
        [record] = _sweep(tmp_path / start, catalogue, process_start=start).run([cell])
        assert record["status"] == "ok", record.get("error")
        readings[start] = record["memory"]["host_rss"]
    assert readings["fork"]["baseline_bytes"] > 300 * 10**6  # torch is in it
    for key in ("baseline_bytes", "peak_bytes"):
        assert readings["fork"][key] == pytest.approx(readings["exec"][key], rel=0.05), key


def test_unavailable_sources_are_missing_with_a_reason(tmp_path, catalogue):
    [record] = _sweep(tmp_path, catalogue).run([Cell("resnet18", "null", "fp32", 1, "cpu")])
    memory = record["memory"]
    assert memory["cuda_nvml"] == {"missing": "the cell runs on the CPU"}
    assert memory["torch_allocator"] == {"missing": "the cell runs on the CPU"}
    assert "missing" in memory["jetson_unified"]


def test_memory_cap_records_oom_and_skips_larger_batches(tmp_path, catalogue):
    sweep = _sweep(tmp_path, catalogue, max_memory_bytes=1_000 * 10**6)
    runtime = f"{PLUGINS}:BatchProportionalRuntime"
    cells = [Cell("resnet18", runtime, "fp32", b, "cpu") for b in (1, 2, 16, 32, 64)]
    records = sweep.run(cells)
    assert [r["status"] for r in records] == ["ok", "ok", "oom", "skipped", "skipped"]
    assert "batch size 16" in records[3]["error"]
    # resuming the run keeps the skip: the oom is read back from the records (the last record is dropped,
    # as if the run had been killed before writing it)
    path = sweep.records_path
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    more = sweep.run(cells)
    assert [(r["cell"]["batch_size"], r["status"]) for r in more] == [(64, "skipped")]


def test_cli_memory_cap_on_a_real_model(tmp_path, capsys):
    from tests.helpers import run_cli

    result = run_cli(capsys, "bench", "--runtime", "torch", "--models", "squeezenet1_1", "--batch-sizes", "1,64,128",
                     "--max-memory", "1GB", "--out", str(tmp_path), "--show", "memory")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "oom" in result.stdout and "skipped" in result.stdout and "host_rss" in result.stdout
    assert "largest batch that fit 1, out of memory from 64" in result.stdout


JETSON_MEMINFO = """MemTotal:        7859256 kB
MemFree:          312644 kB
MemAvailable:    3866452 kB
Buffers:           99824 kB
NvMapMemFree:      65536 kB
NvMapMemUsed:     471452 kB
HugePages_Total:       0
"""


def test_jetson_meminfo_parser(tmp_path):
    values = parse_meminfo(JETSON_MEMINFO)
    assert values["NvMapMemUsed"] == 471452 * 1024 and values["MemAvailable"] == 3866452 * 1024
    assert values["HugePages_Total"] == 0
    path = tmp_path / "meminfo"
    path.write_text(JETSON_MEMINFO)
    jetson = JetsonUnified(path)
    jetson.start()
    changed = tmp_path / "meminfo.new"
    changed.write_text(JETSON_MEMINFO.replace("471452", "900000").replace("3866452", "3000000"))
    os.replace(changed, path)  # the kernel's file never shows half a rewrite either
    jetson.stop()
    reading = jetson.reading()
    assert reading["baseline_bytes"] == 471452 * 1024 and reading["peak_bytes"] == 900000 * 1024
    assert reading["mem_available_min_bytes"] == 3000000 * 1024
    path.write_text("MemTotal: 1 kB\nMemAvailable: 1 kB\n")
    assert JetsonUnified(path).reading() == {"missing": "no NvMapMemUsed in /proc/meminfo (not a Jetson)"}


def _stats(samples: int = 20, cv: float = 0.01) -> dict:
    return {"samples": samples, "cv": cv}


def test_validity_rules():
    steady = {"cpu0": 2_400_000, "cpu1": 2_400_000}
    assert verdict(_stats(), 10, 0.10, steady, steady) ["valid"]
    few = verdict(_stats(samples=4), 10, 0.10, steady, steady)
    assert not few["valid"] and "too few samples: 4 < 10" in few["reasons"][0]
    noisy = verdict(_stats(cv=0.3), 10, 0.10, steady, steady)
    assert not noisy["valid"] and "coefficient of variation 0.300 > 0.1" in noisy["reasons"][0]
    slowed = verdict(_stats(), 10, 0.10, steady, {"cpu0": 1_200_000, "cpu1": 2_400_000})
    assert not slowed["valid"] and "cpu0 2.40->1.20 GHz" in slowed["reasons"][0]
    unreadable = verdict(_stats(), 10, 0.10, "no readable cpufreq", "no readable cpufreq")
    assert unreadable["valid"] and unreadable["cpu_frequency_khz"]["before"] == "no readable cpufreq"
    busy_gpu = verdict(_stats(), 10, 0.10, steady, steady, {"other_processes": [123], "throttle_reasons_after": 0})
    assert not busy_gpu["valid"] and "pids [123]" in busy_gpu["reasons"][0]
    throttled = verdict(_stats(), 10, 0.10, steady, steady,
                        {"sm_clock_before_mhz": 1980, "sm_clock_after_mhz": 1200, "throttle_reasons_after": 4})
    assert len(throttled["reasons"]) == 2


def test_frequency_changes_within_ten_percent_are_not_changes():
    assert frequency_changes({"cpu0": 2_000_000}, {"cpu0": 2_150_000}) == []


@pytest.mark.slow
def test_strict_reruns_invalid_cells_a_bounded_number_of_times(tmp_path, catalogue):
    sweep = _sweep(tmp_path, catalogue, strict_retries=2, max_cv=0.05)
    [record] = sweep.run([Cell("resnet18", f"{PLUGINS}:JitteryRuntime", "fp32", 1, "cpu")])
    assert record["status"] == "ok" and not record["validity"]["valid"]
    assert len(record["earlier_attempts_invalid_because"]) == 2
    assert sum(1 for _ in open(sweep.records_path)) == 1  # only the last attempt is the cell's record
