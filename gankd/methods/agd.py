"""The output-level distillation terms of AutoGAN-Distiller that OMGD introduced and DCD reuses:
VGG16 Gram-matrix style and relu2_2 feature L1 between the student's and the teacher's images
(OMGD also adds SSIM and total variation: they stay in omgd.py). Not a method: DCD and OMGD both
compute these exactly as their releases do (``utils/vgg_feature.py``, ``utils/vgg.py``: VGG16
fed ``(x + 1) / 2`` of a [-1, 1] image -- our [0, 1] image -- with no ImageNet normalisation, cut
at relu1_2, relu2_2, relu3_3, relu4_3; Gram ``f f^T / (c h w)``; L1 between Grams summed over the
four layers; L1 of relu2_2 features)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gankd.engine.rowcache import RowCache

STYLE_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3")  # relu taken after each
FEATURE_LAYER = "conv2_2"


def vgg16_features() -> torch.nn.Module:
    """The releases' VGG16 (frozen; images in [0, 1], unnormalised)."""
    from gankd.engine.vgg import VGGFeatures

    return VGGFeatures(list(STYLE_LAYERS), network="vgg16", imagenet_norm=False)


def gram(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def style_and_feature(vgg: torch.nn.Module, student: torch.Tensor, teacher: torch.Tensor,
                      cache: RowCache | None = None,
                      index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over layers of the L1 between Grams, relu2_2 feature L1) of student vs teacher images;
    the teacher's side carries no gradient. ``cache``/``index``: the teacher images' VGG
    features by pool row, for a teacher whose output is a fixed function of the row (a frozen
    teacher; not OMGD's online one)."""
    fs = {k: F.relu(v) for k, v in vgg(student).items()}
    with torch.no_grad():
        ft_raw = cache(vgg, teacher, index) if cache is not None else vgg(teacher)
        ft = {k: F.relu(v) for k, v in ft_raw.items()}
    style = sum(F.l1_loss(gram(fs[k]), gram(ft[k])) for k in STYLE_LAYERS)
    return style, F.l1_loss(fs[FEATURE_LAYER], ft[FEATURE_LAYER])
