"""Each method's losses, judged by what receives gradients and what changes (SPEC section 4)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import FAMILIES, tiny_student

from gankd.config import provenance
from gankd.engine.trainer import NonFiniteLoss
from gankd.errors import ConfigError
from gankd.methods import METHODS, benchmark_methods
from gankd.methods.terms import Pair

ALL = benchmark_methods()  # every registered distillation method: a new one is tested as it is added
#: the terms each known method logs on its first step (a method not listed here is held to the
#: properties every method shares)
KNOWN_TERMS = {
    "scratch": {"g/l1", "g/percep", "g/gan", "d/d/real", "d/d/fake"},
    "mse": {"g/l1", "g/percep", "g/gan", "g/kd_mse", "d/d/real", "d/d/fake"},
    "akdg": {"g/l1", "g/percep", "g/gan", "g/kd_adv", "d/d/real", "d/d/fake", "d/d_kd/real", "d/d_kd/fake"},
    "dcd": {"g/l1", "g/percep", "g/gan", "g/dcd", "g/kd_style", "g/kd_feat", "d/d/real", "d/d/fake"},
    "sdakd": {"g/l1", "g/percep", "g/gan", "g/kd_feat", "d/d/real", "d/d/fake"},
    "lit": {"g/l1", "g/percep", "g/gan", "d/d/real", "d/d/fake"},  # fine-tuning (its LIT phase: below)
    "omgd": {"g/teacher_l1", "g/teacher_percep", "g/teacher_gan", "g/kd_ssim", "g/kd_style", "g/kd_feat",
             "g/kd_tv", "g/kd_cd", "d/d/real", "d/d/fake"},
}


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def student_step(tr, step: int = 0, with_teacher: bool = True):
    """The generator side of one step, built by hand: every discriminator frozen, the student's
    forward with its taps, the teacher's (cached) outputs when asked."""
    from gankd.engine.method import Step
    from gankd.engine.taps import FeatureTaps

    batch = tr.sampler.pool.batch(torch.tensor([0, 1]))
    for d in tr.method.discriminators.values():
        d.requires_grad_(False)
    with FeatureTaps(tr.student, tr.method.student_taps) as taps:
        fake = tr.student(*batch.g_input)
        feats = taps.collect()
    return Step(step, batch, fake, feats, tr.teacher.outputs(batch) if with_teacher else None)


def test_all_methods_registered():
    assert set(KNOWN_TERMS) <= set(ALL) <= set(METHODS.names())


@pytest.mark.parametrize("method", ALL)
def test_every_default_states_its_provenance(method):
    """Each option says where its default comes from (paper or ours), and every weight `gankd
    tune` scales is an option."""
    cfg = METHODS.get(method).Config
    names = {f.name for f in dataclasses.fields(cfg)}
    assert set(provenance(cfg)) == names
    assert set(METHODS.get(method).tuned_weights()) <= names


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ALL)
def test_one_step_teacher_frozen_student_moves_terms_logged(make_trainer, method, family):
    if isinstance(reason := tiny_student(method, family), str):  # e.g. LIT on GCFSR: said, not run
        with pytest.raises(ConfigError, match=reason[:30]):
            make_trainer(method, steps=1, family=family)
        assert reason
        return
    # sdakd's stage 3 and lit's fine-tuning from the first step, so every one of their terms
    # that involves a discriminator is exercised (lit's hint-only phase has its own test).
    overrides = {"sdakd": {"stage_fractions": [0.0, 0.0, 1.0]}, "lit": {"lit_fraction": 0.0}}.get(method)
    tr = make_trainer(method, steps=1, method_overrides=overrides, family=family)
    teacher_before = params(tr.teacher.net)
    student_before = params(tr.student)
    terms = tr.train_step()
    assert same(params(tr.teacher.net), teacher_before)
    assert not tr.teacher.net.training
    assert not same(params(tr.student), student_before)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    # every method: generator terms, and real and fake terms of each discriminator it steps, only those
    active = set(tr.method.active_discriminators(0))
    assert any(k.startswith("g/") for k in terms)
    assert {k.split("/")[1] for k in terms if k.startswith("d/")} == active
    assert {f"d/{d}/{side}" for d in active for side in ("real", "fake")} <= set(terms)
    if method in KNOWN_TERMS:
        want = KNOWN_TERMS[method]
        if tr.sampler.next().target is None:  # noise in / unpaired: no supervised terms at all
            want = {k for k in want if k.split("/")[-1].removeprefix("teacher_") not in ("l1", "percep")}
        assert set(terms) == want


def test_scratch_does_not_touch_the_teacher(make_trainer):
    tr = make_trainer("scratch", steps=1)
    calls = []
    tr.teacher.net.register_forward_hook(lambda *a: calls.append(1))
    tr.train_step()
    assert calls == []


def test_mse_term_is_mse_to_teacher_output(make_trainer):
    tr = make_trainer("mse", steps=1, method_overrides={"weight": 2.5})
    batch = tr.sampler.pool.batch(torch.tensor([0, 1]))
    with torch.no_grad():
        t = tr.teacher.outputs(batch).image
        s = tr.student(*batch.g_input)
    from gankd.engine.method import Step

    terms = tr.method.generator_terms(Step(0, batch, s, [], tr.teacher.outputs(batch)))
    assert torch.allclose(terms["kd_mse"], 2.5 * torch.nn.functional.mse_loss(s, t))


# -- AKDG ---------------------------------------------------------------------------------
def test_akdg_kd_discriminator_sees_teacher_as_real_and_student_as_fake(make_trainer):
    tr = make_trainer("akdg", steps=1)
    seen: list[torch.Tensor] = []
    tr.method.discriminators["d_kd"].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach()))
    batch = tr.sampler.pool.batch(tr.sampler.perm[:2])
    with torch.no_grad():
        t_img = tr.teacher.outputs(batch).image
        s_img = tr.student(*batch.g_input)
    tr.train_step()
    # G step: the student output; D step: the teacher output as real, the student output as fake.
    assert len(seen) == 3
    assert torch.allclose(seen[0], s_img, atol=1e-6)
    assert torch.equal(seen[1], t_img)
    assert torch.allclose(seen[2], s_img, atol=1e-6)
    assert not torch.allclose(seen[1], batch.real)


def test_akdg_both_discriminators_step(make_trainer):
    tr = make_trainer("akdg", steps=1)
    before = {k: params(d) for k, d in tr.method.discriminators.items()}
    tr.train_step()
    for k, d in tr.method.discriminators.items():
        assert not same(params(d), before[k]), k


# -- DCD ----------------------------------------------------------------------------------
def test_dcd_taps_exist_in_both_networks(make_trainer):
    tr = make_trainer("dcd", steps=1)
    m = tr.method
    assert len(m.student_taps) == len(m.teacher_taps) == m.cfg.taps
    s_mods, t_mods = dict(tr.student.named_modules()), dict(tr.teacher.net.named_modules())
    assert all(n in s_mods for n in m.student_taps)
    assert all(n in t_mods for n in m.teacher_taps)
    assert m.teacher_taps[-1] == "body.3" and m.student_taps[-1] == "body.1"


def test_dcd_tap_that_matches_nothing_is_an_error(make_trainer, monkeypatch):
    from gankd.models.rrdbnet_arch import RRDBNetSR

    monkeypatch.setattr(RRDBNetSR, "feature_taps", lambda self, k: ["body.does_not_exist"] * k)
    with pytest.raises(ConfigError, match="does_not_exist"):
        make_trainer("dcd", steps=1)


def test_dcd_gradients_reach_student_and_connectors_through_d_not_d_itself(make_trainer):
    tr = make_trainer("dcd", steps=1)
    m = tr.method
    d_before = params(m.discriminators["d"])
    tconn_before = params(m.cd.teacher_connectors)
    m.cd(Pair.of(student_step(tr)))["dcd"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.cd.student_connectors.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.student.body.parameters())
    assert all(p.grad is None for p in m.discriminators["d"].parameters())
    assert all(p.grad is None for p in m.cd.teacher_connectors.parameters())
    # A whole step: the generator step leaves D alone (only its own D step moves it) and the
    # teacher connectors never change.
    tr2 = make_trainer("dcd", steps=1)
    d2 = params(tr2.method.discriminators["d"])
    tr2.method.active_discriminators = lambda step: []  # generator step only
    tr2.train_step()
    assert same(params(tr2.method.discriminators["d"]), d2)
    tr.train_step()
    assert same(params(m.cd.teacher_connectors), tconn_before)
    assert not same(params(m.discriminators["d"]), d_before)


def test_dcd_loss_is_not_silently_zero(make_trainer):
    tr = make_trainer("dcd", steps=1)
    terms = tr.train_step()
    assert terms["g/dcd"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_dcd_batched_pseudo_image_passes_equal_one_pass_per_tap(make_trainer, family):
    """One D pass per side equals one pass per tap (to last bits), and neither advances the
    spectral norm of Real-ESRGAN's U-Net D (its power-iteration vectors stay as they were)."""
    from gankd.engine.spectral import _spectral_modules, power_iteration_held

    tr = make_trainer("dcd", steps=1, family=family)
    m, d = tr.method, tr.method.discriminators["d"]
    s = student_step(tr)
    sn = _spectral_modules(d)
    u_before = [m_.weight_u.clone() for m_ in sn]
    batched = m.cd(Pair.of(s))["dcd"]
    assert all(torch.equal(a, m_.weight_u) for a, m_ in zip(u_before, sn))
    assert len(sn) == (8 if family == "realesrgan" else 0)
    per_tap = s.fake.new_zeros(())
    with torch.no_grad():
        for fs, ft, cs, ct in zip(s.student_features, s.teacher.features, m.cd.student_connectors,
                                  m.cd.teacher_connectors):
            with m.cd._penultimate, power_iteration_held(d):
                d(m.cd.to_d(cs(fs)))
                a_s = m.cd._penultimate.collect()[0]
                d(m.cd.to_d(ct(ft)))
                a_t = m.cd._penultimate.collect()[0]
            per_tap = per_tap + torch.nn.functional.l1_loss(a_s, a_t)
    torch.testing.assert_close(batched.detach(), per_tap, rtol=1e-5, atol=1e-7)


# -- SDAKD --------------------------------------------------------------------------------
def test_sdakd_stage_boundaries_follow_fractions(make_trainer):
    tr = make_trainer("sdakd", steps=10, method_overrides={"stage_fractions": [0.2, 0.3, 0.5]})
    stages = [tr.method.stage(i) for i in range(10)]
    assert stages == ["supervised"] * 2 + ["features"] * 3 + ["adversarial"] * 5


def test_sdakd_bad_fractions_rejected():
    from gankd.methods import method_config

    with pytest.raises(ConfigError, match="sum to 1"):
        method_config("sdakd", {"stage_fractions": [0.5, 0.5, 0.5]})


def test_sdakd_stages(make_trainer):
    tr = make_trainer("sdakd", steps=3, method_overrides={"stage_fractions": [1 / 3, 1 / 3, 1 / 3]})
    m = tr.method
    d = m.discriminators["d"]
    # The only discriminator is student-size: width r of the teacher-size one.
    assert list(m.discriminators) == ["d"]
    assert d.conv0.out_channels == 16 * 0.5

    d0, a0 = params(d), params(m.features.adapters)
    terms1 = tr.train_step()  # stage 1
    assert "g/kd_feat" not in terms1 and "g/gan" not in terms1
    assert not any(k.startswith("d/") for k in terms1)
    assert same(params(d), d0) and same(params(m.features.adapters), a0)

    terms2 = tr.train_step()  # stage 2
    assert "g/kd_feat" in terms2 and "g/gan" not in terms2
    assert not any(k.startswith("d/") for k in terms2)
    assert same(params(d), d0)
    assert not same(params(m.features.adapters), a0)

    terms3 = tr.train_step()  # stage 3
    assert {"g/kd_feat", "g/gan", "d/d/real", "d/d/fake"} <= set(terms3)
    assert not same(params(d), d0)


# -- engine -------------------------------------------------------------------------------
def test_non_finite_loss_names_step_and_term(make_trainer):
    tr = make_trainer("mse", steps=2)
    orig = tr.method.generator_terms

    def poisoned(s):
        terms = orig(s)
        terms["kd_mse"] = terms["kd_mse"] * float("nan")
        return terms

    tr.method.generator_terms = poisoned
    with pytest.raises(NonFiniteLoss, match=r"'g/kd_mse'.*step 0") as info:
        tr.train_step()
    assert info.value.step == 0 and info.value.term == "g/kd_mse"


@pytest.mark.parametrize("method", ["akdg", "sdakd"])
def test_resume_matches_uninterrupted_run(make_trainer, tmp_path, method):
    overrides = {"stage_fractions": [0.25, 0.25, 0.5]} if method == "sdakd" else None
    full = make_trainer(method, steps=4, method_overrides=overrides)
    full.fit()

    run = tmp_path / "run"
    first = make_trainer(method, steps=4, run_dir=run, ckpt_every=2, method_overrides=overrides)
    first.cfg = dataclasses.replace(first.cfg, steps=2)  # "killed" after the step-2 checkpoint
    first.fit()
    second = make_trainer(method, steps=4, run_dir=run, ckpt_every=2, method_overrides=overrides, seed=0)
    result = second.fit()
    assert result.resumed_from == 2
    for k, v in full.student.state_dict().items():
        assert torch.equal(v, second.student.state_dict()[k]), k
    for k, v in full.ema.state_dict().items():
        assert torch.equal(v, second.ema.state_dict()[k]), k
    for k, v in full.method.state_dict().items():
        assert torch.equal(v, second.method.state_dict()[k]), k


def test_run_resumed_from_its_final_checkpoint_keeps_its_time_per_step(make_trainer, tmp_path):
    """Killed between its last checkpoint and its record: the resume trains nothing, and its
    s/step and wall time are those the checkpoint carries, not 0."""
    run = tmp_path / "run"
    done = make_trainer("mse", steps=2, run_dir=run, ckpt_every=1).fit()
    again = make_trainer("mse", steps=2, run_dir=run, ckpt_every=1).fit()
    assert again.resumed_from == 2 and done.step_time_s > 0
    assert again.wall_time_s == pytest.approx(done.wall_time_s, rel=1e-3)  # + the empty loop
    assert again.step_time_s == pytest.approx(done.step_time_s, rel=1e-3)


def test_dcd_pseudo_images_are_resized_to_what_the_discriminator_accepts(make_trainer):
    """12x12 LR features (48-pixel GT crops) meet a U-Net D that needs sides divisible by 8."""
    from conftest import SyntheticPool

    tr = make_trainer("dcd", steps=1, pool=SyntheticPool(lr=12))
    terms = tr.train_step()
    assert terms["g/dcd"] > 0
    assert tr.method.cd.to_d(torch.zeros(1, 3, 12, 12)).shape[-2:] == (16, 16)
    assert tr.method.cd.to_d(torch.zeros(1, 3, 16, 16)).shape[-2:] == (16, 16)


def test_dcd_output_kd_and_connectors_as_the_release_ran_them(make_trainer):
    """scripts/*/distill.sh pass --AGD_weights 1e1,1e4 (style 10, feature 1e4); utils/vgg_feature.py
    feeds VGG16 (x + 1) / 2 = our [0, 1] image, unnormalised; init_net draws connectors N(0, 0.02)."""
    import torch.nn.functional as F

    from gankd.methods.terms import FEATURE_LAYER, STYLE_LAYERS, gram

    tr = make_trainer("dcd", steps=1)
    m = tr.method
    assert (m.cfg.style_weight, m.cfg.feature_weight, m.cfg.cd_weight) == (10.0, 1e4, 1.0)
    vgg = m.output_kd.vgg
    assert vgg.imagenet_norm is False
    connectors = (*m.cd.student_connectors, *m.cd.teacher_connectors)
    conv_w = torch.cat([c[0].weight.detach().flatten() for c in connectors])
    assert 0.01 < float(conv_w.std()) < 0.03
    batch = tr.sampler.pool.batch(torch.tensor([0, 1]))
    with torch.no_grad():
        fake = tr.student(*batch.g_input)
    from gankd.engine.method import Step

    t_img = tr.teacher.outputs(batch).image
    terms = m.weigh(m.output_kd(Pair.of(Step(0, batch, fake, [], tr.teacher.outputs(batch)))))
    fs, ft = vgg(fake), vgg(t_img)  # no mean/std: VGG sees the [0, 1] image as it is
    style = sum(F.l1_loss(gram(F.relu(fs[k])), gram(F.relu(ft[k]))) for k in STYLE_LAYERS)
    feat = F.l1_loss(F.relu(fs[FEATURE_LAYER]), F.relu(ft[FEATURE_LAYER]))
    assert torch.allclose(terms["kd_style"], 10.0 * style, rtol=1e-5)
    assert torch.allclose(terms["kd_feat"], 1e4 * feat, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_starts_its_discriminator_from_the_same_init(make_trainer, family):
    """A discriminator's init is drawn from (seed, role): the same "d" for every method, whatever
    else the method built before it."""
    ds = {}
    for method in ALL:
        if isinstance(tiny_student(method, family), str):
            continue  # cannot run on this family (its own test says why)
        has_width = "d_width" in {f.name for f in dataclasses.fields(METHODS.get(method).Config)}
        overrides = {"d_width": 1.0} if has_width else None  # sdakd's default is the student's width
        discs = make_trainer(method, steps=1, family=family, method_overrides=overrides).method.discriminators
        if "d" in discs:
            ds[method] = params(discs["d"])
    assert set(KNOWN_TERMS) - {m for m in ALL if isinstance(tiny_student(m, family), str)} <= set(ds)
    first = ds[ALL[0]]
    for method, d in ds.items():
        assert same(d, first), method


# -- LIT ----------------------------------------------------------------------------------
def test_lit_sections_learn_from_the_teachers_representations(make_trainer):
    """Every section, the first included, runs on the teacher's representation at its start and
    is regressed onto the teacher's at its end (cifar10/main.py:180-187)."""
    tr = make_trainer("lit", steps=4, method_overrides={"sections": 2})
    m = tr.method
    assert m.teacher_taps == ["body.0:input", "body.1", "body.3"] and m.student_taps == []
    seen: list[torch.Tensor] = []
    for block in (tr.student.body[0], tr.student.body[1]):
        block.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    batch = tr.sampler.pool.batch(tr.sampler.perm[:2])
    t_in, t_mid, _ = tr.teacher.outputs(batch).features
    with torch.no_grad():
        t_stem = tr.teacher.net.conv_first(batch.g_input[0])
    torch.testing.assert_close(t_in, t_stem)  # the trunk's input is the teacher's stem output
    tr.train_step()
    assert any(torch.allclose(x, t_in, atol=1e-6) for x in seen)  # section 1 on the teacher's input
    assert any(torch.allclose(x, t_mid, atol=1e-6) for x in seen)  # section 2 on its boundary
    s = student_step(tr)
    trunk, (f_in, f_mid, f_end) = tr.student.body, s.teacher.features
    want = (torch.nn.functional.mse_loss(trunk[0](f_in), f_mid)
            + torch.nn.functional.mse_loss(trunk[1](f_mid), f_end))
    torch.testing.assert_close(m.generator_terms(s)["kd_hint"], want)


def test_lit_copies_the_teachers_outer_layers_and_trains_only_the_trunk_first(make_trainer):
    """The release's two phases: the student's stem and upsampler are the teacher's and do not
    move in the LIT phase, where no discriminator steps; fine-tuning then trains the whole student
    with the base recipe against the discriminator."""
    tr = make_trainer("lit", steps=4)  # lit_fraction 0.5: steps 0-1 LIT, 2-3 fine-tuning
    m, student, teacher = tr.method, tr.student, tr.teacher.net
    outer = {k: v for k, v in params(student).items() if not k.startswith("body.")}
    t = params(teacher)
    assert outer and all(torch.equal(v, t[k]) for k, v in outer.items())
    trunk = {k: v for k, v in params(student).items() if k.startswith("body.")}
    d = params(m.discriminators["d"])
    for _ in range(2):
        assert m.stage(tr.step) == "lit" and tr.method.active_discriminators(tr.step) == []
        terms = tr.train_step()
        assert set(terms) == {"g/kd_hint"}
    now = params(student)
    assert all(torch.equal(now[k], v) for k, v in outer.items())
    assert any(not torch.equal(now[k], v) for k, v in trunk.items())
    assert same(params(m.discriminators["d"]), d)
    assert m.stage(tr.step) == "finetune"
    terms = tr.train_step()
    assert {"g/l1", "g/percep", "g/gan", "d/d/real", "d/d/fake"} <= set(terms) and "g/kd_hint" not in terms
    now = params(student)
    assert any(not torch.equal(now[k], v) for k, v in outer.items())
    assert not same(params(m.discriminators["d"]), d)


def test_lit_is_not_applicable_without_a_residual_trunk_or_at_another_width():
    from gankd.bench.compose import seeded_build
    from gankd.methods.lit import LIT
    from gankd.models import zoo

    gcfsr = zoo.get("gcfsr_32")
    assert "no residual trunk" in LIT.not_applicable(zoo.student(gcfsr, 0.5).build(), gcfsr.build())
    t = zoo.get("realesrgan_x4plus")
    narrow = zoo.student(t, 0.5, depth=6)
    assert "teacher's width" in LIT.not_applicable(seeded_build(narrow, 0), seeded_build(t, 0))
    assert "compresses depth" in LIT.not_applicable(seeded_build(zoo.student(t, 1.0), 0), seeded_build(t, 0))
    assert LIT.not_applicable(seeded_build(zoo.student(t, 1.0, depth=6), 0), seeded_build(t, 0)) is None


# -- OMGD ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_omgd_teacher_trains_online_student_learns_only_from_it(make_trainer, family):
    tr = make_trainer("omgd", steps=1, family=family)
    m = tr.method
    assert list(m.discriminators) == ["d"]  # the teacher's; the student has none
    frozen, online, student = params(tr.teacher.net), params(m.online_teacher), params(tr.student)
    assert m.diagnostics() == {"online_teacher_drift": 0.0}  # the copy starts as the teacher
    fed_to_d: list[torch.Tensor] = []
    m.discriminators["d"].register_forward_pre_hook(lambda mod, inp: fed_to_d.append(inp[0].detach().clone()))
    terms = tr.train_step()
    assert same(params(tr.teacher.net), frozen)  # the run's teacher never changes ...
    assert not same(params(m.online_teacher), online)  # ... its online copy trains
    w = torch.cat([p.flatten() for p in tr.teacher.net.parameters()]).double()
    w1 = torch.cat([p.flatten() for p in m.online_teacher.parameters()]).double()
    assert m.diagnostics()["online_teacher_drift"] == pytest.approx(float((w1 - w).norm() / w.norm()))
    assert m.diagnostics()["online_teacher_drift"] > 0
    assert not same(params(tr.student), student)
    assert {"g/teacher_gan", "g/kd_cd", "g/kd_ssim"} <= set(terms)
    # the student's gradient comes from the KD terms only, the teacher copy's from its own terms only
    step = student_step(tr, 5, with_teacher=False)
    fake = step.fake
    got = m.generator_terms(step)
    s_params = [p for p in tr.student.parameters()]
    t_params = [p for p in m.online_teacher.parameters()]
    own = sum(v for k, v in got.items() if k.startswith("teacher_"))
    kd = sum(v for k, v in got.items() if k.startswith("kd_"))
    assert all(g is None for g in torch.autograd.grad(own, s_params, retain_graph=True, allow_unused=True))
    assert all(g is None for g in torch.autograd.grad(kd, t_params, retain_graph=True, allow_unused=True))
    assert any(g is not None for g in torch.autograd.grad(kd, s_params, retain_graph=True, allow_unused=True))
    # the discriminator judged real images against the teacher's output, never the student's
    t_out = m._last[1]
    assert any(torch.allclose(x, t_out, atol=1e-6) for x in fed_to_d) or family == "gcfsr"
    assert not any(x.shape == fake.shape and torch.allclose(x, fake.detach(), atol=1e-6) for x in fed_to_d)


def test_dcd_loss_needs_no_training_pass_of_d_before_it(make_trainer):
    """L_DCD on a fresh discriminator (no training-mode pass has advanced its spectral norm) is the
    loss of the normalisation the next training pass would use: the same value as after such a
    pass, to the change that one more power iteration makes, not a random estimate's 1e11."""
    tr = make_trainer("dcd", steps=1)
    m, d = tr.method, tr.method.discriminators["d"]
    s = student_step(tr)
    fresh = float(m.cd(Pair.of(s))["dcd"])
    with torch.no_grad():
        d(s.fake)  # a training-mode pass, as the base recipe's GAN term makes
    after = float(m.cd(Pair.of(s))["dcd"])
    assert 0 < fresh < 10 * after and after < 10 * fresh
