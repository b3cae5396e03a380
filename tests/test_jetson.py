"""Jetson facts read from fixture trees shaped like real boards (tests/fixtures/jetson, formats cited there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.measure import jetson, validity

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
    assert facts["module"] == module and {k: facts["power_mode"][k] for k in ("id", "name")} == mode


@pytest.mark.parametrize("name, tensorrt", [("nano", "8.2.1"), ("xavier-nx", "8.5.2"), ("orin-nano", "10.3.0")])
def test_the_boards_tensorrt_from_its_packages(board, name, tensorrt):
    board(name)
    assert jetson.board_tensorrt() == tensorrt
    assert "libnvinfer7" not in jetson.installed_packages(), "a removed package (config files only) is not installed"


def test_without_nv_tegra_release_the_l4t_core_package_tells(monkeypatch, tmp_path):
    import shutil

    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    (tmp_path / "board" / "etc" / "nv_tegra_release").unlink()
    monkeypatch.setenv(jetson.ROOT_ENV, str(tmp_path / "board"))
    facts = jetson.facts()
    assert facts["is_jetson"] and facts["l4t"] == "36.4.0" and facts["jetpack"] == "6.1"


def test_power_mode_names_come_from_the_conf_nvpmodel_uses(monkeypatch, tmp_path):
    import shutil

    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    root = tmp_path / "board"
    (root / "etc" / "nvpmodel").mkdir()
    (root / "etc" / "nvpmodel" / "nvpmodel_p3767_0003_super.conf").write_text(
        "< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n")
    (root / "var" / "lib" / "nvpmodel" / "conf_file_path").write_text("/etc/nvpmodel/nvpmodel_p3767_0003_super.conf\n")
    (root / "var" / "lib" / "nvpmodel" / "status").write_text("pmode:0002 fmode:quiet\n")
    monkeypatch.setenv(jetson.ROOT_ENV, str(root))
    mode = jetson.power_mode()
    assert mode["name"] == "MAXN_SUPER" and mode["conf"].endswith("nvpmodel_p3767_0003_super.conf")


def test_clocks_pinned_or_not(board):
    board("nano")
    nano = jetson.clocks()
    assert nano["gpu_hz"] == {"cur": 921_600_000, "min": 76_800_000, "max": 921_600_000}
    assert nano["emc_hz"] == {"cur": 1_600_000_000} and nano["pinned"] is False and len(nano["cpu_khz"]) == 4
    assert "GPU 77-922 MHz" in nano["pinned_why"]
    board("orin-nano")
    orin = jetson.clocks()
    assert "root only" in orin["emc_hz"]["missing"]
    assert orin["pinned"] is None and "EMC min/max unreadable" in orin["pinned_why"], "unreadable is not pinned"
    board("xavier-nx")
    assert jetson.clocks()["emc_hz"]["max"] == 1_600_000_000


def test_pinned_needs_gpu_and_emc_ranges_closed():
    closed, open_ = {"cur": 5, "min": 5, "max": 5}, {"cur": 5, "min": 1, "max": 9}
    assert jetson.pinned(closed, closed)[0] is True
    assert jetson.pinned(closed, open_)[0] is False and jetson.pinned(open_, {"missing": "root"})[0] is False
    assert jetson.pinned(closed, {"cur": 5})[0] is None and jetson.pinned(None, closed)[0] is None


def test_throttling_from_passive_trip_points(board):
    board("xavier-nx")
    assert jetson.thermal()["throttling"] == ["GPU-therm"]
    board("nano")
    zones = jetson.thermal()
    assert zones["throttling"] == [] and zones["zones"]["CPU-therm"]["passive_trip_mC"] == 97_000


def test_a_passive_trip_that_does_not_cap_clocks_is_not_throttling(board):
    """The Nano's PLL-therm has a passive trip, dram-throttle at 70 °C, that changes DRAM refresh, not clocks: at
    71 °C it is hot, not throttling. Its real zones are all there."""
    board("nano")
    zones = jetson.thermal()
    assert sorted(zones["zones"]) == ["AO-therm", "CPU-therm", "GPU-therm", "PLL-therm", "PMIC-Die", "thermal-fan-est"]
    assert zones["throttling"] == [] and zones["hot"] == ["PLL-therm"]
    facts = jetson.facts()
    reasons, notes = validity.board_findings(facts, facts)
    assert not any("thermal throttling" in r for r in reasons)
    assert any("PLL-therm" in n for n in notes)


def test_an_unpinned_board_is_valid_and_its_clock_range_is_shown(board):
    """Two instant devfreq readings on a governed board differ almost always: that is shown, never judged. On a
    pinned board a clock below its pinned value is throttling."""
    board("nano")
    before = jetson.facts()
    after = {**before, "clocks": {**before["clocks"], "gpu_hz": {"cur": 307_200_000, "min": 76_800_000,
                                                                  "max": 921_600_000}}}
    during = {"gpu_mhz": {"min": 76.8, "median": 614.4, "max": 921.6}}
    stats = {"samples": 50, "cv": 0.01}
    result = validity.verdict(stats, 10, 0.1, {"cpu0": 1_479_000}, {"cpu0": 102_000}, None, before, after, during)
    assert result["valid"], result["reasons"]
    assert any("GPU 77-922 MHz (median 614)" in n for n in result["notes"])
    assert any("CPU frequency moved" in n for n in result["notes"])
    pinned_clocks = {"gpu_hz": {"cur": 921_600_000, "min": 921_600_000, "max": 921_600_000},
                     "emc_hz": {"cur": 1_600_000_000, "min": 1_600_000_000, "max": 1_600_000_000}, "pinned": True}
    pinned_before, pinned_after = {**before, "clocks": pinned_clocks}, {**before, "clocks": pinned_clocks}
    throttled = validity.verdict(stats, 10, 0.1, {}, {}, None, pinned_before, pinned_after,
                                 {"gpu_mhz": {"min": 614.4, "median": 921.6, "max": 921.6}})
    assert not throttled["valid"] and "below its pinned 922 MHz" in throttled["reasons"][0]


def test_the_clock_trace_samples_the_board_while_running(board):
    board("xavier-nx")
    trace = jetson.ClockTrace(interval_s=0.01)
    trace.start()
    import time

    time.sleep(0.1)
    trace.stop()
    summary = trace.summary()
    assert summary["samples"] >= 3 and summary["gpu_mhz"]["min"] > 0 and summary["hottest_zone_C"]["max"] == 99.5
    assert len(summary["trace"][0]) == 4


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


def test_a_cell_on_a_board_records_its_facts_and_is_invalid_when_throttling(tmp_path, capsys, monkeypatch):
    """A whole cell (the null runtime) with the worker reading a fixture board: the record carries the board's
    facts before and after, unified memory from its meminfo, and the thermal verdict."""
    import json

    from tests.helpers import run_cli

    monkeypatch.setenv(jetson.ROOT_ENV, str(BOARDS / "xavier-nx"))
    result = run_cli(capsys, "bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "1", "--out",
                     str(tmp_path), "--run-id", "r")
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    assert record["jetson"]["after"]["module"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert any("thermal throttling: GPU-therm" in reason for reason in record["validity"]["reasons"])
    assert record["memory"]["jetson_unified"]["baseline_bytes"] == 512000 * 1024
    env = json.loads(next((tmp_path / "r").glob("env-*.json")).read_text())
    assert env["jetson"]["l4t"] == "35.2.1" and env["jetson"]["power_mode"]["name"] == "MODE_15W_6CORE"


def test_the_memory_verdict_is_the_processs_own_use_not_the_boards():
    """NvMapMemUsed counts every process's GPU buffers: a board with 3 GB in use elsewhere must not fail a model
    whose process uses 0.7 GB (its RSS, libraries included, plus its own nvmap rows)."""
    from types import SimpleNamespace

    from harness.measure.memory import jetson_process
    from harness.parts import Memory
    from harness.reports.check import PASS, _measured_memory, load_profile

    host = {"baseline_bytes": 100 << 20, "peak_bytes": 500 << 20}
    unified = {"baseline_bytes": 1 << 30, "peak_bytes": 3 << 30, "process_nvmap": {"bytes": 200 << 20}}
    own = jetson_process(host, unified)
    assert own["peak_bytes"] == 700 << 20 and own["system_nvmap_peak_bytes"] == 3 << 30
    assert "own rows" not in own["gpu_buffers_from"] and "iovmm" in own["gpu_buffers_from"]
    no_root = jetson_process(host, {**unified, "process_nvmap": {"missing": "needs root"}})
    assert no_root["gpu_buffers_bytes"] == 2 << 30 and "rise of the system-wide NvMapMemUsed" in \
        no_root["gpu_buffers_from"]
    assert "missing" in jetson_process(host, {"missing": "no NvMapMemUsed"})
    record = SimpleNamespace(ok=True, memory=Memory.from_json({"jetson_process": own}),
                             peak_bytes=lambda source: own["peak_bytes"] if source == "jetson_process" else None)
    profile = load_profile("jetson-nano").model_copy(update={"memory_budget_bytes": 1 << 30})
    criterion = _measured_memory(profile, record, "jetson_process")
    assert criterion.verdict == PASS and "system-wide NvMapMemUsed 3.22 GB" in criterion.figure


def test_a_jetson_without_nvmapmemused_says_so(monkeypatch, tmp_path):
    from harness.measure.memory import JetsonUnified

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text("# R38 (release), REVISION: 2.0\n")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 1000 kB\nMemAvailable: 500 kB\n")
    monkeypatch.setenv(jetson.ROOT_ENV, str(tmp_path))
    reason = JetsonUnified().reading()["missing"]
    assert "not a Jetson" not in reason and "a Jetson without it" in reason


@pytest.mark.parametrize("name, part, module", [("nano", "p3448-0000", "Jetson Nano (4 GB)"),
                                                ("xavier-nx", "p3668-0000", "Jetson Xavier NX (developer kit)"),
                                                ("orin-nano", "p3767-0005", "Jetson Orin Nano (developer kit, 8 GB)")])
def test_the_module_by_its_part_number(board, name, part, module):
    board(name)
    facts = jetson.facts()
    assert facts["part_number"]["part"] == part and facts["module_name"] == module


def test_the_part_number_from_the_eeprom_or_the_dts_file_name(monkeypatch, tmp_path):
    import shutil

    shutil.copytree(BOARDS / "nano", tmp_path / "board")
    root = tmp_path / "board"
    (root / "proc" / "device-tree" / "nvidia,boardids").unlink()
    eeprom = root / "sys" / "bus" / "i2c" / "devices" / "0-0050" / "eeprom"
    eeprom.parent.mkdir(parents=True)
    eeprom.write_bytes(b"\x00" * 20 + b"699-13448-0003-400 B.0\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 207)
    monkeypatch.setenv(jetson.ROOT_ENV, str(root))
    assert jetson.part_number() == {"part": "p3448-0003", "from": "the module EEPROM (i2c bus 0)"}
    eeprom.unlink()
    (root / "proc" / "device-tree" / "nvidia,dtsfilename").write_text(
        "/dvs/git/dirty/git-master_linux/kernel/kernel-4.9/arch/arm64/boot/dts/../../../../../../hardware/nvidia/"
        "platform/t210/porg/kernel-dts/tegra210-p3448-0002-p3449-0000-b00.dts\x00")
    assert jetson.part_number()["part"] == "p3448-0002"


def test_a_power_mode_without_a_name_in_the_conf_says_so(monkeypatch, tmp_path):
    import shutil

    from harness.cli.on_device import board_warnings
    from harness.reports.check import load_profile

    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    (tmp_path / "board" / "var" / "lib" / "nvpmodel" / "conf_file_path").write_text("/etc/nvpmodel/gone.conf\n")
    monkeypatch.setenv(jetson.ROOT_ENV, str(tmp_path / "board"))
    warnings = board_warnings(load_profile("jetson-orin-nano").model_copy(update={"power_mode": "MAXN_SUPER"}),
                              jetson.facts())
    assert any("mode 0 (no name for it in /etc/nvpmodel/gone.conf)" in w for w in warnings), warnings


def _pinned_board(tmp_path: Path) -> Path:
    """The Xavier NX fixture with its GPU and EMC pinned (min = max), as jetson_clocks leaves them."""
    import shutil

    root = tmp_path / "board"
    shutil.copytree(BOARDS / "xavier-nx", root)
    gpu = next((root / "sys" / "class" / "devfreq").glob("*gv11b"))
    (gpu / "min_freq").write_text((gpu / "max_freq").read_text())
    emc = root / "sys" / "kernel" / "debug" / "bpmp" / "debug" / "clk" / "emc"
    (emc / "min_rate").write_text((emc / "max_rate").read_text())
    return root


@pytest.mark.parametrize("damage", [{"gpu/min_freq": "0\n", "gpu/max_freq": "0\n"},
                                    {"emc/min_rate": "-1\n", "emc/max_rate": "-1\n"},
                                    {"gpu/min_freq": "garbage\n"}, {"gpu/max_freq": None},
                                    {"emc/max_rate": "\xff\xfe"}, {"gpu/min_freq": "2000000000\n"}])
def test_unreadable_or_garbage_clock_ranges_are_unknown_never_pinned(monkeypatch, tmp_path, damage):
    """Every place that records pinning (the facts, the cell's validity notes, check's board warnings) says
    unknown where a range is missing, garbage, not positive or upside down."""
    from harness.cli.on_device import board_warnings
    from harness.reports.check import load_profile

    root = _pinned_board(tmp_path)
    monkeypatch.setenv(jetson.ROOT_ENV, str(root))
    assert jetson.clocks()["pinned"] is True
    folders = {"gpu": next((root / "sys" / "class" / "devfreq").glob("*gv11b")),
               "emc": root / "sys" / "kernel" / "debug" / "bpmp" / "debug" / "clk" / "emc"}
    for where, text in damage.items():
        folder, name = where.split("/")
        path = folders[folder] / name
        path.unlink() if text is None else path.write_text(text)
    facts = jetson.facts()
    assert facts["clocks"]["pinned"] is None, facts["clocks"]
    _, notes = validity.board_findings(facts, facts)
    assert any(note.startswith("clocks pinning unknown") for note in notes), notes
    warnings = board_warnings(load_profile("jetson-xavier-nx"), facts)
    assert any("may not be pinned: unknown" in w for w in warnings), warnings


DAMAGE = {"empty": b"", "garbage": b"garbage\n", "binary": b"\xff\xfe\x00\x01", "negative": b"-5\n",
          "huge": b"99999999999999999999999999\n"}


@pytest.mark.parametrize("name", ["nano", "xavier-nx", "orin-nano"])
def test_every_board_file_damaged_in_turn_gives_no_traceback(tmp_path, monkeypatch, name):
    """Each file of the fixture board made empty, garbage, binary, negative or huge, or a folder, one at a time:
    the facts, the validity verdict, the clock trace, the energy source and unified memory all answer (with
    unknowns and reasons), none raises."""
    import shutil

    from harness.measure import energy, memory

    root = tmp_path / name
    shutil.copytree(BOARDS / name, root)
    monkeypatch.setenv(jetson.ROOT_ENV, str(root))
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        original = path.read_bytes()
        path.unlink()
        for kind, content in [*DAMAGE.items(), ("folder", None)]:
            path.mkdir() if content is None else path.write_bytes(content)
            where = f"{path.relative_to(root)} {kind}"
            facts = jetson.facts()
            validity.verdict({"samples": 100, "cv": 0.01}, 10, 0.1, {}, {}, None, facts, facts, None)
            assert (facts.get("clocks") or {}).get("pinned") is not True, where  # no fixture board is pinned
            trace = jetson.ClockTrace()
            trace._read()
            trace.summary()
            energy.JetsonRails()
            unified = memory.JetsonUnified()
            memory.jetson_process({"peak_bytes": 1}, unified.reading())
            path.rmdir() if content is None else path.unlink()
        path.write_bytes(original)


def test_damaged_meminfo_is_missing_memory_not_a_traceback_nor_zero(tmp_path):
    from harness.measure.memory import JetsonUnified, jetson_process

    meminfo = tmp_path / "meminfo"
    meminfo.write_bytes(b"\xff\xfeNvMapMemUsed: \x00")
    assert "no NvMapMemUsed" in JetsonUnified(meminfo).reading()["missing"]
    meminfo.write_text("MemTotal: 8000 kB\nNvMapMemUsed: 100 kB\n")  # no MemAvailable line
    reading = JetsonUnified(meminfo).reading()
    assert reading["baseline_bytes"] == 100 * 1024 and reading["mem_available_baseline_bytes"] is None
    unsampled = {**reading, "peak_bytes": None, "process_nvmap": {"missing": "needs root"}}
    own = jetson_process({"peak_bytes": 1 << 20}, unsampled)  # no reading during the cell: not 0 GPU bytes
    assert "could not be read during the cell" in own["missing"]


def test_a_garbled_power_mode_status_says_so(monkeypatch, tmp_path):
    import shutil

    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    (tmp_path / "board" / "var" / "lib" / "nvpmodel" / "status").write_text("pmode:zz\n")
    monkeypatch.setenv(jetson.ROOT_ENV, str(tmp_path / "board"))
    assert jetson.power_mode() == {"missing": "/var/lib/nvpmodel/status reads 'pmode:zz', not pmode:N (damaged)"}
    (tmp_path / "board" / "var" / "lib" / "nvpmodel" / "status").unlink()
    assert "nvpmodel not set up" in jetson.power_mode()["missing"]
