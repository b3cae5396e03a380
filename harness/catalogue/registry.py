"""The model catalogue: `models.yaml` loaded into validated `ModelSpec`s, and selection by name or glob."""

from __future__ import annotations

import difflib
import fnmatch
import importlib.util
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporters.sources import SOURCES
from exporters.tasks import CLASSIFICATION
from harness.data import shipped_catalogue
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.data import Traversable

CATALOGUE_ENV = "HARNESS_MODELS"

Source = Literal["torchvision", "timm", "pretrainedmodels", "project"]
Task = Literal["classification", "detection", "segmentation"]  # exporters.tasks: what the timed graph answers
# The top-level package of each source (exporters.sources): installed or not, and its version.
SOURCE_PACKAGE: dict[str, str] = {name: source.module.split(".")[0] for name, source in SOURCES.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preprocessing(_Strict):
    """How an image becomes the model's input tensor (the accuracy protocol)."""

    resize_shorter_to: int = Field(gt=0, description="shorter side resized to this many pixels")
    crop_pct: float = Field(gt=0, le=1, description="center crop size / resize size")
    interpolation: Literal["bilinear", "bicubic", "nearest"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color: Literal["RGB", "BGR"]
    value_range: tuple[float, float] = Field(description="pixel range before mean/std, e.g. [0, 1] or [0, 255]")


class Published(_Strict):
    """Figures published elsewhere, each with where it was read."""

    top1: float | None = Field(default=None, ge=0, le=100)
    top5: float | None = Field(default=None, ge=0, le=100)
    box_map: float | None = Field(default=None, ge=0, le=100, description="a detector's COCO val2017 box mAP")
    miou: float | None = Field(default=None, ge=0, le=100, description="a segmenter's mean IoU")
    accuracy_source: str | None = None
    params_m: float | None = Field(default=None, gt=0)
    gmacs: float | None = Field(default=None, gt=0, description="G multiply-adds, one multiply-add = 1")
    complexity_source: str | None = None

    @model_validator(mode="after")
    def _sources_given(self) -> "Published":
        if any(v is not None for v in (self.top1, self.top5, self.box_map, self.miou)) and not self.accuracy_source:
            raise ValueError("accuracy_source is required when top1/top5/box_map/miou are given")
        if (self.params_m is not None or self.gmacs is not None) and not self.complexity_source:
            raise ValueError("complexity_source is required when params_m/gmacs are given")
        return self


class PretrainedWeights(_Strict):
    """Where the library's pretrained weights come from, and whether they are the paper's."""

    tag: str | None = Field(default=None, description="torchvision weights enum, timm tag or pretrainedmodels key")
    same_as_paper: bool
    pretraining: str | None = Field(default=None, description="the data the weights were trained on, e.g. ImageNet-1k")
    note: str


class ModelSpec(_Strict):
    """One architecture of the catalogue."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    task: Task = CLASSIFICATION
    paper_name: str | None = Field(default=None, description="display name in Bianco et al. 2018; none if not in it")
    display_name: str
    family: str
    year: int = Field(ge=1980, le=2100)
    source: Source
    builder: str
    builder_kwargs: dict[str, object] = Field(default_factory=dict)
    input_size: int = Field(ge=32, le=1024, description="side of the square input the model is evaluated at")
    preprocessing: Preprocessing
    published: Published
    pretrained: PretrainedWeights | None = None
    successor_of: str | None = None
    sets: tuple[str, ...] = Field(default=(), description="named sets the model belongs to, e.g. modern, mobile")
    notes: str | None = None

    @field_validator("sets")
    @classmethod
    def _set_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or not name.replace("_", "").isalnum() or not name.islower():
                raise ValueError(f"set name '{name}' must be lower-case letters, digits and _")
            if name == PAPER_SET:
                raise ValueError("'paper' is implied by paper_name; do not list it")
        return value

    @field_validator("builder")
    @classmethod
    def _builder_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("builder must name a function of the source library")
        return value

    @model_validator(mode="after")
    def _figures_fit_the_task(self) -> "ModelSpec":
        """A classifier's published figures are top-1/top-5, a detector's box mAP, a segmenter's mIoU."""
        published = self.published
        allowed = {"classification": ("top1", "top5"), "detection": ("box_map",), "segmentation": ("miou",)}[self.task]
        wrong = [name for name in ("top1", "top5", "box_map", "miou")
                 if getattr(published, name) is not None and name not in allowed]
        if wrong:
            raise ValueError(f"a {self.task} model publishes {' or '.join(allowed)}, not {', '.join(wrong)}")
        return self

    @property
    def in_paper(self) -> bool:
        return self.paper_name is not None

    @property
    def all_sets(self) -> tuple[str, ...]:
        """Its named sets, `paper` included for the paper's models."""
        return (PAPER_SET,) * self.in_paper + self.sets

    @property
    def source_installed(self) -> bool:
        return importlib.util.find_spec(SOURCE_PACKAGE[self.source]) is not None


def _first_error_line(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(entry)"
    return f"field '{field}': {first['msg']}"


PAPER_SET = "paper"  # the set every entry with a paper_name is in; the others are named in each entry
SET_PREFIX = "@"


class Catalogue:
    """All `ModelSpec`s of one models.yaml, in file order."""

    def __init__(self, specs: list[ModelSpec], path: Path | Traversable) -> None:
        self.specs = specs
        self.path = path

    @cached_property
    def by_name(self) -> dict[str, ModelSpec]:
        return {spec.name: spec for spec in self.specs}

    def get(self, name: str) -> ModelSpec:
        try:
            return self.by_name[name]
        except KeyError:
            raise UserError(_unknown_model_message(name, list(self.by_name))) from None

    @cached_property
    def sets(self) -> dict[str, list[str]]:
        """Set name -> its models' names, in catalogue order; the paper's set first."""
        named: dict[str, list[str]] = {PAPER_SET: []}
        for spec in self.specs:
            for name in spec.all_sets:
                named.setdefault(name, []).append(spec.name)
        return named

    def _matches(self, pattern: str) -> list[str]:
        if pattern.startswith(SET_PREFIX):
            name = pattern[len(SET_PREFIX):]
            if name not in self.sets:
                known = ", ".join(SET_PREFIX + s for s in self.sets)
                raise UserError(f"unknown model set '{pattern}': choose from {known}")
            return self.sets[name]
        matches = fnmatch.filter(self.by_name, pattern)
        if not matches:
            raise UserError(_unknown_model_message(pattern, list(self.by_name)))
        return matches

    def select(self, patterns: str | list[str] | None) -> list[ModelSpec]:
        """Models matching comma-separated names, globs or @sets (their union), in the order given (a
        glob's or set's matches in catalogue order), each once; None selects all."""
        if patterns is None:
            return list(self.specs)
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        if not patterns:
            raise UserError("no model given: pass names or globs, e.g. --models 'resnet18,vgg*'")
        chosen: dict[str, ModelSpec] = {}
        for pattern in patterns:
            matches = self._matches(pattern)
            chosen.update((name, self.by_name[name]) for name in matches if name not in chosen)
        return list(chosen.values())


def _unknown_model_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `python -m harness list` to see them"
    return f"unknown model '{name}'{hint}"


def catalogue_path(path: str | Path | None = None) -> Path | Traversable:
    """The catalogue to read: `path` (--catalogue), else $HARNESS_MODELS, else the one the package ships."""
    chosen = path or os.environ.get(CATALOGUE_ENV)
    return Path(chosen) if chosen else shipped_catalogue()


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate models.yaml; any problem is a `UserError` naming the entry and the field."""
    file = catalogue_path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        named = path or os.environ.get(CATALOGUE_ENV)
        fix = ("give --catalogue (or $HARNESS_MODELS) the path of a readable models.yaml" if named
               else "the install lacks its package data: reinstall dnn-harness, or pass --catalogue PATH")
        raise UserError(f"cannot read the model catalogue {file}: {exc.strerror}; {fix}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not a YAML catalogue (byte {exc.start} is not UTF-8 text); give --catalogue "
                        "(or $HARNESS_MODELS) the path of a models.yaml") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    entries = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{file}: expected a top-level 'models:' list of entries")
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        label = entry.get("name", f"#{index + 1}") if isinstance(entry, dict) else f"#{index + 1}"
        try:
            spec = ModelSpec.model_validate(entry)
        except ValidationError as exc:
            raise UserError(f"{file}: entry '{label}': {_first_error_line(exc)}") from None
        if spec.name in seen:
            raise UserError(f"{file}: entry '{label}': field 'name': duplicate name")
        seen.add(spec.name)
        specs.append(spec)
    for spec in specs:
        if spec.successor_of and spec.successor_of not in seen:
            raise UserError(f"{file}: entry '{spec.name}': field 'successor_of': no entry named '{spec.successor_of}'")
    return Catalogue(specs, file)


class LazyCatalogue(Catalogue):
    """The catalogue of `load_catalogue(path)`, read the first time a command looks at it: a command that needs no
    catalogue (a bundle's bench, verify and check --on-device; report; compare) runs where none can be read."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.source = path  # no super().__init__: `_loaded` reads the file when `specs` or `path` is first asked

    @cached_property
    def _loaded(self) -> Catalogue:
        return load_catalogue(self.source)

    @cached_property
    def specs(self) -> list[ModelSpec]:  # type: ignore[override]
        return self._loaded.specs

    @cached_property
    def path(self) -> Path | Traversable:  # type: ignore[override]
        return self._loaded.path
