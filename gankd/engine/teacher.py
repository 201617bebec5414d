"""The frozen teacher: eval mode, no gradients, noise off; outputs and tapped features either
computed online or looked up in a cache precomputed once over a fixed training pool.

The cache is keyed by the teacher's identity (zoo entry + weight sha256), the pool's key and the
tap names, so every method of a sweep that needs the same taps shares one file. Features are
stored in fp16 (they are large: a GCFSR decoder level is C x 64 x 64 per sample); images in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from gankd import atomic, cachekeys
from gankd.datasets.batch import Batch
from gankd.engine.taps import FeatureTaps


@dataclass
class TeacherOutput:
    image: torch.Tensor
    features: list[torch.Tensor]


class IndexedPool(Protocol):
    key: str

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor) -> Batch: ...


def freeze(net: nn.Module) -> nn.Module:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if hasattr(net, "set_random_noise"):
        net.set_random_noise(False)
    return net


class Teacher:
    def __init__(self, net: nn.Module, identity: str, taps: Sequence[str] = (),
                 device: torch.device | str = "cpu") -> None:
        self.net = freeze(net).to(device)
        self.identity = identity
        self.device = torch.device(device)
        self._cache: TeacherOutput | None = None
        self.taps = list(taps)  # the features ``outputs`` returns: the method's teacher taps
        self._tap = FeatureTaps(self.net, self.taps, "teacher tap")

    def train(self, mode: bool = True) -> Teacher:
        """The teacher never leaves eval mode, whatever its caller asks."""
        return self

    @torch.no_grad()
    def forward(self, g_input: tuple[torch.Tensor, ...]) -> TeacherOutput:
        with self._tap:
            image = self.net(*g_input)
            feats = self._tap.collect() if self.taps else []
        return TeacherOutput(image, [f.detach() for f in feats])

    def outputs(self, batch: Batch) -> TeacherOutput:
        if self._cache is not None and batch.index is not None:
            idx = batch.index.cpu()
            dev = batch.real.device
            return TeacherOutput(
                self._cache.image[idx].to(dev),
                [f[idx].to(dev, torch.float32) for f in self._cache.features])
        return self.forward(batch.g_input)

    def cache_key(self, pool: IndexedPool) -> str:
        return cachekeys.cache_key({"teacher": self.identity, "pool": pool.key, "taps": self.taps})

    def precompute(self, pool: IndexedPool, cache_dir: Path, batch_size: int = 8,
                   progress: bool = True) -> Path:
        """Fill the lookup cache for ``pool``; reuse the file when another run already made it."""
        path = Path(cache_dir) / f"teacher-{self.cache_key(pool)}.pt"
        if path.is_file() and _checksum_ok(path):
            data = torch.load(path, map_location="cpu", weights_only=True)
            self._cache = TeacherOutput(data["image"], data["features"])
            return path
        images: list[torch.Tensor] = []
        feats: list[list[torch.Tensor]] = [[] for _ in self.taps]
        n = len(pool)
        from gankd.engine.progress import bar as progress_bar

        bar = progress_bar(n, 0, "teacher pool", enabled=progress, unit="img")
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(n, start + batch_size))
            out = self.forward(pool.batch(index).to(self.device).g_input)
            images.append(out.image.float().cpu())
            for i, f in enumerate(out.features):
                feats[i].append(f.to(torch.float16).cpu())
            bar.update(len(index))
        bar.set_postfix_str("outputs and features cached")
        bar.close()
        data = {"image": torch.cat(images), "features": [torch.cat(f) for f in feats],
                "identity": self.identity, "pool": pool.key, "taps": self.taps}
        atomic.torch_save(path, data)
        atomic.write_text(path.with_suffix(".sha256"), atomic.sha256_file(path) + "\n")
        self._cache = TeacherOutput(data["image"], data["features"])
        return path


def _checksum_ok(path: Path) -> bool:
    side = path.with_suffix(".sha256")
    return side.is_file() and side.read_text().strip() == atomic.sha256_file(path)
