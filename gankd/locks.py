"""The one inter-process file lock: parallel sweep jobs share caches (evaluation sets, training
pools, teacher outputs, trained networks) and the results index; whoever comes first builds or
writes, the others wait, then reuse. A run folder has one writer too (``gankd.bench.run``): two
identical commands would otherwise both train, and a checkpoint one of them is writing looks
like a killed write's leftover to the other.

Importable from every layer (it needs nothing of gankd but its errors), so datasets and bench
lock alike.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gankd.errors import GankdError

try:  # POSIX; without it the atomic rename alone still keeps every cache file whole
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


class LockHeld(GankdError):
    """The lock is taken and the caller asked not to wait; the message names the holder."""


def holder() -> str:
    """This process as a waiting one is told about it."""
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"


@contextmanager
def file_lock(path: Path, owner: str = "", what: str = "", wait: bool = True) -> Iterator[None]:
    """Exclusive lock on ``path`` (created with its folder): a second holder waits until the
    first leaves. With ``owner`` (see :func:`holder`) the file names its holder while held, and a
    process that finds it taken says who holds ``what`` before it waits, or, with ``wait=False``,
    raises :class:`LockHeld` naming them. Without, the file stays empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            _acquire(fd, what or str(path), wait)
        if owner:
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner.encode("utf-8"), 0)
        yield
    finally:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(fd: int, what: str, wait: bool) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    who = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
    if not wait:
        raise LockHeld(f"{what} is in use by {who}; wait for it to finish, or stop it")
    log.warning("%s is in use by %s; waiting for it to finish", what, who)
    fcntl.flock(fd, fcntl.LOCK_EX)
