"""Energy per image: RAPL counters on a powercap tree made here, a Jetson's INA3221 rails on the fixture boards
(formats as jetson_stats reads them), NVML's call names against the real nvidia-ml-py, and the pass's arithmetic
through a test double of a source. Nothing here measures real joules: this machine has no readable source."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.measure import energy
from tests.helpers import BOARDS, run_cli


def _powercap(root: Path, packages: dict[str, int], psys: bool = True) -> Path:
    for index, (name, value) in enumerate(packages.items()):
        domain = root / f"intel-rapl:{index}"
        (domain / f"intel-rapl:{index}:0").mkdir(parents=True)  # a core subdomain: part of the package, not added
        (domain / f"intel-rapl:{index}:0" / "name").write_text("core\n")
        (domain / f"intel-rapl:{index}:0" / "energy_uj").write_text("999999\n")
        (domain / "name").write_text(f"{name}\n")
        (domain / "energy_uj").write_text(f"{value}\n")
        (domain / "max_energy_range_uj").write_text("262143328850\n")
    if psys:  # a laptop's platform domain: not a package
        (root / "intel-rapl:9").mkdir(parents=True)
        (root / "intel-rapl:9" / "name").write_text("psys\n")
        (root / "intel-rapl:9" / "energy_uj").write_text("5\n")
    return root


def test_rapl_adds_the_packages_and_survives_a_wrapped_counter(tmp_path, monkeypatch):
    monkeypatch.setenv(energy.POWERCAP_ENV, str(_powercap(tmp_path, {"package-0": 1_000_000,
                                                                    "package-1": 262143328850 - 500_000})))
    rapl = energy.RaplPackages()
    assert rapl.reason is None and "package-0, package-1" in rapl.what
    rapl.begin()
    time.sleep(0.02)  # 4 J in 20 ms: 200 W, a physical package power
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3500000\n")  # +2.5 J
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("1000000\n")  # wrapped: +0.5 J to the top, +1 J after
    assert rapl.end() == pytest.approx(2.5 + 1.5, abs=1e-5)


def test_rapl_says_why_it_cannot_be_read(tmp_path, monkeypatch):
    monkeypatch.setenv(energy.POWERCAP_ENV, str(tmp_path / "none"))
    assert "a VM, or a kernel without the RAPL powercap driver" in energy.RaplPackages().reason
    monkeypatch.setenv(energy.POWERCAP_ENV, str(_powercap(tmp_path / "empty", {})))
    assert "no RAPL package domain" in energy.RaplPackages().reason
    monkeypatch.setenv(energy.POWERCAP_ENV, str(_powercap(tmp_path / "closed", {"package-0": 1})))
    real_read_text = Path.read_text

    def root_only(path: Path, *args, **kwargs):  # what a non-root user meets on Linux 5.10 and later
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", root_only)
    assert "readable by root only" in energy.RaplPackages().reason


@pytest.mark.parametrize("board, rail, watts", [("orin-nano", "module input rail VDD_IN", 5.056 * 1.416),
                                                ("xavier-nx", "module input rail VDD_IN", 5.024 * 1.392),
                                                ("nano", "module input rail POM_5V_IN", 1.944)])
def test_a_jetsons_input_rail_is_polled_and_integrated(monkeypatch, board, rail, watts):
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(BOARDS / board))
    rails = energy.find_rails()
    assert "sum of shunt voltages" not in rails and len(rails) == 3
    source = energy.JetsonRails()
    assert source.reason is None and source.what.startswith(rail)
    source.begin()
    start = time.perf_counter()
    time.sleep(0.2)
    joules = source.end()
    elapsed = time.perf_counter() - start
    assert joules / elapsed == pytest.approx(watts, rel=0.05)  # a constant power, integrated over the window


def test_rails_are_missing_off_a_jetson_or_on_a_board_without_monitors(monkeypatch, tmp_path):
    import shutil

    shutil.copytree(BOARDS / "xavier-nx", tmp_path / "board", ignore=shutil.ignore_patterns("i2c"))
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(tmp_path / "board"))
    assert "no INA3221 power monitor" in energy.JetsonRails().reason
    monkeypatch.setenv("HARNESS_JETSON_ROOT", "/nonexistent")
    assert "not a Jetson" in energy.JetsonRails().reason


def _nvml_names_used() -> set[str]:
    """Every NVML name (`nvml...`, `NVML_...`) the product's code reads as an attribute (of pynvml, or of the
    module kept as `self._nvml`) in harness/, runtimes/ and bench/, found in its syntax trees."""
    import ast

    root = Path(__file__).resolve().parent.parent
    names = set()
    for path in [*root.glob("harness/**/*.py"), *root.glob("runtimes/**/*.py"), *root.glob("bench/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith(("nvml", "NVML_")):
                names.add(node.attr)
    return names


def test_nvml_calls_are_the_real_libraries_names():
    """Every NVML function and constant the harness uses exists in the real nvidia-ml-py (a misspelt one would
    only fail on a GPU), and with no driver the energy source says so."""
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed (extra gpu)")
    used = _nvml_names_used()
    assert len(used) >= 15, sorted(used)  # the readers of memory, energy, clocks and the environment
    assert {"nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetComputeRunningProcesses"} <= used
    assert [name for name in sorted(used) if not hasattr(pynvml, name)] == []
    assert "the cell does not run on a CUDA GPU" == energy.NvmlEnergy("cpu").reason
    reason = energy.NvmlEnergy("cuda:0").reason  # no driver here: it says so instead of a figure
    assert reason is not None and reason.startswith("NVML cannot read an energy counter here")


class SteadySource(energy.EnergySource):
    """A test double: a source drawing `idle_w` while the process sleeps and `busy_w` while it runs cells."""

    name = "steady"
    what = "a test double"

    def __init__(self, idle_w: float, busy_w: float) -> None:
        self.idle_w, self.busy_w, self.busy = idle_w, busy_w, False

    def begin(self) -> None:
        self._start = time.perf_counter()

    def end(self) -> float:
        return (time.perf_counter() - self._start) * (self.busy_w if self.busy else self.idle_w)


def test_the_pass_subtracts_idle_power_and_records_both(monkeypatch):
    monkeypatch.setattr(energy, "IDLE_S", 0.2)
    source = SteadySource(idle_w=10.0, busy_w=30.0)

    def run_once() -> None:
        source.busy = True
        time.sleep(0.01)

    closed = energy.RaplPackages.__new__(energy.RaplPackages)
    closed.reason = "no powercap here"
    figures = energy.measure([source, closed], run_once, images_per_call=4, min_busy_s=0.3)
    steady, run = figures["sources"]["steady"], figures["pass"]
    assert figures["sources"]["rapl"] == {"missing": "no powercap here"}
    # (the double's clock starts a moment before the window's and stops a moment after: a few per cent)
    assert steady["idle_watts"] == pytest.approx(10.0, rel=0.05)
    assert steady["average_watts"] == pytest.approx(30.0, rel=0.05)
    assert run["images"] == run["calls"] * 4 and run["busy_s"] >= 0.3 and run["calls"] >= energy.MIN_CALLS
    assert steady["gross_joules_per_image"] == pytest.approx(30.0 * run["busy_s"] / run["images"], rel=0.05)
    assert steady["joules_per_image"] == pytest.approx(20.0 * run["busy_s"] / run["images"], rel=0.1)


def test_a_cell_drawing_no_more_than_idle_has_no_energy_figure(monkeypatch):
    monkeypatch.setattr(energy, "IDLE_S", 0.05)
    source = SteadySource(idle_w=10.0, busy_w=9.0)  # idle drifted above what the busy window read

    def run_once() -> None:
        source.busy = True

    figures = energy.measure([source], run_once, images_per_call=1, min_busy_s=0.05)["sources"]["steady"]
    assert figures["joules_per_image"] is None and "within the idle noise" in figures["note"]


def test_bench_records_every_source_or_why_it_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_POWERCAP_DIR", str(tmp_path / "no-powercap"))
    result = run_cli(capsys, "bench", "--runtime", "null", "--models", "squeezenet1_1", "--batch-sizes", "1", "--out",
                     str(tmp_path), "--run-id", "e")
    assert result.returncode in (0, 1), result.stderr
    record = json.loads((tmp_path / "e" / "records.jsonl").read_text().splitlines()[0])
    assert set(record["energy"]["sources"]) == {"rapl", "nvml", "jetson_rails"}
    assert all("missing" in reading for reading in record["energy"]["sources"].values())
    off = run_cli(capsys, "bench", "--runtime", "null", "--models", "squeezenet1_1", "--batch-sizes", "1", "--out",
                  str(tmp_path), "--run-id", "off", "--energy", "off")
    assert off.returncode in (0, 1), off.stderr
    assert json.loads((tmp_path / "off" / "records.jsonl").read_text().splitlines()[0])["energy"]["skipped"] == \
        "--energy off"


def _with_energy(record: dict, joules_per_image: float | None, watts: float) -> dict:
    record["energy"] = {"sources": {
        "rapl": {"joules_per_image": joules_per_image, "gross_joules_per_image": (joules_per_image or 0) + 0.1,
                 "average_watts": watts, "idle_watts": 5.0, "what": "fixture"},
        "nvml": {"missing": "the cell does not run on a CUDA GPU"}},
        "pass": {"idle_s": 1.0, "busy_s": 2.0, "calls": 10, "images": 10}}
    return record


def _energy_run(tmp_path: Path) -> Path:
    from tests.report_fixtures import record, write_run

    return write_run(tmp_path / "run", [
        _with_energy(record("squeezenet1_1", "ort", 1, 100.0, 510_000_000), 0.25, 20.0),  # 4 img/J
        _with_energy(record("resnet50", "ort", 1, 25.0, 1_170_000_000), 2.0, 45.0),  # 0.5 img/J, 45 W
        _with_energy(record("vgg16", "ort", 1, 10.0, 2_000_000_000), 5.0, 50.0),  # the most accurate, 50 W
        _with_energy(record("mobilenet_v2", "ort", 1, 50.0, 840_000_000), None, 6.0)])  # within the idle noise


def test_reports_show_images_per_joule_beside_images_per_second(tmp_path, capsys):
    run = _energy_run(tmp_path)
    result = run_cli(capsys, "report", str(run), "--out", str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    tables = (tmp_path / "report" / "tables.md").read_text()
    assert "### Energy — images/J and images/s (rapl)" in tables
    assert "| 4.0 \\| 100.0 |" in tables and "| 0.5 \\| 25.0 |" in tables and "| ≈ idle \\| 50.0 |" in tables
    shown = run_cli(capsys, "show", str(run), "--show", "energy")
    assert "4.0 img/J (20.0 W)" in shown.stdout and "≈ idle (6.0 W)" in shown.stdout, shown.stderr
    summary = json.loads(run_cli(capsys, "show", str(run), "--json").stdout)
    assert {s["model"]: s["energy"]["rapl"]["average_watts"] for s in summary}["resnet50"] == 45.0


def test_best_under_a_power_budget(tmp_path, capsys):
    run = _energy_run(tmp_path)
    assert json.loads(run_cli(capsys, "best", str(run), "--json").stdout)["best"]["model"] == "vgg16"
    budget = json.loads(run_cli(capsys, "best", str(run), "--max-watts", "30", "--json").stdout)
    assert budget["best"]["model"] == "mobilenet_v2"  # 6 W: vgg16 (50 W) and resnet50 (45 W) draw too much
    assert json.loads(run_cli(capsys, "best", str(run), "--max-watts", "5", "--json").stdout)["best"] is None
    assert "bad --max-watts" in run_cli(capsys, "best", str(run), "--max-watts", "-3").stderr


def test_a_power_budget_over_runs_without_power_readings_says_why(tmp_path, capsys):
    from tests.report_fixtures import record, write_run
    from tests.helpers import one_error_line

    off = record("resnet50", "ort", 1, 25.0, 1_170_000_000)
    off["energy"] = {"sources": {}, "pass": None, "skipped": "--energy off"}
    unreadable = record("vgg16", "ort", 1, 10.0, 2_000_000_000)
    unreadable["energy"] = {"sources": {"rapl": {"missing": "no /sys/class/powercap"}}, "pass": None}
    write_run(tmp_path / "run", [off, unreadable])
    line = one_error_line(run_cli(capsys, "best", str(tmp_path / "run"), "--max-watts", "30"))
    assert "--max-watts 30: none of the 2 cells in scope has a power reading" in line
    assert "energy pass skipped (--energy off)" in line and "rapl: no /sys/class/powercap" in line
    assert "measure them with `python -m harness bench --energy on`" in line
    assert run_cli(capsys, "best", str(tmp_path / "run")).returncode == 0  # without the budget, a pick as before


def test_a_counter_that_breaks_mid_pass_leaves_the_cell_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "IDLE_S", 0.05)
    monkeypatch.setenv(energy.POWERCAP_ENV, str(_powercap(tmp_path, {"package-0": 1_000_000})))
    rapl = energy.RaplPackages()

    def run_once() -> None:  # the driver goes away under the pass
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("not a number\n")

    figures = energy.measure([rapl], run_once, images_per_call=1, min_busy_s=0.05)
    assert figures["pass"] is None
    assert figures["sources"]["rapl"]["missing"].startswith("the energy pass could not read rapl")


@pytest.mark.parametrize("milliamps", ["-1392", "999999999"])
def test_an_unphysical_rail_reading_makes_energy_missing_with_the_reason(monkeypatch, tmp_path, milliamps):
    """A negative reading, or megawatts from a misread monitor: no energy figure is made, and the reason says
    which rail read what (at the start, or when it happens mid-pass)."""
    import shutil

    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    current = tmp_path / "board/sys/bus/i2c/devices/1-0040/hwmon/hwmon1/curr1_input"
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(tmp_path / "board"))
    current.write_text(milliamps + "\n")
    assert "INA3221 rail VDD_IN read" in energy.JetsonRails().reason and "not a physical reading" in \
        energy.JetsonRails().reason
    current.write_text("1416\n")
    source = energy.JetsonRails()
    assert source.reason is None

    def run_once() -> None:
        current.write_text(milliamps + "\n")  # goes bad while the pass runs
        time.sleep(0.05)

    figures = energy.measure([source], run_once, 1, min_busy_s=0.1)
    assert "not a physical reading" in figures["sources"]["jetson_rails"]["missing"]


@pytest.mark.parametrize("wrap_range, said", [(None, "no "), ("", "not a whole number"), ("garbage\n", "'garbage'"),
                                              ("0\n", "not a positive range"), ("-5\n", "not a positive range"),
                                              ("\xff\xfe\n", "not a whole number")])
def test_a_broken_wrap_range_makes_rapl_missing_with_the_reason(tmp_path, monkeypatch, wrap_range, said):
    """max_energy_range_uj missing, empty, garbage or not positive: RAPL is missing and says which file, instead of
    an exception that turned the whole cell into an error."""
    tree = _powercap(tmp_path, {"package-0": 1_000_000})
    top = tree / "intel-rapl:0" / "max_energy_range_uj"
    top.unlink() if wrap_range is None else top.write_text(wrap_range)
    monkeypatch.setenv(energy.POWERCAP_ENV, str(tree))
    rapl = next(s for s in energy.sources_for("cpu") if s.name == "rapl")
    assert rapl.reason is not None and said in rapl.reason and "max_energy_range_uj" in rapl.reason


def test_a_cell_on_a_broken_rapl_tree_keeps_its_timing(tmp_path, capsys, monkeypatch):
    tree = _powercap(tmp_path / "powercap", {"package-0": 1_000_000})
    (tree / "intel-rapl:0" / "max_energy_range_uj").write_text("garbage\n")
    monkeypatch.setenv("HARNESS_POWERCAP_DIR", str(tree))
    result = run_cli(capsys, "bench", "--runtime", "null", "--models", "squeezenet1_1", "--batch-sizes", "1", "--out",
                     str(tmp_path), "--run-id", "e")
    assert result.returncode in (0, 1), result.stderr
    record = json.loads((tmp_path / "e" / "records.jsonl").read_text().splitlines()[0])
    assert record["status"] == "ok" and record["timing"]["host"]["samples"] > 0
    assert "max_energy_range_uj reads 'garbage'" in record["energy"]["sources"]["rapl"]["missing"]


@pytest.mark.parametrize("counter", ["999999999999999\n", "-4\n", "lots\n"])
def test_a_rapl_counter_outside_its_range_or_garbage_is_no_figure(tmp_path, monkeypatch, counter):
    monkeypatch.setenv(energy.POWERCAP_ENV, str(_powercap(tmp_path, {"package-0": 1_000_000})))
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text(counter)
    reason = energy.RaplPackages().reason
    assert reason is not None and "intel-rapl:0/energy_uj reads" in reason


def test_a_rapl_counter_that_goes_backwards_is_no_figure(tmp_path, monkeypatch):
    """A reset counter reads as a wrap of almost the whole range: hundreds of kJ in a second, not physical."""
    monkeypatch.setattr(energy, "IDLE_S", 0.05)
    monkeypatch.setenv(energy.POWERCAP_ENV, str(_powercap(tmp_path, {"package-0": 5_000_000})))
    rapl = energy.RaplPackages()

    def run_once() -> None:
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("4000000\n")

    figures = energy.measure([rapl], run_once, images_per_call=1, min_busy_s=0.05)
    assert figures["pass"] is None and "not a physical reading" in figures["sources"]["rapl"]["missing"]


class BrokenSource(SteadySource):
    """A test double: a source whose library raises its own error (as NVMLError, not an OSError) at `end()`."""

    name = "broken"

    def end(self) -> float:
        raise RuntimeError("NVML: GPU is lost")


class BackwardsSource(SteadySource):
    """A test double: a counter reset between begin and end (NVML's after a driver reload)."""

    name = "backwards"

    def end(self) -> float:
        return -3.0


def test_a_source_that_fails_mid_pass_is_missing_and_the_others_keep_their_figures(monkeypatch):
    monkeypatch.setattr(energy, "IDLE_S", 0.05)
    steady = SteadySource(idle_w=10.0, busy_w=30.0)

    def run_once() -> None:
        steady.busy = True
        time.sleep(0.01)

    figures = energy.measure([BrokenSource(1.0, 2.0), steady, BackwardsSource(1.0, 2.0)], run_once, 1,
                             min_busy_s=0.1)
    assert figures["sources"]["broken"]["missing"] == ("the energy pass could not read broken: RuntimeError: NVML: "
                                                       "GPU is lost")
    assert "not a physical reading" in figures["sources"]["backwards"]["missing"]
    assert figures["sources"]["steady"]["average_watts"] == pytest.approx(30.0, rel=0.1)
    assert figures["pass"]["calls"] >= energy.MIN_CALLS


def test_the_runtimes_own_failure_in_the_pass_is_not_blamed_on_a_source(monkeypatch):
    monkeypatch.setattr(energy, "IDLE_S", 0.01)

    def run_once() -> None:
        raise ValueError("the runtime broke")

    with pytest.raises(ValueError, match="the runtime broke"):
        energy.measure([SteadySource(1.0, 2.0)], run_once, 1, min_busy_s=0.01)


def test_a_source_that_cannot_be_set_up_is_missing_not_the_cell(monkeypatch):
    def damaged() -> None:
        raise RuntimeError("a damaged tree")

    monkeypatch.setattr(energy, "JetsonRails", damaged)
    sources = {s.name: s for s in energy.sources_for("cpu")}
    assert set(sources) == set(energy.SOURCES)
    assert sources["jetson_rails"].reason == "could not be set up: RuntimeError: a damaged tree"


def test_a_rail_reading_garbage_mid_pass_names_the_file(monkeypatch, tmp_path):
    import shutil

    monkeypatch.setattr(energy, "IDLE_S", 0.05)
    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    volts = tmp_path / "board/sys/bus/i2c/devices/1-0040/hwmon/hwmon1/in1_input"
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(tmp_path / "board"))
    source = energy.JetsonRails()
    assert source.reason is None

    def run_once() -> None:
        volts.write_text("5.0V\n")
        time.sleep(0.05)

    missing = energy.measure([source], run_once, 1, min_busy_s=0.1)["sources"]["jetson_rails"]["missing"]
    assert "hwmon1/in1_input reads '5.0V', not a whole number" in missing


def test_a_rails_closing_reading_lost_is_bridged(monkeypatch, tmp_path):
    import shutil

    shutil.copytree(BOARDS / "orin-nano", tmp_path / "board")
    current = tmp_path / "board/sys/bus/i2c/devices/1-0040/hwmon/hwmon1/curr1_input"
    monkeypatch.setenv("HARNESS_JETSON_ROOT", str(tmp_path / "board"))
    source = energy.JetsonRails()
    source.begin()
    time.sleep(0.1)
    current.write_text("")  # caught empty mid-update at the very end
    start = source._samples[0][0]
    joules = source.end()
    assert joules / (time.perf_counter() - start) == pytest.approx(5.056 * 1.416, rel=0.1)
