"""CycleGAN's own objective in an unpaired family's base recipe (gankd.engine.cycle): which
networks each term trains, D_A's step, G_BA's init, and that families without it keep their
configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gankd.bench.suite import load_suite, setup_identity
from gankd.engine.cycle import D_A, CycleConfig


def _grads(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_each_cycle_term_trains_what_it_should(make_trainer, one_thread):
    tr = make_trainer("scratch", family="cyclegan", cycle=CycleConfig())
    m = tr.method
    assert set(m.discriminators) == {"d", D_A}
    assert {id(p) for p in m.cycle.inverse.parameters()} <= {id(p) for p in m.generator_side()}
    batch = tr.sampler.next()
    for d in m.discriminators.values():
        d.requires_grad_(False)  # as in the engine's generator step
    terms, _ = tr.generator_forward(batch, tr._teacher_outputs(batch), 0)
    assert {"gan", "gan_a", "cycle", "idt"} <= set(terms)
    expect = {"cycle": (True, True), "idt": (True, True), "gan_a": (False, True), "gan": (True, False)}
    for name, (student, inverse) in expect.items():
        tr.student.zero_grad(set_to_none=True)
        m.zero_grad(set_to_none=True)
        terms[name].backward(retain_graph=True)
        assert (_grads(tr.student), _grads(m.cycle.inverse)) == (student, inverse), name
        assert not any(_grads(d) for d in m.discriminators.values()), name


def test_d_a_judges_photos_against_g_ba_and_both_train(make_trainer, one_thread):
    tr = make_trainer("scratch", family="cyclegan", cycle=CycleConfig(identity=0.0))
    m = tr.method
    inverse = [p.detach().clone() for p in m.cycle.inverse.parameters()]
    d_a = [p.detach().clone() for p in m.discriminators[D_A].parameters()]
    logged = tr.train_step()
    assert {"g/cycle", "g/gan_a", f"d/{D_A}/real", f"d/{D_A}/fake"} <= set(logged)
    assert "g/idt" not in logged  # identity 0: the term is left out, not zero
    assert any(not torch.equal(a, b) for a, b in zip(inverse, m.cycle.inverse.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_a, m.discriminators[D_A].parameters()))
    with pytest.raises(RuntimeError, match="g_then_d"):
        m.cycle.fake_a(tr.step + 1)  # D_A only ever judges the G_BA(b) of its own step


def test_g_ba_starts_from_the_run_seed_alone(make_trainer, one_thread):
    """Every method of a run starts G_BA from one init (as from one discriminator), drawn afresh:
    not the student's weights."""
    a = make_trainer("scratch", family="cyclegan", cycle=CycleConfig()).method.cycle.inverse
    tr = make_trainer("mse", family="cyclegan", cycle=CycleConfig())
    b = tr.method.cycle.inverse
    c = make_trainer("scratch", family="cyclegan", cycle=CycleConfig(), seed=1).method.cycle.inverse
    pa, pb, pc = (list(n.parameters()) for n in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(pa, pb))
    assert not all(torch.equal(x, y) for x, y in zip(pa, pc))
    assert not all(torch.equal(x, y) for x, y in zip(pb, tr.student.parameters()))


def test_without_it_nothing_changes(make_trainer, one_thread):
    m = make_trainer("scratch", family="cyclegan").method
    assert m.cycle is None and set(m.discriminators) == {"d"} and m.generator_side() == []
    suite = load_suite("cpu")
    for name, setup in suite.models.items():
        assert "cycle" not in setup_identity(setup, 0.25) or setup.cycle is not None, name
    sr = suite.models["realesrgan"]
    with pytest.raises(ValueError, match="unpaired translation"):
        dataclasses.replace(sr, cycle=CycleConfig())
    cg = dataclasses.replace(suite.models["cyclegan"], cycle=CycleConfig())
    assert setup_identity(cg, 0.25)["cycle"] == {"weight": 10.0, "identity": 0.5}
    from gankd.bench.data import check_data

    check_data(cg, "builtin")  # the builtin photos' check (it borrows SR's) takes the family as it is
    with pytest.raises(ValueError, match="weight > 0"):
        CycleConfig(weight=0.0)


@pytest.mark.parametrize("method", ["akdg", "dcd", "mse", "omgd"])
def test_every_method_takes_a_step_with_it(method, make_trainer, one_thread):
    """Methods on the base recipe carry the cycle beside their own terms; OMGD's student learns
    from its online teacher alone and has none. (LIT needs a shallower student than the tiny
    family's fixture builds; it is an ``AdversarialMethod`` like the others.)"""
    tr = make_trainer(method, family="cyclegan", cycle=CycleConfig())
    logged = tr.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in logged.values())
    assert ("g/cycle" in logged) == (method != "omgd") == (D_A in tr.method.discriminators)
