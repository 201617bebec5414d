"""A held spectral norm normalises as the next training-mode pass would, and leaves no trace."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gankd.engine.spectral import _spectral_modules, power_iteration_held


def _hooked() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(3, 16, 3)), nn.ReLU(),
                         nn.utils.spectral_norm(nn.Conv2d(16, 8, 3)))


def _parametrized() -> nn.Module:
    torch.manual_seed(0)
    sn = nn.utils.parametrizations.spectral_norm
    net = nn.Sequential(sn(nn.Conv2d(3, 16, 3)), nn.ReLU(), sn(nn.Conv2d(16, 8, 3)))
    with torch.no_grad():  # move the estimate off its converged init, as training does
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    return net


def _vectors(net: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for m in _spectral_modules(net) for n, b in m.named_buffers(recurse=False)
            if n.endswith(("_u", "_v"))]


@pytest.mark.parametrize("build", [_hooked, _parametrized])
def test_held_pass_equals_the_next_training_pass_and_changes_nothing(build):
    """On a fresh network (no training-mode pass yet) the held pass is what a training-mode pass
    computes, not the random initial estimate (the hook form's is orders of magnitude off)."""
    net = build()
    x = torch.rand(2, 3, 12, 12)
    reference = copy.deepcopy(net)
    before = _vectors(net)
    with torch.no_grad():
        want = reference(x)  # training mode: one power iteration, then normalise
        with power_iteration_held(net):
            got = net(x)
            again = net(x)  # a second held pass uses the same estimate
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(again, want)
    assert all(torch.equal(a, b) for a, b in zip(before, _vectors(net)))
    assert all(m.training for m in _spectral_modules(net))


def test_held_pass_keeps_a_graph_valid_for_backward():
    """Leaving the context must not write tensors a held pass saved for backward."""
    net = _hooked()
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    with power_iteration_held(net):
        out = net(x).abs().mean()
    out.backward()  # raises if a saved vector was modified in place
    assert x.grad is not None and x.grad.abs().sum() > 0
