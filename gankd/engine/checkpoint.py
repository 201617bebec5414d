"""Checkpoints: atomic writes, a sha256 beside each file, the last few kept, and a loader that
falls back to the previous checkpoint when the newest is corrupt or half-written.

Layout: ``<run>/checkpoints/step_0000400.pt`` + ``step_0000400.sha256``. The sha256 file is
written after the checkpoint, so a checkpoint without one was interrupted and is ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from gankd import atomic

log = logging.getLogger(__name__)


def _ckpts(folder: Path) -> list[Path]:
    return sorted(folder.glob("step_*.pt"), reverse=True)


def save(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:07d}.pt"
    atomic.torch_save(path, state)
    atomic.write_text(path.with_suffix(".sha256"), atomic.sha256_file(path) + "\n")
    for old in _ckpts(folder)[max(keep, 1):]:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256").unlink(missing_ok=True)
    return path


def is_valid(path: Path) -> bool:
    side = path.with_suffix(".sha256")
    if not side.is_file():
        return False
    return side.read_text().strip() == atomic.sha256_file(path)


def load_latest(folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint whose checksum holds, or None; corrupt ones are logged and skipped."""
    if not folder.is_dir():
        return None
    for path in _ckpts(folder):
        if not is_valid(path):
            log.warning("checkpoint %s is incomplete or corrupt (checksum mismatch); trying the previous one",
                        path.name)
            continue
        return torch.load(path, map_location="cpu", weights_only=False), path
    return None
