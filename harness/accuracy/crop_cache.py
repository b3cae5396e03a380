"""Decoded, resized, center-cropped images as one memory-mapped uint8 array per (images, geometry).

Folder `<cache>/crops/<geometry>-<key>/`: `crops.npy` (N, 3, S, S) uint8 RGB, `labels.npy`, `valid.npy`
(False where an image could not be decoded), and `meta.json`, written last: a folder without it is
unfinished. Decoding runs in worker processes, a chunk of images at a time, each worker writing its
rows straight into the memory map; `progress.json` lists the finished chunks, so an interrupted build
resumes where it stopped. The key covers every image's path, size, modification time and label, the
geometry, and the Pillow version, so a changed file, label or recipe gets a new folder; for a set whose
files' bytes were hashed (calibration), that hash too.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from harness.accuracy.layouts import LabelledImages
from harness.accuracy.preprocess import Geometry, crop
from harness.errors import UserError
from harness.paths import write_atomically

CHUNK_IMAGES = 64
META_FILE = "meta.json"
PROGRESS_FILE = "progress.json"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class CropSet:
    """A finished cache entry: what the evaluating process opens."""

    folder: Path
    key: str
    count: int
    valid_count: int
    bad_images: tuple[tuple[str, str], ...]  # (path, reason)
    build_s: float | None  # None when the entry was already there

    @property
    def crops_path(self) -> Path:
        return self.folder / "crops.npy"

    def as_request(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "key": self.key, "count": self.count, "valid_count": self.valid_count}


def _pillow_version() -> str:
    import PIL

    return PIL.__version__


def cache_key(images: LabelledImages, geometry: Geometry) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "geometry": geometry.as_dict(),
                              "pillow": _pillow_version()}, sort_keys=True).encode())
    for path, label in zip(images.paths, images.labels):
        try:
            stat = path.stat()
            identity = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            identity = "missing"
        digest.update(f"{path.resolve()}\t{identity}\t{label}\n".encode())
    if images.contents_sha256:  # where the files' bytes were hashed: a file rewritten with its old size and time
        digest.update(f"contents\t{images.contents_sha256}\n".encode())
    return digest.hexdigest()[:20]


def _decode_chunk(crops_path: str, start: int, paths: list[str], geometry: Geometry) -> list[tuple[int, str]]:
    """Decode `paths` into rows start.. of the memory map; returns (row, reason) of the images that failed."""
    from PIL import Image

    crops = np.load(crops_path, mmap_mode="r+")
    failed = []
    for offset, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                crops[start + offset] = crop(image, geometry)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one bad image, listed, not fatal
            failed.append((start + offset, f"{type(exc).__name__}: {exc}"))
    crops.flush()
    return failed


def _check_space(folder: Path, needed_bytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise UserError(f"the cropped images need {needed_bytes / 1e9:.1f} GB in {folder} and {free / 1e9:.1f} GB is "
                        "free: free space there or pass --cache-dir DIR on a larger disk")


def _pool_context() -> Any:
    # fork: the parent has not imported torch (nothing heavy to copy), and workers start in milliseconds
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


class CropCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder_for(self, images: LabelledImages, geometry: Geometry) -> Path:
        shape = f"{geometry.interpolation}-{geometry.resize_shorter_to}-{geometry.input_size}"
        return self.root / "crops" / f"{shape}-{cache_key(images, geometry)}"

    def lookup(self, folder: Path) -> CropSet | None:
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        return CropSet(folder, meta["key"], meta["count"], meta["valid_count"],
                       tuple(tuple(bad) for bad in meta["bad_images"]), None)

    def get(self, images: LabelledImages, geometry: Geometry, workers: int = 1,
            on_progress: Callable[[int, int], None] | None = None) -> CropSet:
        """The cached crops of `images` at `geometry`, decoded now (or finished, if interrupted) on a miss.
        `on_progress(done, total)` is called as chunks finish."""
        folder = self.folder_for(images, geometry)
        found = self.lookup(folder)
        if found is not None:
            return found
        return self._build(folder, images, geometry, workers, on_progress)

    def _build(self, folder: Path, images: LabelledImages, geometry: Geometry, workers: int,
               on_progress: Callable[[int, int], None] | None) -> CropSet:
        started = time.perf_counter()
        count, size = len(images), geometry.input_size
        crops_path = folder / "crops.npy"
        progress = self._progress(folder)
        if not crops_path.exists() or not progress["chunks"]:
            _check_space(folder, count * 3 * size * size)
            np.lib.format.open_memmap(crops_path, mode="w+", dtype=np.uint8, shape=(count, 3, size, size)).flush()
            progress = {"chunks": [], "bad": []}
        finished = set(progress["chunks"])
        starts = [s for s in range(0, count, CHUNK_IMAGES) if s not in finished]
        done = count - sum(min(CHUNK_IMAGES, count - s) for s in starts)
        if on_progress:
            on_progress(done, count)
        jobs = [(str(crops_path), s, [str(p) for p in images.paths[s:s + CHUNK_IMAGES]], geometry) for s in starts]
        for start, failed in self._decode(jobs, workers):
            progress["chunks"].append(start)
            progress["bad"] += [[str(images.paths[row]), reason] for row, reason in failed]
            write_atomically(folder / PROGRESS_FILE, json.dumps(progress))
            done += min(CHUNK_IMAGES, count - start)
            if on_progress:
                on_progress(done, count)
        return self._finish(folder, images, geometry, progress, time.perf_counter() - started)

    def _decode(self, jobs: list[tuple[Any, ...]], workers: int) -> Iterator[tuple[int, list[tuple[int, str]]]]:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield job[1], _decode_chunk(*job)
            return
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = {pool.submit(_decode_chunk, *job): job[1] for job in jobs}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def _progress(self, folder: Path) -> dict[str, Any]:
        path = folder / PROGRESS_FILE
        return json.loads(path.read_text()) if path.is_file() else {"chunks": [], "bad": []}

    def _finish(self, folder: Path, images: LabelledImages, geometry: Geometry, progress: dict[str, Any],
                build_s: float) -> CropSet:
        bad_paths = {path for path, _ in progress["bad"]}
        valid = np.array([str(path) not in bad_paths for path in images.paths], dtype=bool)
        np.save(folder / "labels.npy", np.asarray(images.labels, dtype=np.int16))
        np.save(folder / "valid.npy", valid)
        write_atomically(folder / "paths.txt", "\n".join(map(str, images.paths)) + "\n")
        key = folder.name.rsplit("-", 1)[1]
        meta = {"key": key, "count": len(images), "valid_count": int(valid.sum()), "bad_images": progress["bad"],
                "geometry": geometry.as_dict(), "layout": images.layout, "label_source": images.label_source,
                "selection": images.selection, "pillow": _pillow_version(), "build_s": build_s,
                "format": CACHE_FORMAT, "created_by_pid": os.getpid()}
        write_atomically(folder / META_FILE, json.dumps(meta, indent=1))
        (folder / PROGRESS_FILE).unlink(missing_ok=True)
        return CropSet(folder, key, len(images), int(valid.sum()), tuple(tuple(b) for b in progress["bad"]), build_s)


def open_crops(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops memory map, labels, valid mask) of a finished entry, read-only."""
    return (np.load(folder / "crops.npy", mmap_mode="r"), np.load(folder / "labels.npy"),
            np.load(folder / "valid.npy"))
