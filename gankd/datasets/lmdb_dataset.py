"""``lmdb``: an LMDB database of images as BasicSR writes them (``DATA=/data/DF2K_HR.lmdb``).

The images are those ``meta_info.txt`` lists (layout: ``gankd.datasets.lmdb_store``); an image's
name is the line's ``<key>.png``, so a database made from a flat folder of PNG files by
basicsr's ``create_lmdb.py`` has the names of that folder, and the same split. The rules are the
folder's (``folder_dataset``; shared in ``splitting``):

- byte-identical values under two keys are one image (the first name kept, the others named in
  the log); near-duplicates of a test or validation image are dropped from val and train;
- keys under ``train/`` and ``test/`` (``val/``, ``valid/``) are the explicit layout; otherwise
  all images in sha256-of-name order: the first ``test_images`` test, the next ``val_images``
  validation, the rest training;
- an empty, corrupt or too large value, a key listed but not stored, and a size that differs from
  the one ``meta_info.txt`` states are refused naming ``<database>/<key>.png``.

Each image's size, content hash, whether it decodes and its near-duplicate fingerprint are
cached under ``cache_dir()/indexes/``, valid while ``data.mdb`` (size, mtime) and
``meta_info.txt`` (content) are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.datasets import DATASETS, splitting
from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageError, ImageRef, probe_bytes
from gankd.datasets.lmdb_store import META_INFO, read_meta_info, read_value
from gankd.datasets.source import IndexedSource, Splits, names_digest
from gankd.errors import ConfigError
from gankd.paths import cache_dir

log = logging.getLogger("gankd.datasets")

_INDEX_VERSION = 1
# index entry: [width, height, byte length, sha256, decodes (None: not checked yet),
#               near-duplicate fingerprint (near_duplicates.to_text) or None]
_W, _H, _LEN, _SHA, _OK, _FP = range(6)


@DATASETS.register("lmdb")
class LmdbSource(IndexedSource):
    kind = "lmdb"
    OK_COL, FP_COL = _OK, _FP

    def __init__(self, root: Path) -> None:
        self.root = root
        self._refs: list[ImageRef] | None = None
        self._index: dict[str, list] = {}

    @classmethod
    def from_spec(cls, spec: str) -> LmdbSource:
        root = Path(spec).expanduser()
        if not root.exists():
            raise ConfigError(f"DATA LMDB database does not exist: {spec} "
                              "(DATA=builtin uses the built-in photos)")
        if not root.is_dir():
            raise ConfigError(f"DATA must be an LMDB folder (data.mdb, lock.mdb, {META_INFO}), "
                              f"got a file: {spec}")
        if not (root / "data.mdb").is_file():
            raise ConfigError(f"LMDB database {root} has no data.mdb (an LMDB folder as basicsr's "
                              f"create_lmdb.py writes it holds data.mdb, lock.mdb and {META_INFO})")
        return cls(root.resolve())

    # ---- scanning ---------------------------------------------------------------------------
    def images(self) -> list[ImageRef]:
        if self._refs is None:
            self._refs = self._scan()
        return self._refs

    def _ref(self, name: str, key: str, entry: list) -> ImageRef:
        return ImageRef(name, self.root / name, (entry[_W], entry[_H]), database=self.root, key=key)

    def _scan(self) -> list[ImageRef]:
        lines = read_meta_info(self.root)
        stamp = self._stamp()
        old = self._read_index(stamp)
        entries: dict[str, list] = {}
        for line in lines:
            entry = old.get(line.name)
            if entry is None:
                shown = f"{self.root}/{line.name}"
                data = read_value(self.root, line.key, line.name)
                w, h = probe_bytes(data, shown)
                if (w, h) != (line.width, line.height):
                    raise ImageError(f"{shown}: the stored image is {w}x{h}, {META_INFO} says "
                                     f"{line.width}x{line.height} (database changed or corrupt?)")
                entry = [w, h, len(data), hashlib.sha256(data).hexdigest(), None, None]
            entries[line.name] = entry
        keys = {line.name: line.key for line in lines}
        explicit = all(_layout(entries))
        kept, dropped = splitting.identical(
            [[name] for name in entries], size_of=lambda n: entries[n][_LEN],
            digest_of=lambda n: entries[n][_SHA],
            rank=lambda n: splitting.priority(n, explicit))
        splitting.log_identical(self.root, dropped, what="value")
        self._index = entries
        if entries != old:
            self._write_index(stamp)
        log.info("%s: %d image(s) listed in %s", self.root, len(kept), META_INFO)
        return [self._ref(name, keys[name], entries[name]) for name in sorted(kept)]

    def _stamp(self) -> list:
        """What the cached index is valid for: the database file as stored, the listing's content."""
        try:
            st = (self.root / "data.mdb").stat()
            meta = atomic.sha256_file(self.root / META_INFO)
        except OSError as exc:
            raise ConfigError(f"LMDB database {self.root}: cannot read {exc.filename}: "
                              f"{exc.strerror or exc}") from None
        return [st.st_size, st.st_mtime_ns, meta]

    def _index_path(self) -> Path:
        digest = hashlib.sha256(str(self.root).encode("utf-8")).hexdigest()[:20]
        return cache_dir() / "indexes" / f"lmdb-{digest}.json"

    def _read_index(self, stamp: list) -> dict[str, list]:
        path = self._index_path()
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
                if (doc.get("version") == _INDEX_VERSION and doc.get("root") == str(self.root)
                        and doc.get("stamp") == stamp):
                    return doc["images"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged index is only a cache: read the database again
        return {}

    def _write_index(self, stamp: list | None = None) -> None:
        atomic.write_json(self._index_path(), {"version": _INDEX_VERSION, "root": str(self.root),
                                               "stamp": stamp or self._stamp(), "images": self._index})

    # ---- splits -----------------------------------------------------------------------------
    def splits(self, cfg: DataConfig) -> Splits:
        refs = self.images()
        has_train, has_test = _layout(r.name for r in refs)
        return splitting.split(refs, cfg, self.root, has_train=has_train, has_test=has_test,
                               fingerprints=self._fingerprints)

    def describe(self) -> dict[str, Any]:
        # as a folder's: the database's location is not part of its identity
        return {"kind": self.kind, "images": len(self.images()), "names_sha256": names_digest(self.images())}


def _layout(names: Iterable[str]) -> tuple[bool, bool]:
    """Whether some keys sit under ``train/``, and some under ``test/`` (the explicit layout)."""
    tops = {splitting.top(n) for n in names if "/" in n}
    return "train" in tops, "test" in tops
