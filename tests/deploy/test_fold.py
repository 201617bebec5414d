"""Folding run-time weight expressions into constants for exporters (gankd.deploy.fold): the
folded network computes what the original does, holds no equalised-lr / modulated / expanding
layer any more, and exports to both runtimes (GCFSR's StyleGAN2 layers did not before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_TEACHER

from gankd.bench.compose import seeded_build
from gankd.deploy.export import export
from gankd.deploy.fold import folded
from gankd.models.gcfsr_arch import GCFSR
from gankd.models.stylegan2_parts import Blur, EqualConv2d, EqualLinear, ModulatedConv2d

pytestmark = pytest.mark.usefixtures("one_thread")


def _gcfsr() -> GCFSR:
    torch.manual_seed(0)
    net = GCFSR(out_size=32, narrow=0.125).eval()
    with torch.no_grad():  # trained-like weights: noise strengths and biases away from their zero init
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    net.set_random_noise(False)
    return net


def test_folded_gcfsr_equals_the_original_and_holds_only_constants():
    net = _gcfsr()
    x = net.example_inputs(2, 32)
    fold = folded(net, x)
    kinds = (EqualLinear, EqualConv2d, ModulatedConv2d, Blur)
    assert not [n for n, m in fold.named_modules() if isinstance(m, kinds)]
    assert sum(isinstance(m, kinds) for m in net.modules()) > 20  # the original is untouched
    with torch.inference_mode():
        want, got = net(*x), fold(*x)
    assert want.abs().mean() > 0.05 and (got - want).abs().max() < 1e-5
    # a weight change after folding does not reach the copy: it holds products, not references
    with torch.no_grad():
        net.final_linear.weight.add_(1.0)
    with torch.inference_mode():
        assert torch.equal(fold(*x), got)


def test_folding_leaves_a_network_without_such_layers_as_it_was():
    net = seeded_build(TINY_TEACHER, 3).eval()
    x = net.example_inputs(1, 12)
    fold = folded(net, x)
    assert [type(m) for m in fold.modules()] == [type(m) for m in net.modules()]
    with torch.inference_mode():
        assert torch.equal(fold(*x), net(*x))


def test_gcfsr_exports_to_both_runtimes(tmp_path):
    net = _gcfsr()
    xs = [tuple(t.numpy() for t in net.example_inputs(1, 32)) for _ in range(2)]
    results = export(net, xs, tmp_path, threads=1)
    for r in results.values():
        assert r.ok and r.status.startswith("ok"), r.status
    assert all(isinstance(v, str) for r in results.values() for v in r.files.values())
    assert np.isfinite([r.max_abs_diff for r in results.values()]).all()
