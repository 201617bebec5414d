"""The registered distillation terms (gankd/methods/terms.py), each on its own: what it returns,
what receives its gradient and what does not. Every registered term must have a case here."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from gankd.engine.method import Method
from gankd.methods import METHODS
from gankd.methods.terms import TERMS, Pair, Term

S_CH, T_CH = [4, 6], [8, 8]  # two taps: student channels, teacher channels


class TinyD(nn.Module):
    """A discriminator as DCD's term needs one: a ``penultimate`` module name to tap."""

    penultimate = "body.2"

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _trunk() -> nn.Sequential:
    return nn.Sequential(*(nn.Conv2d(8, 8, 3, padding=1) for _ in range(4)))


#: how each term is built for these tests, and what in the pair it must send gradient to
CASES: dict[str, tuple[Callable[[], Term], set[str]]] = {
    "output-mse": (lambda: TERMS.get("output-mse")(lambda x: x * 2 - 1), {"student"}),
    "vgg-style-feature": (lambda: TERMS.get("vgg-style-feature")(cached=False), {"student"}),
    "ssim": (lambda: TERMS.get("ssim")(), {"student"}),
    "tv": (lambda: TERMS.get("tv")(), {"student"}),
    "channel": (lambda: TERMS.get("channel")(S_CH, T_CH), {"student_features"}),
    "feature-regression": (lambda: TERMS.get("feature-regression")(S_CH, T_CH), {"student_features"}),
    # LIT's sections run the student's own trunk on the teacher's features: the student's
    # output and features are not what it trains (its trunk's parameters are; below)
    "section-hints": (lambda: TERMS.get("section-hints")(_trunk(), [0, 2], [1, 3]), set()),
    "dcd": (lambda: TERMS.get("dcd")(TinyD().requires_grad_(False), S_CH, T_CH, signed=False),
            {"student_features"}),
}


def test_every_registered_term_has_a_case():
    assert set(TERMS.names()) == set(CASES)


def pair_for(name: str) -> Pair:
    torch.manual_seed(0)
    img = lambda: torch.rand(2, 3, 32, 32, requires_grad=True)  # noqa: E731
    if name == "section-hints":  # the teacher's trunk input, then each section's end
        s_feats, t_feats = [torch.randn(2, 8, 8, 8, requires_grad=True)], [
            torch.randn(2, 8, 8, 8, requires_grad=True) for _ in range(3)]
    else:
        s_feats = [torch.randn(2, c, 8, 8, requires_grad=True) for c in S_CH]
        t_feats = [torch.randn(2, c, 8, 8, requires_grad=True) for c in T_CH]
    return Pair(img(), img(), s_feats, t_feats)


@pytest.mark.parametrize("name", sorted(CASES))
def test_term_gradient_reaches_the_student_side_never_the_teacher(name):
    build, student_side = CASES[name]
    term = build()
    pair = pair_for(name)
    out = term(pair)
    assert tuple(out) == term.outputs
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    total = sum(out.values())
    assert total.requires_grad, f"{name}: no gradient at all"
    total.backward()
    for t in (pair.teacher, *pair.teacher_features):
        assert t.grad is None or not t.grad.any(), f"{name}: gradient into the teacher"
    got = {"student": pair.student.grad is not None and bool(pair.student.grad.any()),
           "student_features": any(f.grad is not None and bool(f.grad.any()) for f in pair.student_features)}
    assert {k for k, v in got.items() if v} == student_side
    for p in term.trainable():
        assert p.grad is not None and p.grad.any(), f"{name}: a trainable parameter got no gradient"


def test_section_hints_train_the_handed_trunk_not_a_copy():
    trunk = _trunk()
    term = TERMS.get("section-hints")(trunk, [0, 2], [1, 3])
    assert list(term.parameters()) == []  # the student's blocks: not the term's
    sum(term(pair_for("section-hints")).values()).backward()
    assert all(p.grad is not None and p.grad.any() for p in trunk.parameters())


def test_dcd_teacher_connectors_stay_at_init_and_the_discriminator_is_not_the_terms():
    term = CASES["dcd"][0]()
    assert not any(name.startswith("_disc") for name, _ in term.named_parameters())
    assert {id(p) for p in term.trainable()} == {id(p) for p in term.student_connectors.parameters()}
    sum(term(pair_for("dcd")).values()).backward()
    assert all(p.grad is None for p in term.teacher_connectors.parameters())


def test_vgg_cache_holds_the_teacher_side_only():
    term = TERMS.get("vgg-style-feature")(cached=True)
    term.teacher_cache.budget = 2**30
    pair = pair_for("vgg-style-feature")
    pair = Pair(pair.student, pair.teacher.detach(), index=torch.tensor([3, 5]))
    first = term(pair)
    assert len(term.teacher_cache) == 2
    again = term(pair)  # the teacher's features now from the cache
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert list(term.state_dict()) == []  # VGG is a frozen loss network, out of checkpoints


@pytest.mark.parametrize("method", METHODS.names())
def test_each_weight_is_a_config_field_of_a_loss_the_method_logs(method):
    cls: type[Method] = METHODS.get(method)
    fields = set(cls.Config.__dataclass_fields__)
    assert set(cls.term_weights.values()) <= fields
    assert cls.tuned_weights() == tuple(dict.fromkeys(cls.term_weights.values()))
    if cls.balanced is not None:
        own, refs = cls.balanced
        assert own in cls.term_weights and set(refs) <= set(cls.term_weights)


def test_the_docs_table_lists_every_registered_term():
    from conftest import ROOT

    doc = (ROOT / "docs" / "methods.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")}
    assert set(TERMS.names()) <= rows

