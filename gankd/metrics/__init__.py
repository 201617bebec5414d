"""Image-quality metrics, complexity and latency: judges of any generator, knowing nothing of
training.

Quality metrics are ``ImageMetric`` subclasses registered in ``METRICS`` from ``*_metric.py``
modules. They accumulate over batches of SR and HR images, float (N, 3, H, W) RGB in [0, 1], and
return a flat ``{key: float}``. A metric whose weights are unavailable raises
``MissingAssetError`` when built; the evaluation records it as missing with that reason.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from gankd.registry import Registry


class ImageMetric:
    name: ClassVar[str]
    #: result key -> True when higher is better (PSNR) / False when lower is (FID)
    higher_is_better: ClassVar[dict[str, bool]]
    #: whether the metric compares against HR (False: no-reference, like NIQE)
    needs_reference: ClassVar[bool] = True

    def __init__(self, scale: int, device: torch.device | str = "cpu") -> None:
        self.scale = scale
        self.device = torch.device(device)

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


METRICS: Registry[type[ImageMetric]] = Registry("metric", "gankd.metrics", suffix="_metric")
