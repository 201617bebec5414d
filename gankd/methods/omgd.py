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
  ``lambda_feature``: L1 of relu2_2 features (gankd/methods/terms.py: VGG16 fed the [0, 1] image);
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
from torch import nn

from gankd.config import paper
from gankd.engine.method import AdversarialConfig, Method, Setup, Step
from gankd.engine.taps import FeatureTaps, tap_channels
from gankd.errors import ConfigError
from gankd.methods import METHODS
from gankd.methods.terms import ChannelDistillation, Pair, SSIMTerm, StyleFeature, TotalVariation


@dataclass(frozen=True)
class OMGDConfig(AdversarialConfig):
    taps: int = paper(4, "4 generator layers tapped for channel distillation (multiteacher base:123-126)")
    ssim_weight: float = paper(10.0, "AGD_weights[0], lambda_SSIM (cycleganbest_distiller.py:35)")
    style_weight: float = paper(1e4, "AGD_weights[1], lambda_style (cycleganbest_distiller.py:36)")
    feature_weight: float = paper(10.0, "AGD_weights[2], lambda_feature (cycleganbest_distiller.py:37)")
    tv_weight: float = paper(1e-5, "AGD_weights[3], lambda_tv (cycleganbest_distiller.py:38)")
    cd_weight: float = paper(100.0, "lambda_CD of the summer2winter / edges2shoes-S16 scripts")
    d_width: float = paper(1.0, "the teacher's own discriminator, teacher-size, trained from scratch")


@METHODS.register("omgd")
class OMGD(Method):
    name = "omgd"
    defining_terms = ("kd_ssim", "kd_style", "kd_feat", "kd_tv", "kd_cd")  # the student has no other term
    paper_task = "translation"  # pix2pix and CycleGAN
    Config = OMGDConfig
    # `gankd tune` scales them together: the release fixes their ratios
    term_weights: ClassVar[dict[str, str]] = {"kd_ssim": "ssim_weight", "kd_style": "style_weight",
                                              "kd_feat": "feature_weight", "kd_tv": "tv_weight",
                                              "kd_cd": "cd_weight"}
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
        self.channel = ChannelDistillation(c_s, c_t)
        self._teacher_feats = FeatureTaps(self.online_teacher, self.teacher_taps, "online teacher tap")
        # the online teacher's images change every step: nothing of them is cached
        self.output_kd = StyleFeature(cached=False)
        self.ssim, self.tv = SSIMTerm(), TotalVariation()
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
        return [*self.channel.trainable(), *self.online_teacher.parameters()]

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
        pair = Pair(s.fake, t_img.detach(), s.student_features, t_feats)
        for term in (self.ssim, self.output_kd, self.tv, self.channel):
            terms.update(self.weigh(term(pair)))
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
