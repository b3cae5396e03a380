"""A real install, as a user makes one, not an editable one: `python -m build` makes the sdist and the wheel from
the checkout's files; README's install lines, run in the unpacked sdist, build the wheel from it and install it
(non-editable) into fresh venvs — `[torch,ort]` for a workstation, `[device]` for a board. Every command then
runs from a folder outside the checkout with no PYTHONPATH, so it can read only what the wheel carries; the
board's commands run with the installed models.yaml removed (a bundle carries what it needs).

Slow: the workstation venv installs torch (several GB, from pip's cache or this disk's files); each command has a
generous timeout."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import HIDDEN, ROOT

# README's install lines, word for word (test_readme_shows_the_install_lines_this_test_runs keeps them so).
WORKSTATION_INSTALL = "pip install -c constraints.txt '.[torch,ort]'"
BOARD_INSTALL = "pip install -c constraints.txt '.[device]'"
BUILD = "python -m build"
INSTALL_TIMEOUT_S = 3600
COMMAND_TIMEOUT_S = 900
PACKAGES = ("harness", "exporters", "runtimes")
CPU_PROFILE = """name: this CPU
kind: cpu
device_match: ["cpu"]
memory_total: 64GB
memory_budget: 32GB
onnx_max_opset: 18
targets:
  batch_size: 1
"""


def _checkout_files() -> list[str]:
    """The files a clone of this checkout would have (tracked, and new ones git does not ignore)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=60).stdout
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


def _copy_checkout(to: Path) -> Path:
    """A copy of the checkout's files, so the build writes nothing (egg-info, build/) into the checkout."""
    for name in _checkout_files():
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, to / name)
    return to


def _clean_env(cache: Path) -> dict[str, str]:
    """The environment of a new user: no PYTHONPATH (only the venv's site-packages can supply the harness), no
    catalogue named, caches of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HARNESS_MODELS", "VIRTUAL_ENV")}
    return {**env, "HARNESS_CACHE_DIR": str(cache), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)


def _skip_if_offline(result: subprocess.CompletedProcess[str]) -> None:
    said = result.stderr.lower()
    if result.returncode != 0 and ("could not find a version" in said or "connection" in said):
        pytest.skip(f"the package index cannot be reached: {result.stderr.strip().splitlines()[-1]}")


def _pip_line(line: str, python: Path) -> list[str]:
    """README's `pip install ...` line as the venv's python runs it (`python -m pip install ...`)."""
    words = shlex.split(line)
    assert words[0] == "pip", line
    return [str(python), "-m", "pip", *words[1:]]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A folder outside the checkout for the whole module, removed afterwards (venvs with torch are big)."""
    folder = Path(tempfile.mkdtemp(prefix="harness-install-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def built(scratch: Path) -> dict[str, Path]:
    """`python -m build` on a copy of the checkout: the sdist, the wheel built from it, and the sdist unpacked."""
    source = _copy_checkout(scratch / "checkout")
    dist = scratch / "dist"
    build = _run([sys.executable, *shlex.split(BUILD)[1:], "--outdir", str(dist), str(source)], scratch,
                 _clean_env(scratch / "cache"), INSTALL_TIMEOUT_S)
    _skip_if_offline(build)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("dnn_harness-*.whl")
    (sdist,) = dist.glob("dnn_harness-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(scratch / "sdist", filter="data")
    (tree,) = (scratch / "sdist").iterdir()
    return {"wheel": wheel, "sdist": sdist, "tree": tree, "checkout": source}


def _venv(built: dict[str, Path], scratch: Path, name: str, install_line: str) -> Path:
    """A fresh venv with README's install line run in the unpacked sdist; its python."""
    venv = scratch / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = _run(_pip_line(install_line, python), built["tree"], _clean_env(scratch / "cache"), INSTALL_TIMEOUT_S)
    _skip_if_offline(install)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return python


@pytest.fixture(scope="module")
def workstation(built: dict[str, Path], scratch: Path) -> Path:
    return _venv(built, scratch, "workstation-venv", WORKSTATION_INSTALL)


@pytest.fixture(scope="module")
def board(built: dict[str, Path], scratch: Path) -> Path:
    return _venv(built, scratch, "board-venv", BOARD_INSTALL)


@pytest.fixture(scope="module")
def elsewhere(scratch: Path) -> Path:
    """Where the commands run: outside the checkout, so nothing is found relative to the working folder."""
    folder = scratch / "elsewhere"
    folder.mkdir()
    return folder


def harness_in(python: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([str(python), "-m", "harness", *args], cwd, env, COMMAND_TIMEOUT_S)


@pytest.fixture(scope="module")
def bundle(workstation: Path, elsewhere: Path, scratch: Path) -> Path:
    """`export --bundle` from the workstation install, with a shipped profile named as a user names it."""
    folder = elsewhere / "bundle"
    result = harness_in(workstation, "export", "--bundle", str(folder), "--models", "squeezenet1_1", "--precision",
                        "fp32", "--batch-sizes", "1,2", "--profile", "jetson-orin-nano", cwd=elsewhere,
                        env=_clean_env(scratch / "workstation-cache"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((folder / "bundle.json").read_text())["models"] == ["squeezenet1_1"]
    return folder


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def _site_file(python: Path, module: str) -> Path:
    """Where `module` is imported from by that python, run outside the checkout."""
    probe = _run([str(python), "-c", f"import {module}; print({module}.__file__)"], python.parent, _clean_env(
        python.parent / "cache"), 60)
    assert probe.returncode == 0, probe.stderr
    return Path(probe.stdout.strip())


def test_readme_shows_the_install_lines_this_test_runs():
    readme = (ROOT / "README.md").read_text()
    for line in (WORKSTATION_INSTALL, BOARD_INSTALL, BUILD):
        assert line in readme, f"README.md should show the install line the install test runs: {line}"
    assert "pip install -e '.[device]'" not in readme


@pytest.mark.slow
def test_the_wheel_and_sdist_carry_every_file_a_command_reads(built):
    """Every file of the packages that is not Python source (models.yaml, the profiles, py.typed) is in the wheel
    and the sdist; the sdist also has what README's install lines need in it."""
    data = sorted(name for name in _checkout_files()
                  if name.split("/")[0] in PACKAGES and not name.endswith(".py"))
    assert {"harness/data/models.yaml", "harness/data/profiles/jetson-orin-nano.yaml"} <= set(data), data
    with zipfile.ZipFile(built["wheel"]) as wheel:
        in_wheel = set(wheel.namelist())
    assert not [name for name in data if name not in in_wheel], sorted(in_wheel)
    in_sdist = {str(path.relative_to(built["tree"])) for path in built["tree"].rglob("*") if path.is_file()}
    assert not [name for name in (*data, "constraints.txt", "README.md", "setup.cfg") if name not in in_sdist]


@pytest.mark.slow
def test_a_workstation_install_lists_benches_exports_reports_and_checks(workstation, bundle, elsewhere, scratch):
    env = _clean_env(scratch / "workstation-cache")
    assert _site_file(workstation, "harness").is_relative_to(workstation.parent.parent), "not the venv's harness"
    listing = harness_in(workstation, "list", "--filter", "squeezenet1_1", cwd=elsewhere, env=env)
    assert listing.returncode == 0, listing.stdout[-3000:] + listing.stderr[-3000:]
    shipped = _site_file(workstation, "harness.data").parent / "models.yaml"
    assert f"1 models from {shipped}" in listing.stdout.replace("\n", ""), listing.stdout
    out = elsewhere / "workstation-runs"
    bench = harness_in(workstation, "bench", "--models", "squeezenet1_1", "--runtime", "torch,ort", "--batch-sizes",
                       "1", "--device", "cpu", "--out", str(out), "--run-id", "w", cwd=elsewhere, env=env)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    assert sorted((r["cell"]["runtime"], r["status"]) for r in _records(out / "w")) == [("ort", "ok"), ("torch", "ok")]
    report = harness_in(workstation, "report", str(out / "w"), "--out", str(elsewhere / "report-w"), "--quiet",
                        cwd=elsewhere, env=env)
    assert report.returncode == 0 and (elsewhere / "report-w" / "report.html").is_file(), report.stderr[-3000:]
    check = harness_in(workstation, "check", "--profile", "jetson-orin-nano", "--models", "squeezenet1_1",
                       str(out / "w"), cwd=elsewhere, env=env)
    assert check.returncode in (0, 1) and "mode: estimate" in check.stdout, check.stdout[-3000:] + check.stderr
    assert (bundle / "squeezenet1_1" / "manifest.json").is_file()


@pytest.mark.slow
def test_a_board_install_has_no_torch_and_measures_a_bundle_with_no_catalogue(board, bundle, elsewhere, scratch):
    env = _clean_env(scratch / "board-cache")
    probe = _run([str(board), "-c", "import importlib.metadata as m, importlib.util as u; "
                  f"print(sorted({{d.metadata['Name'].lower() for d in m.distributions()}} & {set(HIDDEN)!r}), "
                  f"[n for n in {HIDDEN!r} if u.find_spec(n)])"], elsewhere, env, 120)
    assert probe.stdout.strip() == "[] []", probe.stdout + probe.stderr
    shipped = _site_file(board, "harness.data").parent / "models.yaml"
    assert shipped.is_file() and shipped.is_relative_to(board.parent.parent)
    shipped.unlink()  # a bundle carries what it needs: no command below may read the catalogue
    out = elsewhere / "board-runs"
    bench = harness_in(board, "bench", "--bundle", str(bundle), "--runtime", "ort", "--batch-sizes", "1,2", "--out",
                       str(out), "--run-id", "b", cwd=elsewhere, env=env)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    assert "squeezenet1_1" in bench.stdout and "bs 2" in bench.stdout  # the result table
    assert [r["status"] for r in _records(out / "b")] == ["ok", "ok"]
    verify = harness_in(board, "verify", "--bundle", str(bundle), "--runtime", "ort", "--out", str(out), "--run-id",
                        "v", cwd=elsewhere, env=env)
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    assert [(r["status"], r["parity"]["top1_agreement"]) for r in _records(out / "v")] == [("ok", 1.0)]
    profile = elsewhere / "this-cpu.yaml"
    profile.write_text(CPU_PROFILE)
    check = harness_in(board, "check", "--on-device", "--bundle", str(bundle), "--profile", str(profile), "--out",
                       str(out), cwd=elsewhere, env=env)
    assert check.returncode == 0 and "1/1 models ready for this CPU" in check.stdout, check.stdout + check.stderr
    report = harness_in(board, "report", str(out / "b"), "--out", str(elsewhere / "report-b"), "--quiet",
                        cwd=elsewhere, env=env)
    assert report.returncode == 0 and (elsewhere / "report-b" / "report.html").is_file(), report.stderr[-3000:]
    console = _run([str(board.parent / "harness"), "--version"], elsewhere, env, 120)
    assert console.returncode == 0 and "dnn-harness" in console.stdout, console.stderr
