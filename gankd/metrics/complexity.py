"""Parameters and multiply-accumulates of a network, counted by fvcore at a stated input.

fvcore traces one forward and counts, per op, one "flop" per multiply-add for convolutions,
linear layers and (batched) matrix products, so its total is reported here as MACs. Also in the
total, with fvcore's own rules: batch/group/layer/instance norm (a few per element), nearest and
bilinear upsampling (1 and 4 per output element) and adaptive average pooling.

fvcore treats shape and memory ops (view, cat, pad, ...) and ``relu``/``clamp``/``max`` as free
and says nothing about them. Not counted either, but listed in ``Complexity.uncounted`` with
their number of calls (fvcore has no handle for them): element-wise arithmetic (residual adds,
scaling, noise injection), the activations (LeakyReLU, ...), ``pixel_shuffle``/``pixel_unshuffle``,
``F.interpolate(mode="bicubic")``, spectral-norm's ``weight / sigma`` (``mv``/``dot``/``div``)
and the weight modulation and demodulation of StyleGAN-style convolutions (their grouped
convolution itself is counted). The bicubic baseline of ``gankd.metrics.evaluate`` is an einsum
over 4 taps per axis, which fvcore does count: 4 MACs per output value and pass (to 4
significant digits: fvcore parses generic einsum costs from numpy's ``einsum_path`` printout).
For the SR networks here these are well under 1% of the conv MACs.

Parameters are ``sum(p.numel() for p in model.parameters())``: buffers (spectral-norm ``u``/``v``,
running statistics) are not parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from gankd.metrics.evaluate import inference_ready

if TYPE_CHECKING:
    from gankd.models.zoo import ZooEntry


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    #: aten ops fvcore could not count -> number of calls (see the module docstring)
    uncounted: dict[str, int] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]) -> Complexity:
    """Params and MACs of ``model(*inputs)``, traced in eval mode with random noise off.

    The model's train/eval state is restored afterwards (see ``inference_ready``).
    """
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    device = next((p.device for p in model.parameters()), None)
    if device is not None:
        args = tuple(a.to(device) for a in args)
    with inference_ready(model), warnings.catch_warnings(), torch.no_grad():
        # tracing warnings (TracerWarning, jit deprecation) say nothing about the count
        warnings.simplefilter("ignore")
        # imported here: heavy, and fvcore's import itself warns (it jit-scripts a loss)
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, args)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        macs = int(analysis.total())
        uncounted = dict(sorted(analysis.unsupported_ops().items()))
    return Complexity(params=count_params(model), macs=macs, uncounted=uncounted)


def count_entry(entry: ZooEntry, size: int | None = None) -> Complexity:
    """Complexity of a zoo entry at its standard input (``entry.input``) or at ``size``.

    ``entry`` is a ``gankd.models.zoo.ZooEntry``; the model is built with random weights (the
    count does not depend on them) and fed ``model.example_inputs(1, size)``.
    """
    model = entry.build()
    return count(model, model.example_inputs(1, entry.input if size is None else size))
