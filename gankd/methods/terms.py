"""Distillation terms: the losses methods compose, one registered class each, one signature.

A term is an ``nn.Module`` that compares the student with the teacher -- a ``Pair``: both images,
both sets of tapped features, the batch's pool rows -- and returns its *unweighted* losses by the
names they are logged under. It owns what it trains (adapters, connectors: they go into the
method's state dict and, through ``Term.trainable``, its generator side) and nothing that belongs
to the run (discriminators, the student's own layers are handed to it, not registered in it).

A method names its terms and weighs each output by a field of its config
(``Method.term_weights``: output name -> config field, so each weight says where its default comes
from, ``paper(...)``/``ours(...)``, and `gankd tune` scales exactly those fields; see
``gankd.engine.method``). The shared ones are here: the output MSE (Aguinaldo et al.), the
AutoGAN-Distiller output terms OMGD introduced and DCD reuses (VGG16 Gram style and relu2_2
feature L1, SSIM, TV), OMGD's channel distillation, SDAKD's feature regression through MLP
adapters, LIT's section hints. A term only one method has stays in that method's file, registered
here all the same (DCD's L_DCD, ``gankd/methods/dcd.py``), so that a new method can compose it.

The computations are those of the methods' releases (each class says where from); moving them
here changed no number: ``tests/data/loss_values.json`` and the smoke regression hold every
method's first-step terms and metrics bitwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gankd.engine.rowcache import RowCache
from gankd.registry import Registry

if TYPE_CHECKING:
    from gankd.datasets.batch import Batch
    from gankd.engine.method import Step
    from gankd.engine.teacher import TeacherOutput


@dataclass(frozen=True)
class Pair:
    """What a term compares: the student's output (on the graph) and the teacher's (never
    backpropagated into), their tapped features in tap order, and the batch's pool rows (the key
    of a cache of a frozen teacher's side)."""

    student: torch.Tensor
    teacher: torch.Tensor
    student_features: Sequence[torch.Tensor] = ()
    teacher_features: Sequence[torch.Tensor] = ()
    index: torch.Tensor | None = None

    @classmethod
    def of(cls, s: Step) -> Pair:
        """The step's student against the run's frozen teacher."""
        assert s.teacher is not None
        return cls(s.fake, s.teacher.image, s.student_features, s.teacher.features, s.batch.index)


class Term(nn.Module):
    """One distillation term: ``forward(pair)`` -> unweighted losses by output name."""

    #: the names of the losses it returns (the method's ``term_weights`` keys, the logged names)
    outputs: ClassVar[tuple[str, ...]]

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        """What the generator optimizer steps with the student (adapters, connectors)."""
        return [p for p in self.parameters() if p.requires_grad]

    def row_caches(self) -> list[RowCache]:
        """Its caches of the frozen teacher's side by pool row (the engine sizes them)."""
        return []


TERMS: Registry[type[Term]] = Registry("distillation term", "gankd.methods")


@TERMS.register("output-mse")
class OutputMSE(Term):
    """MSE(S(x), T(x)) in the family's loss range (Aguinaldo et al. 2019; GCFSR: [-1, 1])."""

    outputs = ("kd_mse",)

    def __init__(self, loss_range: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self._range = loss_range

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        to = self._range
        return {"kd_mse": F.mse_loss(to(pair.student), to(pair.teacher.detach()))}


# -- AutoGAN-Distiller's output terms (OMGD, DCD) -----------------------------------------------
STYLE_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3")  # relu taken after each
FEATURE_LAYER = "conv2_2"


def vgg16_features() -> nn.Module:
    """The releases' VGG16 (frozen; images in [0, 1], unnormalised)."""
    from gankd.engine.vgg import VGGFeatures

    return VGGFeatures(list(STYLE_LAYERS), network="vgg16", imagenet_norm=False)


def gram(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def style_and_feature(vgg: nn.Module, student: torch.Tensor, teacher: torch.Tensor,
                      cache: RowCache | None = None,
                      index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over layers of the L1 between Grams, relu2_2 feature L1) of student vs teacher images;
    the teacher's side carries no gradient. ``cache``/``index``: the teacher images' VGG
    features by pool row, for a teacher whose output is a fixed function of the row."""
    fs = {k: F.relu(v) for k, v in vgg(student).items()}
    with torch.no_grad():
        ft_raw = cache(vgg, teacher, index) if cache is not None else vgg(teacher)
        ft = {k: F.relu(v) for k, v in ft_raw.items()}
    style = sum(F.l1_loss(gram(fs[k]), gram(ft[k])) for k in STYLE_LAYERS)
    return style, F.l1_loss(fs[FEATURE_LAYER], ft[FEATURE_LAYER])


@TERMS.register("vgg-style-feature")
class StyleFeature(Term):
    """AutoGAN-Distiller's output KD as DCD and OMGD release it (``utils/vgg_feature.py``,
    ``utils/vgg.py``): VGG16 fed ``(x + 1) / 2`` of a [-1, 1] image -- our [0, 1] image -- with no
    ImageNet normalisation, cut at relu1_2, relu2_2, relu3_3, relu4_3; Gram ``f f^T / (c h w)``;
    L1 between Grams summed over the four layers (``kd_style``); L1 of relu2_2 (``kd_feat``).

    ``cached``: the teacher images' VGG features are kept by pool row, for a frozen teacher (its
    image is a fixed function of the row); not for OMGD's online one."""

    outputs = ("kd_style", "kd_feat")

    def __init__(self, cached: bool) -> None:
        super().__init__()
        self.__dict__["_vgg"] = vgg16_features()  # a frozen loss network: kept out of state dicts
        self.teacher_cache = RowCache(refill=self._refill) if cached else None

    @property
    def vgg(self) -> nn.Module:
        return self.__dict__["_vgg"]

    def row_caches(self) -> list[RowCache]:
        return [self.teacher_cache] if self.teacher_cache is not None else []

    def _refill(self, batch: Batch, teacher: TeacherOutput | None) -> None:
        if teacher is not None:  # as forward calls it
            assert self.teacher_cache is not None
            self.teacher_cache(self.vgg.to(batch.real.device), teacher.image, batch.index)

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        style, feature = style_and_feature(self.vgg.to(pair.student.device), pair.student, pair.teacher,
                                           self.teacher_cache, pair.index)
        return {"kd_style": style, "kd_feat": feature}


def _signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: OMGD computes SSIM and TV on the releases' signed images."""
    return x * 2 - 1


def ssim(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """pytorch_ssim.SSIM as OMGD calls it: mean SSIM map, Gaussian window per channel, zero
    padding, constants for a unit range (used on [-1, 1] images as released)."""
    c = x.shape[1]
    g = torch.exp(-((torch.arange(size, dtype=x.dtype, device=x.device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    window = (g[:, None] @ g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, padding=size // 2, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()


@TERMS.register("ssim")
class SSIMTerm(Term):
    """``1 - SSIM(S, T)`` on [-1, 1] (OMGD, ``models/modules/pytorch_ssim.py``: 11x11 Gaussian
    window, sigma 1.5, per RGB channel, zero padding, C1 = 0.01^2, C2 = 0.03^2)."""

    outputs = ("kd_ssim",)

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        return {"kd_ssim": 1 - ssim(_signed(pair.student), _signed(pair.teacher.detach()))}


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().sum() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().sum()


@TERMS.register("tv")
class TotalVariation(Term):
    """OMGD's TV of the student's image on [-1, 1]: the *sum* of absolute neighbour differences,
    not a mean (the teacher does not enter)."""

    outputs = ("kd_tv",)

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        return {"kd_tv": total_variation(_signed(pair.student))}


# -- feature terms ---------------------------------------------------------------------------
def _cd_adapter(c_s: int, c_t: int) -> nn.Sequential:
    conv = nn.Conv2d(c_s, c_t, kernel_size=1, bias=False)
    bn = nn.BatchNorm2d(c_t)
    nn.init.normal_(conv.weight, 0.0, 0.02)  # init_net's N(0, 0.02) (OMGD models/networks.py:115-130)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(conv, bn, nn.ReLU())


@TERMS.register("channel")
class ChannelDistillation(Term):
    """OMGD's channel distillation (``calc_CD_loss``, ``multiteacher_distiller.py:51-66``): each
    student feature through a 1x1 conv (no bias) + BatchNorm + ReLU to the teacher's channels
    (trained with the student), global-average-pooled per channel, MSE to the teacher's pooled
    feature (detached), summed over taps."""

    outputs = ("kd_cd",)

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int]) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(_cd_adapter(s, t) for s, t in zip(student_channels, teacher_channels))

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        cd = pair.student.new_zeros(())
        for f_s, f_t, adapt in zip(pair.student_features, pair.teacher_features, self.adapters):
            cd = cd + F.mse_loss(adapt(f_s).mean(dim=(2, 3)), f_t.detach().mean(dim=(2, 3)))
        return {"kd_cd": cd}


@TERMS.register("feature-regression")
class FeatureRegression(Term):
    """SDAKD's feature-map distillation: per tap, an MLP adapted to the reduced channels,
    ``conv1x1(C_s -> C_h) -> ReLU -> conv1x1(C_h -> C_t)``, regressed (L2) onto the detached teacher
    feature, summed over taps. ``hidden`` 0 means C_t."""

    outputs = ("kd_feat",)

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int],
                 hidden: int = 0) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(
            nn.Sequential(nn.Conv2d(s, hidden or t, 1), nn.ReLU(), nn.Conv2d(hidden or t, t, 1))
            for s, t in zip(student_channels, teacher_channels))

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        loss = pair.student.new_zeros(())
        for f_s, f_t, mlp in zip(pair.student_features, pair.teacher_features, self.adapters):
            loss = loss + F.mse_loss(mlp(f_s), f_t.detach())
        return {"kd_feat": loss}


@TERMS.register("section-hints")
class SectionHints(Term):
    """LIT's hints (``cifar10/main.py:180-186``, ``stargan/solver.py:272``): the student's trunk cut
    into sections, each fed the teacher's representation at its start (``teacher_features[j]``;
    the first, the teacher's trunk input) and regressed (MSE) onto the teacher's at its end
    (``teacher_features[j + 1]``), summed over sections. The trunk is the student's own: handed
    in, not registered here, so its parameters stay the student's."""

    outputs = ("kd_hint",)

    def __init__(self, trunk: nn.Sequential, starts: Sequence[int], ends: Sequence[int]) -> None:
        super().__init__()
        self.__dict__["_trunk"] = trunk
        self.starts, self.ends = list(starts), list(ends)

    def forward(self, pair: Pair) -> dict[str, torch.Tensor]:
        trunk: nn.Sequential = self.__dict__["_trunk"]
        feats = [f.detach() for f in pair.teacher_features]
        hint = pair.student.new_zeros(())
        for j, (start, end) in enumerate(zip(self.starts, self.ends)):
            hint = hint + F.mse_loss(trunk[start:end + 1](feats[j]), feats[j + 1])
        return {"kd_hint": hint}
