"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021), with BasicSR's functions.

The pipeline is that of BasicSR's ``RealESRGANDataset.__getitem__`` (per-sample blur kernels)
followed by ``RealESRGANModel.feed_data`` (per-batch resize modes, noise type and final order;
per-sample noise levels and JPEG qualities), defaults from Real-ESRGAN's
``options/train_realesrgan_x4plus.yml``:

1. USM-sharpen the GT (``USMSharp``); blur it (iso / aniso / generalized iso+aniso / plateau
   iso+aniso Gaussian kernels, or a 2-D sinc, kernel sizes 7..21); random resize (up/down/keep,
   area/bilinear/bicubic); Gaussian or Poisson noise, colour or grey; JPEG (``DiffJPEG``).
2. blur with probability ``second_blur_prob``; resize to (H/scale * r); noise; then in random
   order {resize to H/scale + final sinc filter (probability ``final_sinc_prob``)} and JPEG.
3. round to 8 bit.

Targets follow the x4plus options: pixel and perceptual losses see the USM-sharpened GT
(``l1_gt_usm``/``percep_gt_usm`` true), the discriminator the plain GT (``gan_gt_usm`` false).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from gankd._basicsr import DiffJPEG, USMSharp, degradations, filter2D
from gankd.config import paper
from gankd.datasets import DEGRADATIONS
from gankd.datasets.degradation import Degradation, Degraded, quantize8
from gankd.datasets.seeding import derive_seed, generator, seeded

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_RESIZE_MODES = ("area", "bilinear", "bicubic")
_USM_RADIUS = 50  # USMSharp default: a 51x51 Gaussian, reflect padding needs sides > 25


@dataclass
class RealESRGANConfig:
    """Published values: Real-ESRGAN options/train_realesrgan_x4plus.yml (= BasicSR's defaults)."""

    scale: int = paper(4)
    # first degradation: blur
    blur_kernel_size: int = paper(21, "largest kernel; sizes are the odd numbers 7..blur_kernel_size")
    kernel_list: tuple[str, ...] = paper(KERNEL_TYPES)
    kernel_prob: tuple[float, ...] = paper((0.45, 0.25, 0.12, 0.03, 0.12, 0.03))
    sinc_prob: float = paper(0.1)
    blur_sigma: tuple[float, float] = paper((0.2, 3.0))
    betag_range: tuple[float, float] = paper((0.5, 4.0))
    betap_range: tuple[float, float] = paper((1.0, 2.0))
    # first degradation: resize, noise, JPEG
    resize_prob: tuple[float, float, float] = paper((0.2, 0.7, 0.1), "up, down, keep")
    resize_range: tuple[float, float] = paper((0.15, 1.5))
    gaussian_noise_prob: float = paper(0.5)
    noise_range: tuple[float, float] = paper((1.0, 30.0))
    poisson_scale_range: tuple[float, float] = paper((0.05, 3.0))
    gray_noise_prob: float = paper(0.4)
    jpeg_range: tuple[float, float] = paper((30.0, 95.0))
    # second degradation
    second_blur_prob: float = paper(0.8)
    kernel_list2: tuple[str, ...] = paper(KERNEL_TYPES)
    kernel_prob2: tuple[float, ...] = paper((0.45, 0.25, 0.12, 0.03, 0.12, 0.03))
    sinc_prob2: float = paper(0.1)
    blur_sigma2: tuple[float, float] = paper((0.2, 1.5))
    betag_range2: tuple[float, float] = paper((0.5, 4.0))
    betap_range2: tuple[float, float] = paper((1.0, 2.0))
    resize_prob2: tuple[float, float, float] = paper((0.3, 0.4, 0.3), "up, down, keep")
    resize_range2: tuple[float, float] = paper((0.3, 1.2))
    gaussian_noise_prob2: float = paper(0.5)
    noise_range2: tuple[float, float] = paper((1.0, 25.0))
    poisson_scale_range2: tuple[float, float] = paper((0.05, 2.5))
    gray_noise_prob2: float = paper(0.4)
    jpeg_range2: tuple[float, float] = paper((30.0, 95.0))
    final_sinc_prob: float = paper(0.8)
    # targets
    usm_target: bool = paper(True, "l1_gt_usm and percep_gt_usm; the GAN always sees the plain GT")

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}")
        if self.blur_kernel_size < 7 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd and >= 7, got {self.blur_kernel_size}")
        for suffix in ("", "2"):
            names = getattr(self, "kernel_list" + suffix)
            probs = getattr(self, "kernel_prob" + suffix)
            bad = [k for k in names if k not in KERNEL_TYPES]
            if bad:
                raise ValueError(
                    f"kernel_list{suffix}: unknown kernel {bad[0]!r}; valid: {', '.join(KERNEL_TYPES)}")
            if len(names) != len(probs) or not names:
                raise ValueError(
                    f"kernel_list{suffix} and kernel_prob{suffix} must be non-empty and of equal length")
            if any(p < 0 for p in probs) or sum(probs) <= 0:
                raise ValueError(f"kernel_prob{suffix} must be non-negative with a positive sum")
        for name in ("sinc_prob", "sinc_prob2", "gaussian_noise_prob", "gaussian_noise_prob2",
                     "gray_noise_prob", "gray_noise_prob2", "second_blur_prob", "final_sinc_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name in ("blur_sigma", "betag_range", "betap_range", "resize_range", "noise_range",
                     "poisson_scale_range", "jpeg_range", "blur_sigma2", "betag_range2", "betap_range2",
                     "resize_range2", "noise_range2", "poisson_scale_range2", "jpeg_range2"):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, got {[lo, hi]}")
        for name in ("blur_sigma", "blur_sigma2"):
            lo, hi = getattr(self, name)
            if not 0 < lo < hi:  # BasicSR's kernel samplers assert a strictly increasing range
                raise ValueError(f"{name} must be [low, high] with 0 < low < high, got {[lo, hi]}")
        for name in ("resize_range", "resize_range2"):
            lo, hi = getattr(self, name)
            if not lo <= 1.0 <= hi or lo <= 0:
                raise ValueError(f"{name} must satisfy 0 < low <= 1 <= high, got {[lo, hi]}")
        for name in ("jpeg_range", "jpeg_range2"):
            lo, hi = getattr(self, name)
            if lo < 1 or hi > 100 or lo >= 100:  # DiffJPEG divides by zero at quality 100
                raise ValueError(
                    f"{name} must lie within [1, 100) (quality 100 is not defined), got {[lo, hi]}")
        for name in ("resize_prob", "resize_prob2"):
            if any(p < 0 for p in getattr(self, name)) or sum(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be non-negative with a positive sum")


@DEGRADATIONS.register("realesrgan")
class RealESRGANDegradation(Degradation):
    """HR (N, 3, S, S) -> LR (N, 3, S/scale, S/scale) 8-bit; g_input = (lr,)."""

    Config = RealESRGANConfig
    name = "realesrgan"

    def __init__(self, cfg: RealESRGANConfig) -> None:
        super().__init__(cfg)
        self._modules: dict[str, tuple[USMSharp, DiffJPEG]] = {}
        half = cfg.blur_kernel_size // 2
        self.kernel_sizes = [2 * v + 1 for v in range(3, half + 1)]  # BasicSR: 7, 9, ..., 21

    @property
    def crop_after(self) -> bool:
        return True

    def min_side(self) -> int:
        """Smallest square HR side the pipeline accepts (reflect padding needs pad < size)."""
        c = self.cfg
        pad = c.blur_kernel_size // 2
        # the second blur runs on the output of the first resize, floor(S * resize_range[0]) wide
        side = math.ceil((pad + 1) / c.resize_range[0])
        while math.floor(side * c.resize_range[0]) < pad + 1:
            side += 1
        side = max(side, (pad + 1) * c.scale, _USM_RADIUS // 2 + 1)  # final sinc on S/scale; USM
        while math.floor(side / c.scale * c.resize_range2[0]) < 1:
            side += 1
        return math.ceil(side / c.scale) * c.scale

    def check_side(self, side: int, what: str) -> None:
        self.check_crop(side, what)
        if side < self.min_side():
            raise ValueError(
                f"{what}={side} is too small for the realesrgan degradation: it needs >= {self.min_side()} "
                f"(resize_range[0]={self.cfg.resize_range[0]} shrinks the image before a "
                f"{self.cfg.blur_kernel_size}-tap blur); degrade a larger region (degrade_size) and crop")

    def check_crop(self, side: int, what: str) -> None:
        if side % self.cfg.scale:
            raise ValueError(f"{what}={side} must be a multiple of the realesrgan scale {self.cfg.scale}")

    def _tools(self, device: torch.device) -> tuple[USMSharp, DiffJPEG]:
        key = str(device)
        if key not in self._modules:
            self._modules[key] = (USMSharp().to(device), DiffJPEG(differentiable=False).to(device))
        return self._modules[key]

    # ---- kernels (per sample, numpy / random, as RealESRGANDataset) -------------------------
    def _blur_kernel(self, second: bool) -> tuple[np.ndarray, str]:
        c = self.cfg
        sfx = "2" if second else ""
        size = random.choice(self.kernel_sizes)
        if np.random.uniform() < getattr(c, "sinc_prob" + sfx):
            # BasicSR's cut-off ranges for kernels of 7..21 taps
            omega = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            kernel = degradations.circular_lowpass_kernel(omega, size, pad_to=False)
            kind = "sinc"
        else:
            kind = random.choices(getattr(c, "kernel_list" + sfx), getattr(c, "kernel_prob" + sfx))[0]
            sigma = getattr(c, "blur_sigma" + sfx)
            kernel = degradations.random_mixed_kernels(
                [kind], [1.0], size, sigma, sigma, [-math.pi, math.pi],
                getattr(c, "betag_range" + sfx), getattr(c, "betap_range" + sfx), noise_range=None)
        pad = (c.blur_kernel_size - size) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad))), f"{kind}{size}"

    def _final_sinc(self) -> tuple[np.ndarray, bool]:
        c = self.cfg
        if np.random.uniform() < c.final_sinc_prob:
            size = random.choice(self.kernel_sizes)
            omega = np.random.uniform(np.pi / 3, np.pi)
            return degradations.circular_lowpass_kernel(omega, size, pad_to=c.blur_kernel_size), True
        pulse = np.zeros((c.blur_kernel_size, c.blur_kernel_size))
        pulse[c.blur_kernel_size // 2, c.blur_kernel_size // 2] = 1
        return pulse, False

    # ---- batch operations (as RealESRGANModel.feed_data) --------------------------------------
    @staticmethod
    def _resize(out: torch.Tensor, probs: tuple[float, ...], rng: tuple[float, float],
                size: tuple[int, int] | None = None, base: tuple[int, int] | None = None
                ) -> tuple[torch.Tensor, dict[str, Any]]:
        updown = random.choices(["up", "down", "keep"], probs)[0]
        if updown == "up":
            factor = float(np.random.uniform(1, rng[1]))
        elif updown == "down":
            factor = float(np.random.uniform(rng[0], 1))
        else:
            factor = 1.0
        mode = random.choice(_RESIZE_MODES)
        if base is None:
            out = F.interpolate(out, scale_factor=factor, mode=mode)
        else:
            out = F.interpolate(out, size=(int(base[0] * factor), int(base[1] * factor)), mode=mode)
        return out, {"resize": updown, "factor": factor, "mode": mode}

    @staticmethod
    def _noise(out: torch.Tensor, gaussian_prob: float, sigma_range: tuple[float, float],
               poisson_range: tuple[float, float], gray_prob: float) -> tuple[torch.Tensor, dict[str, Any]]:
        n = out.size(0)
        if np.random.uniform() < gaussian_prob:
            sigma = torch.rand(n, dtype=out.dtype, device=out.device) * (sigma_range[1] - sigma_range[0]) \
                + sigma_range[0]
            gray = (torch.rand(n, dtype=out.dtype, device=out.device) < gray_prob).float()
            out = degradations.add_gaussian_noise_pt(out, sigma=sigma, gray_noise=gray, clip=True,
                                                     rounds=False)
            return out, {"noise": "gaussian", "sigma": sigma.tolist(), "gray": gray.tolist()}
        scale = torch.rand(n, dtype=out.dtype, device=out.device) * (poisson_range[1] - poisson_range[0]) \
            + poisson_range[0]
        gray = (torch.rand(n, dtype=out.dtype, device=out.device) < gray_prob).float()
        out = degradations.add_poisson_noise_pt(out, scale=scale, gray_noise=gray, clip=True, rounds=False)
        return out, {"noise": "poisson", "poisson_scale": scale.tolist(), "gray": gray.tolist()}

    @staticmethod
    def _jpeg(out: torch.Tensor, jpeger: DiffJPEG,
              rng: tuple[float, float]) -> tuple[torch.Tensor, list[float]]:
        quality = out.new_zeros(out.size(0)).uniform_(*rng)
        record = quality.tolist()  # DiffJPEG overwrites its argument with the quantisation factor
        out = torch.clamp(out, 0, 1)  # BasicSR: JPEG of unclamped values gives artefacts
        return jpeger(out, quality=quality), record

    @torch.no_grad()
    def _degrade(self, hr: torch.Tensor, seed: int) -> Degraded:
        c = self.cfg
        if hr.ndim != 4 or hr.size(1) != 3:
            raise ValueError(f"expected HR of shape (N, 3, H, W), got {tuple(hr.shape)}")
        n, _, h, w = hr.shape
        for side, what in ((h, "HR height"), (w, "HR width")):
            self.check_side(side, what)
        hr = hr.float()
        dev = hr.device
        usm, jpeger = self._tools(dev)
        with seeded(seed, dev):
            k1, k2, sinc, names1, names2, sinc_on = [], [], [], [], [], []
            for _ in range(n):
                k, name = self._blur_kernel(second=False)
                k1.append(k)
                names1.append(name)
                k, name = self._blur_kernel(second=True)
                k2.append(k)
                names2.append(name)
                k, on = self._final_sinc()
                sinc.append(k)
                sinc_on.append(on)
            kernel1, kernel2, sinc_kernel = (torch.as_tensor(np.stack(k), dtype=torch.float32, device=dev)
                                             for k in (k1, k2, sinc))
            gt_usm = usm(hr)
            p: dict[str, Any] = {"kernel1": names1, "kernel2": names2, "final_sinc": sinc_on}
            # first degradation (on the sharpened GT, as RealESRGANModel.feed_data)
            out = filter2D(gt_usm, kernel1)
            out, p["resize1"] = self._resize(out, c.resize_prob, c.resize_range)
            out, p["noise1"] = self._noise(out, c.gaussian_noise_prob, c.noise_range,
                                           c.poisson_scale_range, c.gray_noise_prob)
            out, p["jpeg1"] = self._jpeg(out, jpeger, c.jpeg_range)
            # second degradation
            p["blur2"] = bool(np.random.uniform() < c.second_blur_prob)
            if p["blur2"]:
                out = filter2D(out.contiguous(), kernel2)
            out, p["resize2"] = self._resize(out, c.resize_prob2, c.resize_range2,
                                             base=(h / c.scale, w / c.scale))
            out, p["noise2"] = self._noise(out, c.gaussian_noise_prob2, c.noise_range2,
                                           c.poisson_scale_range2, c.gray_noise_prob2)
            # [resize back + final sinc] and JPEG in random order
            p["sinc_first"] = bool(np.random.uniform() < 0.5)
            if p["sinc_first"]:
                out = F.interpolate(out, size=(h // c.scale, w // c.scale), mode=random.choice(_RESIZE_MODES))
                out = filter2D(out.contiguous(), sinc_kernel)
                out, p["jpeg2"] = self._jpeg(out, jpeger, c.jpeg_range2)
            else:
                out, p["jpeg2"] = self._jpeg(out, jpeger, c.jpeg_range2)
                out = F.interpolate(out, size=(h // c.scale, w // c.scale), mode=random.choice(_RESIZE_MODES))
                out = filter2D(out.contiguous(), sinc_kernel)
            lr = quantize8(out).contiguous()
        target = gt_usm if c.usm_target else hr
        return Degraded(g_input=(lr,), real=hr, target=target, lr=list(lr.unbind(0)),
                        scale=[c.scale] * n, params=p)

    def train(self, hr: torch.Tensor, seed: int, crop: int | None = None) -> Degraded:
        d = self._degrade(hr, seed)
        h, w = hr.shape[-2:]
        if crop is None or (crop == h and crop == w):
            return d
        s = self.cfg.scale
        if crop % s or crop > min(h, w):
            raise ValueError(f"cannot crop {crop}x{crop} pairs (multiple of {s}) from {h}x{w} HR")
        # BasicSR paired_random_crop: one LR position per batch, the GT crop aligned to it
        g = generator(derive_seed(seed, "paired-crop"))
        lc = crop // s
        top = int(torch.randint(0, h // s - lc + 1, (1,), generator=g))
        left = int(torch.randint(0, w // s - lc + 1, (1,), generator=g))
        lr = d.g_input[0][:, :, top:top + lc, left:left + lc].contiguous()

        def hr_crop(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t[:, :, top * s:top * s + crop, left * s:left * s + crop].contiguous()

        real = hr_crop(d.real)
        target = real if d.target is d.real else hr_crop(d.target)
        assert real is not None
        d.params["crop"] = (top * s, left * s, crop)
        return Degraded(g_input=(lr,), real=real, target=target, lr=list(lr.unbind(0)),
                        scale=d.scale, params=d.params)

    def eval(self, hr: torch.Tensor, seed: int) -> Degraded:
        return self._degrade(hr, seed)
