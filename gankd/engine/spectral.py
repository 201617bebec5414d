"""Hold a network's spectral-norm power iteration still.

Spectral norm (``torch.nn.utils.spectral_norm`` and its parametrization form) advances its power
iteration once per training-mode forward: every extra pass through a discriminator -- a method
using it as a feature extractor -- would change how its normalisation evolves, and passes could
not be batched without changing it further. Inside ``power_iteration_held(net)`` every pass
normalises each weight by the estimate the *next* training-mode pass would use (the stored
vectors advanced by that pass's iterations), and on leaving, the stored vectors are put back as
they were: the network's own normalisation evolves as if the held passes never happened.

Why not simply use the stored estimate (eval mode): the hook form of spectral norm starts from
random vectors without iterating, so before the first training-mode pass its estimate of sigma is
a random projection, orders of magnitude too small. A U-Net D held that way on its init scaled its
activations by about 1e11 (DCD's loss 5.8e11 where one prior pass gave 0.11).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
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


def _advance(m: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """Point ``m``'s power-iteration vectors at copies advanced as one training-mode pass would
    advance them; returns (module, buffer name, the vector as it was) to be pointed back to. The
    stored vectors are never written: a graph that saved them for backward stays valid, and so
    does one that saves the copies (nothing writes those after the advance)."""
    from torch.nn.utils.parametrizations import _SpectralNorm

    def swap(name: str) -> tuple[nn.Module, str, torch.Tensor]:
        old = m._buffers[name]
        m._buffers[name] = old.clone()
        return m, name, old

    if isinstance(m, _SpectralNorm):
        saved = [swap("_u"), swap("_v")]
        original = m.__dict__.get("_held_original")
        if original is not None:
            m._power_method(m._reshape_weight_to_matrix(original), m.n_power_iterations)
        return saved
    saved = []
    for hook in m._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm):
            saved += [swap(hook.name + "_u"), swap(hook.name + "_v")]
            hook.compute_weight(m, do_power_iteration=True)  # advances the copies in place
    return saved


def _mark_parametrized_originals(net: nn.Module) -> None:
    """A ``_SpectralNorm`` parametrization does not know the weight it normalises: hand it over."""
    from torch.nn.utils.parametrizations import _SpectralNorm

    for m in net.modules():
        for plist in getattr(m, "parametrizations", {}).values():
            for p in plist:
                if isinstance(p, _SpectralNorm):
                    p.__dict__["_held_original"] = plist.original


@contextlib.contextmanager
def power_iteration_held(net: nn.Module) -> Iterator[None]:
    mods = [m for m in _spectral_modules(net) if m.training]
    _mark_parametrized_originals(net)
    saved: list[tuple[nn.Module, str, torch.Tensor]] = []
    with torch.no_grad():
        for m in mods:
            saved += _advance(m)
    for m in mods:
        m.training = False  # the attribute alone: .eval() would recurse into unrelated children
    try:
        yield
    finally:
        for m, name, before in saved:
            m._buffers[name] = before
        for m in mods:
            m.training = True
