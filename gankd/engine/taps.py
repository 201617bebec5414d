"""Feature taps declared by module name, read with forward hooks (mmrazor style).

A tap that matches no module is an error at construction, never a silently empty loss: the DCD
release hooked a discriminator layer name that did not exist in pix2pix, so its distillation term
was zero for every run. A name ending in ``:input`` taps what the module receives (LIT feeds its
first section the teacher's representation at the trunk's input, whatever layer made it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from gankd.errors import ConfigError

INPUT = ":input"


def resolve(model: nn.Module, names: Sequence[str], what: str) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n.removesuffix(INPUT) not in modules]
    if missing:
        sample = ", ".join(n for n in list(modules)[1:12] if n)
        raise ConfigError(f"{what}: tap {missing[0]!r} matches no module of "
                          f"{type(model).__name__} (modules include: {sample}, ...)")
    return {n: modules[n.removesuffix(INPUT)] for n in names}


class FeatureTaps:
    """Records the outputs (or inputs, ``on_input=True``) of named modules during forwards."""

    def __init__(self, model: nn.Module, names: Sequence[str], what: str = "feature tap",
                 on_input: bool = False) -> None:
        self.names = list(names)
        self._modules = resolve(model, self.names, what)
        self._on_input = on_input
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> FeatureTaps:
        self.features = {}
        for name, module in self._modules.items():
            if self._on_input or name.endswith(INPUT):
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            else:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            self.features[name] = out

        return hook

    def _pre_hook(self, name: str):
        def hook(_m: nn.Module, inp: tuple) -> None:
            self.features[name] = inp[0]

        return hook

    def collect(self) -> list[torch.Tensor]:
        """Features in declaration order; a tap that did not fire is an error."""
        silent = [n for n in self.names if n not in self.features]
        if silent:
            raise RuntimeError(f"tap {silent[0]!r} did not fire during the forward pass")
        return [self.features[n] for n in self.names]


@contextmanager
def tapped(model: nn.Module, names: Sequence[str], what: str = "feature tap",
           on_input: bool = False) -> Iterator[FeatureTaps]:
    taps = FeatureTaps(model, names, what, on_input)
    with taps:
        yield taps


def tap_channels(net: nn.Module, names: Sequence[str]) -> list[int]:
    """Channels of each tapped feature, read from one small forward pass of ``net``."""
    was = net.training
    net.eval()
    try:
        with FeatureTaps(net, names, "feature tap") as taps, torch.no_grad():
            net(*net.example_inputs(1, int(getattr(net, "out_size", 16))))
            return [f.shape[1] for f in taps.collect()]
    finally:
        net.train(was)
