"""Data sources: a set of HR images split into train / val / test, and their identity.

``DATA`` is a string: ``builtin`` selects the photos shipped by installed wheels, ``photos`` and
``faces`` the sets built from Debian packages (packaged_dataset.py), an LMDB database as BasicSR
writes it (``<name>.lmdb``, lmdb_dataset.py) its images, anything else is a folder path. Sources
register in ``DATASETS`` from ``*_dataset.py`` modules; each class has ``from_spec(spec)``. The
splits never overlap: test and validation images never reach training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gankd.atomic import sha256_file
from gankd.datasets import DATASETS
from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageError, ImageRef, read_ref, ref_bytes, resize_short_side, shown_size

log = logging.getLogger("gankd.datasets")

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    train: tuple[ImageRef, ...]
    val: tuple[ImageRef, ...]
    test: tuple[ImageRef, ...]
    rule: str  # how the split was made, for logs and manifests

    def get(self, split: str) -> tuple[ImageRef, ...]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, split)


class ImageSource(ABC):
    """A set of HR images with a fixed split rule."""

    kind: str

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str) -> ImageSource:
        """Open the source named by the user's ``DATA`` string."""

    @abstractmethod
    def splits(self, cfg: DataConfig) -> Splits:
        """The train / val / test images (disjoint; sorted by name)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Identity of the source for cache keys and manifests; no absolute paths."""

    def verified(self, refs: list[ImageRef] | tuple[ImageRef, ...]) -> None:
        """Decode every image of ``refs``; the first that does not is an error naming it."""
        check_decodes(refs)


def check_decodes(refs: list[ImageRef] | tuple[ImageRef, ...]) -> None:
    """Decode each image (in threads: decoders release the GIL) and check it against its header;
    raise for the first one, in name order, that cannot be used, counting the others."""
    from concurrent.futures import ThreadPoolExecutor

    def problem(ref: ImageRef) -> str | None:
        try:
            img = read_ref(ref)
        except ImageError as exc:
            return str(exc)
        if (img.shape[1], img.shape[0]) != ref.size:
            return (f"{ref.path}: decoded size {img.shape[1]}x{img.shape[0]} differs from its header "
                    f"{ref.size[0]}x{ref.size[1]} (file changed or corrupt?)")
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = [(r.name, p) for r, p in zip(refs, pool.map(problem, refs)) if p]
    if found:
        found.sort()
        more = f" ({len(found) - 1} more unusable image(s) after this one)" if len(found) > 1 else ""
        raise ImageError(found[0][1] + more)


class IndexedSource(ImageSource):
    """A source that caches what it learnt of each image in ``self._index`` (name -> list, kept on
    disk by ``_write_index``): whether it decodes at column ``OK_COL`` (None: not checked yet) and
    its near-duplicate fingerprint at ``FP_COL`` (``near_duplicates.to_text``, None: not taken)."""

    OK_COL: int
    FP_COL: int
    _index: dict[str, list]

    @abstractmethod
    def images(self) -> list[ImageRef]:
        """Every image of the source, ``self._index`` filled for each."""

    @abstractmethod
    def _write_index(self) -> None: ...

    def verified(self, refs: list[ImageRef] | tuple[ImageRef, ...]) -> None:
        """Decode every image of ``refs`` once (cached in the index); the first that does not
        decode is an error naming it and saying what is wrong."""
        self.images()
        todo = [r for r in refs if self._index[r.name][self.OK_COL] is not True]
        check_decodes(todo)
        for r in todo:
            self._index[r.name][self.OK_COL] = True
        if todo:
            self._write_index()

    def _fingerprints(self, refs: list[ImageRef]) -> dict[str, np.ndarray | None]:
        """Each image's near-duplicate fingerprint, from the index or decoded now (in threads, as
        ``check_decodes``); an image that does not decode has none here and is refused by name
        when the run verifies its images. A decode that worked is recorded as such."""
        from concurrent.futures import ThreadPoolExecutor

        from gankd.datasets import near_duplicates as near

        ok, fp = self.OK_COL, self.FP_COL
        todo = [r for r in refs if self._index[r.name][fp] is None]

        def decode(ref: ImageRef) -> tuple[str | None, bool]:
            try:
                img = read_ref(ref)
            except ImageError:
                return None, False
            return near.to_text(near.fingerprint(img)), (img.shape[1], img.shape[0]) == ref.size

        if todo:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                for ref, (text, decodes) in zip(todo, pool.map(decode, todo)):
                    self._index[ref.name][fp] = text
                    if decodes:
                        self._index[ref.name][ok] = True
            self._write_index()
        return {r.name: None if self._index[r.name][fp] is None else near.from_text(self._index[r.name][fp])
                for r in refs}


#: sources named by a path in DATA, not by their registered name
PATH_SOURCES = ("folder", "lmdb")


def open_data(data: str) -> ImageSource:
    """A registered source by name (``builtin``, ``photos``, ``faces``); a path ending in ``.lmdb``
    or holding ``data.mdb`` -> an LMDB database of images; anything else -> a folder of images at
    that path (a folder named like a source: ``./photos``)."""
    if not isinstance(data, str) or not data.strip():
        from gankd.errors import ConfigError

        raise ConfigError("DATA must be 'builtin', 'photos', 'faces', a folder path or an LMDB database "
                          "(<name>.lmdb), got an empty value")
    if is_named_source(data):
        return DATASETS.get(data).from_spec(data)
    from gankd.datasets.lmdb_store import is_database

    kind = "lmdb" if is_database(Path(data).expanduser()) else "folder"
    return DATASETS.get(kind).from_spec(data)


def is_named_source(data: str) -> bool:
    """Whether DATA names a registered source (not a folder or database path)."""
    return data not in PATH_SOURCES and data in DATASETS


def hash_order(refs: list[ImageRef]) -> list[ImageRef]:
    """Images ordered by sha256 of their name: a fixed, content-free shuffle used for splits."""
    return sorted(refs, key=lambda r: (hashlib.sha256(r.name.encode("utf-8")).hexdigest(), r.name))


def usable(refs: tuple[ImageRef, ...] | list[ImageRef], side: int, cfg: DataConfig,
           what: str) -> list[ImageRef]:
    """Images at least ``side`` pixels on each side (after ``resize_short``).

    Smaller ones are an error naming the file and sizes (``small_images: error``) or are skipped
    with a warning that counts and names them (``small_images: skip``).
    """
    ok, small = [], []
    for ref in refs:
        w, h = shown_size(ref.size, cfg.resize_short)
        (ok if min(w, h) >= side else small).append((ref, w, h))
    if small:
        ref, w, h = small[0]
        resized = f" after resize_short={cfg.resize_short}" if cfg.resize_short else ""
        if cfg.small_images == "error":
            raise ImageError(
                f"{ref.path}: image is {w}x{h}{resized}, smaller than the {side}x{side} {what} "
                f"({len(small)} such image(s) in this split; set small_images: skip to leave them out)")
        names = ", ".join(f"{r.name} ({ww}x{hh})" for r, ww, hh in small[:10])
        more = f" and {len(small) - 10} more" if len(small) > 10 else ""
        log.warning("skipped %d image(s) smaller than the %dx%d %s%s: %s%s",
                    len(small), side, side, what, resized, names, more)
    return [r for r, _, _ in ok]


def load_hr(ref: ImageRef, cfg: DataConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``ref``, resized to ``resize_short`` if set."""
    img = read_ref(ref)
    if (img.shape[1], img.shape[0]) != ref.size:
        raise ImageError(f"{ref.path}: decoded size {img.shape[1]}x{img.shape[0]} differs from its "
                         f"header {ref.size[0]}x{ref.size[1]} (file changed or corrupt?)")
    if cfg.resize_short is not None:
        img = resize_short_side(img, cfg.resize_short)
    return img


def content_identity(refs: list[ImageRef] | tuple[ImageRef, ...]) -> dict[str, str]:
    """``{name: sha256 of the file}`` (of the stored bytes for an LMDB database): what a cache
    built from these images depends on."""
    return {r.name: sha256_file(r.path) if r.database is None else hashlib.sha256(ref_bytes(r)).hexdigest()
            for r in refs}


def names_digest(refs: list[ImageRef] | tuple[ImageRef, ...]) -> str:
    return hashlib.sha256(json.dumps(sorted(r.name for r in refs)).encode("utf-8")).hexdigest()
