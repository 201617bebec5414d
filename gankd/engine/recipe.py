"""The base recipe of a model family: pixel, perceptual and adversarial losses, and the
discriminator's loss with optional lazy R1. Every method builds on it; no method re-implements
these terms, so a difference between methods is never a difference in the base losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gankd.engine.config import RecipeConfig


class Recipe:
    """Not an ``nn.Module`` on purpose: its frozen VGG is not part of any method's state dict,
    so checkpoints hold only what training changes."""

    def __init__(self, cfg: RecipeConfig) -> None:
        self.cfg = cfg
        self.vgg: nn.Module | None = None
        if cfg.perceptual_weight > 0:
            from gankd.metrics.vgg import VGGFeatures

            self.vgg = VGGFeatures(list(cfg.perceptual_layers), network=cfg.perceptual_network)

    def to(self, device: torch.device | str) -> Recipe:
        if self.vgg is not None:
            self.vgg.to(device)
        return self

    @property
    def perceptual_network(self) -> str:
        """Which VGG the perceptual loss really uses, with the reason for a fallback."""
        if self.vgg is None:
            return "none"
        reason = getattr(self.vgg, "fallback_reason", None)
        return self.vgg.network + (f" ({reason})" if reason else "")

    # -- generator side ------------------------------------------------------------------
    def supervised_terms(self, fake: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted pixel L1 and perceptual loss of ``fake`` against the paired target."""
        terms: dict[str, torch.Tensor] = {}
        if self.cfg.pixel_weight > 0:
            terms["l1"] = self.cfg.pixel_weight * F.l1_loss(fake, target)
        if self.vgg is not None:
            terms["percep"] = self.cfg.perceptual_weight * self.perceptual(fake, target)
        return terms

    def perceptual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert self.vgg is not None
        fx = self.vgg(x)
        with torch.no_grad():
            fy = self.vgg(y)
        crit = F.l1_loss if self.cfg.perceptual_criterion == "l1" else F.mse_loss
        return sum(w * crit(fx[k], fy[k]) for k, w in self.cfg.perceptual_layers.items())

    def generator_adversarial(self, logits_fake: torch.Tensor) -> torch.Tensor:
        """Weighted adversarial loss of the generator: its samples should be judged real."""
        return self.cfg.gan_weight * self.adversarial(logits_fake)

    def adversarial(self, logits_fake: torch.Tensor) -> torch.Tensor:
        """Unweighted generator-side GAN loss of the recipe's type."""
        return self._real_loss(logits_fake)

    # -- discriminator side --------------------------------------------------------------
    def discriminator_terms(self, disc: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                            d_step: int) -> dict[str, torch.Tensor]:
        """Unweighted D loss on ``real`` vs ``fake`` (both detached), plus lazy R1 every
        ``r1_every`` D steps, scaled by ``r1_every`` as in StyleGAN2."""
        lazy_r1 = self.cfg.r1_weight > 0 and d_step % self.cfg.r1_every == 0
        if lazy_r1:
            real = real.detach().requires_grad_(True)
        logits_real = disc(real).float()
        logits_fake = disc(fake.detach()).float()
        terms = {"real": self._real_loss(logits_real), "fake": self._fake_loss(logits_fake)}
        if lazy_r1:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            penalty = grad.pow(2).flatten(1).sum(1).mean()
            terms["r1"] = self.cfg.r1_weight / 2 * penalty * self.cfg.r1_every
        return terms

    def _real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.cfg.gan_type == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return F.softplus(-logits).mean()

    def _fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.cfg.gan_type == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        return F.softplus(logits).mean()

    # -- optimizers ----------------------------------------------------------------------
    def generator_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.cfg.lr_g, betas=self.cfg.betas_g)

    def discriminator_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        lr, betas = self.cfg.lr_d, self.cfg.betas_d
        if self.cfg.r1_weight > 0:
            # Lazy regularisation (StyleGAN2): the R1 step is taken every r1_every steps, so the
            # optimizer's lr and betas are rescaled to keep the effective step size unchanged.
            c = self.cfg.r1_every / (self.cfg.r1_every + 1)
            lr, betas = lr * c, (betas[0] ** c, betas[1] ** c)
        return torch.optim.Adam(params, lr=lr, betas=betas)
