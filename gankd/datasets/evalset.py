"""Deterministic evaluation and validation sets, written once to the cache.

Each test image gives ``eval_crops`` square HR crops of ``eval_hr`` (see ``crops.eval_boxes``);
crop i of image ``name`` is degraded (``Degradation.eval``, on the CPU) with the seed
``derive_seed(suite, name, i)``: the same for every method, run and machine. The result lives in
``cache_dir()/evalsets/<key>/``::

    HR/<stem>.png   LR/<stem>.png   [IN<j>/<stem>.png]   manifest.json

``manifest.json`` lists every sample (name, crop box, seed, scale, sampled degradation
parameters, where each generator input is) and the sha256 of every file; the key is a hash of
what the set depends on (suite, degradation and its resolved config, crop side and count,
``resize_short``, the images' names and contents). Later calls verify every sha256 and read the
files; a damaged set is moved aside (logged) and rebuilt. Builders of the same key serialise on
a lock file and publish by renaming a finished temporary directory, so a reader never sees a
half-written set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from gankd import atomic
from gankd.cachekeys import cache_key
from gankd.datasets.batch import EvalSample
from gankd.datasets.config import CACHE_FORMAT, DataConfig
from gankd.datasets.crops import eval_boxes, to_tensor
from gankd.datasets.degradation import Degraded
from gankd.datasets.images import read_image
from gankd.datasets.seeding import derive_seed
from gankd.datasets.source import content_identity, load_hr, open_data, usable
from gankd.errors import GankdError
from gankd.locks import file_lock
from gankd.paths import cache_dir

log = logging.getLogger("gankd.datasets")


@dataclass
class EvalSet:
    key: str
    root: Path
    manifest_sha256: str
    samples: list[EvalSample]
    manifest: dict[str, Any]

    def __len__(self) -> int:
        return len(self.samples)


class _Corrupt(Exception):
    pass


def build_evalset(cfg: DataConfig, data: str, suite: str) -> EvalSet:
    """The deterministic test set of ``data`` for ``suite`` (built on first use, then read)."""
    return _build(cfg, data, suite, kind="evalset", split="test", side=cfg.eval_hr, crops=cfg.eval_crops)


def build_valset(cfg: DataConfig, data: str, suite: str) -> EvalSet:
    """The same for the validation images (``val_hr``, ``val_crops``): training curves only."""
    return _build(cfg, data, suite, kind="valset", split="val", side=cfg.val_side, crops=cfg.val_crops)


def _build(cfg: DataConfig, data: str, suite: str, kind: str, split: str, side: int, crops: int) -> EvalSet:
    if not suite or "/" in suite:
        raise GankdError(f"suite name must be a non-empty name without '/', got {suite!r}")
    source = open_data(data)
    splits = source.splits(cfg)
    refs = usable(splits.get(split), side, cfg, f"{'evaluation' if split == 'test' else 'validation'} crop")
    deg = cfg.build_degradation()
    identity = {
        "kind": kind, "suite": suite, "split": split, "split_rule": splits.rule,
        "source": source.kind, "images": content_identity(refs),
        "degradation": deg.describe(), "side": side, "crops": crops, "resize_short": cfg.resize_short,
    }
    key = cache_key({"format": CACHE_FORMAT, **identity})
    root = cache_dir() / "evalsets" / key
    with file_lock(cache_dir() / "evalsets" / f".{key}.lock"):
        if root.is_dir():
            try:
                return _load(root, key)
            except _Corrupt as exc:
                aside = root.with_name(f".corrupt-{key}-{int(time.time())}")
                log.warning("%s set %s is damaged (%s); moved to %s and rebuilding", kind, key, exc, aside)
                os.replace(root, aside)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root.parent))
        try:
            _write(tmp, key, identity, refs, cfg, deg, suite, side, crops)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.rename(tmp, root)  # atomic publish; fails if another builder (without the lock) won
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not root.is_dir():
                raise
        log.info("built %s %s: %d image(s) in %.1fs", kind, key, len(refs), time.perf_counter() - t0)
        try:
            return _load(root, key)
        except _Corrupt as exc:
            raise GankdError(f"{kind} {key} failed verification right after it was built: {exc}") from None


def _png(img: torch.Tensor) -> bytes:
    arr = (img * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr[:, :, ::-1]))
    if not ok:
        raise GankdError("PNG encoding failed")
    return buf.tobytes()


def _is_8bit(t: torch.Tensor) -> bool:
    return bool(torch.equal(torch.clamp((t * 255.0).round(), 0, 255) / 255.0, t))


def _write(tmp: Path, key: str, identity: dict[str, Any], refs: list, cfg: DataConfig, deg: Any,
           suite: str, side: int, crops: int) -> None:
    files: dict[str, str] = {}
    samples = []

    def put(rel: str, data: bytes) -> str:
        atomic.write_bytes(tmp / rel, data)
        files[rel] = atomic.sha256_bytes(data)
        return rel

    for ref in refs:
        img = load_hr(ref, cfg)
        boxes = eval_boxes(img.shape[1], img.shape[0], side, crops)
        for i, (top, left) in enumerate(boxes):
            name = ref.name if crops == 1 else f"{ref.name}#{i}"
            stem = f"{len(samples):04d}_{ref.name.replace('/', '__')}" + ("" if crops == 1 else f"_c{i}")
            seed = derive_seed(suite, ref.name, i)
            hr = to_tensor(img[top:top + side, left:left + side]).float().div(255.0)[None]
            d: Degraded = deg.eval(hr, seed)
            lr = d.lr[0]
            entry: dict[str, Any] = {
                "name": name, "image": ref.name, "crop": [top, left, side], "seed": seed,
                "scale": int(d.scale[0]), "params": d.params,
                "hr": put(f"HR/{stem}.png", _png(d.real[0])), "lr": put(f"LR/{stem}.png", _png(lr)),
            }
            inputs = []
            for j, g in enumerate(d.g_input):
                g = g[0]
                if g.shape == lr.shape and torch.equal(g, lr):
                    inputs.append({"ref": "lr"})
                elif g.ndim == 3 and g.shape[0] == 3 and _is_8bit(g):
                    inputs.append({"file": put(f"IN{j}/{stem}.png", _png(g))})
                else:  # small non-image inputs (GCFSR's condition): exact in JSON (float32 -> double)
                    inputs.append({"shape": list(g.shape), "values": g.float().flatten().tolist()})
            entry["g_input"] = inputs
            samples.append(entry)
    manifest = {"key": key, "identity": identity, "samples": samples, "files": files}
    atomic.write_json(tmp / "manifest.json", manifest)


def _read_png(path: Path) -> torch.Tensor:
    return to_tensor(read_image(path)).float().div(255.0)


def _load(root: Path, key: str) -> EvalSet:
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise _Corrupt("manifest.json is missing")
    manifest_sha = atomic.sha256_file(mpath)
    try:
        manifest = json.loads(mpath.read_text())
        files: dict[str, str] = manifest["files"]
        entries = manifest["samples"]
    except (ValueError, KeyError) as exc:
        raise _Corrupt(f"manifest.json unreadable: {exc}") from None
    if manifest.get("key") != key:
        raise _Corrupt(f"manifest key {manifest.get('key')!r} != directory key {key!r}")
    for rel, sha in files.items():
        path = root / rel
        if not path.is_file():
            raise _Corrupt(f"{rel} is missing")
        if atomic.sha256_file(path) != sha:
            raise _Corrupt(f"{rel} does not match its sha256 in the manifest")
    samples = []
    for e in entries:
        for rel in [e["hr"], e["lr"]] + [g["file"] for g in e["g_input"] if "file" in g]:
            if rel not in files:
                raise _Corrupt(f"{rel} is not listed in the manifest's files")
        hr, lr = _read_png(root / e["hr"]), _read_png(root / e["lr"])
        g_input = []
        for g in e["g_input"]:
            if "ref" in g:
                g_input.append(lr)
            elif "file" in g:
                g_input.append(_read_png(root / g["file"]))
            else:
                g_input.append(torch.tensor(g["values"], dtype=torch.float32).reshape(g["shape"]))
        samples.append(EvalSample(name=e["name"], g_input=tuple(g_input), hr=hr, lr=lr, scale=e["scale"]))
    return EvalSet(key=key, root=root, manifest_sha256=manifest_sha, samples=samples, manifest=manifest)
