"""DCGAN (Radford et al., 2016) as in the PyTorch tutorial ``dcgan_faces_tutorial.py``.

The generator's state-dict keys are the tutorial's (``main.0.weight``, ``main.1.running_mean``,
...), so the checkpoint shipped in ``gan-face-generate==1.1.1`` (``netG_state_dict``) loads
strictly. Differences from the tutorial, none of which touches a parameter:

- images travel in [0, 1] (gankd's convention): the generator returns ``(tanh + 1) / 2`` and the
  discriminator maps its input to the tutorial's [-1, 1] (``x * 2 - 1``) first;
- the discriminator has no final Sigmoid and returns logits: gankd's vanilla GAN loss is BCE with
  logits, which equals the tutorial's BCE after a sigmoid (and is the numerically stable form);
- ReLU / LeakyReLU are not in place (see the comments at their construction).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from gankd.models import MODELS, evenly_spaced

#: the tutorial's image side: four stride-2 transposed convolutions from a 4x4 start
DCGAN_SIZE = 64


def _check_size(size: int | None, who: str) -> None:
    if size is not None and size != DCGAN_SIZE:
        raise ValueError(f"{who} works at {DCGAN_SIZE}x{DCGAN_SIZE} only (the tutorial's output size), "
                         f"got size {size}")


@MODELS.register("dcgan_g")
class DCGANGenerator(nn.Module):
    """The tutorial's generator: z (N, nz, 1, 1) -> image (N, nc, 64, 64) in [0, 1].

    Four stride-2 transposed convolutions (4 -> 8 -> 16 -> 32 -> 64) after a 1 -> 4 projection,
    each but the last followed by BatchNorm and ReLU; widths ngf*8, *4, *2, *1.
    """

    width_keys: ClassVar[tuple[str, ...]] = ("ngf",)
    #: no depth knob: one layer per doubling from 4 to 64 is the architecture
    depth_key: ClassVar[str | None] = None
    residual_body: ClassVar[str | None] = None
    input_kind: ClassVar[str] = "noise"
    out_size: ClassVar[int] = DCGAN_SIZE
    #: module names of the four ReLU outputs (4x4, 8x8, 16x16, 32x32), the candidates for taps
    RELUS: ClassVar[tuple[str, ...]] = ("main.2", "main.5", "main.8", "main.11")

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.nz, self.ngf, self.nc = nz, ngf, nc
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        c_in = nz
        for i, c in enumerate(widths):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            # Not in place: feature taps hand out ReLU outputs, and an in-place ReLU would
            # overwrite the BatchNorm output a hook (or autograd) may still hold.
            layers += [nn.ConvTranspose2d(c_in, c, 4, stride, pad, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=False)]
            c_in = c
        layers += [nn.ConvTranspose2d(c_in, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def example_inputs(self, batch: int = 1, size: int | None = None) -> tuple[torch.Tensor, ...]:
        """A batch of z ~ N(0, I), shape (batch, nz, 1, 1); ``size`` (the output side) must be 64."""
        _check_size(size, f"DCGANGenerator(ngf={self.ngf})")
        return (torch.randn(batch, self.nz, 1, 1, device=self.main[0].weight.device),)

    def feature_taps(self, k: int) -> list[str]:
        """``k`` of the four ReLU outputs, evenly spaced and ending at the last (32x32, ngf)."""
        return [self.RELUS[i] for i in evenly_spaced(len(self.RELUS), k)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 2:
            z = z[:, :, None, None]
        if z.ndim != 4 or z.shape[1:] != (self.nz, 1, 1):
            raise ValueError(f"DCGANGenerator expects noise of shape (N, {self.nz}, 1, 1), "
                             f"got {tuple(z.shape)}")
        return (self.main(z) + 1) / 2


@MODELS.register("dcgan_d")
class DCGANDiscriminator(nn.Module):
    """The tutorial's discriminator without its final Sigmoid: image (N, nc, 64, 64) in [0, 1]
    -> one logit per image, shape (N,) (the tutorial's ``netD(x).view(-1)``).

    Four stride-2 convolutions (64 -> 32 -> 16 -> 8 -> 4; BatchNorm on all but the first) and a
    4x4 valid convolution to one value. ``main.11`` is that last convolution: its input is the
    last hidden activation (ndf*8 x 4 x 4).
    """

    width_keys: ClassVar[tuple[str, ...]] = ("ndf",)
    penultimate: ClassVar[str] = "main.11"
    #: the final 4x4 valid convolution needs exactly a 4x4 map, i.e. a 64x64 image
    fixed_input_size: ClassVar[int] = DCGAN_SIZE

    def __init__(self, ndf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.ndf, self.nc = ndf, nc
        layers: list[nn.Module] = []
        c_in = nc
        for i, c in enumerate([ndf, ndf * 2, ndf * 4, ndf * 8]):
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(c))
            # not in place: the last one's output is what DCD reads at ``penultimate``
            layers.append(nn.LeakyReLU(0.2, inplace=False))
            c_in = c
        layers.append(nn.Conv2d(c_in, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def example_inputs(self, batch: int = 1, size: int | None = None) -> tuple[torch.Tensor, ...]:
        _check_size(size, f"DCGANDiscriminator(ndf={self.ndf})")
        return (torch.rand(batch, self.nc, DCGAN_SIZE, DCGAN_SIZE, device=self.main[0].weight.device),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.nc, DCGAN_SIZE, DCGAN_SIZE):
            raise ValueError(f"DCGANDiscriminator expects images of shape (N, {self.nc}, {DCGAN_SIZE}, "
                             f"{DCGAN_SIZE}), got {tuple(x.shape)}")
        # the tutorial normalises its images to [-1, 1]
        return self.main(x * 2 - 1).view(-1)
