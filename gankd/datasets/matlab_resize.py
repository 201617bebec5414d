"""MATLAB ``imresize`` bicubic (BasicSR's ``imresize``) for batches, on any device.

BasicSR's ``imresize`` takes one (C, H, W) image, runs on the CPU and loops over output rows in
Python. The operation is linear and separable: with BasicSR's own ``calculate_weights_indices``
(cubic kernel, antialiasing when shrinking, symmetric border copy) we build the dense
(out x in) matrix of each axis once and apply it as two matrix products to a whole batch.
Tested against ``imresize`` directly (equal to float32 rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from gankd._basicsr import calculate_weights_indices


@lru_cache(maxsize=64)
def _matrix_cpu(in_len: int, scale: float) -> torch.Tensor:
    out_len = math.ceil(in_len * scale)
    weights, indices, sym_s, _ = calculate_weights_indices(in_len, out_len, scale, "cubic", 4, True)
    # BasicSR indexes an array padded by sym_s mirrored rows in front and mirrored rows behind;
    # map each padded index back to the row it copies ("symmetric" padding, edge row repeated).
    q = indices.long() - sym_s
    src = torch.where(q < 0, -q - 1, q)
    src = torch.where(src >= in_len, 2 * in_len - 1 - src, src)
    if bool((src < 0).any()) or bool((src >= in_len).any()):
        raise ValueError(f"cannot resize length {in_len} by {scale}: the kernel is wider than the image")
    rows = torch.arange(out_len).view(-1, 1).expand_as(src)
    mat = torch.zeros(out_len, in_len, dtype=torch.float32)
    mat.index_put_((rows.reshape(-1), src.reshape(-1)), weights.reshape(-1).float(), accumulate=True)
    return mat


def resize_matrix(in_len: int, scale: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """The (ceil(in_len * scale), in_len) matrix of BasicSR's bicubic ``imresize`` along one axis."""
    return _matrix_cpu(in_len, float(scale)).to(device)


def imresize_batch(x: torch.Tensor, scale: float) -> torch.Tensor:
    """BasicSR ``imresize(img, scale)`` (antialiased bicubic) of each (C, H, W) image in ``x`` (N, C, H, W).

    Like ``imresize``, the output is not clamped or rounded. Height is resized first, as there.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    mh = resize_matrix(x.shape[-2], scale, x.device).to(x.dtype)
    mw = resize_matrix(x.shape[-1], scale, x.device).to(x.dtype)
    return torch.matmul(torch.matmul(mh, x), mw.t())
