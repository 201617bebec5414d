"""PSNR and SSIM on the Y channel, exactly as BasicSR's ``calculate_psnr`` / ``calculate_ssim``.

BasicSR's validation turns an RGB tensor into a BGR uint8 image (``tensor2img``: clamp to [0, 1],
``round(x * 255)``), crops ``crop_border`` pixels off every edge and converts to the Y channel of
ITU-R BT.601 YCbCr with ``to_y_channel``, then PSNR is ``10 log10(255^2 / MSE)`` in float64 and SSIM
is Wang et al.'s with an 11x11 Gaussian window (sigma 1.5), valid mode, mean of the SSIM map.

This module reproduces that pipeline in torch instead of calling BasicSR's numpy/cv2 code:
the Y conversion keeps BasicSR's precision steps (the 8-bit levels divided by 255 in float32, the
weighted sum in float64, the result stored back as float32) and the Gaussian window is applied as
two separable 1-D passes in float64. ``tests/metrics/test_psnr_ssim_niqe.py`` checks both metrics against
BasicSR to 1e-6 on real photos.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from gankd.metrics import METRICS, Column, PerImageMean

# BT.601 luma weights of BasicSR's rgb2ycbcr/bgr2ycbcr (for inputs in [0, 1], output in [16, 235])
_Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def quantize_8bit(img: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> its 8-bit levels 0..255 (float32), as BasicSR's ``tensor2img``.

    ``round`` is round-half-to-even in torch as in numpy, so the levels are identical to BasicSR's.
    """
    return (img.detach().float().clamp(0, 1) * 255.0).round()


def y_channel(levels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB 8-bit levels -> (N, H, W) float64 Y in [16, 235], BasicSR's ``to_y_channel``.

    BasicSR divides the uint8 image by 255 in float32, takes the dot product with float64 weights,
    and stores the result (divided by 255) as float32 before scaling back: the same casts here.
    """
    if levels.dim() != 4 or levels.shape[1] != 3:
        raise ValueError(f"expected RGB images of shape (N, 3, H, W), got {tuple(levels.shape)}")
    unit = (levels.float() / 255.0).double()
    w = torch.tensor(_Y_WEIGHTS_RGB, dtype=torch.float64, device=levels.device)
    y = torch.einsum("nchw,c->nhw", unit, w) + 16.0
    return ((y / 255.0).float() * 255.0).double()


def crop(img: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels at every edge of the last two dimensions."""
    if border < 0:
        raise ValueError(f"crop border must be >= 0, got {border}")
    if border == 0:
        return img
    h, w = img.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"image of {h}x{w} pixels is too small for a crop border of {border}")
    return img[..., border:h - border, border:w - border]


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image PSNR (N,) in dB on the Y channel of 8-bit-rounded RGB images in [0, 1].

    Identical images give ``inf``, as in BasicSR.
    """
    _check_pair(sr, hr)
    return _per_image(_psnr_one, sr, hr, crop_border)


def _per_image(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sr: torch.Tensor,
               hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    # One image at a time: the float64 temporaries of a whole batch fall out of the CPU caches
    # (measured: a batch of eight 512x512 images is 3-4x slower per image than a loop over them).
    out = []
    for a, b in zip(sr, hr):
        x = crop(y_channel(quantize_8bit(a[None])), crop_border)
        y = crop(y_channel(quantize_8bit(b[None])), crop_border)
        out.append(fn(x, y))
    return torch.cat(out)


def _psnr_one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mse = (x - y).square().mean(dim=(-2, -1))
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 -> inf


def _gaussian_taps() -> list[float]:
    # cv2.getGaussianKernel(11, 1.5): exp(-(i - 5)^2 / (2 sigma^2)), normalised to sum 1
    i = torch.arange(_SSIM_WINDOW, dtype=torch.float64) - (_SSIM_WINDOW - 1) / 2
    g = torch.exp(-i.square() / (2 * _SSIM_SIGMA**2))
    return (g / g.sum()).tolist()


_TAPS = _gaussian_taps()


def _filter_valid(x: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D Gaussian filter along ``dim``, valid mode, as a sum of 11 shifted slices.

    float64 convolutions have no fast kernel on CPU (torch's conv2d is ~10x slower here than this
    shift-and-add, measured); the sum runs in place over views, so it is memory-bound and cheap.
    """
    n = x.shape[dim] - _SSIM_WINDOW + 1
    out = x.narrow(dim, 0, n) * _TAPS[0]
    for k in range(1, _SSIM_WINDOW):
        out.add_(x.narrow(dim, k, n), alpha=_TAPS[k])
    return out


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image SSIM (N,) on the Y channel of 8-bit-rounded RGB images in [0, 1].

    The five local statistics (mu1, mu2, E[x^2], E[y^2], E[xy]) are filtered together by the
    separable window in valid mode (BasicSR filters with cv2 and drops 5 pixels per edge: the same
    pixels).
    """
    _check_pair(sr, hr)
    h, w = (d - 2 * crop_border for d in sr.shape[-2:])
    if h < _SSIM_WINDOW or w < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping "
                         f"{crop_border} per edge; got {max(h, 0)}x{max(w, 0)}")
    return _per_image(_ssim_one, sr, hr, crop_border)


def _ssim_one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    stats = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (1, 5, H, W)
    stats = _filter_valid(_filter_valid(stats, -2), -1)
    mu1, mu2, e11, e22, e12 = stats.unbind(1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11, s22, s12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    ssim_map = ((2 * mu12 + _SSIM_C1) * (2 * s12 + _SSIM_C2)) / (
        (mu1_sq + mu2_sq + _SSIM_C1) * (s11 + s22 + _SSIM_C2))
    return ssim_map.mean(dim=(-2, -1))


def _check_pair(sr: torch.Tensor, hr: torch.Tensor) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.dim() != 4 or sr.shape[1] != 3:
        raise ValueError(f"expected RGB images of shape (N, 3, H, W), got {tuple(sr.shape)}")


@METRICS.register("psnr")
class PSNR(PerImageMean):
    """PSNR (dB) on Y, border of ``scale`` cropped, 8-bit rounding; mean over images."""

    name = "psnr"
    key = "psnr"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("psnr", "PSNR", True, "PSNR on the Y channel of the evaluation set; higher is better",
               unit="dB", digits=2, tolerance=0.01, order=10),)

    def _per_image(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return psnr_y(sr, hr, self.crop_border)


@METRICS.register("ssim")
class SSIM(PerImageMean):
    """SSIM on Y, border of ``scale`` cropped, 8-bit rounding; mean over images."""

    name = "ssim"
    key = "ssim"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("ssim", "SSIM", True, "SSIM on the Y channel; higher is better", digits=4, tolerance=0.0005,
               order=20),)

    def _per_image(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return ssim_y(sr, hr, self.crop_border)
