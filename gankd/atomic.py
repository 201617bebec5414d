"""Atomic file writes and content hashes.

Every result, checkpoint, manifest and converted weight goes through these functions, so a
crash or a kill -9 leaves either the old file or the new one, never half of one, and a full disk
is one ``DiskFullError`` naming the folder and the space the file needs.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gankd.errors import DiskFullError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _write_via_temp(path: Path, writer: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        if full := _disk_full(exc, path, writer):
            raise full from None
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results and caches are shared files
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, Exception) and (full := _disk_full(exc, path, writer)):
            raise full from None
        raise


class _Counter(io.RawIOBase):
    """A sink that only counts what is written to it: the size a failed write needed."""

    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.n += size
        return size


def _disk_full(exc: Exception, path: Path, writer: Callable[[IO[bytes]], None]) -> DiskFullError | None:
    """The error to raise when ``exc`` came from a full disk, else None. Not every writer passes
    ENOSPC on: torch.save reports a short write as a RuntimeError, so a failure is also taken
    for a full disk when the file needs more than the space left once its temp file is gone."""
    counter = _Counter()
    try:
        writer(counter)  # type: ignore[arg-type]
        need: int | None = counter.n
    except Exception:  # a writer that cannot run twice: its size stays unknown
        need = None
    folder = path.parent
    free = shutil.disk_usage(folder).free if folder.is_dir() else 0
    if not (isinstance(exc, OSError) and exc.errno in _FULL) and (need is None or need <= free):
        return None
    size = f"needs {_mib(need)}" if need is not None else "does not fit"
    return DiskFullError(f"disk full under {folder}: {path.name} {size}, {_mib(free)} free there; "
                         "free some space and run the same command again")


def _mib(n: int) -> str:
    if n < 2**20:
        return f"{n / 2**10:.1f} KiB"
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def write_bytes(path: Path | str, data: bytes) -> None:
    _write_via_temp(Path(path), lambda fh: fh.write(data))


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def torch_save(path: Path | str, obj: Any) -> None:
    import torch

    _write_via_temp(Path(path), lambda fh: torch.save(obj, fh))


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
