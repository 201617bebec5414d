"""``folder``: any directory of images (DIV2K, Flickr2K, FFHQ, CelebA-HQ layouts, or your own).

Scanning is recursive: every ``.png .jpg .jpeg .webp .bmp`` file (any letter case) below the
root, hidden files and directories (``.name``) excluded; other files are counted in the log.
An image's name is its path relative to the root (POSIX separators, extension kept).

Split rule, fixed and documented:

- explicit layout: if the root has sub-directories ``train/`` and ``test/``, those are the
  training and test images; validation images come from ``val/`` (or ``valid/``) if present,
  else the first ``val_images`` of ``train/`` in sha256-of-name order. Images elsewhere are
  ignored (counted in the log).
- otherwise: all images ordered by sha256 of their name; the first ``test_images`` are test,
  the next ``val_images`` validation, the rest training. The order depends on names only, so the
  split does not change with file contents or the machine.

Image sizes come from the file headers; they are cached per folder under
``cache_dir()/indexes/`` and re-read only for files whose size or mtime changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.datasets import DATASETS
from gankd.datasets.config import DataConfig
from gankd.datasets.images import IMAGE_EXTENSIONS, ImageRef, probe_size
from gankd.datasets.source import ImageSource, Splits, hash_order, names_digest
from gankd.errors import ConfigError
from gankd.paths import cache_dir

log = logging.getLogger("gankd.datasets")

_INDEX_VERSION = 1
_VAL_DIRS = ("val", "valid")


@DATASETS.register("folder")
class FolderSource(ImageSource):
    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._refs: list[ImageRef] | None = None

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
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
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
        if not found:
            raise ConfigError(
                f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found under {self.root}"
                + (f" ({others} other file(s) ignored)" if others else " (the folder is empty)"))
        log.info("%s: %d image(s) found, %d other file(s) ignored", self.root, len(found), others)
        lr_dirs = sorted({Path(rel).parts[0] for rel, _, _ in found
                          if any(tag in Path(rel).parts[0].lower() for tag in ("_lr", "lr_", "lr_bicubic"))})
        if lr_dirs:
            log.warning("%s: sub-folder(s) %s look like low-resolution copies; they are used as HR images "
                        "(point DATA at the HR folder)", self.root, ", ".join(lr_dirs))
        return self._sizes(found)

    def _index_path(self) -> Path:
        digest = hashlib.sha256(str(self.root).encode("utf-8")).hexdigest()[:20]
        return cache_dir() / "indexes" / f"{digest}.json"

    def _sizes(self, found: list[tuple[str, Path, os.stat_result]]) -> list[ImageRef]:
        index_path = self._index_path()
        old: dict[str, list[int]] = {}
        if index_path.is_file():
            try:
                doc = json.loads(index_path.read_text())
                if doc.get("version") == _INDEX_VERSION and doc.get("root") == str(self.root):
                    old = doc["files"]
            except (OSError, ValueError, KeyError):
                old = {}  # a damaged index is only a cache: re-read the headers
        files: dict[str, list[int]] = {}
        refs = []
        for rel, path, st in sorted(found):
            entry = old.get(rel)
            if entry is None or entry[0] != st.st_size or entry[1] != st.st_mtime_ns:
                w, h = probe_size(path)
                entry = [st.st_size, st.st_mtime_ns, w, h]
            files[rel] = entry
            refs.append(ImageRef(rel, path, (entry[2], entry[3])))
        if files != old:
            atomic.write_json(index_path, {"version": _INDEX_VERSION, "root": str(self.root), "files": files})
        return refs

    # ---- splits -----------------------------------------------------------------------------
    def _explicit_layout(self) -> bool:
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    def splits(self, cfg: DataConfig) -> Splits:
        refs = self.images()
        if self._explicit_layout():
            def under(*dirs: str) -> list[ImageRef]:
                return [r for r in refs if r.name.split("/", 1)[0] in dirs]

            train, test = under("train"), under("test")
            val = under(*_VAL_DIRS)
            if not train or not test:
                raise ConfigError(f"{self.root}: train/ and test/ must both hold images "
                                  f"(found {len(train)} and {len(test)})")
            rule = "explicit train/ and test/ sub-folders"
            if val:
                rule += ", val/ sub-folder"
            else:
                ordered = hash_order(train)
                val, train = ordered[:cfg.val_images], ordered[cfg.val_images:]
                rule += f", val = first {cfg.val_images} of train/ by sha256(name)"
            ignored = len(refs) - len(train) - len(test) - len(val)
            if ignored:
                log.info("%s: %d image(s) outside train/, test/ and val/ are not used", self.root, ignored)
        else:
            need = cfg.test_images + cfg.val_images + 1
            if len(refs) < need:
                raise ConfigError(
                    f"{self.root} has {len(refs)} image(s); test_images={cfg.test_images} + "
                    f"val_images={cfg.val_images} leave none for training (need at least {need})")
            ordered = hash_order(refs)
            n_test, n_val = cfg.test_images, cfg.val_images
            test, val, train = ordered[:n_test], ordered[n_test:n_test + n_val], ordered[n_test + n_val:]
            rule = (f"sha256(name) order: first {n_test} test, next {n_val} val, rest ({len(train)}) train")
        if not train:
            raise ConfigError(f"{self.root}: no training images left after the split ({rule})")
        if not test:
            raise ConfigError(f"{self.root}: no test images (test_images=0?); evaluation needs at least one")

        def by_name(rs: list[ImageRef]) -> tuple[ImageRef, ...]:
            return tuple(sorted(rs, key=lambda r: r.name))

        return Splits(by_name(train), by_name(val), by_name(test), rule)

    def describe(self) -> dict[str, Any]:
        # the folder's location is not part of its identity: caches survive moving it
        return {"kind": self.kind, "images": len(self.images()), "names_sha256": names_digest(self.images())}
