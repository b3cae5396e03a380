"""Where the labelled images are: the three layouts of an ImageNet validation set, detected from the path.

(a) class folders: `val/n01440764/*.JPEG`, one folder per WordNet id (what torchvision's ImageFolder reads);
(b) a flat folder of `ILSVRC2012_val_NNNNNNNN.JPEG` plus ground truth: the devkit's
    `ILSVRC2012_validation_ground_truth.txt` (ILSVRC2012 ids, one line per image number) with the devkit's
    `meta.mat` beside it (ILSVRC2012 id -> WordNet id), or Kaggle's `LOC_val_solution.csv`;
(c) a CSV file of `path,label` rows, the label a WordNet id or a class index 0-999, paths relative to the CSV.
Calibration images need no labels (`open_unlabelled`): any folder of images (its sub-folders too, whatever
their names) or a CSV whose first column lists image paths.
A problem with the layout itself is a `UserError` (one line); an image that cannot be decoded is found
later, when it is decoded, and is counted and listed, not fatal.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.accuracy.classes import NUM_CLASSES, class_index, is_wnid
from harness.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"})
DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META = "meta.mat"
LOC_SOLUTION = "LOC_val_solution.csv"
GROUND_TRUTH_NAMES = (DEVKIT_GROUND_TRUTH, LOC_SOLUTION)
# How far above a flat image folder ground truth is looked for (Kaggle: ILSVRC/Data/CLS-LOC/val -> root).
PARENT_LEVELS = 4
IMAGE_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)$")
LAYOUT_HELP = ("expected one of: a folder of WordNet-id class folders (val/n01440764/...), a flat folder of "
               "images with ILSVRC2012_validation_ground_truth.txt (+ meta.mat) or LOC_val_solution.csv "
               "(found beside it or given with --labels), or a CSV of path,label")
UNLABELLED = -1  # the label of an image read without labels (calibration)


@dataclass(frozen=True)
class LabelledImages:
    """Image files and their class indices (the sorted-WordNet-id order), in a stable order."""

    layout: str  # "class-folders", "flat+devkit", "flat+loc-csv" or "csv"
    root: Path
    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    label_source: str  # the file or folder names the labels were read from
    selection: str = ""  # which of the images found are used; empty: all of them
    flag: str = "--data"  # the command-line option that named the images: what a message about them names
    contents_sha256: str = ""  # a hash of these files' bytes, where one was taken (calibration): crop cache keys on it

    def __len__(self) -> int:
        return len(self.paths)

    def limited(self, limit: int | None, seed: int = 0) -> "LabelledImages":
        """The first `limit` images of a seeded shuffle, back in path order: a subset that spans the
        classes even where the files are sorted by class."""
        if limit is None or limit >= len(self):
            return self
        chosen = np.sort(np.random.default_rng(seed).permutation(len(self))[:limit])
        chose = f"{limit} of {len(self)} images (a seeded shuffle, seed {seed})"
        return replace(self, paths=tuple(self.paths[i] for i in chosen), labels=tuple(self.labels[i] for i in chosen),
                       selection=f"{self.selection}; then {chose}" if self.selection else chose, contents_sha256="")

    def describe(self) -> str:
        chosen = self.selection or f"all {len(self)} images"
        return f"{chosen}, {self.layout} layout, labels from {self.label_source}"


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def open_images(data: Path, labels: Path | None = None) -> LabelledImages:
    """Detect the layout of `data` (a folder or a CSV file) and read every image path and label."""
    data = data.expanduser()
    if not data.exists():
        raise UserError(f"no such data path '{data}': pass the ImageNet validation folder or a CSV of path,label")
    if data.is_file():
        if labels is not None:
            raise UserError("--labels goes with a flat image folder; a CSV given as --data carries its own labels")
        return _read_path_label_csv(data)
    if labels is not None:
        return _flat_with_ground_truth(data, labels.expanduser())
    entries = [entry for entry in data.iterdir() if not entry.name.startswith(".")]
    folders = [entry for entry in entries if entry.is_dir()]
    images = [entry for entry in entries if entry.is_file() and is_image(entry)]
    if folders and not images:
        return _class_folders(data, folders)
    if images:
        ground_truth = _find_ground_truth(data)
        if ground_truth is None:
            raise UserError(f"{len(images)} images in '{data}' but no ground truth beside them: pass --labels "
                            f"{DEVKIT_GROUND_TRUTH} (with {DEVKIT_META} beside it) or --labels {LOC_SOLUTION}, "
                            "or use one folder per WordNet id")
        return _flat_with_ground_truth(data, ground_truth)
    raise UserError(f"'{data}' holds no images and no class folders; {LAYOUT_HELP}")


def _text(path: Path) -> str:
    """`path`'s text (UTF-8, a byte-order mark allowed); a file that is not text or cannot be read is one line."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a text file (byte {exc.start} is not UTF-8): pass the right file, saved as "
                        "UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if "\0" in text:
        raise UserError(f"{path} is not a text file (it holds NUL bytes): pass the right file, saved as "
                        "UTF-8 text")
    return text


def _csv_rows(path: Path) -> Iterator[list[str]]:
    """The rows of a CSV file, read whole first (one line when it is not text)."""
    return csv.reader(io.StringIO(_text(path), newline=""))


def _unknown_wnids_message(unknown: list[str], where: str) -> str:
    shown = ", ".join(sorted(unknown)[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    return (f"{where}: {len(unknown)} WordNet id(s) not among the 1000 ImageNet-1k classes ({shown}); "
            "use ImageNet-1k validation labels")


def _class_folders(data: Path, folders: list[Path]) -> LabelledImages:
    not_wnids = sorted(folder.name for folder in folders if not is_wnid(folder.name))
    if not_wnids:
        raise UserError(f"'{data}' has folders that are not WordNet ids ({', '.join(not_wnids[:3])}); {LAYOUT_HELP}")
    index = class_index()
    unknown = [folder.name for folder in folders if folder.name not in index]
    if unknown:
        raise UserError(_unknown_wnids_message(unknown, f"class folders in '{data}'"))
    pairs = [(path, index[folder.name]) for folder in sorted(folders)
             for path in sorted(folder.iterdir()) if path.is_file() and is_image(path)]
    if not pairs:
        raise UserError(f"the class folders in '{data}' hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return LabelledImages("class-folders", data, tuple(p for p, _ in pairs), tuple(label for _, label in pairs),
                          f"the names of {len(folders)} class folders")


def _find_ground_truth(data: Path) -> Path | None:
    folders = [data, *list(data.resolve().parents)[:PARENT_LEVELS]]
    for folder in folders:
        for where in (folder, folder / "ILSVRC2012_devkit_t12" / "data", folder / "data"):
            for name in GROUND_TRUTH_NAMES:
                if (where / name).is_file():
                    return where / name
    return None


def _flat_with_ground_truth(data: Path, ground_truth: Path) -> LabelledImages:
    if not data.is_dir():
        raise UserError(f"--labels needs --data to be the folder of images, not '{data}'")
    if not ground_truth.is_file():
        raise UserError(f"no such ground-truth file '{ground_truth}'")
    images = sorted(path for path in data.iterdir() if path.is_file() and is_image(path))
    if not images:
        raise UserError(f"no images directly in '{data}' ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if ground_truth.suffix.lower() == ".csv":
        by_stem = _read_loc_solution(ground_truth)
        layout = "flat+loc-csv"
    else:
        by_stem = _read_devkit_ground_truth(ground_truth, images)
        layout = "flat+devkit"
    missing = [path.name for path in images if path.stem not in by_stem]
    if missing:
        raise UserError(f"{len(missing)} image(s) in '{data}' have no line in {ground_truth.name} "
                        f"(e.g. {missing[0]}); is it the ground truth of this set?")
    return LabelledImages(layout, data, tuple(images), tuple(by_stem[path.stem] for path in images), str(ground_truth))


def _read_loc_solution(path: Path) -> dict[str, int]:
    """Kaggle's `ImageId,PredictionString` file: the first token of the string is the image's WordNet id."""
    index = class_index()
    labels: dict[str, int] = {}
    unknown: list[str] = []
    rows = _csv_rows(path)
    header = next(rows, None)
    if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
        raise UserError(f"{path} does not start with ImageId,PredictionString (the LOC_val_solution.csv form)")
    for row in rows:
        if len(row) < 2 or not row[1].split():
            raise UserError(f"{path} line {rows.line_num}: expected ImageId,PredictionString")
        wnid = row[1].split()[0]
        if wnid not in index:
            unknown.append(wnid)
        else:
            labels[row[0].strip()] = index[wnid]
    if unknown:
        raise UserError(_unknown_wnids_message(sorted(set(unknown)), str(path)))
    return labels


def _read_devkit_ground_truth(path: Path, images: list[Path]) -> dict[str, int]:
    """Line k of the devkit's file is the ILSVRC2012 id of ILSVRC2012_val_{k:08d}; meta.mat maps ids to WordNet ids."""
    ilsvrc_to_wnid = read_devkit_meta(path.parent / DEVKIT_META)
    index = class_index()
    lines = _text(path).split()
    if not all(line.isdigit() for line in lines):
        raise UserError(f"{path}: expected one ILSVRC2012 class id (1-1000) per line")
    labels: dict[str, int] = {}
    for image in images:
        number = IMAGE_NUMBER.match(image.stem)
        if number is None:
            raise UserError(f"'{image.name}' is not named ILSVRC2012_val_NNNNNNNN, so {path.name} cannot label it")
        line = int(number.group(1))
        if 1 <= line <= len(lines):
            ilsvrc_id = int(lines[line - 1])
            if ilsvrc_id not in ilsvrc_to_wnid:
                raise UserError(f"{path} line {line}: ILSVRC2012 id {ilsvrc_id} is not a leaf class of {DEVKIT_META}")
            labels[image.stem] = index[ilsvrc_to_wnid[ilsvrc_id]]
    return labels


def read_devkit_meta(path: Path) -> dict[int, str]:
    """ILSVRC2012 id -> WordNet id for the 1000 leaf synsets (`num_children == 0`) of the devkit's meta.mat."""
    if not path.is_file():
        raise UserError(f"the devkit ground truth needs {DEVKIT_META} beside it ({path} is missing): extract "
                        "ILSVRC2012_devkit_t12.tar.gz, or use LOC_val_solution.csv")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise UserError(f"reading the devkit's {DEVKIT_META} needs scipy: pip install scipy") from None
    try:
        synsets = loadmat(str(path), squeeze_me=True)["synsets"]
        mapping = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise UserError(f"{path} is not the devkit's meta.mat (a 'synsets' struct array): {exc}") from None
    index = class_index()
    unknown = [wnid for wnid in mapping.values() if wnid not in index]
    if unknown:
        raise UserError(_unknown_wnids_message(unknown, str(path)))
    return mapping


def _read_path_label_csv(path: Path) -> LabelledImages:
    if path.suffix.lower() != ".csv":
        raise UserError(f"'{path}' is a file but not a .csv of path,label; {LAYOUT_HELP}")
    index = class_index()
    paths: list[Path] = []
    labels: list[int] = []
    unknown: list[str] = []
    for number, row in enumerate(_csv_rows(path), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise UserError(f"{path} line {number}: expected path,label, got {len(row)} fields")
        name, label = row[0].strip(), row[1].strip()
        if number == 1 and [name, label] == ["ImageId", "PredictionString"]:
            raise UserError(f"{path} is a LOC_val_solution.csv (labels only): pass the image folder as --data "
                            f"and this file as --labels")
        if number == 1 and not (is_wnid(label) or label.isdigit()):
            continue  # a header row
        if is_wnid(label):
            if label not in index:
                unknown.append(label)
                continue
            labels.append(index[label])
        elif label.isdigit() and int(label) < NUM_CLASSES:
            labels.append(int(label))
        else:
            raise UserError(f"{path} line {number}: label '{label}' is neither a WordNet id nor a class index 0-999")
        paths.append((path.parent / name) if not Path(name).is_absolute() else Path(name))
    if unknown:
        raise UserError(_unknown_wnids_message(sorted(set(unknown)), str(path)))
    if not paths:
        raise UserError(f"{path} has no path,label rows")
    return LabelledImages("csv", path.parent, tuple(paths), tuple(labels), str(path))


def open_unlabelled(data: Path, flag: str) -> LabelledImages:
    """Images whose labels nobody needs (calibration), named by the option `flag`: every image file in a folder
    and its sub-folders, whatever their names (a flat folder, class folders), or the first column of a CSV
    file; in a stable order, each labelled UNLABELLED. Problems name `flag`."""
    data = data.expanduser()
    if not data.exists():
        raise UserError(f"no such path '{data}' for {flag}: pass a folder of images or a CSV listing image paths")
    if data.is_file():
        if data.suffix.lower() != ".csv":
            raise UserError(f"{flag} '{data}' is a file but not a .csv listing image paths: pass a folder of images")
        root, paths, layout = data.parent, _listed_images(data, flag), "csv"
    else:
        root, paths, layout = data, _images_under(data), "image-folder"
    if not paths:
        raise UserError(f"{flag} '{data}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), in it or in its "
                        "sub-folders")
    return LabelledImages(layout, root, tuple(paths), (UNLABELLED,) * len(paths),
                          f"none ({flag} needs no labels)", flag=flag)


def _images_under(folder: Path) -> list[Path]:
    """Image files in `folder` and its sub-folders, hidden ones left out, sorted folder by folder."""
    found = []
    for parent, folders, files in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [Path(parent) / name for name in sorted(files) if is_image(Path(name))]
    return found


def _listed_images(path: Path, flag: str) -> list[Path]:
    """The image paths in the first column of a CSV (relative to it); a first row that names no image is a header."""
    paths = []
    for number, row in enumerate(_csv_rows(path), start=1):
        name = row[0].strip() if row else ""
        if not name or (number == 1 and not is_image(Path(name))):
            continue
        if not is_image(Path(name)):
            raise UserError(f"{flag} {path} line {number}: '{name}' is not an image path "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths.append(Path(name) if Path(name).is_absolute() else path.parent / name)
    return paths
