"""Fixed, cached pools of degraded training pairs (CPU suites).

Pair i of a pool comes from training image ``order[i % n]`` (``order``: the training images in a
permutation seeded by the pool seed): a random ``degrade_side`` crop with flips/rotations (numpy
generator seeded by ``derive_seed("pool-crop", seed, i)``), degraded on the CPU with the seed
``derive_seed("pool-degrade", seed, i)`` and cropped to ``hr_crop``. Every pair depends only on
(config, data, seed, i): the engine may key teacher outputs on the pool key and reuse them
across methods. Each pair is degraded alone, so the per-batch draws of Real-ESRGAN's model code
(resize mode, noise type, final order) are per pair here: BasicSR with batch size 1.

Stored as ``cache_dir()/pools/<key>.pt`` (a dict of tensors) beside ``<key>.json`` (its sha256,
checked on every load, and a description). Tensors whose values are all on the 8-bit grid
(HR, the quantised LR, GCFSR's upsampled input) are stored as uint8 and decoded bit-exactly;
others (GCFSR's condition) as float32; the USM-sharpened Real-ESRGAN target as float16
(absolute error <= 2.5e-4, a sixteenth of an 8-bit step).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankd import atomic
from gankd.cachekeys import cache_key
from gankd.datasets.batch import Batch
from gankd.datasets.config import CACHE_FORMAT, DataConfig
from gankd.datasets.crops import ImageCache, random_crop, to_tensor
from gankd.datasets.seeding import derive_seed
from gankd.datasets.source import content_identity, names_digest, open_data, usable
from gankd.errors import ConfigError, GankdError
from gankd.locks import file_lock
from gankd.paths import cache_dir

log = logging.getLogger("gankd.datasets")

_TARGET_IS_REAL = "real"


@dataclass
class TrainPool:
    key: str
    path: Path
    sha256: str
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tensors["real"].shape[0])

    @property
    def num_inputs(self) -> int:
        return int(self.meta["num_inputs"])

    def batch(self, index: torch.Tensor) -> Batch:
        """Rows ``index`` (LongTensor, any device) as a Batch on the CPU: g_input, real, target, index."""
        index = torch.as_tensor(index).to("cpu", torch.long).reshape(-1)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"pool index out of range [0, {len(self)})")
        g_input = tuple(_decode(self.tensors[f"g{j}"][index]) for j in range(self.num_inputs))
        real = _decode(self.tensors["real"][index])
        target: torch.Tensor | None
        if self.meta["target"] == _TARGET_IS_REAL:
            target = real
        elif self.meta["target"] is None:
            target = None
        else:
            target = self.tensors["target"][index].float()
        return Batch(g_input=g_input, real=real, target=target, index=index)


def _encode(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    q = torch.clamp((t * 255.0).round(), 0, 255)
    if t.is_floating_point() and torch.equal(q / 255.0, t):
        return q.to(torch.uint8)
    return t.float()


def _decode(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def pool_identity(cfg: DataConfig, data: str, seed: int) -> tuple[dict[str, Any], list, Any]:
    """What pool (cfg, data, seed) depends on, the training images in pair order, the source."""
    if cfg.pool_size < 1:
        raise ConfigError("pool_size is 0 (online mode); a training pool needs pool_size >= 1")
    source = open_data(data)
    train = usable(source.splits(cfg).train, cfg.degrade_side, cfg, "training crop")
    if not train:
        raise ConfigError(f"no training image is at least {cfg.degrade_side}px on each side")
    perm = np.random.default_rng(derive_seed("pool-images", seed)).permutation(len(train))
    order = [train[int(k)] for k in perm]
    used = order[:min(cfg.pool_size, len(order))]
    identity = {
        "kind": "pool", "seed": seed, "source": source.kind, "train_names": names_digest(train),
        "used_images": content_identity(used), "degradation": cfg.build_degradation().describe(),
        "pool_size": cfg.pool_size, "hr_crop": cfg.hr_crop, "degrade_side": cfg.degrade_side,
        "hflip": cfg.hflip, "rot90": cfg.rot90, "resize_short": cfg.resize_short,
    }
    return identity, order, source


def build_pool(cfg: DataConfig, data: str, seed: int) -> TrainPool:
    """The pool of ``cfg.pool_size`` pairs for (cfg, data, seed): built once, then read and verified."""
    identity, order, _ = pool_identity(cfg, data, seed)
    key = cache_key({"format": CACHE_FORMAT, **identity})
    pdir = cache_dir() / "pools"
    path, side = pdir / f"{key}.pt", pdir / f"{key}.json"
    with file_lock(pdir / f".{key}.lock"):
        if path.is_file() and side.is_file():
            pool = _load(path, side, key)
            if pool is not None:
                return pool
        t0 = time.perf_counter()
        tensors, meta = _make(cfg, order, seed)
        meta.update({"key": key, "identity": identity})
        atomic.torch_save(path, tensors)
        sha = atomic.sha256_file(path)
        meta["build_seconds"] = round(time.perf_counter() - t0, 3)
        atomic.write_json(side, {"sha256": sha, "meta": meta})
        log.info("built pool %s: %d pairs in %.1fs", key, cfg.pool_size, meta["build_seconds"])
    pool = _load(path, side, key)
    if pool is None:
        raise GankdError(f"pool {path} failed verification right after it was built")
    return pool


def _make(cfg: DataConfig, order: list, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    deg = cfg.build_degradation()
    n = cfg.pool_size
    cache = ImageCache(cfg)
    columns: dict[str, list[torch.Tensor]] = {}
    target_kind: str | None = None
    # visit pairs grouped by image so each image is decoded once (the cache holds a few)
    for i in sorted(range(n), key=lambda k: (k % len(order), k)):
        img = cache.get(order[i % len(order)])
        rng = np.random.default_rng(derive_seed("pool-crop", seed, i))
        crop = random_crop(img, cfg.degrade_side, rng, cfg.hflip, cfg.rot90)
        hr = to_tensor(crop).float().div(255.0)[None]
        d = deg.train(hr, derive_seed("pool-degrade", seed, i), crop=cfg.hr_crop)
        row = {f"g{j}": _encode(g[0]) for j, g in enumerate(d.g_input)}
        row["real"] = _encode(d.real[0])
        if d.target is None:
            target_kind = None
        elif d.target is d.real:
            target_kind = _TARGET_IS_REAL
        else:
            target_kind = "float16"
            row["target"] = d.target[0].detach().cpu().half()
        for name, t in row.items():
            columns.setdefault(name, [None] * n)[i] = t  # type: ignore[list-item]
    tensors = {}
    for name, col in columns.items():
        dtypes = {t.dtype for t in col}
        if len(dtypes) > 1:  # some rows happened to be 8-bit exact, others not: keep float
            col = [t.float() / 255.0 if t.dtype == torch.uint8 else t for t in col]
        tensors[name] = torch.stack(col)
    meta = {"num_inputs": sum(1 for k in tensors if k.startswith("g")), "target": target_kind,
            "pairs": n, "dtypes": {k: str(v.dtype) for k, v in tensors.items()}}
    return tensors, meta


def _load(path: Path, side: Path, key: str) -> TrainPool | None:
    try:
        doc = json.loads(side.read_text())
        expected, meta = doc["sha256"], doc["meta"]
    except (OSError, ValueError, KeyError) as exc:
        log.warning("pool %s: unreadable description (%s); rebuilding", key, exc)
        return None
    sha = atomic.sha256_file(path)
    if sha != expected:
        log.warning("pool %s: %s does not match its recorded sha256; rebuilding", key, path.name)
        return None
    tensors = torch.load(path, map_location="cpu", weights_only=True)
    return TrainPool(key=key, path=path, sha256=sha, tensors=tensors, meta=meta)
