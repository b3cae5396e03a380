"""The command line end to end, as a user runs it: `python -m harness ...` in a fresh process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import yaml

from harness.records import env_file_for, read_records
from tests.helpers import ROOT, harness, one_error_line


def test_list_json_has_exact_complexity():
    result = harness("list", "--filter", "resnet1*,squeezenet1_1", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"resnet18", "resnet101", "resnet152", "squeezenet1_1"}
    resnet18 = rows["resnet18"]["complexity"]
    assert resnet18["params"] == 11_689_512
    assert resnet18["macs"] / 1e9 == pytest.approx(1.814, rel=0.01)
    assert resnet18["flops"] == 2 * resnet18["macs"] and resnet18["conv_macs"] <= resnet18["macs"]
    assert resnet18["file_size_bytes"] > 4 * resnet18["params"]
    assert rows["resnet18"]["published_top1"] == 70.142 and rows["resnet18"]["source_installed"] is True


JSON_ELSEWHERE = {"node": "tests/test_fleet.py (node --list --json needs a Ray cluster)"}


def _json_commands() -> set[str]:
    """Every command that takes --json."""
    import argparse

    from harness.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name for name, parser in commands.choices.items()
            if any("--json" in action.option_strings for action in parser._actions)}


def test_every_json_command_prints_json_alone_on_stdout(tmp_path):
    """With --json, stdout parses as JSON as a whole (json.loads(stdout)): people's lines go to stderr.
    check --on-device --json is covered in tests/test_on_device.py and tests/test_trtexec_runtime.py."""
    from tests.report_fixtures import cpu_records, write_run

    run = str(write_run(tmp_path / "run", cpu_records()))
    other = str(write_run(tmp_path / "other", cpu_records()))  # compare refuses a run compared with itself
    commands = {"list": ["list", "--filter", "squeezenet*", "--no-compute", "--json"],
                "show": ["show", run, "--json"], "best": ["best", run, "--json"],
                "check": ["check", run, "--profile", "workstation", "--models", "squeezenet1_1", "--json"],
                "compare": ["compare", run, other, "--json"]}
    assert set(commands) | set(JSON_ELSEWHERE) == _json_commands(), "a new --json command needs a case here"
    for name, argv in commands.items():
        result = harness(*argv)
        # compare of the fixture's sample-less runs judges nothing (exit 2) but still prints its JSON
        assert result.returncode in ((0, 1, 2) if name == "compare" else (0, 1)), result.stderr
        json.loads(result.stdout), name


def test_list_table():
    result = harness("list", "--filter", "squeezenet*")
    assert result.returncode == 0, result.stderr
    for text in ("squeezenet1_0", "SqueezeNet-v1.1", "torchvision", "params (M)", "GMACs", "top-1", "installed",
                 "2 models", "@paper @mobile", "@modern ("):
        assert text in result.stdout


def test_bench_null_runtime_end_to_end(tmp_path):
    result = harness("bench", "--runtime", "null", "--models", "resnet18,alexnet", "--batch-sizes", "1,2",
                     "--out", str(tmp_path), "--run-id", "r1")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "4/4 cells ok" in result.stdout and "bs 2" in result.stdout and "random-init weights" in result.stdout
    read = read_records(tmp_path / "r1" / "records.jsonl")
    assert read.skipped == [] and len(read.records) == 4
    env = json.loads((tmp_path / "r1" / env_file_for(socket.gethostname())).read_text())  # one per host
    assert {"cpu_model", "cpu_logical_cores", "ram_bytes", "python", "packages", "torch"} <= set(env)


def test_bench_torch_cpu_records_everything(tmp_path):
    result = harness("bench", "--runtime", "torch", "--models", "squeezenet1_1", "--batch-sizes", "1,2",
                     "--device", "cpu", "--precision", "fp32", "--threads", "1", "--out", str(tmp_path),
                     "--run-id", "r2")
    assert result.returncode == 0, result.stderr + result.stdout
    records = read_records(tmp_path / "r2" / "records.jsonl").records
    assert [r["cell"]["batch_size"] for r in records] == [1, 2]
    for record in records:
        assert record["status"] == "ok"
        assert record["model"]["weights"] == "random"
        assert record["model"]["complexity"]["params"] == 1_235_496
        assert record["runtime"]["options"]["threads"] == 1
        host = record["timing"]["host"]
        assert host["samples"] == len(record["samples_ms"]["host"]) >= record["policy"]["min_samples"]
        assert host["per_image_median_ms"] == pytest.approx(host["median_ms"] / record["cell"]["batch_size"])
        assert record["cold_start"]["load_s"] > 0 and record["cold_start"]["first_run_ms"] > 0
        assert record["timing"]["device"] is None  # no device clock on the CPU
    assert "squeezenet1_1" in result.stdout and "img/s" in result.stdout


def test_bench_reports_failed_cells_and_exits_nonzero(tmp_path):
    result = harness("bench", "--runtime", "tests.faulty_runtimes:RaisingRuntime", "--models", "resnet18",
                     "--batch-sizes", "1", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "0/1 cells ok" in result.stdout and "this runtime always fails" in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["bench", "--models", "resnet19", "--batch-sizes", "1"], "unknown model 'resnet19'; did you mean resnet18"),
    (["bench", "--models", "resnet18", "--runtime", "tensorflow"], "unknown runtime 'tensorflow'"),
    (["bench", "--models", "resnet18", "--batch-sizes", "1,0"], "bad batch size '0'"),
    (["bench", "--models", "resnet18", "--batch-sizes", "two"], "bad batch size 'two'"),
    (["bench", "--models", "resnet18", "--precision", "int4"], "unknown precision 'int4'"),
    (["bench", "--models", "resnet18", "--weights", "/no/such.pth"], "weights file '/no/such.pth' does not exist"),
    (["bench", "--models", "resnet18", "--device", "tpu"], "unknown device 'tpu'"),
    (["list", "--filter", "nothing_like_this*"], "unknown model 'nothing_like_this*'"),
])
def test_user_mistakes_get_one_line_and_exit_2(args, expected):
    assert expected in one_error_line(harness(*args))


def test_cuda_without_a_gpu():
    from runtimes.cuda_driver import device_count

    if device_count() > 0:
        pytest.skip("this machine has CUDA")
    line = one_error_line(harness("bench", "--models", "resnet18", "--device", "cuda"))
    assert "no CUDA device" in line and "--device cpu" in line


def test_the_device_check_asks_the_driver_not_torch():
    """`--device cuda` is accepted where the CUDA driver sees a GPU, whether or not torch can use it (a
    machine with onnxruntime-gpu or TensorRT and a CPU-only torch); the probe is faked here."""
    script = ("import sys\n"
              "import runtimes.cuda_driver as driver\n"
              "driver.device_count = lambda: 2\n"
              "from harness.cli.common import check_device\n"
              "check_device('cuda:1')\n"
              "try:\n    check_device('cuda:2')\nexcept Exception as exc:\n    print(exc)\n"
              "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.splitlines() == ["device 'cuda:2' asked for, but the driver sees 2 CUDA device(s): use "
                                          "cuda:0 to cuda:1", "False"], result.stderr


def test_output_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_error_line(harness("bench", "--runtime", "null", "--models", "resnet18", "--batch-sizes", "1",
                                  "--out", str(blocker / "sub")))
    assert "cannot write to output folder" in line and "--out" in line


def test_malformed_catalogue(tmp_path):
    entries = yaml.safe_load((ROOT / "harness" / "data" / "models.yaml").read_text())["models"][:2]
    entries[1]["input_size"] = "big"
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    line = one_error_line(harness("--catalogue", str(path), "list"))
    assert "entry 'vgg11'" in line and "field 'input_size'" in line


def test_missing_source_library(monkeypatch, capsys, tmp_path):
    from harness.catalogue import registry
    from harness.cli import main as cli

    real = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pretrainedmodels" else real(name, *a))
    code = cli.main(["bench", "--models", "bninception", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "needs pretrainedmodels, which is not installed" in err and "dnn-harness[paper]" in err


def test_help_lists_the_commands():
    result = harness("--help")
    assert result.returncode == 0 and "list" in result.stdout and "bench" in result.stdout
    bench_help = harness("bench", "--help").stdout
    for option in ("--models", "--runtime", "--batch-sizes", "--device", "--precision", "--out", "--weights",
                   "--thorough", "--threads"):
        assert option in bench_help


def test_environment_facts_on_fixture_files(tmp_path):
    from harness.measure.environment import collect, cpu_frequency_facts

    for cpu, (low, high) in {"cpu0": (1_000_000, 3_000_000), "cpu1": (3_000_000, 3_000_000)}.items():
        folder = tmp_path / cpu / "cpufreq"
        folder.mkdir(parents=True)
        for name, value in {"scaling_governor": "performance", "scaling_cur_freq": "2900000",
                            "scaling_min_freq": str(low), "scaling_max_freq": str(high)}.items():
            (folder / name).write_text(value + "\n")
    facts = cpu_frequency_facts(tmp_path)
    assert facts["per_cpu_khz"]["cpu0"]["scaling_governor"] == "performance"
    assert facts["min_equals_max_on_all"] is False
    assert cpu_frequency_facts(tmp_path / "none")["readable"] is False
    env = collect()
    assert {"cpu_frequency", "jetson", "nvml", "torch"} <= set(env) and "read-only" in env["note"]


def test_ctrl_c_outside_a_sweep_is_one_line_and_exit_130(monkeypatch, capsys):
    """An interrupt in a command's own work (reading a catalogue, waiting on a fleet's address) ends with one
    line and the shell's 130, not a traceback."""
    from harness.cli import main as cli

    def interrupted(args, catalogue):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "list", interrupted)
    assert cli.main(["list"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted (Ctrl-C)"


@pytest.mark.parametrize("low, high, pinned", [("3000000", "3000000", True), ("1000000", "3000000", False),
                                               (None, None, None), ("garbage", "garbage", None), ("0", "0", None),
                                               ("\udcff", "\udcff", None)])
def test_cpu_pinning_in_the_environment_is_unknown_where_unreadable(tmp_path, low, high, pinned):
    """env.json's min_equals_max_on_all: unreadable or garbage ranges are unknown (None), never pinned; an open
    range on one CPU is not pinned whatever the others read."""
    from harness.measure.environment import cpu_frequency_facts

    for cpu, (cpu_low, cpu_high) in {"cpu0": ("3000000", "3000000"), "cpu1": (low, high)}.items():
        folder = tmp_path / cpu / "cpufreq"
        folder.mkdir(parents=True)
        for name, value in {"scaling_min_freq": cpu_low, "scaling_max_freq": cpu_high}.items():
            if value is not None:
                (folder / name).write_bytes(value.encode("utf-8", "surrogateescape") + b"\n")
    assert cpu_frequency_facts(tmp_path)["min_equals_max_on_all"] is pinned
    (tmp_path / "cpu2" / "cpufreq").mkdir(parents=True)
    for name, value in {"scaling_min_freq": "800000", "scaling_max_freq": "3000000"}.items():
        (tmp_path / "cpu2" / "cpufreq" / name).write_text(value)
    assert cpu_frequency_facts(tmp_path)["min_equals_max_on_all"] is False
