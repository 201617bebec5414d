"""Generators and discriminators, registered by architecture name from ``*_arch.py`` modules.

Every architecture class declares, as class attributes, what the rest of gankd needs to treat it
generically (no isinstance checks elsewhere):

- ``width_keys``: constructor arguments multiplied by a student width ratio ``r``;
- ``example_inputs(batch, size)``: the positional inputs of ``forward`` at a given size (for MACs,
  latency and smoke forwards; ``size`` is the LR side for Real-ESRGAN, the output side for GCFSR);
- generators: ``feature_taps(k)``, module names of ``k`` evenly spaced intermediate features;
- discriminators: ``penultimate``, the module whose *input* is the last hidden activation, and
  either ``fixed_input_size`` (judges one image size) or ``input_multiple`` (sides it accepts);
- generators: ``input_kind``, what the input is (``lr``, ``hr``, ``noise``, ``image``:
  ``has_paired_target``);
- optionally ``set_random_noise(enabled)``: generators with noise injection (GCFSR) switch it off
  for evaluation, MACs counting and determinism.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gankd.registry import Registry

MODELS: Registry[type[nn.Module]] = Registry("architecture", "gankd.models", suffix="_arch")


def build(arch: str, **kwargs: Any) -> nn.Module:
    return MODELS.get(arch)(**kwargs)


#: ``input_kind`` of generators whose task pairs each input with a target: a degraded image of it
#: (``lr``: Real-ESRGAN, ``hr``: GCFSR's upsampled LR); ``noise`` (DCGAN) and ``image``
#: (CycleGAN's unpaired translation) have none
PAIRED_INPUTS = ("lr", "hr")


def has_paired_target(generator: nn.Module) -> bool:
    return getattr(generator, "input_kind", "lr") in PAIRED_INPUTS


def evenly_spaced(n: int, k: int) -> list[int]:
    """``k`` indices in ``range(n)`` spread evenly, always ending at the last one.

    Used to map feature taps between a teacher and a student of different depths: tap j sits at
    fraction (j+1)/k of each network's depth.
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot place {k} taps in {n} blocks")
    return [round((j + 1) * n / k) - 1 for j in range(k)]
