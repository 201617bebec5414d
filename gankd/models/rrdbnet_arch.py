"""Real-ESRGAN's networks: BasicSR's RRDBNet generator and UNetDiscriminatorSN, unchanged.

The subclasses add only the class-level facts gankd needs (width keys, example inputs, taps);
their parameters and state-dict keys are BasicSR's, so official RealESRGAN_x4plus files load
strictly.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from gankd._basicsr import RRDBNet, UNetDiscriminatorSN
from gankd.models import MODELS, evenly_spaced


@MODELS.register("rrdbnet")
class RRDBNetSR(RRDBNet):
    """ESRGAN's RRDBNet (Real-ESRGAN x4plus: num_feat 64, num_block 23, num_grow_ch 32)."""

    width_keys: ClassVar[tuple[str, ...]] = ("num_feat", "num_grow_ch")
    #: the depth knob of a student shaped for devices (``--blocks``): RRDB blocks
    depth_key: ClassVar[str | None] = "num_block"
    #: the residual stages, in order (an ``nn.Sequential`` of blocks of equal width), which
    #: section-wise distillation (LIT) cuts into sections
    residual_body: ClassVar[str | None] = "body"
    input_kind: ClassVar[str] = "lr"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__(num_in_ch, num_out_ch, scale=scale, num_feat=num_feat,
                         num_block=num_block, num_grow_ch=num_grow_ch)
        self.upscale = scale
        self.num_block = num_block

    def example_inputs(self, batch: int = 1, size: int = 64) -> tuple[torch.Tensor, ...]:
        return (torch.rand(batch, self.conv_first.in_channels, size, size),)

    def feature_taps(self, k: int) -> list[str]:
        """Outputs of ``k`` RRDB blocks at evenly spaced depths (LR resolution, num_feat channels)."""
        return [f"body.{i}" for i in evenly_spaced(self.num_block, k)]


@MODELS.register("unet_d")
class UNetD(UNetDiscriminatorSN):
    """Real-ESRGAN's U-Net discriminator with spectral norm; per-pixel logits."""

    width_keys: ClassVar[tuple[str, ...]] = ("num_feat",)
    penultimate: ClassVar[str] = "conv9"
    #: three stride-2 convolutions and their skip connections: sides must divide by 8
    input_multiple: ClassVar[int] = 8

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__(num_in_ch, num_feat=num_feat, skip_connection=skip_connection)

    def example_inputs(self, batch: int = 1, size: int = 256) -> tuple[torch.Tensor, ...]:
        return (torch.rand(batch, self.conv0.in_channels, size, size),)
