"""The base recipe of a model family: pixel, perceptual and adversarial losses, and the
discriminator's loss with optional lazy R1. Every method builds on it; no method re-implements
these terms, so a difference between methods is never a difference in the base losses.

Images travel through gankd in [0, 1]. A family whose original code normalises them to [-1, 1]
(GCFSR: ``mean = std = 0.5``) sets ``loss_range: signed``: its pixel losses and its R1 penalty are
then computed on ``2x - 1`` exactly as the original computes them (on [0, 1] the L1 would weigh
half and R1 four times as much). The perceptual loss is range-free: BasicSR's ``range_norm``
maps [-1, 1] back to [0, 1] before VGG, which is where our images already are.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gankd.engine.config import RecipeConfig
from gankd.engine.cycle import CycleConfig
from gankd.engine.rowcache import RowCache


class Recipe:
    """Not an ``nn.Module`` on purpose: its frozen VGG is not part of any method's state dict,
    so checkpoints hold only what training changes."""

    def __init__(self, cfg: RecipeConfig, cycle: CycleConfig | None = None) -> None:
        self.cfg = cfg
        #: CycleGAN's cycle and identity terms (gankd.engine.cycle), for unpaired families
        self.cycle = cycle
        self.vgg: nn.Module | None = None
        #: VGG features of each pool row's target (``gankd.engine.rowcache``), sized by the
        #: training config's ``feature_cache_mb``
        self.target_cache = RowCache(refill=self._refill_targets)
        #: set by the trainer while a live log shows them (gankd.engine.livelog): each
        #: discriminator's summed mean output on real and on fake images, and the number of D
        #: steps summed, since the trainer last took them; read-only views of the logits
        self.track_d_outputs = False
        self._d_outputs: dict[int, torch.Tensor] = {}
        if cfg.perceptual_weight > 0:
            from gankd.engine.vgg import VGGFeatures

            self.vgg = VGGFeatures(list(cfg.perceptual_layers), network=cfg.perceptual_network)

    def _refill_targets(self, batch: Any, teacher: Any) -> None:
        if self.vgg is not None and batch.target is not None:  # as ``perceptual`` calls it
            self.target_cache(self.vgg, batch.target, batch.index)

    def to(self, device: torch.device | str) -> Recipe:
        if self.vgg is not None:
            self.vgg.to(device)
        self.target_cache.clear()
        return self

    @property
    def perceptual_network(self) -> str:
        """Which VGG the perceptual loss really uses, with the reason for a fallback."""
        if self.vgg is None:
            return "none"
        reason = getattr(self.vgg, "fallback_reason", None)
        return self.vgg.network + (f" ({reason})" if reason else "")

    @property
    def signed(self) -> bool:
        return self.cfg.loss_range == "signed"

    def in_loss_range(self, x: torch.Tensor) -> torch.Tensor:
        """An image in the range the family's pixel losses are computed in (module doc)."""
        return x * 2 - 1 if self.signed else x

    # -- generator side ------------------------------------------------------------------
    def supervised_terms(self, fake: torch.Tensor, target: torch.Tensor,
                         index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Weighted pixel L1 and perceptual loss of ``fake`` against the paired target
        (``index``: the target's pool rows, for ``target_cache``)."""
        terms: dict[str, torch.Tensor] = {}
        if self.cfg.pixel_weight > 0:
            to = self.in_loss_range
            terms["l1"] = self.cfg.pixel_weight * F.l1_loss(to(fake), to(target))
        if self.vgg is not None:
            terms["percep"] = self.cfg.perceptual_weight * self.perceptual(fake, target, index)
        return terms

    def perceptual(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        assert self.vgg is not None
        fx = self.vgg(x)
        fy = self.target_cache(self.vgg, y, index)
        crit = F.l1_loss if self.cfg.perceptual_criterion == "l1" else F.mse_loss
        return sum(w * crit(fx[k], fy[k]) for k, w in self.cfg.perceptual_layers.items())

    def generator_adversarial(self, logits_fake: torch.Tensor) -> torch.Tensor:
        """Weighted adversarial loss of the generator: its samples should be judged real."""
        return self.cfg.gan_weight * self.adversarial(logits_fake)

    def adversarial(self, logits_fake: torch.Tensor) -> torch.Tensor:
        """Unweighted generator-side GAN loss of the recipe's type."""
        return self._real_loss(logits_fake)

    # -- discriminator side --------------------------------------------------------------
    def r1_due(self, d_step: int) -> bool:
        """Lazy R1 on the ``r1_every``-th, 2 ``r1_every``-th, ... discriminator step: BasicSR's
        ``current_iter % net_d_reg_every == 0`` with its iterations counted from 1
        (GCFSR gcfsr_model.py:232, train.py:160)."""
        return self.cfg.r1_weight > 0 and (d_step + 1) % self.cfg.r1_every == 0

    def discriminator_terms(self, disc: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                            d_step: int) -> dict[str, torch.Tensor]:
        """Unweighted D loss on ``real`` vs ``fake`` (both detached), plus lazy R1 when due,
        scaled by ``r1_every`` as in StyleGAN2 (``r1_weight / 2 * |grad|^2 * r1_every``), the
        gradient taken with respect to the image in the loss range."""
        lazy_r1 = self.r1_due(d_step)
        if lazy_r1:
            real_l = self.in_loss_range(real.detach()).requires_grad_(True)
            real = (real_l + 1) / 2 if self.signed else real_l
        logits_real = disc(real).float()
        logits_fake = disc(fake.detach()).float()
        terms = {"real": self._real_loss(logits_real), "fake": self._fake_loss(logits_fake)}
        if self.track_d_outputs:
            self._track(disc, logits_real, logits_fake)
        if lazy_r1:
            (grad,) = torch.autograd.grad(logits_real.sum(), real_l, create_graph=True)
            penalty = grad.pow(2).flatten(1).sum(1).mean()
            terms["r1"] = self.cfg.r1_weight / 2 * penalty * self.cfg.r1_every
        return terms

    def _track(self, disc: nn.Module, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> None:
        # summed on the device: no host sync per step, one when the trainer takes them
        stats = torch.stack([logits_real.detach().mean(), logits_fake.detach().mean(),
                             logits_real.new_ones(())])
        key = id(disc)
        self._d_outputs[key] = self._d_outputs[key] + stats if key in self._d_outputs else stats

    def take_d_outputs(self) -> dict[int, tuple[float, float]]:
        """Each tracked discriminator's mean output on real and on fake images since the last
        call, by ``id(disc)``; the sums start again."""
        out = {}
        for key, sums in self._d_outputs.items():
            real, fake, n = sums.tolist()
            out[key] = (real / n, fake / n)
        self._d_outputs = {}
        return out

    def _real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.cfg.gan_type == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        if self.cfg.gan_type == "lsgan":
            return F.mse_loss(logits, torch.ones_like(logits))
        return F.softplus(-logits).mean()

    def _fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.cfg.gan_type == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        if self.cfg.gan_type == "lsgan":
            # CycleGAN halves its discriminator's loss; under Adam a constant factor on a loss
            # changes nothing (its steps are scale-free), so the halving is left out
            return F.mse_loss(logits, torch.zeros_like(logits))
        return F.softplus(logits).mean()

    # -- optimizers ----------------------------------------------------------------------
    def generator_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.cfg.lr_g, betas=self.cfg.betas_g)

    def discriminator_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """Adam with exactly the configured lr and betas: a family whose original rescales them
        for lazy regularisation states the rescaled values in its YAML (gcfsr.yaml says how)."""
        return torch.optim.Adam(params, lr=self.cfg.lr_d, betas=self.cfg.betas_d)
