"""OMGD (Ren et al., ICCV 2021, "Online Multi-Granularity Distillation for GAN Compression"): the
teacher keeps training while the student learns from it, at two granularities, with no
discriminator and no ground truth of its own.

How the online teacher is held in a fixed-teacher benchmark: the method owns a *copy* of the
run's pretrained teacher that goes on training every step with the family's base recipe (its
L1 and perceptual terms to the target, its adversarial term against the teacher-size
discriminator ``d``, which judges real images against the teacher's output). The frozen teacher
and its cached outputs are not used. The student learns only from the online teacher's output
and features of the same step (detached: the teacher never sees the student's loss). Both the
copy's training and the student's count in the method's GMACs per step (gankd/engine/cost.py).
This is OMGD's pix2pix loop (``distillers/multiteacher_distiller.py:120-135``: teacher G and D,
then the student, every step) with one teacher: its CycleGAN loop trains the student in separate
blocks of epochs from the best teacher checkpoint, which a fixed-length run cannot mirror.

**Deviation from OMGD, stated**: OMGD trains its teachers online *from scratch* beside the
student (a wider and a deeper teacher, ``multiteacher_distiller.py:30-48``); here the online
teacher starts as a copy of the run's pretrained teacher, because an SR teacher trained from
scratch within a student's budget would be no teacher at all (a GCFSR teacher needs 2000 steps
on CPU to beat bicubic, a student run has 300), and one teacher, not two: the benchmark's
teachers are single networks. How far the copy moves from the pretrained teacher is recorded per
run (``diagnostics``: relative L2 distance of its weights, ``online_teacher_drift``).

Student losses (``distillers/multiteacher_distiller.py:90-118``, ``cycleganbest_distiller.py:93-122``,
bytedance/OMGD f2492a4), against the online teacher's detached output T and features:

- ``lambda_SSIM * (1 - SSIM(S, T))``: ``models/modules/pytorch_ssim.py`` -- 11x11 Gaussian window,
  sigma 1.5, per RGB channel, zero padding, C1 = 0.01^2, C2 = 0.03^2, on [-1, 1] images;
- ``lambda_style``: L1 between VGG16 Gram matrices summed over relu1_2..relu4_3, and
  ``lambda_feature``: L1 of relu2_2 features (gankd/methods/agd.py: VGG16 fed the [0, 1] image);
- ``lambda_tv * TV(S)``: the *sum* of absolute neighbour differences on [-1, 1], not a mean;
- ``lambda_CD``: channel distillation at each tap: the student feature through a 1x1 conv (no
  bias) + BatchNorm + ReLU to the teacher's channels (init N(0, 0.02), trained with the student),
  global-average-pooled per channel, MSE to the teacher's pooled feature, summed over taps
  (``calc_CD_loss``, multiteacher_distiller.py:51-66).

Weights: ``AGD_weights 1e1,1e4,1e1,1e-5`` read as SSIM, style, feature, TV
(``cycleganbest_distiller.py:34-38``; every released script passes these); ``lambda_CD`` 1e2 as
the summer2winter and edges2shoes-S16 scripts pass it (horse2zebra uses 5e2; the parser's default
0 turns CD off).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gankd.config import paper
from gankd.engine.method import AdversarialConfig, Method, Setup, Step
from gankd.engine.taps import FeatureTaps, tap_channels
from gankd.errors import ConfigError
from gankd.methods import METHODS
from gankd.methods.agd import style_and_feature, vgg16_features


@dataclass(frozen=True)
class OMGDConfig(AdversarialConfig):
    #: scaled together by `gankd tune` (gankd/bench/tune.py): the release fixes their ratios
    TUNED: ClassVar[tuple[str, ...]] = ("ssim_weight", "style_weight", "feature_weight", "tv_weight",
                                        "cd_weight")
    taps: int = paper(4, "4 generator layers tapped for channel distillation (multiteacher base:123-126)")
    ssim_weight: float = paper(10.0, "AGD_weights[0], lambda_SSIM (cycleganbest_distiller.py:35)")
    style_weight: float = paper(1e4, "AGD_weights[1], lambda_style (cycleganbest_distiller.py:36)")
    feature_weight: float = paper(10.0, "AGD_weights[2], lambda_feature (cycleganbest_distiller.py:37)")
    tv_weight: float = paper(1e-5, "AGD_weights[3], lambda_tv (cycleganbest_distiller.py:38)")
    cd_weight: float = paper(100.0, "lambda_CD of the summer2winter / edges2shoes-S16 scripts")
    d_width: float = paper(1.0, "the teacher's own discriminator, teacher-size, trained from scratch")


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


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().sum() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().sum()


def channel_adapter(c_s: int, c_t: int) -> nn.Sequential:
    conv = nn.Conv2d(c_s, c_t, kernel_size=1, bias=False)
    bn = nn.BatchNorm2d(c_t)
    nn.init.normal_(conv.weight, 0.0, 0.02)  # init_net's N(0, 0.02) (models/networks.py:115-130)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(conv, bn, nn.ReLU())


@METHODS.register("omgd")
class OMGD(Method):
    name = "omgd"
    defining_terms = ("kd_ssim", "kd_style", "kd_feat", "kd_tv", "kd_cd")  # the student has no other term
    paper_task = "translation"  # pix2pix and CycleGAN
    Config = OMGDConfig
    uses_teacher = False  # the frozen teacher's outputs are not used: the online copy's are

    def __init__(self, cfg: OMGDConfig, setup: Setup) -> None:
        super().__init__(cfg, setup)
        if setup.teacher is None:
            raise ConfigError("omgd needs a teacher to copy and keep training")
        self.add_discriminator("d", cfg.d_width)  # the teacher's discriminator
        teacher = copy.deepcopy(setup.teacher)
        for p in teacher.parameters():
            p.requires_grad_(True)
        if hasattr(teacher, "set_random_noise"):
            teacher.set_random_noise(True)  # a GCFSR teacher trains with its noise, as it was trained
        self.online_teacher = teacher
        self.__dict__["_start"] = setup.teacher  # the frozen pretrained teacher: where the copy began
        self.student_taps, self.teacher_taps = setup.tap_pairs(cfg.taps)
        c_s = tap_channels(setup.student, self.student_taps)
        c_t = tap_channels(setup.teacher, self.teacher_taps)
        self.adapters = nn.ModuleList(channel_adapter(s, t) for s, t in zip(c_s, c_t))
        self._teacher_feats = FeatureTaps(self.online_teacher, self.teacher_taps, "online teacher tap")
        self.__dict__["_vgg"] = vgg16_features()  # frozen loss network: kept out of the state dict
        self._last: tuple[int, torch.Tensor] | None = None  # (step, teacher output) for D's step

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        """How far the online teacher moved from the pretrained one: ||w - w0|| / ||w0|| over all
        its parameters."""
        start = dict(self.__dict__["_start"].named_parameters())
        diff = norm = 0.0
        for name, p in self.online_teacher.named_parameters():
            w0 = start[name].to(p.device, torch.float64)
            diff += float((p.double() - w0).pow(2).sum())
            norm += float(w0.pow(2).sum())
        return {"online_teacher_drift": (diff / norm) ** 0.5 if norm else 0.0}

    def generator_side(self) -> list[nn.Parameter]:
        """The student's adapters and the online teacher: one optimizer steps both; each only
        has gradients from its own terms (the student's targets are detached)."""
        return [*self.adapters.parameters(), *self.online_teacher.parameters()]

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        with self._teacher_feats:
            t_img = self.online_teacher(*s.batch.g_input).float()
            t_feats = self._teacher_feats.collect()
        self._last = (s.step, t_img.detach())
        terms: dict[str, torch.Tensor] = {}
        # the online teacher: the family's base recipe against the target and its discriminator
        if s.batch.target is not None:
            own = self.recipe.supervised_terms(t_img, s.batch.target, s.batch.index)
            terms.update({f"teacher_{k}": v for k, v in own.items()})
        terms["teacher_gan"] = self.recipe.generator_adversarial(self.discriminators["d"](t_img))
        # the student: the teacher's output and features only
        t = t_img.detach()
        to_signed = lambda x: x * 2 - 1  # noqa: E731  (SSIM and TV on [-1, 1], as OMGD computes them)
        terms["kd_ssim"] = self.cfg.ssim_weight * (1 - ssim(to_signed(s.fake), to_signed(t)))
        style, feature = style_and_feature(self.__dict__["_vgg"].to(s.fake.device), s.fake, t)
        terms["kd_style"] = self.cfg.style_weight * style
        terms["kd_feat"] = self.cfg.feature_weight * feature
        terms["kd_tv"] = self.cfg.tv_weight * total_variation(to_signed(s.fake))
        cd = s.fake.new_zeros(())
        for f_s, f_t, adapt in zip(s.student_features, t_feats, self.adapters):
            cd = cd + F.mse_loss(adapt(f_s).mean(dim=(2, 3)), f_t.detach().mean(dim=(2, 3)))
        terms["kd_cd"] = self.cfg.cd_weight * cd
        return terms

    def discriminator_terms(self, s: Step, active: list[str]) -> dict[str, torch.Tensor]:
        """The teacher's discriminator judges real images against the teacher's output: the one of
        this step's generator pass (G-first recipes), or a fresh one (D-first recipes: GCFSR)."""
        if self._last is not None and self._last[0] == s.step:
            fake = self._last[1]
        else:
            with torch.no_grad():
                fake = self.online_teacher(*s.batch.g_input).float()
        own = self.recipe.discriminator_terms(self.discriminators["d"], s.batch.real, fake, s.d_step)
        return {f"d/{k}": v for k, v in own.items()}
