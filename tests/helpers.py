"""Small helpers several test modules share (fixtures live in conftest.py): the repository's paths, the CLI run
in a fresh process or in this one, the board's environment without torch, noise images."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ROOT / "tests" / "fixtures" / "jetson"  # fixture trees shaped like real Jetson boards
NO_TORCH = ROOT / "tests" / "no_torch"
HIDDEN = ("torch", "torchvision", "timm", "pretrainedmodels")  # what tests/no_torch hides, as a board's venv lacks
BOARD_ENV = {"PYTHONPATH": f"{NO_TORCH}{os.pathsep}{ROOT}"}
WITH_TRT = {**BOARD_ENV, "TRT_DOUBLE_VERSION": "10.3.0", "TRT_DOUBLE_DRIVER_DEVICES": "1"}
# ImageNet's WordNet ids of the two real photographs (scikit-image's chelsea and coffee), and the classes a
# trained model may answer for each (a cat's five, a coffee's three)
TIGER_CAT, ESPRESSO = "n02123159", "n07920052"
CAT_CLASSES = {281, 282, 283, 284, 285}
COFFEE_CLASSES = {967, 968, 504}
# Each fixture board with the TensorRT of its JetPack, its profile and the precision its check runs.
JETPACKS = {"nano": ("8.2.1", "jetson-nano"), "xavier-nx": ("8.5.2", "jetson-xavier-nx"),
            "orin-nano": ("10.3.0", "jetson-orin-nano")}


INPUTS = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)  # what tiny_model reads


def tiny_model():
    """A seeded conv, pool and linear to 1000 classes: a torch module any runtime builds in a moment."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 1000))


def _torch_artifact():
    from runtimes.base import TorchModuleArtifact

    return TorchModuleArtifact(name="tiny", build=tiny_model)


TORCH_ARTIFACT = _torch_artifact()


def importable(runtime: str) -> bool:
    """Whether the runtime's library can be imported here."""
    from runtimes import RuntimeUnavailable, runtime_class

    try:
        runtime_class(runtime)
        return True
    except RuntimeUnavailable:
        return False


def harness(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m harness ARGS` in a fresh process, as a user runs it (for what needs one: an environment
    without torch, signals, what a new interpreter imports)."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command run in this process through the CLI's main() (no interpreter start, no imports paid again),
    read like `harness()`'s result: exit code, stdout and stderr apart. argparse's own exit counts as the code."""
    from harness.cli.main import main

    capsys.readouterr()
    consoles = [(console, console.width) for console in _cli_consoles()]
    for console, _ in consoles:  # as wide as harness() makes a process's ($COLUMNS=200), whatever $COLUMNS is here
        console.width = 200
    # warnings logged go to stderr as in a process of its own (main's logging.basicConfig does nothing under
    # pytest, whose handlers are there already)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: usage errors and --help
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        logging.getLogger().removeHandler(handler)
        for console, width in consoles:
            console.width = width
    output = capsys.readouterr()
    return subprocess.CompletedProcess(["harness", *args], code, output.out, output.err)


def _cli_consoles() -> list:
    """The rich consoles the CLI's modules made when imported (their width was read from $COLUMNS then)."""
    from rich.console import Console

    found = {id(value): value for name, module in list(sys.modules.items()) if name.startswith("harness.cli")
             for value in vars(module).values() if isinstance(value, Console)}
    return list(found.values())


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command, run in this process through the CLI's main(): (exit code, stdout + stderr)."""
    result = run_cli(capsys, *args)
    return result.returncode, result.stdout + result.stderr


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one `error: ...` line of a command refused as a user mistake (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def noise_images(folder: Path, count: int, seed: int = 0, suffix: str = ".bmp") -> Path:
    """`count` images of seeded noise, 40x50, in `folder` (made if missing); BMP by default: one size for any
    pixels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(seed + index).integers(0, 256, (40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}{suffix}")
    return folder


def jetson_board(tmp_path: Path, name: str) -> Path:
    """A copy of the fixture board with its JetPack's trtexec where JetPack puts it, and cool zones."""
    import shutil

    from tests import trtexec_double

    root = tmp_path / name
    shutil.copytree(BOARDS / name, root)
    trtexec_double.install(root / "usr" / "src" / "tensorrt" / "bin" / "trtexec", JETPACKS[name][0])
    for zone in (root / "sys" / "class" / "thermal").glob("thermal_zone*"):
        (zone / "temp").write_text("45000\n")
    return root
