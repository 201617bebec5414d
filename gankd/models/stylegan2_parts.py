"""StyleGAN2 building blocks in plain PyTorch (no compiled fused_act/upfirdn2d extensions).

The module tree and parameter names follow BasicSR's StyleGAN2 code as used by GCFSR
(``ConvLayer`` is an ``nn.Sequential`` whose conv sits at index 0, or 1 after a blur;
``FusedLeakyReLU`` owns the bias), so released checkpoints load strictly. Resampling kernels are
non-persistent buffers: they follow ``.to(device)`` but stay out of the state_dict, as in the
original where they were plain attributes.

Everything is built from ``F.conv2d``/``F.conv_transpose2d``/``F.linear`` so fvcore counts the
multiply-adds of every resampling filter too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

SQRT2 = math.sqrt(2.0)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None, negative_slope: float = 0.2,
                     scale: float = SQRT2) -> torch.Tensor:
    """``leaky_relu(x + bias) * scale`` with ``bias`` added along dim 1 (BasicSR's fused_act op)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    # in place on the fresh result: leaky_relu's backward needs only its input
    return F.leaky_relu(x, negative_slope).mul_(scale)


def make_resample_kernel(k: Sequence[float]) -> torch.Tensor:
    """2-D FIR kernel from a 1-D one (outer product), normalised to sum 1."""
    t = torch.tensor(k, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None, :] * t[:, None]
    return t / t.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with ``kernel`` (true convolution), downsample.

    Same semantics as StyleGAN2's ``upfirdn2d`` with equal x/y factors and pads; negative pads
    crop. Each channel is filtered independently with a depthwise conv (``groups=C``): the up
    path is a strided transposed conv, so no multiply-adds are spent on inserted zeros.
    """
    _, c, h, w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    weight = kernel.to(x.dtype).expand(c, 1, kh, kw)
    if up > 1:
        # conv_transpose2d yields the full convolution of the zero-inserted signal, of length
        # (h-1)*up + kh; upfirdn's padded result is the window starting at kh-1-p0.
        full = F.conv_transpose2d(x, weight, stride=up, groups=c)
        out_h = h * up + p0 + p1 - kh + 1
        out_w = w * up + p0 + p1 - kw + 1
        top, left = kh - 1 - p0, kw - 1 - p0
        out = F.pad(full, [-left, left + out_w - full.shape[3], -top, top + out_h - full.shape[2]])
        if down > 1:
            out = out[:, :, ::down, ::down]
    else:
        # conv2d is a correlation, so the kernel is flipped to make it a convolution; a strided
        # conv equals filtering then keeping every down-th sample
        out = F.conv2d(F.pad(x, [p0, p1, p0, p1]), weight.flip([2, 3]), stride=down, groups=c)
    return out


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU(0.2) + sqrt(2) gain; parameter ``bias`` of shape (C,)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * SQRT2


class Blur(nn.Module):
    """FIR filter with fixed pads (BasicSR's UpFirDnSmooth and UpFirDnUpsample).

    ``up`` > 1 upsamples inside the filter (``gain`` should then be up**2 to keep the mean);
    with ``up`` == 1 it only smooths (a following strided conv does the downsampling).
    """

    kernel: torch.Tensor

    def __init__(self, resample_kernel: Sequence[float], pad: tuple[int, int], up: int = 1,
                 gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", make_resample_kernel(resample_kernel) * gain, persistent=False)
        self.pad = pad
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.up, pad=self.pad)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, up={self.up}"


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weight scaled by lr_mul/sqrt(fan_in) at run time)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, bias_init_val: float = 0.0,
                 lr_mul: float = 1.0, activation: str | None = None) -> None:
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"EqualLinear activation must be None or 'fused_lrelu', got {activation!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lr_mul = lr_mul
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_channels,), float(bias_init_val))) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation == "fused_lrelu":
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


def _down_blur(resample_kernel: Sequence[float], kernel_size: int) -> Blur:
    """The blur before a stride-2 conv (BasicSR's UpFirDnSmooth with downsample_factor 2)."""
    pad = len(resample_kernel) - 2 + (kernel_size - 1)
    return Blur(resample_kernel, ((pad + 1) // 2, pad // 2))


class ConvLayer(nn.Sequential):
    """[blur,] equalised conv [, activation]; with ``downsample`` the conv has stride 2.

    As in StyleGAN2, a conv followed by an activation has no bias of its own: the bias lives in
    the FusedLeakyReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True,
                 activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            layers.append(_down_blur(resample_kernel, kernel_size))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv (no bias), optionally a 2x transposed conv followed by a blur.

    Computed as modulate-input / shared-weight conv / demodulate-output, which equals BasicSR's
    per-sample grouped conv exactly in real arithmetic (the demodulation factor of output o is
    rsqrt(sum_i s_i^2 * sum_k w_oik^2)) but runs the batch as one ordinary convolution.
    Parameter ``weight`` keeps the original (1, out, in, k, k) shape.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, upsample: bool = False,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), eps: float = 1e-8) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.padding = kernel_size // 2
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.modulation = EqualLinear(num_style_feat, in_channels, bias=True, bias_init_val=1.0)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        if upsample:
            # transposed conv output is 2h + k - 2; this blur (gain 4) brings it back to 2h
            pad = (len(resample_kernel) - 2) - (kernel_size - 1)
            self.smooth = Blur(resample_kernel, ((pad + 1) // 2 + 1, pad // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)  # (b, in)
        w = self.weight[0] * self.scale  # (out, in, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            out = self.smooth(F.conv_transpose2d(x, w.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, w, padding=self.padding)
        if self.demodulate:
            demod = torch.rsqrt((s * s) @ w.pow(2).sum([2, 3]).t() + self.eps)  # (b, out)
            out = out * demod[:, :, None, None]
        return out

    def extra_repr(self) -> str:
        _, o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, demodulate={self.demodulate}, upsample={self.upsample}"


class StyleConv(nn.Module):
    """Modulated conv + noise injection (+ GCFSR's conditional scale/shift) + fused leaky ReLU.

    ``weight`` is the learned noise strength (zero at init). With ``scale1``, ``scale2`` and
    ``shift`` given (GCFSR's ``StyleConv_norm_scale_shift``), the pre-activation becomes
    ``out * s1 + shift * s2`` with (s1, s2) normalised to unit length per channel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, upsample: bool = False,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, kernel_size, num_style_feat,
                                              demodulate=demodulate, upsample=upsample,
                                              resample_kernel=resample_kernel)
        self.weight = nn.Parameter(torch.zeros(1))
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None,
                scale1: torch.Tensor | None = None, scale2: torch.Tensor | None = None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        out = out + self.weight * noise
        if shift is not None:
            if scale1 is None or scale2 is None:
                raise ValueError("StyleConv: shift needs both scale1 and scale2")
            c = out.shape[1]
            inv = torch.rsqrt(scale1 * scale1 + scale2 * scale2 + 1e-8)
            out = out * (scale1 * inv).view(-1, c, 1, 1) + shift * (scale2 * inv).view(-1, c, 1, 1)
        return self.activate(out)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) + bias, added to the upsampled skip image."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if upsample:
            pad = len(resample_kernel) - 2
            self.upsample = Blur(resample_kernel, ((pad + 1) // 2 + 1, pad // 2), up=2, gain=4.0)
        else:
            self.upsample = None
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample is not None:
                skip = self.upsample(skip)
            out = out + skip
        return out


class ResBlock(nn.Module):
    """StyleGAN2 discriminator residual block: two 3x3 convs (second strided) + 1x1 strided skip."""

    def __init__(self, in_channels: int, out_channels: int,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, resample_kernel=resample_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, resample_kernel=resample_kernel,
                              bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


def channel_table(narrow: float, channel_multiplier: int = 2) -> dict[int, int]:
    """Channels per resolution of StyleGAN2 (and GCFSR), scaled by ``narrow``."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {res: int(c * narrow) for res, c in base.items()}
