"""CycleGAN's own objective (Zhu et al., ICCV 2017) for an unpaired family's base recipe.

Without it an unpaired student trained by its adversarial term alone has nothing tying its
output to its input photo: measured on the cpu suite's ``cyclegan`` family (``scratch``, 300
steps), validation PSNR against the teacher's output fell from 11.5 to 8.6 dB while the identity
(the photo itself) sits at 24.4. CycleGAN ties them with an inverse generator G_BA and a second
discriminator D_A: cycle consistency ``|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|`` and, at
``identity`` of the cycle weight, ``|G_AB(b) - b| + |G_BA(a) - a|``, both L1 in the family's loss
range (CycleGAN's images are in [-1, 1]), plus G_BA's adversarial term against D_A, which judges
the domain-A photos against G_BA(b). Weights as the release's defaults (``lambda_A = lambda_B =
10``, ``lambda_identity = 0.5``; ``models/cycle_gan_model.py``).

G_BA has the student's architecture, starts from a fresh init drawn from (run seed, "inverse")
alone -- every method of a run starts from the same one, as from the same discriminators -- and
trains in the generator optimizer beside the student (the release steps G_A and G_B with one
Adam); it is never evaluated. It is part of the base recipe, so every method built on it
(``AdversarialMethod``) carries it, as every SR method carries the family's L1 and perceptual
terms; a method whose student learns from the teacher alone (OMGD) has none.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gankd.config import paper
from gankd.datasets.seeding import derive_seed, seeded

#: the name of the discriminator D_A among a method's discriminators
D_A = "d_a"


@dataclass(frozen=True)
class CycleConfig:
    weight: float = paper(10.0, "lambda_A = lambda_B (cycle_gan_model.py: --lambda_A, --lambda_B)")
    identity: float = paper(0.5, "lambda_identity: the identity loss at 0.5 x the cycle weight")

    def __post_init__(self) -> None:
        if self.weight <= 0 or self.identity < 0:
            raise ValueError(f"cycle needs weight > 0 and identity >= 0; got {self.weight}, {self.identity}")


def fresh_copy(net: nn.Module, seed: int, role: str) -> nn.Module:
    """A network of ``net``'s architecture with every layer's default init drawn again from
    (``seed``, ``role``) alone, whatever ``net``'s weights are now."""
    out = copy.deepcopy(net)
    with seeded(derive_seed(seed, "generator", role)):
        for m in out.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    for p in out.parameters():
        p.requires_grad_(True)
    return out


class Cycle(nn.Module):
    """The inverse generator and the cycle, identity and G_BA adversarial terms (module doc)."""

    def __init__(self, cfg: CycleConfig, student: nn.Module, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.inverse = fresh_copy(student, seed, "inverse")
        self._fake_a: tuple[int, torch.Tensor] | None = None  # (step, G_BA(b)) for D_A's step

    def generator_terms(self, step: int, a: torch.Tensor, b: torch.Tensor, fake_b: torch.Tensor,
                        generator: Callable[..., torch.Tensor], d_a: nn.Module,
                        adversarial: Callable[[torch.Tensor], torch.Tensor],
                        to: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
        """``a``: the domain-A inputs, ``b``: domain-B images, ``fake_b``: the student's G_AB(a);
        ``generator``: the student's forward; ``adversarial``: the recipe's weighted generator
        GAN loss; ``to``: into the family's loss range."""
        fake_a = self.inverse(b).float()
        self._fake_a = (step, fake_a.detach())
        w = self.cfg.weight
        terms = {"gan_a": adversarial(d_a(fake_a)),
                 "cycle": w * (F.l1_loss(to(self.inverse(fake_b).float()), to(a))
                               + F.l1_loss(to(generator(fake_a).float()), to(b)))}
        if self.cfg.identity > 0:
            terms["idt"] = w * self.cfg.identity * (F.l1_loss(to(generator(b).float()), to(b))
                                                    + F.l1_loss(to(self.inverse(a).float()), to(a)))
        return terms

    def fake_a(self, step: int) -> torch.Tensor:
        """G_BA(b) of this step's generator pass, detached: what D_A judges as fake."""
        if self._fake_a is None or self._fake_a[0] != step:
            raise RuntimeError("D_A steps after the generator's pass of the same step (step_order g_then_d)")
        return self._fake_a[1]
