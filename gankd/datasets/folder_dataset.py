"""``folder``: any directory of images (DIV2K, Flickr2K, FFHQ, CelebA-HQ layouts, or your own).

Scanning is recursive: every ``.png .jpg .jpeg .webp .bmp`` file (any letter case) below the
root, hidden files and directories (``.name``) excluded; other files are counted in the log. A
folder that cannot be listed is an error naming it (skipping it would train on part of the data
without a word).
An image's name is its path relative to the root (POSIX separators, extension kept).

Links and duplicates (so that one photo can never sit in two splits, nor count twice):

- symlinked *directories* are not followed (a ``ln -s . loop`` would multiply the data); they are
  counted in the log. Symlinked *files* are read where they point.
- the same file reached twice (a symlink to an image of the folder, a hard link) and byte-identical
  copies under other names are one image: the copy kept is the first in split priority (test/,
  then val/, then train/ in the explicit layout) and then by name; the others are dropped, counted
  and named in the log. Contents are compared by sha256, only among files of equal byte size.
- a near-duplicate (the same photo re-encoded, resized or slightly cropped: decoded pixels,
  ``gankd.datasets.near_duplicates``) of a test image is dropped from val and train, and one of a
  validation image from train, each named in the log beside the image it copies.

Split rule, fixed and documented:

- explicit layout: if the root has sub-directories ``train/`` and ``test/``, those are the
  training and test images; validation images come from ``val/`` (or ``valid/``) if present,
  else the first ``val_images`` of ``train/`` in sha256-of-name order. Images elsewhere are
  ignored (counted in the log).
- otherwise: all images ordered by sha256 of their name; the first ``test_images`` are test,
  the next ``val_images`` validation, the rest training. The order depends on names only, so the
  split does not change with file contents or the machine.

Image sizes come from the file headers; they, the content hashes, whether a file decodes
(``verify``) and its near-duplicate fingerprint are cached per folder under
``cache_dir()/indexes/`` and recomputed only for files whose size or mtime changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.datasets import DATASETS, splitting
from gankd.datasets.config import DataConfig
from gankd.datasets.images import IMAGE_EXTENSIONS, ImageRef, probe_size
from gankd.datasets.source import IndexedSource, Splits, names_digest
from gankd.errors import ConfigError
from gankd.paths import cache_dir

log = logging.getLogger("gankd.datasets")

_INDEX_VERSION = 3
_Found = tuple[str, Path, os.stat_result]  # name, path, stat
# index entry: [size, mtime_ns, width, height, sha256 or None, decodes (None: not checked yet),
#               near-duplicate fingerprint (near_duplicates.to_text) or None]
_SIZE, _MTIME, _W, _H, _SHA, _OK, _FP = range(7)


@DATASETS.register("folder")
class FolderSource(IndexedSource):
    kind = "folder"
    OK_COL, FP_COL = _OK, _FP

    def __init__(self, root: Path) -> None:
        self.root = root
        self._refs: list[ImageRef] | None = None
        self._index: dict[str, list] = {}
        self._hashed: dict[str, str] = {}  # content hashes computed by this scan

    @classmethod
    def from_spec(cls, spec: str) -> FolderSource:
        root = Path(spec).expanduser()
        if not root.exists():
            raise ConfigError(f"DATA folder does not exist: {spec} (DATA=builtin uses the built-in photos)")
        if not root.is_dir():
            raise ConfigError(f"DATA must be a folder of images or 'builtin', got a file: {spec}")
        return cls(root.resolve())

    # ---- scanning ---------------------------------------------------------------------------
    def images(self) -> list[ImageRef]:
        if self._refs is None:
            self._refs = self._scan()
        return self._refs

    def _scan(self) -> list[ImageRef]:
        found: list[tuple[str, Path, os.stat_result]] = []
        others = 0
        linked_dirs: list[str] = []
        def unreadable(exc: OSError) -> None:
            raise ConfigError(f"cannot read folder {exc.filename}: {exc.strerror or exc} (make it readable, "
                              f"or move it out of {self.root})")

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unreadable, followlinks=False):
            keep = []
            for d in sorted(dirnames):
                if d.startswith("."):
                    continue
                if (Path(dirpath) / d).is_symlink():  # not followed (module doc)
                    linked_dirs.append((Path(dirpath) / d).relative_to(self.root).as_posix())
                    continue
                keep.append(d)
            dirnames[:] = keep
            for fn in filenames:
                if fn.startswith("."):
                    continue
                if not fn.lower().endswith(IMAGE_EXTENSIONS):
                    others += 1
                    continue
                path = Path(dirpath) / fn
                try:
                    st = path.stat()
                except OSError as exc:
                    raise ConfigError(f"cannot stat image file {path}: {exc.strerror or exc}") from None
                found.append((path.relative_to(self.root).as_posix(), path, st))
        if linked_dirs:
            log.warning("%s: %d symlinked folder(s) not followed: %s", self.root, len(linked_dirs),
                        ", ".join(linked_dirs[:5]) + (" ..." if len(linked_dirs) > 5 else ""))
        if not found:
            raise ConfigError(
                f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found under {self.root}"
                + (f" ({others} other file(s) ignored)" if others else " (the folder is empty)"))
        self._index = self._read_index()
        found = self._unique(found)
        log.info("%s: %d image(s) found, %d other file(s) ignored", self.root, len(found), others)
        lr_dirs = sorted({Path(rel).parts[0] for rel, _, _ in found
                          if any(tag in Path(rel).parts[0].lower() for tag in ("_lr", "lr_", "lr_bicubic"))})
        if lr_dirs:
            log.warning("%s: sub-folder(s) %s look like low-resolution copies; they are used as HR images "
                        "(point DATA at the HR folder)", self.root, ", ".join(lr_dirs))
        return self._sizes(found)

    def _unique(self, found: list[_Found]) -> list[_Found]:
        """One entry per photo (module doc): the same inode once, then byte-identical files once."""
        by_inode: dict[tuple[int, int], list] = {}
        for item in found:
            by_inode.setdefault((item[2].st_dev, item[2].st_ino), []).append(item)
        explicit = self._explicit_layout()
        kept, dropped = splitting.identical(
            list(by_inode.values()), size_of=lambda it: it[2].st_size, digest_of=self._sha256,
            rank=lambda it: splitting.priority(it[0], explicit))
        splitting.log_identical(self.root, [(a[0], b[0]) for a, b in dropped])
        return sorted(kept)

    def _sha256(self, item: _Found) -> str:
        rel, path, st = item
        entry = self._index.get(rel)
        if entry and entry[_SIZE] == st.st_size and entry[_MTIME] == st.st_mtime_ns and entry[_SHA]:
            return entry[_SHA]
        try:
            self._hashed[rel] = atomic.sha256_file(path)
        except OSError as exc:
            raise ConfigError(f"cannot read image file {path}: {exc.strerror or exc}") from None
        return self._hashed[rel]

    def _index_path(self) -> Path:
        digest = hashlib.sha256(str(self.root).encode("utf-8")).hexdigest()[:20]
        return cache_dir() / "indexes" / f"{digest}.json"

    def _read_index(self) -> dict[str, list]:
        index_path = self._index_path()
        if index_path.is_file():
            try:
                doc = json.loads(index_path.read_text())
                if doc.get("version") == _INDEX_VERSION and doc.get("root") == str(self.root):
                    return doc["files"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged index is only a cache: re-read the headers
        return {}

    def _write_index(self) -> None:
        atomic.write_json(self._index_path(), {"version": _INDEX_VERSION, "root": str(self.root),
                                               "files": self._index})

    def _sizes(self, found: list[tuple[str, Path, os.stat_result]]) -> list[ImageRef]:
        old = self._index
        files: dict[str, list] = {}
        refs = []
        for rel, path, st in found:
            entry = old.get(rel)
            if entry is None or entry[_SIZE] != st.st_size or entry[_MTIME] != st.st_mtime_ns:
                w, h = probe_size(path)
                entry = [st.st_size, st.st_mtime_ns, w, h, None, None, None]
            if rel in self._hashed:
                entry[_SHA] = self._hashed[rel]
            files[rel] = entry
            refs.append(ImageRef(rel, path, (entry[_W], entry[_H])))
        self._index = files
        if files != old:
            self._write_index()
        return refs

    # ---- splits -----------------------------------------------------------------------------
    def _explicit_layout(self) -> bool:
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    def splits(self, cfg: DataConfig) -> Splits:
        refs = self.images()
        return splitting.split(refs, cfg, self.root, has_train=(self.root / "train").is_dir(),
                               has_test=(self.root / "test").is_dir(), fingerprints=self._fingerprints)

    def describe(self) -> dict[str, Any]:
        # the folder's location is not part of its identity: caches survive moving it
        return {"kind": self.kind, "images": len(self.images()), "names_sha256": names_digest(self.images())}
