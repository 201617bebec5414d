"""CycleGAN (Zhu et al., 2017): the ResNet generator and the 70x70 PatchGAN discriminator.

Generator
---------
The layers of ``ResnetGenerator`` in ``vintagify==0.1.2`` (``vintagify/generator.py``), which is
junyanz/pytorch-CycleGAN-and-pix2pix's ``resnet_9blocks`` except that its InstanceNorms have
affine parameters (the original's ``norm='instance'`` has none) and its ReLUs are not in place;
as in the original with InstanceNorm, every convolution has a bias. Its checkpoint is one flat
``nn.Sequential`` (``model.0`` ... ``model.{18+n}``); ours names the parts, so that the residual
trunk is a Sequential of its own (LIT cuts it):

====================  ===========================================  ======================
ours                  layers                                       vintagify / original
====================  ===========================================  ======================
``head.0-3``          ReflectionPad(3), Conv 7x7 3->ngf, IN, ReLU  ``model.0-3``
``down.0-5``          2 x [Conv 3x3 s2, IN, ReLU]: ngf->2ngf->4ngf ``model.4-9``
``body.i``            ResnetBlock(4ngf), i < n_blocks              ``model.{10+i}``
``up.0-5``            2 x [ConvT 3x3 s2, IN, ReLU]: 4ngf->ngf      ``model.{10+n}-{15+n}``
``tail.0-2``          ReflectionPad(3), Conv 7x7 ngf->3, Tanh      ``model.{16+n}-{18+n}``
====================  ===========================================  ======================

Inside a block, ``block.0-6`` are ReflectionPad(1), Conv 3x3, IN, ReLU, ReflectionPad(1),
Conv 3x3, IN (vintagify's ``model.{10+i}.block.*``, the original's ``conv_block.*`` without its
optional Dropout); the block returns ``x + block(x)``.

Feature taps (DCD)
------------------
DCD's release (github poopit/DCD-official at 3dbc87b) taps, for its CycleGAN teachers,
``mapping_layers = {'mobile_resnet_9blocks': ['model.9', 'model.12', 'model.15', 'model.18']}``
(``distillers/base_cycleganbest_distiller.py:133-137``; the same list for ResNet pix2pix in
``distillers/base_pix2pixbest_distiller.py:112-115``), read by forward hooks on the modules'
outputs (``base_cycleganbest_distiller.py:207-220``). Its scripts distil ``--teacher_netG
mobile_resnet_9blocks`` (``scripts/cycle_gan/horse2zebra/distill.sh``), whose Sequential has the
layout above with separable convolutions (``models/modules/resnet_architecture/
mobile_resnet_generator.py:66-109``; the plain ``resnet_generator.py:71-99`` has the same
indices). So ``model.9`` is the ReLU after the second downsampling (the trunk's input, 4ngf at
1/4 resolution) and ``model.12/15/18`` are the outputs (skip included, ``resnet_generator.py:57``)
of blocks 3, 6 and 9. :meth:`ResnetGenerator.feature_taps` gives ``down.5, body.2, body.5,
body.8`` for k=4: the same four features.

Discriminator
-------------
``NLayerDiscriminator`` with ``norm='instance'`` as CycleGAN trains it: junyanz's
``models/networks.py`` (``NLayerDiscriminator``; ``use_bias = norm_layer == InstanceNorm2d``) and
DCD's copy (``models/modules/discriminators.py:13-59``, norm from ``models/networks.py:38``:
``InstanceNorm2d(affine=False, track_running_stats=False)``). Its per-patch outputs are raw: the
LSGAN loss (``models/modules/loss.py:32-33``, MSE) takes them as they are.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from gankd.models import MODELS


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices of ``range(n)`` spread evenly from the first to the last (``k=1``: the last).

    Unlike :func:`gankd.models.evenly_spaced` the first position is included: DCD taps the
    trunk's input as well as block outputs (module docstring).
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot place {k} taps in {n} positions")
    if k == 1:
        return [n - 1]
    step = (n - 1) / (k - 1)
    # floor(x + 0.5), not round(): banker's rounding would make the spacing depend on parity
    return [int(j * step + 0.5) for j in range(k)]


class ResnetBlock(nn.Module):
    """``x + block(x)``: two reflection-padded 3x3 convolutions with InstanceNorm, ReLU between."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim, affine=True),
            nn.ReLU(inplace=False),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _conv_in_relu(conv: nn.Module, channels: int) -> list[nn.Module]:
    # ReLU not in place: feature taps (``down.5``) hand out its output
    return [conv, nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=False)]


@MODELS.register("cyclegan_resnet_g")
class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator (module docstring): image (N, nc, H, W) in [0, 1] -> image of
    the same size in [0, 1]; H and W must be multiples of 4 (two stride-2 stages)."""

    width_keys: ClassVar[tuple[str, ...]] = ("ngf",)
    #: the depth knob of a student shaped for devices: residual blocks
    depth_key: ClassVar[str | None] = "n_blocks"
    residual_body: ClassVar[str | None] = "body"
    input_kind: ClassVar[str] = "image"
    #: two stride-2 convolutions down, two transposed ones up: sides must divide by 4
    input_multiple: ClassVar[int] = 4
    #: the smallest side: the trunk's reflection padding (1) needs maps of at least 2x2
    min_input_size: ClassVar[int] = 8
    #: the trunk input: the ReLU after the second downsampling
    TRUNK_INPUT: ClassVar[str] = "down.5"

    def __init__(self, ngf: int = 64, n_blocks: int = 9, nc: int = 3) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"ResnetGenerator needs at least 1 residual block, got {n_blocks}")
        self.ngf, self.n_blocks, self.nc = ngf, n_blocks, nc
        self.head = nn.Sequential(nn.ReflectionPad2d(3), *_conv_in_relu(nn.Conv2d(nc, ngf, 7), ngf))
        self.down = nn.Sequential(
            *_conv_in_relu(nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), ngf * 2),
            *_conv_in_relu(nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1), ngf * 4),
        )
        self.body = nn.Sequential(*(ResnetBlock(ngf * 4) for _ in range(n_blocks)))
        self.up = nn.Sequential(
            *_conv_in_relu(nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1),
                           ngf * 2),
            *_conv_in_relu(nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1), ngf),
        )
        self.tail = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, nc, 7), nn.Tanh())

    def example_inputs(self, batch: int = 1, size: int = 256) -> tuple[torch.Tensor, ...]:
        self._check_side(size, size)
        return (torch.rand(batch, self.nc, size, size, device=self.head[1].weight.device),)

    def feature_taps(self, k: int) -> list[str]:
        """``k`` features evenly spaced from the trunk's input to the last block's output.

        Positions are [``down.5``, ``body.0``, ..., ``body.{n-1}``]; for k=4 and 9 blocks: the
        trunk input and blocks 3, 6 and 9, DCD's CycleGAN taps (module docstring). All have
        4*ngf channels at 1/4 of the input side.
        """
        positions = [self.TRUNK_INPUT, *(f"body.{i}" for i in range(self.n_blocks))]
        return [positions[i] for i in _spread(len(positions), k)]

    def _check_side(self, h: int, w: int) -> None:
        m = self.input_multiple
        if h % m or w % m or min(h, w) < self.min_input_size:
            raise ValueError(f"ResnetGenerator takes sides that are multiples of {m} and at least "
                             f"{self.min_input_size}, got {h}x{w}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.nc:
            raise ValueError(f"ResnetGenerator expects images (N, {self.nc}, H, W), got {tuple(x.shape)}")
        self._check_side(x.shape[2], x.shape[3])
        # the release normalises photos to [-1, 1] (mean 0.5, std 0.5)
        x = x * 2 - 1
        y = self.tail(self.up(self.body(self.down(self.head(x)))))
        return (y + 1) / 2


@MODELS.register("cyclegan_patch_d")
class PatchDiscriminator(nn.Module):
    """CycleGAN's PatchGAN (``NLayerDiscriminator``, norm 'instance'): image (N, nc, H, W) in [0, 1]
    -> per-patch scores (N, 1, H', W'), raw (LSGAN).

    ``features``: Conv 4x4 s2 + LeakyReLU(0.2); for n in 1..n_layers-1 Conv 4x4 s2 (bias, as with
    InstanceNorm in the original) + InstanceNorm (no affine, no running stats) + LeakyReLU; then
    Conv 4x4 s1 + InstanceNorm + LeakyReLU to ndf * min(2**n_layers, 8) channels. ``head``: Conv
    4x4 s1 to one channel. With padding 1 everywhere, a stride-2 conv maps side s to floor(s/2)
    and a stride-1 one to s - 1, so the output side is floor(s / 2**n_layers) - 2. n_layers=3 is
    the 70x70 PatchGAN (receptive field 70): 256 -> 30x30 patches. (Same state-dict layout as the
    original's ``model.*`` up to the split: ``features.i`` is ``model.i``, ``head`` the last.)
    """

    width_keys: ClassVar[tuple[str, ...]] = ("ndf",)
    penultimate: ClassVar[str] = "head"
    #: fully convolutional: any side at least ``min_input_size``
    input_multiple: ClassVar[int] = 1
    #: the smallest side giving one output patch at the default n_layers=3: floor(s/8) - 2 >= 1,
    #: i.e. s >= 24 (23 leaves a 2x2 map for the last 4x4 conv: no patch). An instance's value
    #: follows its n_layers: 3 * 2**n_layers.
    min_input_size: int = 24

    def __init__(self, ndf: int = 64, n_layers: int = 3, nc: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"PatchDiscriminator needs n_layers >= 1, got {n_layers}")
        self.ndf, self.n_layers, self.nc = ndf, n_layers, nc
        self.min_input_size = 3 * 2**n_layers

        def norm(c: int) -> nn.Module:
            return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)

        # LeakyReLUs not in place: the last one's output is what DCD reads at ``penultimate``
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=False)]
        c_in = ndf
        for n in range(1, n_layers):
            c = ndf * min(2**n, 8)
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), norm(c), nn.LeakyReLU(0.2, inplace=False)]
            c_in = c
        c = ndf * min(2**n_layers, 8)
        layers += [nn.Conv2d(c_in, c, 4, 1, 1), norm(c), nn.LeakyReLU(0.2, inplace=False)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 1, 4, 1, 1)

    def output_side(self, side: int) -> int:
        """Patches per side for an input side (<= 0: the input is too small)."""
        return side // 2**self.n_layers - 2

    def example_inputs(self, batch: int = 1, size: int = 256) -> tuple[torch.Tensor, ...]:
        self._check_side(size, size)
        return (torch.rand(batch, self.nc, size, size, device=self.head.weight.device),)

    def _check_side(self, h: int, w: int) -> None:
        if min(h, w) < self.min_input_size:
            raise ValueError(f"PatchDiscriminator(n_layers={self.n_layers}) needs sides of at least "
                             f"{self.min_input_size} for one output patch, got {h}x{w}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.nc:
            raise ValueError(f"PatchDiscriminator expects images (N, {self.nc}, H, W), got {tuple(x.shape)}")
        self._check_side(x.shape[2], x.shape[3])
        # CycleGAN normalises its images to [-1, 1]
        return self.head(self.features(x * 2 - 1))
