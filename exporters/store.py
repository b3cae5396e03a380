"""A content-keyed file store: one folder per key, the file beside a meta.json holding its sha256.

The key is a hash of everything that determines the file's content; `lookup` re-hashes the file
whenever its size, mtime or inode differ from when its hash was last checked, and treats a mismatch
(a damaged or half-written file) as a miss, so the caller rebuilds it. An unchanged stamp skips the
re-hash (hundreds of MB per cell in a sweep); corruption that leaves size and mtime intact (bit rot)
is then not caught until the file is touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
META = "meta.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_of(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Entry:
    path: Path
    meta: dict[str, Any]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, kind: str, name: str, fields: dict[str, Any]) -> Path:
        return self.root / kind / f"{name}-{key_of(fields)}"

    def lookup(self, folder: Path, filename: str) -> Entry | None:
        """The stored file if present and intact; a damaged one is removed and reported as a miss."""
        return self.inspect(folder, filename)[0]

    def inspect(self, folder: Path, filename: str) -> tuple[Entry | None, str | None]:
        """(the stored file, None) if present and intact; else (None, why it cannot be used: None when it
        was never stored). A damaged file, or one this store did not write, is removed."""
        path, meta_path = folder / filename, folder / META
        if not path.is_file() and not meta_path.is_file():
            return None, None
        if not path.is_file():
            return None, f"{filename} is missing beside its {META}"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        if _stamp(path) == meta.get("verified_stamp"):
            return Entry(path, meta), None  # unchanged since its hash was last checked
        if meta.get("sha256") != sha256_of(path):
            why = "damaged or not written by the harness (its hash differs from the one recorded when it was made)" \
                if meta.get("sha256") else f"no {META} records its hash (not written by the harness)"
            log.warning("cached %s is %s; rebuilding it", path, why)
            shutil.rmtree(folder, ignore_errors=True)
            return None, why
        meta["verified_stamp"] = _stamp(path)
        _write_meta(folder, meta)
        return Entry(path, meta), None

    def discard(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def commit(self, folder: Path, filename: str, built: Path, meta: dict[str, Any]) -> Entry:
        """Move a freshly built file into place, then write its meta (with the hash) last."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        os.replace(built, path)
        meta = {**meta, "sha256": sha256_of(path), "file_bytes": path.stat().st_size, "verified_stamp": _stamp(path)}
        _write_meta(folder, meta)
        return Entry(path, meta)


def _stamp(path: Path) -> list[int]:
    """Size, modification time and inode: any rewrite of the file changes at least one of them."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / f".{META}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, folder / META)
