"""Checkpoints: atomic writes, a sha256 beside each file, the last few kept, and a loader that
falls back to the previous checkpoint when the newest is corrupt or half-written.

Layout: ``<run>/checkpoints/step_0000400.pt`` + ``step_0000400.sha256``. The checkpoint goes to
a temp file that ``os.replace`` renames into place (``gankd.atomic``); the sha256 file is written
after it, and an old one is removed before, so a kill -9 at any point leaves a pair that either
verifies or is skipped:

- killed while writing the temp file: the previous checkpoints are untouched; the orphaned
  ``.step_*.pt.*.tmp`` is removed by the next ``load_latest``;
- killed between the rename and the sha256: the newest ``.pt`` has no sha256, so it is skipped;
- bytes changed later (disk, copy): the sha256 no longer matches, so it is skipped.

A skipped checkpoint is moved aside as ``*.pt.corrupt`` with its ``*.sha256.corrupt`` (kept for
inspection, never loaded, not counted among the ``keep`` newest), and the previous one is loaded.
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


def latest_step(folder: Path) -> int | None:
    """The newest checkpoint's step by its file name (not checked: a listing, not a resume)."""
    found = _ckpts(folder) if folder.is_dir() else []
    return int(found[0].stem.removeprefix("step_")) if found else None


def save(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:07d}.pt"
    side = path.with_suffix(".sha256")
    side.unlink(missing_ok=True)  # overwriting a step: no old checksum may vouch for the new file
    atomic.torch_save(path, state)
    atomic.write_text(side, atomic.sha256_file(path) + "\n")
    prune(folder, max(keep, 1))
    return path


def prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (each with its sha256); 0 deletes them all,
    for a finished training whose result is saved elsewhere."""
    for old in _ckpts(folder)[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256").unlink(missing_ok=True)


def is_valid(path: Path) -> bool:
    side = path.with_suffix(".sha256")
    if not side.is_file():
        return False
    return side.read_text().strip() == atomic.sha256_file(path)


def load_latest(folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint whose checksum holds, or None; corrupt ones are moved aside."""
    if not folder.is_dir():
        return None
    # a writer killed mid-write: no other can be writing, a run folder has one writer at a time
    # (gankd.bench.run takes its lock; a cached training holds its folder's)
    for tmp in folder.glob(".step_*.pt.*.tmp"):
        log.warning("removing %s, left by a checkpoint write that was interrupted", tmp.name)
        tmp.unlink(missing_ok=True)
    for path in _ckpts(folder):
        if not is_valid(path):
            aside = path.with_name(path.name + ".corrupt")
            log.warning("checkpoint %s is incomplete or corrupt (no sha256 or a mismatch); moved to %s, "
                        "trying the previous one", path.name, aside.name)
            path.replace(aside)
            side = path.with_suffix(".sha256")
            if side.is_file():
                side.replace(side.with_name(side.name + ".corrupt"))
            continue
        return torch.load(path, map_location="cpu", weights_only=False), path
    return None
