"""GCFSR's degradation (He et al., CVPR 2022): bicubic down by a drawn scale, bicubic back up.

Facts from the released code (hejingwenhejingwen/GCFSR):

- ``FFHQ_control_Dataset``: ``scale = downsample_list[randint(len)]`` per image;
  ``lq = imresize(imresize(gt, 1/scale), scale)`` (BasicSR MATLAB bicubic, no rounding of the
  small LR in between); only the upsampled ``lq`` is rounded to 8 bit; the condition is
  ``in_size = scale / cond_norm`` as a float32 tensor of shape (1,) per image, (N, 1) batched.
- ``options/train_gcfsr_gan.yml`` (out 512): ``downsample_list [32,32,32,32,16,16,8,8,4]``,
  ``cond_norm 32``; ``train_gcfsr.yml`` (out 1024): ``[64,64,64,64,32,32,16,16,8,4]``, ``cond_norm 64``.
- ``inference/inference_gcfsr.py``: the same down/up/round, ``cond = [[scale / 64.]]`` for the
  1024 model, i.e. ``scale / cond_norm`` again.
- The original normalises ``lq`` and ``gt`` to [-1, 1] (mean 0.5, std 0.5) and its generator
  outputs [-1, 1]; here every tensor stays in [0, 1] and the GCFSR wrapper maps at its border.

Evaluation uses one fixed scale, ``eval_scale`` (our choice; the paper reports fixed factors).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gankd.config import ours, paper
from gankd.datasets import DEGRADATIONS
from gankd.datasets.degradation import Degradation, Degraded, quantize8
from gankd.datasets.matlab_resize import imresize_batch
from gankd.datasets.seeding import generator


@dataclass
class GCFSRConfig:
    scales: tuple[int, ...] = paper(
        (32, 32, 32, 32, 16, 16, 8, 8, 4),
        "train_gcfsr_gan.yml downsample_list at out 512 (repeats weight draws)")
    cond_norm: float | None = paper(
        32.0, "train_gcfsr_gan.yml; None = the largest scale, as in both released configs")
    eval_scale: int = ours(16, "one fixed factor for deterministic evaluation; must be one of scales")

    def __post_init__(self) -> None:
        if not self.scales:
            raise ValueError("scales must list at least one downsampling factor")
        bad = [s for s in self.scales if s < 1]
        if bad:
            raise ValueError(f"scales must be positive integers, got {bad[0]}")
        if self.cond_norm is not None and self.cond_norm <= 0:
            raise ValueError(f"cond_norm must be positive, got {self.cond_norm}")
        if self.eval_scale not in self.scales:
            raise ValueError(f"eval_scale={self.eval_scale} is not one of scales {list(self.scales)}")

    @property
    def norm(self) -> float:
        return float(self.cond_norm) if self.cond_norm is not None else float(max(self.scales))


@DEGRADATIONS.register("gcfsr")
class GCFSRDegradation(Degradation):
    """HR (N, 3, S, S) -> g_input = (lr_up (N, 3, S, S) 8-bit, cond (N, 1) = scale / cond_norm)."""

    Config = GCFSRConfig
    name = "gcfsr"

    @property
    def crop_after(self) -> bool:
        return False  # the generator's input is the full output-size image

    def check_side(self, side: int, what: str) -> None:
        bad = sorted({s for s in self.cfg.scales if side % s})
        if bad:
            raise ValueError(f"{what}={side} is not divisible by the gcfsr scale(s) {bad}: "
                             f"use an output size divisible by every scale in {list(self.cfg.scales)}")

    def cond(self, scale: int) -> float:
        """The condition value GCFSR is fed for a downsampling ``scale`` (``in_size``)."""
        return float(torch.tensor(scale / self.cfg.norm, dtype=torch.float32))

    @torch.no_grad()
    def degrade_at(self, hr: torch.Tensor, scales: list[int]) -> Degraded:
        """Degrade each image of ``hr`` with its given scale."""
        if hr.ndim != 4 or hr.size(1) != 3:
            raise ValueError(f"expected HR of shape (N, 3, H, W), got {tuple(hr.shape)}")
        n, _, h, w = hr.shape
        if len(scales) != n:
            raise ValueError(f"{len(scales)} scales for {n} images")
        for side, what in ((h, "HR height"), (w, "HR width")):
            self.check_side(side, what)
        hr = hr.float()
        lr_up = torch.empty_like(hr)
        lr: list[torch.Tensor] = [hr[0]] * n
        for s in sorted(set(scales)):
            rows = [i for i, si in enumerate(scales) if si == s]
            small = imresize_batch(hr[rows], 1.0 / s)
            lr_up[rows] = quantize8(imresize_batch(small, float(s)))
            for i, img in zip(rows, quantize8(small).unbind(0)):
                lr[i] = img  # rounded only for display / storage; lr_up is made from the float LR
        cond = torch.tensor([[s / self.cfg.norm] for s in scales], dtype=torch.float32, device=hr.device)
        return Degraded(g_input=(lr_up, cond), real=hr, target=hr, lr=lr, scale=list(scales),
                        params={"scales": list(scales)})

    def train(self, hr: torch.Tensor, seed: int, crop: int | None = None) -> Degraded:
        if crop is not None and crop != hr.shape[-1]:
            raise ValueError(f"gcfsr degrades whole {hr.shape[-1]}px crops; cannot crop pairs to {crop}")
        pick = torch.randint(len(self.cfg.scales), (hr.size(0),), generator=generator(seed))
        return self.degrade_at(hr, [self.cfg.scales[i] for i in pick.tolist()])

    def eval(self, hr: torch.Tensor, seed: int) -> Degraded:
        return self.degrade_at(hr, [self.cfg.eval_scale] * hr.size(0))
