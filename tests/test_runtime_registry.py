"""The runtimes' registry: each runtime class declares its device families, its precisions and the device profile
kinds it is check --on-device's default for; --device parsing and help, --precision help, the fleet's device names,
check --on-device's default runtime and the README's table follow those declarations (issue 28). A runtime added
to `runtimes.RUNTIMES` alone (tests/registry_double.py) shows up everywhere without harness/ naming it."""

from __future__ import annotations

import json

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import runtimes
from harness.errors import UserError
from runtimes import RuntimeUnavailable, declared_classes, device_families, runtime_class
from runtimes.base import PRECISIONS, CannotRunHere, RuntimeOptions, UnsupportedConfiguration
from tests import registry_double
from tests.helpers import run_cli, run_main

ROOT = Path(__file__).resolve().parents[1]
HEAVY_LIBRARIES = ("torch", "onnxruntime", "tensorrt", "openvino")


@pytest.fixture
def with_double(monkeypatch):
    """The test double registered in runtimes/ only, after the built-in runtimes; help unwrapped."""
    monkeypatch.setitem(runtimes.RUNTIMES, registry_double.NAME,
                        ("tests.registry_double", "PlugInAccelerator", "nothing"))
    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps at COLUMNS: one line per option


def _option_help(capsys, command: str, option: str) -> str:
    """The help text of `option` in `command --help`, as one line (COLUMNS is wide)."""
    result = run_cli(capsys, command, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    [line] = [line for line in text.splitlines() if line.strip().startswith(f"{option} ")]
    return re.sub(r"^\s*\S+ \S+\s+", "", line)


def _parse_device_help(text: str) -> dict[str, tuple[str, list[str]]]:
    """'cpu: the host CPU (torch, ort); ...; default cpu' -> {pattern: (description, runtimes)}."""
    entries = text.split("; ")
    assert entries[-1] == "default cpu"
    parsed = {}
    for entry in entries[:-1]:
        pattern, _, rest = entry.partition(": ")
        description, _, names = rest.rpartition(" (")
        parsed[pattern] = (description, names.rstrip(")").split(", "))
    return parsed


def _parse_precision_help(text: str) -> dict[str, dict[str, str]]:
    """'fp32 (a, b; c: cond), fp16 (...); comma-separated' -> {precision: {runtime: condition}}."""
    body, _, tail = text.rpartition("; ")
    assert tail == "comma-separated"
    parsed: dict[str, dict[str, str]] = {}
    for precision, groups in re.findall(r"(\w+) \((.*?)\)(?:, |$)", body):
        for group in groups.split("; "):
            names, _, condition = group.partition(": ")
            parsed.setdefault(precision, {}).update(dict.fromkeys(names.split(", "), condition))
    return parsed


def _declared_devices() -> dict[str, tuple[str, list[str]]]:
    """{pattern: (description, runtimes)} straight from the classes, in RUNTIMES order."""
    declared: dict[str, tuple[str, list[str]]] = {}
    for name, cls in declared_classes().items():
        for family in cls.devices:
            declared.setdefault(family.pattern, (family.description, []))[1].append(name)
    return declared


def _declared_precisions() -> dict[str, dict[str, str]]:
    return {precision: {name: cls.precisions[precision] for name, cls in declared_classes().items()
                        if precision in cls.precisions} for precision in PRECISIONS}


@pytest.mark.parametrize("command", ["bench", "verify", "accuracy"])
def test_device_and_precision_help_list_exactly_what_the_registry_declares(capsys, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "2000")
    assert _parse_device_help(_option_help(capsys, command, "--device")) == _declared_devices()
    if command != "accuracy":  # accuracy's --precision says what int8 needs there instead
        assert _parse_precision_help(_option_help(capsys, command, "--precision")) == _declared_precisions()


def test_a_runtime_registered_in_runtimes_alone_shows_up_in_help(capsys, with_double):
    devices = _parse_device_help(_option_help(capsys, "bench", "--device"))
    assert devices["tpu[:N]"] == ("a test double's accelerator", [registry_double.NAME])
    precisions = _parse_precision_help(_option_help(capsys, "bench", "--precision"))
    assert precisions["int8"][registry_double.NAME] == "where its second core is free"
    assert precisions["fp32"][registry_double.NAME] == ""
    assert registry_double.NAME not in precisions["fp16"]
    assert "cpu profiles: ort, else tests.registry_double:PlugInAccelerator where ort is not installed" in \
        _option_help(capsys, "check", "--runtime")


def test_its_device_is_parsed_and_routed_to_it(capsys, with_double, tmp_path):
    """bench --device tpu:1 is accepted and its cells run on the double, which is handed tpu:1."""
    code, output = run_main(capsys, "bench", "--runtime", registry_double.NAME, "--device", "tpu:1", "--models",
                            "resnet18", "--batch-sizes", "1", "--energy", "off", "--out", str(tmp_path), "--run-id",
                            "r")
    assert code == 0, output
    from harness.records import read_records

    [record] = read_records(tmp_path / "r" / "records.jsonl").records
    assert record["status"] == "ok", record.get("error")
    assert record["cell"]["device"] == "tpu:1" and record["runtime"]["device"] == "tpu:1"
    assert record["runtime"]["name"] == "plugin-accelerator"
    [env] = (tmp_path / "r").glob("env-*.json")
    import importlib.metadata

    assert json.loads(env.read_text())["packages"]["pluggy"] == importlib.metadata.version("pluggy")


def test_the_fleet_compares_and_lists_what_each_runtime_declares(with_double):
    """A new runtime's library is compared across a fleet's nodes and listed by `node --list` from its
    declaration alone."""
    from harness.fleet.ray_executor import compared_packages
    from runtimes import runtime_packages

    assert "pluggy" in compared_packages() and "pluggy" in runtime_packages(main_only=True)
    assert runtime_packages(main_only=True)[:4] == ("torch", "onnxruntime", "tensorrt", "openvino")


def test_an_unknown_device_is_one_line_naming_what_the_registry_offers(capsys, with_double):
    with pytest.raises(UserError) as raised:
        from harness.cli.common import check_device

        check_device("tpu:x")
    assert str(raised.value) == ("unknown device 'tpu:x': use cpu, cuda[:N], dla:N, intel-gpu[:N], npu or tpu[:N] "
                                 "(--help says which runtimes take each)")
    code, output = run_main(capsys, "bench", "--models", "resnet18", "--device", "gpu")
    assert code == 2 and output.strip().splitlines() == [
        "error: unknown device 'gpu': use cpu, cuda[:N], dla:N, intel-gpu[:N], npu or tpu[:N] (--help says which "
        "runtimes take each)"]


def test_without_the_double_its_device_is_unknown():
    from harness.cli.common import check_device

    with pytest.raises(UserError, match=r"^unknown device 'tpu:1': use cpu, cuda\[:N\], dla:N, intel-gpu\[:N\] or "
                                        r"npu \("):
        check_device("tpu:1")


def test_the_fleet_names_its_devices_from_the_registry(with_double):
    from harness.fleet.devices import canonical_device, check_device_name, check_present

    assert canonical_device(check_device_name("tpu")) == "tpu:0"
    assert canonical_device("intel-gpu") == "intel-gpu:0" and canonical_device("dla:1") == "dla:1"
    with pytest.raises(ValueError, match="unknown device 'tpu:'"):
        check_device_name("tpu:")
    with pytest.raises(ValueError, match=r"this machine has no tpu:0 \(tests.registry_double:PlugInAccelerator "
                                         r"finds no tpu here\)"):
        check_present("tpu:0")  # it declares no discoverer: no node offers one it was not told it has


def test_check_on_device_takes_the_runtime_declared_the_default_for_the_profile_kind(monkeypatch):
    from harness.cli.on_device import _default_runtime
    from harness.profiles import PROFILE_KINDS

    cpu = SimpleNamespace(kind="cpu")  # what the choice reads of a profile
    assert _default_runtime(cpu, "local") == "ort"
    double_first = {registry_double.NAME: ("tests.registry_double", "PlugInAccelerator", "nothing"),
                    **runtimes.RUNTIMES}
    monkeypatch.setattr(runtimes, "RUNTIMES", double_first)
    assert _default_runtime(cpu, "local") == registry_double.NAME
    monkeypatch.setattr(runtimes, "RUNTIMES", {k: v for k, v in double_first.items() if k != "ort"})
    assert _default_runtime(cpu, "ray") == registry_double.NAME
    for kind in PROFILE_KINDS:  # every kind of profile has a default among the built-in runtimes
        assert runtimes.default_runtime(kind) is not None, kind


def test_gpu_profiles_take_the_first_engine_runtime_installed_here(monkeypatch):
    from harness.cli.on_device import _default_runtime
    jetson = SimpleNamespace(kind="jetson")
    installed = {"trt": False, "trtexec": True}

    def fake_runtime_class(name, installed_here=True):
        cls = runtime_class(name, installed_here=False)
        if installed_here and not installed.get(name, True):
            raise RuntimeUnavailable(f"{name} is not installed")
        return cls

    monkeypatch.setattr(runtimes, "runtime_class", fake_runtime_class)
    assert _default_runtime(jetson, "local") == "trtexec"
    installed["trtexec"] = False
    assert _default_runtime(jetson, "local") == "trt"  # neither: trt's line says what to install
    installed["trt"] = True
    assert _default_runtime(jetson, "local") == "trt"
    installed["trt"] = False
    assert _default_runtime(jetson, "ray") == "trt"  # a fleet's driver cannot see a node's bindings


def test_declarations_are_consistent():
    """Shared families are one DeviceFamily; every declared precision is one the harness plans cells at."""
    assert [offered.family.name for offered in device_families()] == ["cpu", "cuda", "dla", "intel-gpu", "npu"]
    for name, cls in declared_classes().items():
        assert set(cls.precisions) <= set(PRECISIONS), name
        assert cls.devices, name


def _example(pattern: str) -> str:
    return pattern.replace("[:N]", "").replace(":N", ":0")


def test_installed_runtimes_refuse_what_they_do_not_declare():
    """Each runtime whose library is here refuses, as it is created, a device family and a CPU precision it does not
    declare: the declarations say what the runtime does."""
    checked = []
    for name, cls in declared_classes().items():
        if cls.missing_requirement():
            continue
        for offered in device_families():
            if offered.family not in cls.devices:
                with pytest.raises((UnsupportedConfiguration, CannotRunHere)):
                    runtimes.create_runtime(name, RuntimeOptions(device=_example(offered.family.pattern)))
        if any(family.name == "cpu" for family in cls.devices):
            for precision in sorted(set(PRECISIONS) - set(cls.precisions)):
                with pytest.raises((UnsupportedConfiguration, CannotRunHere)):
                    runtimes.create_runtime(name, RuntimeOptions(device="cpu", precision=precision))
        checked.append(name)
    assert {"null", "torch", "ort"} <= set(checked)


def test_reading_the_declarations_and_building_the_cli_imports_no_runtime_library():
    code = ("import sys, runtimes\n"
            "from harness.cli.main import build_parser\n"
            "runtimes.device_families(); build_parser()\n"
            f"print([m for m in {HEAVY_LIBRARIES!r} if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _readme_rows() -> dict[str, list[str]]:
    """The README's 'Runtimes, devices and precisions' table: {runtime: its cells}."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Runtimes, devices and precisions", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[re.match(r"`([^`]+)`", cells[0]).group(1)] = cells  # type: ignore[union-attr]
    return rows


def test_the_readme_table_agrees_with_the_registry():
    rows = _readme_rows()
    assert list(rows) == list(runtimes.RUNTIMES)
    for name, cls in declared_classes().items():
        cells = rows[name]
        assert re.findall(r"`([^`]+)`", cells[2]) == [family.pattern for family in cls.devices], name
        for precision, cell in zip(PRECISIONS, cells[3:]):
            cell = cell.rstrip("¹²³")
            if precision in cls.precisions:
                assert cell == (cls.precisions[precision] or "yes"), (name, precision)
            else:
                assert cell == "no", (name, precision)
