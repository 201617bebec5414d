"""HR crops: deterministic evaluation boxes, random training crops with flips and rotations."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch

from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageRef
from gankd.datasets.source import load_hr


def eval_boxes(width: int, height: int, side: int, count: int) -> list[tuple[int, int]]:
    """(top, left) of ``count`` square crops of ``side``: the centre for one, else an even grid.

    For k crops the grid has ceil(sqrt(k)) columns and ceil(k / columns) rows, positions spread
    evenly from one border to the other (rounded down), taken row by row. Crops may overlap on
    small images; they never leave the image.
    """
    if side > width or side > height:
        raise ValueError(f"crop {side} does not fit in {width}x{height}")
    if count == 1:
        return [((height - side) // 2, (width - side) // 2)]
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)

    def spread(n: int, room: int) -> list[int]:
        return [0] if n == 1 else [(room * i) // (n - 1) for i in range(n)]

    tops, lefts = spread(rows, height - side), spread(cols, width - side)
    return [(t, lft) for t in tops for lft in lefts][:count]


def random_crop(img: np.ndarray, side: int, rng: np.random.Generator, hflip: bool, rot90: bool) -> np.ndarray:
    """A random ``side`` x ``side`` crop of ``img`` (H, W, 3), then BasicSR's ``augment``:
    horizontal flip (p 0.5) and, with ``rot90``, vertical flip and transpose (p 0.5 each)."""
    h, w = img.shape[:2]
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    out = img[top:top + side, left:left + side]
    flips = rng.random(3)  # drawn always, so the crop stream does not depend on the switches
    if hflip and flips[0] < 0.5:
        out = out[:, ::-1]
    if rot90:
        if flips[1] < 0.5:
            out = out[::-1]
        if flips[2] < 0.5:
            out = out.transpose(1, 0, 2)
    return np.ascontiguousarray(out)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class ImageCache:
    """Decoded images kept in memory up to a byte budget (least recently used goes first)."""

    def __init__(self, cfg: DataConfig, budget_bytes: int = 512 << 20) -> None:
        self.cfg = cfg
        self.budget = budget_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, ref: ImageRef) -> np.ndarray:
        img = self._items.get(ref.name)
        if img is not None:
            self._items.move_to_end(ref.name)
            return img
        img = load_hr(ref, self.cfg)
        self._items[ref.name] = img
        self._bytes += img.nbytes
        while self._bytes > self.budget and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return img
