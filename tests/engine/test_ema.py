"""The EMA every student is evaluated from, and how much of a network's initial weights it can
still hold at the end of any suite's schedule (SPEC section 4: at most 5 %)."""

from __future__ import annotations

import pytest
import torch

from gankd.bench.suite import load_suite, suite_names
from gankd.engine.ema import EMA, decay_at, init_share

MAX_INIT_SHARE = 0.05


def stages(suite_name: str):
    """(what, decay, warmup, steps) of every EMA-averaged training a suite runs: the method's
    runs, the cached teacher and supervised stages, the tuning runs."""
    suite = load_suite(suite_name)
    for model, setup in suite.models.items():
        r = setup.recipe
        yield f"{suite_name}/{model} train", r.ema_decay, r.ema_warmup, setup.train.steps
        yield f"{suite_name}/{model} tune", r.ema_decay, r.ema_warmup, suite.tune.steps(setup.train.steps)
        if setup.teacher_train is not None:
            yield f"{suite_name}/{model} teacher", r.ema_decay, r.ema_warmup, setup.teacher_train.steps
        if setup.student_pretrain is not None:
            p = setup.student_pretrain.recipe_for(r)
            steps = setup.student_pretrain.train.steps
            yield f"{suite_name}/{model} student_pretrain", p.ema_decay, p.ema_warmup, steps


@pytest.mark.parametrize("suite_name", suite_names())
def test_no_evaluated_or_cached_network_is_mostly_its_init(suite_name):
    for what, decay, warmup, steps in stages(suite_name):
        share = init_share(decay, warmup, steps)
        assert share <= MAX_INIT_SHARE, f"{what}: {share:.1%} of the initial weights left after {steps} steps"


def test_without_warmup_the_cpu_suite_would_evaluate_its_init():
    # the defect this guards against: 0.999 from the first update over a 250-step run
    assert init_share(0.999, 0, 250) > 0.75
    assert init_share(0.999, 10, 250) < 1e-10


def test_paper_suite_keeps_the_papers_decay():
    for setup in load_suite("paper").models.values():
        assert setup.recipe.ema_decay == 0.999
        t = setup.train.steps
        assert decay_at(0.999, setup.recipe.ema_warmup, t // 40) == 0.999  # from 2.5 % of the run on


def test_warmup_rule_and_the_update():
    assert decay_at(0.999, 10, 0) == pytest.approx(0.1)
    assert decay_at(0.999, 10, 90) == pytest.approx(91 / 100)
    assert decay_at(0.999, 10, 10**6) == 0.999
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, 0.999, warmup=10)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)  # 0.1 * 1 + 0.9 * 3
    assert torch.allclose(ema.model.weight, torch.full((2, 2), 2.8))
    assert ema.updates == 1
    assert init_share(0.999, 10, 1) == pytest.approx(0.1)
