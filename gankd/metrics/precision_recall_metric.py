"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019) on Inception features.

Each set's manifold is the union of balls around its feature vectors, each ball's radius the
distance to that vector's k-th nearest neighbour in its own set. Precision: the share of the
generated samples inside the reference's manifold (are they realistic?); recall: the share of the
reference samples inside the generated samples' manifold (is the variety covered?). The paper
uses VGG16 fc2 features; here pytorch-fid's Inception pool3 (2048-d) -- the features FID and KID
already use, shared with them through the HR feature cache -- with the paper's k = 3. Images are
whole (no tiling) and quantised to 8 bit like FID's. Meaningful for unconditional generation,
where the reference set is the teacher's samples: a student that copies a few of them well has
high precision and low recall.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from gankd.errors import ConfigError, GankdError
from gankd.metrics import METRICS, Column, ImageMetric
from gankd.metrics.fid_metric import HR_FEATURES, build_inception, pool3_features


def manifold_coverage(query: torch.Tensor, support: torch.Tensor, k: int) -> float:
    """Share of ``query`` rows within the k-NN radius of at least one ``support`` row."""
    support = support.double()
    own = torch.cdist(support, support)
    radii = own.kthvalue(k + 1, dim=1).values  # k + 1: each row's nearest neighbour is itself
    dist = torch.cdist(query.double(), support)
    return float((dist <= radii[None, :]).any(dim=1).double().mean())


@METRICS.register("precision_recall")
class PrecisionRecall(ImageMetric):
    name: ClassVar[str] = "precision_recall"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("precision", "Precision", True, "share of the samples inside the reference samples' k-NN "
               "manifold (Kynkaanniemi et al. 2019; Inception pool3, k = 3)", digits=3, tolerance=0.05,
               order=45),
        Column("recall", "Recall", True, "share of the reference samples inside the samples' k-NN manifold",
               digits=3, tolerance=0.05, order=46),
    )

    def __init__(self, scale: int, device: torch.device | str = "cpu", *, k: int = 3, batch_size: int = 32,
                 quantize: bool = True) -> None:
        super().__init__(scale, device)
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"precision_recall: k must be an integer >= 1, got {k!r}")
        self.k, self.batch_size, self.quantize = k, batch_size, quantize
        self.model, self.weights_source = build_inception(self.device)
        self.reset()

    def reset(self) -> None:
        self._sr: list[torch.Tensor] = []
        self._hr: list[torch.Tensor] = []

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach().float().clamp(0, 1)
        return (images * 255).round() / 255 if self.quantize else images

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        sr, hr = self._prepare(sr), self._prepare(hr)
        key = HR_FEATURES.key(hr, None, None, str(self.device))  # FID's key for whole images
        hr_feats = HR_FEATURES.get(key)
        if hr_feats is None:
            hr_feats = pool3_features(self.model, hr, self.batch_size)
            HR_FEATURES.put(key, hr_feats)
        self._sr.append(pool3_features(self.model, sr, self.batch_size))
        self._hr.append(hr_feats)

    def compute(self) -> dict[str, float]:
        sr, hr = torch.cat(self._sr), torch.cat(self._hr)
        if min(len(sr), len(hr)) <= self.k:
            raise GankdError(f"precision_recall: {len(sr)} samples; k = {self.k} needs at least {self.k + 1}")
        return {"precision": manifold_coverage(sr, hr, self.k), "recall": manifold_coverage(hr, sr, self.k)}
