"""A copy of a network with its run-time weight expressions folded into constants, for exporters.

StyleGAN2's layers (GCFSR's decoder and encoder) compute their weights in ``forward``: equalised
learning rate multiplies each weight by a constant on every call, the modulated conv reads
``weight[0] * scale`` and its demodulation sums of squares, and the FIR blur expands its kernel
to the channel count of whatever comes in. An exporter sees those as operations on parameters:
pnnx leaves an ``F.linear`` whose weight is an expression, which ncnn has no layer for, and
torch's TorchScript ONNX exporter refuses a convolution whose kernel shape depends on the input's.
Deployment runtimes want constants, so this module swaps each such layer for one that holds the
product, computed by the same operations the training layer runs (the folded network's output
equals the original's to float rounding; the export's parity check compares with the original).
Networks without such layers (RRDBNet, DCGAN, CycleGAN) come back as an unchanged copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gankd.models.stylegan2_parts import (
    Blur,
    EqualConv2d,
    EqualLinear,
    ModulatedConv2d,
    fused_leaky_relu,
)


class _Linear(nn.Module):
    def __init__(self, layer: EqualLinear) -> None:
        super().__init__()
        self.activation = layer.activation
        self.register_buffer("weight", (layer.weight * layer.scale).detach().clone())
        bias = None if layer.bias is None else (layer.bias * layer.lr_mul).detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "fused_lrelu":
            return fused_leaky_relu(F.linear(x, self.weight), self.bias)
        return F.linear(x, self.weight, self.bias)


class _Conv(nn.Module):
    def __init__(self, layer: EqualConv2d) -> None:
        super().__init__()
        self.stride, self.padding = layer.stride, layer.padding
        self.register_buffer("weight", (layer.weight * layer.scale).detach().clone())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


class _ModulatedConv(nn.Module):
    def __init__(self, layer: ModulatedConv2d) -> None:
        super().__init__()
        self.upsample, self.demodulate = layer.upsample, layer.demodulate
        self.padding, self.eps = layer.padding, layer.eps
        self.modulation = layer.modulation  # folded already: children are swapped first
        with torch.no_grad():
            w = layer.weight[0] * layer.scale
            self.register_buffer("weight", w.clone())
            self.register_buffer("weight_t", w.transpose(0, 1).contiguous())
            self.register_buffer("sq", w.pow(2).sum([2, 3]).t().contiguous())
        if layer.upsample:
            self.smooth = layer.smooth

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)
        x = x * s[:, :, None, None]
        if self.upsample:
            out = self.smooth(F.conv_transpose2d(x, self.weight_t, stride=2))
        else:
            out = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            out = out * torch.rsqrt((s * s) @ self.sq + self.eps)[:, :, None, None]
        return out


class _Blur(nn.Module):
    """``Blur`` at a known channel count: the depthwise kernel is a constant of fixed shape."""

    def __init__(self, layer: Blur, channels: int) -> None:
        super().__init__()
        self.up, self.pad = layer.up, layer.pad
        kh, kw = layer.kernel.shape
        weight = layer.kernel.expand(channels, 1, kh, kw)
        # the training path convolves with the flipped kernel (upfirdn2d is a true convolution)
        self.register_buffer("weight", (weight if self.up > 1 else weight.flip([2, 3])).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, p0, p1 = self.weight.shape[0], self.pad[0], self.pad[1]
        kh, kw = self.weight.shape[2:]
        if self.up > 1:
            full = F.conv_transpose2d(x, self.weight, stride=self.up, groups=c)
            h, w = x.shape[2:]
            top, left = kh - 1 - p0, kw - 1 - p0
            out_h, out_w = h * self.up + p0 + p1 - kh + 1, w * self.up + p0 + p1 - kw + 1
            return full[:, :, top:top + out_h, left:left + out_w]
        return F.conv2d(F.pad(x, [p0, p1, p0, p1]), self.weight, groups=c)


def _blur_channels(model: nn.Module, example: Sequence[torch.Tensor]) -> dict[str, int]:
    seen: dict[str, int] = {}

    def record(name: str) -> Callable[..., None]:
        # returns None: a pre-hook that returned a value would replace the module's input
        def hook(_m: nn.Module, args: tuple) -> None:
            seen.setdefault(name, args[0].shape[1])
        return hook

    hooks = [m.register_forward_pre_hook(record(name))
             for name, m in model.named_modules() if isinstance(m, Blur)]
    try:
        with torch.inference_mode():
            model(*example)
    finally:
        for h in hooks:
            h.remove()
    return seen


def folded(model: nn.Module, example: Sequence[torch.Tensor]) -> nn.Module:
    """An eval-mode copy of ``model`` with every run-time weight expression a constant (module doc).

    ``example`` is one input of the shapes the export uses: a forward on it finds each blur's
    channel count. A blur the example never reaches is left as it is.
    """
    model = copy.deepcopy(model).cpu().eval()
    channels = _blur_channels(model, example)
    kinds = {EqualLinear: _Linear, EqualConv2d: _Conv, ModulatedConv2d: _ModulatedConv}
    names = [n for n, m in model.named_modules()
             if type(m) in kinds or (isinstance(m, Blur) and n in channels)]
    # deepest first, so that a modulated conv is rebuilt around its already folded children
    for name in sorted(names, key=lambda n: -n.count(".")):
        old = model.get_submodule(name)
        new = _Blur(old, channels[name]) if isinstance(old, Blur) else kinds[type(old)](old)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, new)
    return model
