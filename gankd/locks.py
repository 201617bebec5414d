"""The one inter-process file lock: parallel sweep jobs share caches (evaluation sets, training
pools, teacher outputs, trained networks) and the results index; whoever comes first builds or
writes, the others wait, then reuse.

Importable from every layer (it needs nothing of gankd), so datasets and bench lock alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX; without it the atomic rename alone still keeps every cache file whole
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on ``path`` (created with its folder): a second holder waits until the
    first leaves. The file itself stays empty; it exists to be locked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
