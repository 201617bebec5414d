"""Cache keys and the build lock shared by evaluation sets and training pools."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:  # POSIX; without it the atomic rename alone still keeps caches whole
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CACHE_FORMAT = 1  # bump when the layout or the pipeline changes what a key denotes


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def cache_key(doc: dict[str, Any]) -> str:
    """24 hex digits of sha256 over the canonical JSON of everything a cache entry depends on."""
    return hashlib.sha256(canonical_json({"format": CACHE_FORMAT, **doc})).hexdigest()[:24]


@contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on ``path`` (created): a second builder of the same key waits, then reuses."""
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
