"""The board's install for real: a fresh venv with `pip install -e '.[device]'` (no torch, torchvision, timm
or pretrainedmodels get installed), then `bench --bundle` and `verify --bundle` with ONNX Runtime in it,
on a bundle made by the workstation's venv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import HIDDEN, ROOT


@pytest.mark.slow
def test_a_device_venv_measures_and_verifies_a_bundle(tmp_path, request):
    """The session's bundle is asked for once the venv is installed: offline, the test is skipped before the
    export is paid for."""
    venv = tmp_path / "board-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e",
                              f"{ROOT}[device]"], capture_output=True, text=True, timeout=900)
    if install.returncode != 0 and ("Could not find a version" in install.stderr
                                    or "connection" in install.stderr.lower()):
        pytest.skip(f"the package index cannot be reached: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([python, "-c", f"import importlib.util as u; print([m for m in {HIDDEN!r} "
                            "if u.find_spec(m)])"], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    bundle = request.getfixturevalue("bundle")
    out = tmp_path / "runs"
    for command in (["bench", "--bundle", str(bundle), "--runtime", "ort", "--batch-sizes", "1,2", "--run-id", "b"],
                    ["verify", "--bundle", str(bundle), "--runtime", "ort", "--precision", "fp32,fp16",
                     "--run-id", "v"]):
        result = subprocess.run([python, "-m", "harness", *command, "--out", str(out)], capture_output=True,
                                text=True, timeout=600, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verified = [json.loads(line) for line in (out / "v" / "records.jsonl").read_text().splitlines()]
    assert [r["status"] for r in verified] == ["ok", "ok"]
    assert all(Path(r["model"]["bundle"]) == bundle for r in verified)
