"""Hold a network's spectral-norm power iteration still.

Spectral norm (``torch.nn.utils.spectral_norm`` and its parametrization form) advances its power
iteration once per training-mode forward: every extra pass through a discriminator -- a method
using it as a feature extractor -- would change how its normalisation evolves, and passes could
not be batched without changing it further. Inside ``power_iteration_held(net)`` the spectral
norms of ``net`` use their current estimate without updating it; nothing else about the network
changes (only the spectral-norm modules leave training mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm


def _spectral_modules(net: nn.Module) -> list[nn.Module]:
    from torch.nn.utils.parametrizations import _SpectralNorm

    found = []
    for m in net.modules():
        hooked = any(isinstance(h, SpectralNorm) for h in m._forward_pre_hooks.values())
        if hooked or isinstance(m, _SpectralNorm):
            found.append(m)
    return found


@contextlib.contextmanager
def power_iteration_held(net: nn.Module) -> Iterator[None]:
    mods = [m for m in _spectral_modules(net) if m.training]
    for m in mods:
        m.training = False  # the attribute alone: .eval() would recurse into unrelated children
    try:
        yield
    finally:
        for m in mods:
            m.training = True
