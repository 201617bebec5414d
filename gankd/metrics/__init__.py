"""Image-quality metrics, complexity and latency: judges of any generator, knowing nothing of
training.

Quality metrics are ``ImageMetric`` subclasses registered in ``METRICS`` from ``*_metric.py``
modules. They accumulate over batches of SR and HR images, float (N, 3, H, W) RGB in [0, 1], and
return a flat ``{key: float}``. A metric whose weights are unavailable raises
``MissingAssetError`` when built; the evaluation records it as missing with that reason.

Each metric declares the results it returns, once, as ``Column``s: key, label, unit, direction,
digits and the smallest regression tolerance. The leaderboard, the report and ``gankd regress``
take all of that from here (``quality_columns``), so a new metric is one ``*_metric.py`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from gankd.registry import Registry


@dataclass(frozen=True)
class Column:
    """One number a run reports, and how to show, rank and regress it."""

    key: str
    label: str
    higher_is_better: bool
    hint: str = ""
    unit: str = ""
    #: fixed decimals where a column's values line up (PSNR 2); None: three significant digits
    digits: int | None = None
    #: the smallest tolerance of ``gankd regress``; None: not regressed
    tolerance: float | None = None
    #: position among the leaderboard's columns (fidelity, then perceptual, then no-reference)
    order: int = 100
    #: a column of the leaderboard (False: kept in the record only, e.g. a sample count)
    shown: bool = True


class ImageMetric:
    name: ClassVar[str]
    #: every result key the metric returns (``compute``), with how it is shown and ranked
    columns: ClassVar[tuple[Column, ...]]
    #: whether the metric compares against HR (False: no-reference, like NIQE)
    needs_reference: ClassVar[bool] = True
    #: whether it has a value per image (``per_image``); False for metrics of the whole set (FID)
    has_per_image: ClassVar[bool] = False

    @classmethod
    def higher_is_better(cls) -> dict[str, bool]:
        return {c.key: c.higher_is_better for c in cls.columns}

    def __init__(self, scale: int, device: torch.device | str = "cpu") -> None:
        self.scale = scale
        self.device = torch.device(device)

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def per_image(self) -> dict[str, list[float]]:
        """Each result key's value per image, in the order the images were given to ``update``
        (the verdicts' uncertainty over photos needs them); empty for a metric of the whole set
        (FID, KID, precision and recall have no value per image)."""
        return {}


class PerImageMean(ImageMetric):
    """One value per image, averaged over the images (BasicSR averages PSNR, SSIM, NIQE per image
    too). ``crop_border`` defaults to the SR scale, as BasicSR's validation crops it."""

    key: ClassVar[str]
    has_per_image: ClassVar[bool] = True

    def __init__(self, scale: int, device: torch.device | str = "cpu",
                 crop_border: int | None = None) -> None:
        super().__init__(scale, device)
        self.crop_border = scale if crop_border is None else int(crop_border)
        if self.crop_border < 0:
            raise ValueError(f"{self.name}: crop_border must be >= 0, got {crop_border}")
        self._values: list[torch.Tensor] = []

    def reset(self) -> None:
        self._values = []

    def _per_image(self, sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        """(N,) values of the N images."""
        raise NotImplementedError

    def update(self, sr: torch.Tensor, hr: torch.Tensor | None = None) -> None:
        if hr is not None:
            hr = hr.to(self.device)
        self._values.append(self._per_image(sr.to(self.device), hr).cpu())

    def compute(self) -> dict[str, float]:
        if not self._values:
            raise ValueError(f"{self.name}: compute() called before any update()")
        return {self.key: float(torch.cat(self._values).mean())}

    def per_image(self) -> dict[str, list[float]]:
        return {self.key: torch.cat(self._values).tolist()} if self._values else {}


METRICS: Registry[type[ImageMetric]] = Registry("metric", "gankd.metrics", suffix="_metric")


def quality_columns() -> list[Column]:
    """The shown result columns of every registered metric, in leaderboard order."""
    cols = [c for name in METRICS.names() for c in METRICS.get(name).columns if c.shown]
    return sorted(cols, key=lambda c: (c.order, c.key))


def all_result_columns() -> dict[str, Column]:
    """Every result key any registered metric returns -> its column."""
    return {c.key: c for name in METRICS.names() for c in METRICS.get(name).columns}


def metric_of(key: str) -> str:
    """The registered metric that returns the result ``key`` (``kid`` -> ``fid``); a key no metric
    returns is refused with every key there is."""
    from gankd.errors import unknown_choice

    for name in METRICS.names():
        if any(c.key == key for c in METRICS.get(name).columns):
            return name
    raise unknown_choice("metric result", key, sorted(all_result_columns()))
