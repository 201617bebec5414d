"""Reading an LMDB database of images as BasicSR writes them (``basicsr.utils.lmdb_util``,
``scripts/data_preparation/create_lmdb.py``)::

    DF2K_HR.lmdb/
        data.mdb        the LMDB environment: key (ASCII) -> the image encoded as PNG
        lock.mdb
        meta_info.txt   one line per image: ``<key>.png (h,w,c) <compress_level>``

The database is opened read-only and without LMDB's lock file (nothing here writes, and a
dataset on a read-only or network file system must still be readable). An environment is opened
once per process: a DataLoader worker forked from a process that had it open must not use the
parent's handle (LMDB forbids it), so handles are kept per process id.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankd.errors import ConfigError, ImageError

META_INFO = "meta_info.txt"
#: BasicSR's line: ``{key}.png ({h},{w},{c}) {compress_level}`` (lmdb_util.make_lmdb_from_imgs)
_LINE = re.compile(r"^(?P<name>.+\.png) \((?P<h>\d+),(?P<w>\d+),(?P<c>\d+)\) (?P<level>\d+)$")
_ENVS: dict[tuple[int, Path], Any] = {}
_ENVS_LOCK = threading.Lock()


@dataclass(frozen=True)
class MetaLine:
    """One image listed by ``meta_info.txt``: its name (``<key>.png``), key and stated size."""

    name: str
    key: str
    width: int
    height: int
    channels: int


def is_database(path: Path) -> bool:
    """Whether DATA names an LMDB database rather than a folder of images: BasicSR requires the
    ``.lmdb`` suffix, and a folder holding ``data.mdb`` is one whatever its name."""
    return path.suffix == ".lmdb" or (path / "data.mdb").is_file()


def read_meta_info(db: Path) -> list[MetaLine]:
    """The images ``db/meta_info.txt`` lists, in its order; a missing file or a line that is not
    BasicSR's layout is one error naming the file, the line and the layout."""
    path = db / META_INFO
    layout = "'<key>.png (h,w,c) <compress_level>', as basicsr's create_lmdb.py writes it"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"LMDB database {db} has no {META_INFO} (one line per image: {layout})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    lines, seen = [], {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        m = _LINE.match(raw.strip())
        if m is None:
            shown = raw if len(raw) <= 80 else raw[:77] + "..."
            raise ConfigError(f"{path} line {number}: {shown!r} is not {layout}")
        name = m["name"]
        if name in seen:
            raise ConfigError(f"{path} line {number}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = number
        lines.append(MetaLine(name, name[:-len(".png")], int(m["w"]), int(m["h"]), int(m["c"])))
    if not lines:
        raise ConfigError(f"{path} lists no images (one line per image: {layout})")
    return lines


def environment(db: Path) -> Any:
    """This process's read-only handle of the database ``db``."""
    import lmdb

    slot = (os.getpid(), db)
    with _ENVS_LOCK:
        env = _ENVS.get(slot)
        if env is None:
            try:
                env = lmdb.open(str(db), readonly=True, lock=False, readahead=False, meminit=False,
                                max_readers=512)
            except lmdb.Error as exc:
                raise ConfigError(f"cannot open LMDB database {db}: {exc}") from None
            _ENVS[slot] = env
        return env


def read_value(db: Path, key: str, name: str) -> bytes:
    """The bytes stored under ``key``; a key the database lacks is an error naming the image."""
    import lmdb

    try:
        with environment(db).begin(write=False) as txn:
            value = txn.get(key.encode("utf-8"))
    except lmdb.Error as exc:
        raise ImageError(f"{db}/{name}: cannot read key {key!r} from data.mdb: {exc}") from None
    if value is None:
        raise ImageError(f"{db}/{name}: key {key!r} is listed in {META_INFO} but not in data.mdb")
    return bytes(value)
