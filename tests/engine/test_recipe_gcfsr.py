"""The GCFSR family's losses against the original's formulas, computed here by hand the way
``basicsr/models/gcfsr_model.py`` (hejingwenhejingwen/GCFSR) computes them: on images normalised
to [-1, 1], the StyleGAN2 discriminator fed those images, R1 lazily every 16 D steps and scaled
by 16, Adam with the group learning rate (2e-3) and lazily rescaled betas, D stepped first."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_GCFSR_D, family_recipe

from gankd.bench.compose import seeded_build
from gankd.engine.recipe import Recipe

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def recipe() -> Recipe:
    return Recipe(family_recipe("gcfsr"))


@pytest.fixture
def discs():
    """Our D (images in [0, 1]) and the original's convention (images in [-1, 1]), same weights."""
    ours = seeded_build(TINY_GCFSR_D, 7)
    entry = dataclasses.replace(TINY_GCFSR_D, kwargs={**TINY_GCFSR_D.kwargs, "signed_io": True})
    signed = seeded_build(entry, 7)
    signed.load_state_dict(ours.state_dict())
    return ours, signed


def images(seed: int) -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_pixel_loss_is_the_original_l1_on_signed_images(recipe):
    fake, real = images(0), images(1)
    want = F.l1_loss(fake * 2 - 1, real * 2 - 1)  # cri_pix(fake_img, real_img), weight 1, mean
    got = recipe.supervised_terms(fake, real)["l1"]
    assert torch.allclose(got, want, rtol=1e-6)
    assert torch.allclose(got, 2 * F.l1_loss(fake, real), rtol=1e-6)  # the [0, 1] L1 would be half


def test_discriminator_and_lazy_r1_are_the_originals(recipe, discs):
    ours, signed = discs
    real, fake = images(2), images(3)
    real_s, fake_s = real * 2 - 1, fake * 2 - 1
    # gcfsr_model.py:220-224: wgan_softplus, D side unweighted
    want_real = F.softplus(-signed(real_s)).mean()
    want_fake = F.softplus(signed(fake_s)).mean()
    # gcfsr_model.py:232-236 + losses.py r1_penalty: on the 16th D step, gradient w.r.t. the
    # normalised image, r1_reg_weight / 2 * penalty * net_d_reg_every
    x = real_s.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(signed(x).sum(), x, create_graph=True)
    want_r1 = 10.0 / 2 * grad.pow(2).view(grad.shape[0], -1).sum(1).mean() * 16

    plain = recipe.discriminator_terms(ours, real, fake, d_step=0)
    assert set(plain) == {"real", "fake"}  # the 1st D step is not an R1 step (iterations from 1)
    lazy = recipe.discriminator_terms(ours, real, fake, d_step=15)
    assert set(lazy) == {"real", "fake", "r1"}
    for terms in (plain, lazy):
        assert torch.allclose(terms["real"], want_real, rtol=1e-5)
        assert torch.allclose(terms["fake"], want_fake, rtol=1e-5)
    assert torch.allclose(lazy["r1"], want_r1, rtol=1e-4)
    # taken w.r.t. the [0, 1] image instead, the penalty is 4x the original's (gamma 40, not 10)
    x01 = real.clone().requires_grad_(True)
    (g01,) = torch.autograd.grad(ours(x01).sum(), x01, create_graph=True)
    assert torch.allclose(g01.pow(2).flatten(1).sum(1).mean() * 10 / 2 * 16, 4 * want_r1, rtol=1e-4)


def test_generator_adversarial_is_the_nonsaturating_logistic_loss(recipe, discs):
    ours, signed = discs
    fake = images(4)
    want = 1e-2 * F.softplus(-signed(fake * 2 - 1)).mean()  # losses.py:362, loss_weight 1e-2
    assert torch.allclose(recipe.generator_adversarial(ours(fake)), want, rtol=1e-6)


def test_adam_as_the_original_runs_it(recipe, discs):
    # gcfsr_model.py:137-148 and 172-183: the group lr (2e-3) overrides the rescaled default lr;
    # the betas are rescaled for lazy regularisation, (0, 0.99 ** (k / (k + 1)))
    ours, _ = discs
    g = recipe.generator_optimizer([torch.nn.Parameter(torch.zeros(1))]).param_groups[0]
    d = recipe.discriminator_optimizer(list(ours.parameters())).param_groups[0]
    assert g["lr"] == pytest.approx(2e-3) and d["lr"] == pytest.approx(2e-3)
    assert g["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)), abs=1e-12)
    assert d["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)), abs=1e-12)


def test_discriminator_steps_first_on_a_fresh_output_then_the_generator(make_trainer):
    """gcfsr_model.py:212-280: D on a no-grad forward, then G on a new forward against the D
    that was just updated."""
    tr = make_trainer("scratch", steps=1, family="gcfsr")
    d = tr.method.discriminators["d"]
    events: list[str] = []
    tr.student.register_forward_hook(
        lambda m, i, o: events.append("S grad" if o.requires_grad else "S nograd"))
    d.register_forward_hook(lambda m, i, o: events.append("D"))
    d_before = {k: v.clone() for k, v in d.state_dict().items()}
    seen_by_g: list[dict] = []
    orig = tr.method.generator_terms

    def spy(s):
        seen_by_g.append({k: v.clone() for k, v in d.state_dict().items()})
        return orig(s)

    tr.method.generator_terms = spy
    tr.train_step()
    assert events == ["S nograd", "D", "D", "S grad", "D"]
    assert any(not torch.equal(seen_by_g[0][k], d_before[k]) for k in d_before)  # G met the updated D
