"""Small helpers several test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def noise_images(folder: Path, count: int, seed: int = 0, suffix: str = ".bmp") -> Path:
    """`count` images of seeded noise, 40x50, in `folder` (made if missing); BMP by default: one size for any
    pixels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(seed + index).integers(0, 256, (40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}{suffix}")
    return folder


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command, run in this process through the CLI's main(): (exit code, stdout + stderr)."""
    from harness.cli.main import main

    code = main(list(args))
    output = capsys.readouterr()
    return code, output.out + output.err
