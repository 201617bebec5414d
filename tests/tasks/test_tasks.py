"""The tasks beyond super-resolution (issue 18): unconditional DCGAN and unpaired CycleGAN data,
their reference images, the LSGAN loss and precision / recall."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankd.bench.assemble import run_teacher
from gankd.bench.data import evaluation_set, training_pool
from gankd.bench.suite import load_suite
from gankd.bench.teachers import load_teacher
from gankd.engine.config import RecipeConfig
from gankd.engine.recipe import Recipe
from gankd.methods import METHODS
from gankd.metrics.precision_recall_metric import manifold_coverage
from gankd.models import zoo
from gankd.tasks.teacher_outputs import noise

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke():
    return load_suite("smoke").models


def test_lsgan_losses_are_least_squares_on_raw_outputs():
    recipe = Recipe(RecipeConfig(gan_type="lsgan", gan_weight=1.0))
    real_logits, fake_logits = torch.tensor([0.2, 1.5, -0.3]), torch.tensor([0.4, -1.0, 2.0])
    d = torch.nn.Identity()
    terms = recipe.discriminator_terms(d, real_logits, fake_logits, d_step=0)
    assert terms["real"].item() == pytest.approx(((real_logits - 1) ** 2).mean().item())
    assert terms["fake"].item() == pytest.approx((fake_logits ** 2).mean().item())
    assert recipe.adversarial(fake_logits).item() == pytest.approx(((fake_logits - 1) ** 2).mean().item())
    vanilla = Recipe(RecipeConfig(gan_type="vanilla")).adversarial(fake_logits)
    assert vanilla.item() == pytest.approx(F.softplus(-fake_logits).mean().item())  # not the same loss


def test_manifold_coverage_is_one_on_itself_and_zero_far_away():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 8, generator=g)
    assert manifold_coverage(a, a, k=3) == 1.0
    assert manifold_coverage(a + 100.0, a, k=3) == 0.0
    half = torch.cat([a[:32], a[:32] + 100.0])  # half the queries on the support's manifold
    assert manifold_coverage(half, a, k=3) == pytest.approx(0.5)


def test_unconditional_pool_is_noise_in_and_the_teachers_samples_as_real(smoke):
    setup = smoke["dcgan"]
    pool = training_pool(setup, "builtin", 0, run_teacher(setup, "builtin", progress=False))
    batch = pool.batch(torch.arange(4))
    (z,) = batch.g_input
    assert z.shape == (4, 100, 1, 1) and batch.target is None
    assert batch.real.shape == (4, 3, 64, 64) and 0 <= batch.real.min() and batch.real.max() <= 1
    teacher = load_teacher(setup, "builtin", progress=False)
    teacher.net.eval()
    with torch.no_grad():
        own = teacher.net(z).clamp(0, 1)
    # the "real" images are the teacher's samples, but on noise of their own (not the inputs')
    assert (own - batch.real).abs().mean() > 0.05
    z_real = noise(len(pool), 100, "pool-real-noise", 0)[:4]
    with torch.no_grad():
        assert (teacher.net(z_real).clamp(0, 1) - batch.real).abs().max() <= 1 / 255 + 1e-6


def test_translation_pool_is_photos_in_and_the_teachers_outputs_on_other_crops(smoke):
    setup = smoke["cyclegan"]
    pool = training_pool(setup, "builtin", 0, run_teacher(setup, "builtin", progress=False))
    batch = pool.batch(torch.arange(2))
    (x,) = batch.g_input
    assert batch.target is None and x.shape == batch.real.shape
    teacher = load_teacher(setup, "builtin", progress=False)
    teacher.net.eval()
    with torch.no_grad():
        translated = teacher.net(x).clamp(0, 1)
    assert (translated - batch.real).abs().mean() > 0.02  # unpaired: not the inputs' own outputs


@pytest.mark.parametrize("family", ["dcgan", "cyclegan"])
def test_evaluation_reference_is_the_teachers_output_on_the_same_input(smoke, family):
    setup = smoke[family]
    es = evaluation_set(setup, "builtin", "smoke", run_teacher(setup, "builtin", progress=False))
    teacher = load_teacher(setup, "builtin", progress=False)
    teacher.net.eval()
    assert len(es.samples) >= 2
    for s in es.samples[:2]:
        with torch.no_grad():
            out = teacher.net(*(t[None] for t in s.g_input)).clamp(0, 1)[0]
        assert (out - s.hr).abs().max() <= 1 / 255 + 1e-6
    # fixed inputs: identical for every run
    again = evaluation_set(setup, "builtin", "smoke", run_teacher(setup, "builtin", progress=False))
    assert all(torch.equal(a.g_input[0], b.g_input[0]) for a, b in zip(es.samples, again.samples))


@pytest.mark.parametrize(("family", "method", "why"), [
    ("dcgan", "sdakd", "paired"), ("cyclegan", "sdakd", "paired"),
    ("dcgan", "lit", "residual"), ("cyclegan", "lit", "compresses depth")])
def test_methods_that_cannot_run_say_why(smoke, family, method, why):
    setup = smoke[family]
    teacher = zoo.get(setup.teacher)
    student = zoo.student(teacher, 0.25, setup.student).build()
    reason = METHODS.get(method).not_applicable(student, teacher.build())
    assert reason and why in reason


@pytest.mark.parametrize("family", ["dcgan", "cyclegan"])
@pytest.mark.parametrize("method", ["mse", "akdg", "dcd", "omgd"])
def test_the_other_methods_apply_to_both_families(smoke, family, method):
    setup = smoke[family]
    teacher = zoo.get(setup.teacher)
    student = zoo.student(teacher, 0.25, setup.student).build()
    assert not METHODS.get(method).not_applicable(student, teacher.build())


def test_lit_applies_to_a_shallow_cyclegan_of_the_teachers_width(smoke):
    # LIT's own setting includes CycleGAN: its ResNet trunk is cut into sections like RRDBNet's
    teacher = zoo.get(smoke["cyclegan"].teacher)
    student = zoo.student(teacher, 1.0, {"n_blocks": 3}).build()
    assert METHODS.get("lit").not_applicable(student, teacher.build()) is None
