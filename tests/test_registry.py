from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import yaml

from harness.catalogue.registry import load_catalogue
from harness.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
PAPER_CSV = ROOT.parent / "shared" / "reference" / "paper_models.csv"


def test_catalogue_has_every_paper_model(catalogue):
    paper = [spec for spec in catalogue.specs if spec.in_paper]
    assert len(paper) == 44
    assert len({spec.paper_name for spec in paper}) == 44


@pytest.mark.skipif(not PAPER_CSV.exists(), reason="shared/reference is not beside this checkout")
def test_paper_names_match_reference_csv(catalogue):
    rows = list(csv.DictReader(PAPER_CSV.open()))
    assert {row["paper_name"] for row in rows} == {s.paper_name for s in catalogue.specs if s.in_paper}
    by_paper = {s.paper_name: s for s in catalogue.specs if s.in_paper}
    for row in rows:
        spec = by_paper[row["paper_name"]]
        assert spec.input_size == int(row["input_size"]), spec.name
        assert spec.preprocessing.color == row["input_space"], spec.name


def test_shufflenet_v1_and_its_successor(catalogue):
    v1 = catalogue.get("shufflenet_v1_g8")
    assert v1.source == "project" and v1.builder_kwargs == {"groups": 8}
    assert v1.pretrained is None and "no pretrained weights" in (v1.notes or "")
    v2 = catalogue.get("shufflenet_v2_x1_0")
    assert v2.successor_of == "shufflenet_v1_g8" and not v2.in_paper


def test_every_entry_has_a_recipe_and_sourced_figures(catalogue):
    for spec in catalogue.specs:
        pre = spec.preprocessing
        assert pre.resize_shorter_to >= spec.input_size, spec.name
        assert abs(pre.resize_shorter_to * pre.crop_pct - spec.input_size) < 1.0, spec.name
        if spec.published.top1 is not None:
            assert spec.published.accuracy_source, spec.name


def test_bgr_models_take_0_255_input(catalogue):
    for name in ("bninception", "cafferesnet101"):
        pre = catalogue.get(name).preprocessing
        assert pre.color == "BGR" and pre.value_range == (0.0, 255.0)


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _entries() -> list[dict]:
    return copy.deepcopy(yaml.safe_load((ROOT / "harness" / "data" / "models.yaml").read_text())["models"][:3])


@pytest.mark.parametrize("mutate, entry, field", [
    (lambda e: e[1].pop("input_size"), "vgg11", "input_size"),
    (lambda e: e[0].update(input_size=8), "alexnet", "input_size"),
    (lambda e: e[0].update(sets=["paper"]), "alexnet", "sets"),
    (lambda e: e[0].update(sets=["Mobile Nets"]), "alexnet", "sets"),
    (lambda e: e[2]["preprocessing"].update(color="RGBA"), "vgg11_bn", "preprocessing.color"),
    (lambda e: e[0]["preprocessing"].update(mean=[0.5, 0.5]), "alexnet", "preprocessing.mean"),
    (lambda e: e[0].update(source="caffe"), "alexnet", "source"),
    (lambda e: e[0].update(unknown_field=1), "alexnet", "unknown_field"),
    (lambda e: e[1]["published"].pop("accuracy_source"), "vgg11", "published"),
    (lambda e: e[0].update(name="vgg11"), "vgg11", "name"),  # a duplicate of the second entry
])
def test_malformed_entry_names_entry_and_field(tmp_path, mutate, entry, field):
    entries = _entries()
    mutate(entries)
    with pytest.raises(UserError) as error:
        load_catalogue(_write(tmp_path, {"models": entries}))
    message = str(error.value)
    assert f"entry '{entry}'" in message and f"field '{field}" in message
    assert "\n" not in message


def test_not_yaml_and_wrong_shape(tmp_path):
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_catalogue(_write(tmp_path, "models: [\n  - {name: x"))
    with pytest.raises(UserError, match="top-level 'models:' list"):
        load_catalogue(_write(tmp_path, {"model": []}))
    with pytest.raises(UserError, match="cannot read the model catalogue"):
        load_catalogue(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"  # was a UnicodeDecodeError traceback
    binary.write_bytes(b"\xbd\xff\x00models")
    with pytest.raises(UserError, match="not a YAML catalogue"):
        load_catalogue(binary)


def test_the_catalogue_is_package_data(tmp_path, monkeypatch):
    """The default catalogue is the one the package ships, found through importlib.resources (not beside the
    source tree); an install without it says to reinstall, a missing file named by the user says to fix the path."""
    import importlib.resources

    from harness.catalogue import registry

    monkeypatch.delenv("HARNESS_MODELS", raising=False)
    assert load_catalogue().path == importlib.resources.files("harness.data") / "models.yaml"
    assert not (ROOT / "models.yaml").exists() and not (ROOT / "profiles").exists()  # no stale copy to read
    monkeypatch.setattr(registry, "shipped_catalogue", lambda: tmp_path / "absent.yaml")
    with pytest.raises(UserError, match=r"absent.yaml: No such file or directory; the install lacks its package data"):
        load_catalogue()
    with pytest.raises(UserError, match=r"named.yaml: No such file or directory; give --catalogue"):
        load_catalogue(tmp_path / "named.yaml")


def test_select_by_names_and_globs(catalogue):
    names = [s.name for s in catalogue.select("resnet1*,alexnet,resnet18")]
    assert names == ["resnet18", "resnet101", "resnet152", "alexnet"]  # order given; a glob in catalogue order
    assert len(catalogue.select(None)) == len(catalogue.specs)


def test_unknown_model_suggests_close_names(catalogue):
    with pytest.raises(UserError, match="unknown model 'resnet19'; did you mean resnet18"):
        catalogue.select("resnet19")
    with pytest.raises(UserError, match="harness list"):
        catalogue.select("zzzz")


def test_named_sets(catalogue):
    sets = catalogue.sets
    assert list(sets)[0] == "paper" and len(sets["paper"]) == 44
    assert [s.name for s in catalogue.select("@paper")] == [s.name for s in catalogue.specs if s.in_paper]
    assert len(sets["modern"]) >= 30 and not set(sets["modern"]) & set(sets["paper"])
    assert {"mobilenet_v2", "mobilenet_v3_small", "tf_efficientnet_lite0", "squeezenet1_1"} <= set(sets["mobile"])
    assert "vgg16" not in sets["mobile"] and "vit_b_16" not in sets["mobile"]
    union = [s.name for s in catalogue.select("@mobile,resnet50,mobilenet_v2,vit*")]
    assert union[:len(sets["mobile"])] == sets["mobile"]  # the set's models in catalogue order, each once
    assert union[len(sets["mobile"]):] == ["resnet50", "vit_small_patch16_224", "vit_b_16"]
    with pytest.raises(UserError, match="unknown model set '@tiny': choose from @paper, "):
        catalogue.select("@tiny")


def test_modern_models_are_sourced_and_say_their_pretraining(catalogue):
    modern = catalogue.select("@modern")
    required = {"mobilenet_v3_small", "mobilenet_v3_large", "mnasnet1_0", "ghostnet_100", "efficientnet_b0",
                "efficientnet_b4", "tf_efficientnet_lite0", "tf_efficientnet_lite4", "efficientnet_v2_s",
                "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny", "convnext_small", "vit_small_patch16_224",
                "vit_b_16", "deit_small_patch16_224", "swin_t", "maxvit_t", "resnet50_tv_v2", "mobilevit_s"}
    assert required <= {spec.name for spec in modern}
    for spec in modern:
        published = spec.published
        assert published.top1 and published.top5 and published.accuracy_source, spec.name
        assert published.params_m and published.gmacs and published.complexity_source, spec.name
        assert spec.year >= 2018 and spec.pretrained.tag and spec.pretrained.pretraining, spec.name
        assert spec.preprocessing.resize_shorter_to >= spec.input_size, spec.name
