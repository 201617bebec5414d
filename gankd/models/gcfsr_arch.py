"""GCFSR (He et al., CVPR 2022) and its StyleGAN2 discriminator, in plain PyTorch.

GCFSR is an encoder + StyleGAN2 decoder with no facial or GAN prior. The encoder sees the LR
face bicubic-upsampled to the output size; it produces (a) the decoder's 16x16 starting feature,
(b) all style latents through one linear layer from a 4x4 map, and (c) per-resolution "shift"
features. A scalar condition ``in_size`` (the upscaling factor over ``cond_norm``) controls
per-channel scales that mix the decoder's generated features with the encoder's shifts: this is
the controllable part (fidelity vs. generation).

State-dict keys and shapes at ``narrow=1`` are those of ``GCFSR`` / ``GCFSR_blind`` in the
authors' ``basicsr/archs/gcfsr_arch.py`` (``tests/data/gcfsr_original_keys.json``). Differences,
all behaviour-preserving at ``narrow=1``:

- ``final_linear`` takes ``(channels[4] // 2) * 16`` inputs (``channels[4] * 16`` when blind)
  instead of the hard-coded ``2*4*512`` (``4*4*512``), so ``narrow < 1`` works;
- noise injection is switched by ``set_random_noise``; the fixed noise has the decoder's real
  sizes (the original's stored ``noises.noise{i}`` start at 4x4 and crash its fixed-noise path;
  they are kept, unused, for strict loading);
- ``forward`` returns the image tensor only (the original returns ``(image, None)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from gankd.models import MODELS, evenly_spaced
from gankd.models.stylegan2_parts import (
    ConvLayer,
    EqualLinear,
    ResBlock,
    StyleConv,
    ToRGB,
    channel_table,
)

# Seed of the fixed noise maps used with ``set_random_noise(False)``: a constant, so every
# instance (teacher, student, EMA copy, a reloaded run) injects the same maps.
FIXED_NOISE_SEED = 20220307


def default_cond_norm(out_size: int) -> float:
    """The original's ``cond_norm`` for an output size: ``out_size / 16``.

    Both of the authors' configs follow it (``train_gcfsr_gan.yml``: out 512, cond_norm 32;
    ``train_gcfsr.yml`` and ``inference_gcfsr.py``: out 1024, cond_norm 64): the largest factor,
    an LR side of 16, maps to 1.
    """
    return out_size / 16


def gcfsr_condition(scale: float | Sequence[float] | torch.Tensor, batch: int, cond_norm: float,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The ``in_size`` input of :class:`GCFSR`: ``scale / cond_norm`` as a float32 (batch, 1) tensor.

    This is exactly what the authors' dataset (``FFHQ_control_Dataset``: a (1,) float32 array
    per sample, collated to (b, 1)) and ``inference_gcfsr.py`` (shape (1, 1)) feed the network.
    ``scale`` is the upscaling factor (HR side / LR side): one number for the whole batch or one
    per sample.
    """
    if batch < 1:
        raise ValueError(f"gcfsr_condition: batch must be >= 1, got {batch}")
    if cond_norm <= 0:
        raise ValueError(f"gcfsr_condition: cond_norm must be > 0, got {cond_norm}")
    s = torch.as_tensor(scale, dtype=torch.float32, device=device).reshape(-1)
    if s.numel() == 1:
        s = s.expand(batch)
    elif s.numel() != batch:
        raise ValueError(f"gcfsr_condition: got {s.numel()} scales for a batch of {batch}")
    if bool((s <= 0).any()):
        raise ValueError(f"gcfsr_condition: scales must be > 0, got {s.tolist()}")
    return (s / cond_norm).reshape(batch, 1).contiguous()


def _check_out_size(out_size: int, who: str) -> int:
    if not (isinstance(out_size, int) and 16 <= out_size <= 1024 and out_size & (out_size - 1) == 0):
        raise ValueError(f"{who}: out_size must be a power of two in [16, 1024], got {out_size!r}")
    return int(math.log2(out_size))


def _channels(narrow: float, channel_multiplier: int, out_size: int, who: str) -> dict[int, int]:
    ch = channel_table(narrow, channel_multiplier)
    used = {res: c for res, c in ch.items() if res <= out_size}
    if min(used.values()) < 2:
        raise ValueError(f"{who}: narrow={narrow} leaves fewer than 2 channels at some resolution: {used}")
    return ch


def _check_image(x: torch.Tensor, size: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(f"{who} expects images of shape (N, 3, {size}, {size}), got {tuple(x.shape)}")


@MODELS.register("gcfsr")
class GCFSR(nn.Module):
    """GCFSR generator.

    Args:
        out_size: output side (power of two, 16..1024); the input has the same side.
        num_style_feat: style latent width (512 in all of the authors' configs).
        channel_multiplier: StyleGAN2 channel multiplier for resolutions >= 64 (2 in the original).
        resample_kernel: 1-D FIR kernel of every blur.
        narrow: channel width ratio (students use ``narrow * r``).
        blind: the authors' ``GCFSR_blind`` (released gcfsr-512-blind): condition fixed to 1 and
            a ``final_down2`` with all ``channels[4]`` outputs.
        cond_norm: divisor of the scale in the condition; default ``out_size / 16`` (see
            :func:`default_cond_norm`). Not part of the network; kept here so callers building
            the condition (:meth:`condition`) use the value the model was trained with.
        signed_io: images in and out in [-1, 1] as in the original code (its mean 0.5 / std 0.5
            normalisation). Default False: gankd's convention, [0, 1] in and out, mapped to
            [-1, 1] inside ``forward`` -- released checkpoints work unchanged either way.

    ``forward(x, in_size)``:
        x: (N, 3, out_size, out_size), the LR face bicubic-upsampled to the output size, in
            [0, 1] ([-1, 1] with ``signed_io``).
        in_size: (N, 1) or (1, 1) float tensor ``scale / cond_norm`` (:func:`gcfsr_condition`).
            Ignored by a blind model, which uses 1 as the original does (may be None then).
        noise: optional list of ``num_layers`` maps (1 or N, 1, H, W) overriding the noise.
        returns the SR image (N, 3, out_size, out_size) in the input's range (not clamped).
    """

    width_keys: ClassVar[tuple[str, ...]] = ("narrow",)
    #: no depth knob: the decoder has one level per doubling from 16 to out_size, and the encoder
    #: mirrors it; a GCFSR student is narrower, never shallower
    depth_key: ClassVar[str | None] = None
    input_kind: ClassVar[str] = "hr"

    fixed_noise: list[torch.Tensor]

    def __init__(self, out_size: int = 512, num_style_feat: int = 512, channel_multiplier: int = 2,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), narrow: float = 1.0, blind: bool = False,
                 cond_norm: float | None = None, signed_io: bool = False) -> None:
        super().__init__()
        self.signed_io = signed_io
        log_size = _check_out_size(out_size, "GCFSR")
        ch = _channels(narrow, channel_multiplier, out_size, "GCFSR")
        self.out_size = out_size
        self.num_style_feat = num_style_feat
        self.narrow = narrow
        self.blind = blind
        self.cond_norm = float(cond_norm) if cond_norm is not None else default_cond_norm(out_size)
        # style latents: 2 at 16x16 (conv + to_rgb), then 2 per doubling (the to_rgb shares the
        # next level's first latent, as in StyleGAN2)
        self.num_latent = 2 * log_size - 6
        self.log_size = log_size
        self.random_noise = True
        rk = tuple(resample_kernel)

        # encoder: full-resolution conv, then stride-2 convs down to 16x16
        self.conv_body_first = ConvLayer(3, ch[out_size], 3)
        self.conv_body_down = nn.ModuleList()
        c_in = ch[out_size]
        for i in range(log_size - 1, 3, -1):
            self.conv_body_down.append(ConvLayer(c_in, ch[2**i], 3, downsample=True, resample_kernel=rk))
            c_in = ch[2**i]
        self.final_conv = ConvLayer(ch[16], ch[16], 3)
        self.final_down1 = ConvLayer(ch[16], ch[8], 3, downsample=True, resample_kernel=rk)
        c4 = ch[4] if blind else ch[4] // 2
        self.final_down2 = ConvLayer(ch[8], c4, 3, downsample=True, resample_kernel=rk)
        self.final_linear = EqualLinear(c4 * 16, num_style_feat * self.num_latent, activation="fused_lrelu")

        # condition: per-level channel scales from in_size, shifts from encoder features;
        # index 0 is the output resolution, the last is 16x16
        self.condition_scale1 = nn.ModuleList()
        self.condition_scale2 = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for i in range(log_size, 3, -1):
            c = ch[2**i]
            self.condition_scale1.append(EqualLinear(1, c, bias_init_val=1.0))
            self.condition_scale2.append(EqualLinear(1, c, bias_init_val=1.0))
            self.condition_shift.append(ConvLayer(c, c, 3, activate=False))

        # decoder: StyleGAN2 synthesis from 16x16; the second conv of each level is conditioned
        self.style_conv1 = StyleConv(ch[16], ch[16], 3, num_style_feat, resample_kernel=rk)
        self.to_rgb1 = ToRGB(ch[16], num_style_feat, upsample=False, resample_kernel=rk)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        c_in = ch[16]
        for i in range(5, log_size + 1):
            c = ch[2**i]
            self.style_convs.append(StyleConv(c_in, c, 3, num_style_feat, upsample=True, resample_kernel=rk))
            self.style_convs.append(StyleConv(c, c, 3, num_style_feat, resample_kernel=rk))
            self.to_rgbs.append(ToRGB(c, num_style_feat, upsample=True, resample_kernel=rk))
            c_in = c

        self.num_layers = 2 * (log_size - 4) + 1
        # Checkpoint-compatibility only: the original's buffers, sized as if the decoder started
        # at 4x4 (layer i: 2**((i+5)//2)). Never read; zeros since any loaded values are unused.
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.zeros(1, 1, res, res))
        # The fixed noise actually injected when random noise is off: one seeded N(0, 1) draw per
        # layer at its real size (layer i: 16 * 2**((i+1)//2)), shared by the whole batch like
        # StyleGAN2's stored noise. A draw rather than zeros because a trained network's noise
        # strengths expect unit-variance noise; non-persistent, so checkpoints are unchanged.
        # Drawn on the CPU generator (whatever the default device) so the maps are the same
        # everywhere; .to(device) moves them.
        g = torch.Generator().manual_seed(FIXED_NOISE_SEED)
        for i in range(self.num_layers):
            res = 16 * 2 ** ((i + 1) // 2)
            noise = torch.randn(1, 1, res, res, generator=g, device="cpu")
            self.register_buffer(f"fixed_noise{i}", noise, persistent=False)

    # --- gankd protocol -------------------------------------------------------------------------

    def set_random_noise(self, enabled: bool) -> None:
        """Fresh N(0, 1) noise on every forward (default, for training) or the fixed seeded maps
        (deterministic: evaluation, MACs counting, distillation targets)."""
        self.random_noise = bool(enabled)

    def condition(self, scale: float | Sequence[float] | torch.Tensor, batch: int) -> torch.Tensor:
        """``in_size`` for this model's ``cond_norm`` on its device."""
        return gcfsr_condition(scale, batch, self.cond_norm, device=self.final_linear.weight.device)

    def example_inputs(self, batch: int = 1, size: int | None = None) -> tuple[torch.Tensor, ...]:
        """(x, in_size) at output side ``size`` (must equal ``out_size``); condition of a x4 LR."""
        size = self.out_size if size is None else size
        if size != self.out_size:
            raise ValueError(f"GCFSR(out_size={self.out_size}) takes inputs at its output size, got {size}")
        device = self.final_linear.weight.device
        x = torch.rand(batch, 3, size, size, device=device)
        return (x * 2 - 1 if self.signed_io else x), self.condition(4.0, batch)

    def decoder_levels(self) -> list[str]:
        """Module names of the last StyleConv at each decoder resolution (16, 32, ..., out_size)."""
        return ["style_conv1"] + [f"style_convs.{2 * j + 1}" for j in range(len(self.to_rgbs))]

    def feature_taps(self, k: int) -> list[str]:
        """Outputs (N, C, H, W) of the last StyleConv at ``k`` evenly spaced decoder resolutions.

        The list depends only on ``out_size``, so a teacher and its students (same out_size, any
        narrow) share names and spatial sizes.
        """
        levels = self.decoder_levels()
        return [levels[i] for i in evenly_spaced(len(levels), k)]

    # --- forward --------------------------------------------------------------------------------

    def _noise(self, noise: Sequence[torch.Tensor | None] | None) -> list[torch.Tensor | None]:
        if noise is not None:
            if len(noise) != self.num_layers:
                raise ValueError(f"GCFSR: noise must hold {self.num_layers} maps, got {len(noise)}")
            return list(noise)
        if self.random_noise:
            return [None] * self.num_layers
        return [getattr(self, f"fixed_noise{i}") for i in range(self.num_layers)]

    def _in_size(self, in_size: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
        if self.blind:
            return torch.ones(1, 1, dtype=like.dtype, device=like.device)
        if not isinstance(in_size, torch.Tensor):
            raise ValueError("GCFSR.forward needs in_size, a (N, 1) tensor scale / cond_norm "
                             "(see gcfsr_condition)")
        if in_size.ndim != 2 or in_size.shape[1] != 1 or in_size.shape[0] not in (1, batch):
            raise ValueError(f"GCFSR: in_size must have shape ({batch}, 1) or (1, 1), "
                             f"got {tuple(in_size.shape)}")
        return in_size.to(like.dtype)

    def forward(self, x: torch.Tensor, in_size: torch.Tensor | None = None,
                noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        _check_image(x, self.out_size, f"GCFSR(out_size={self.out_size})")
        if not self.signed_io:
            x = x * 2 - 1
        b = x.shape[0]
        cond = self._in_size(in_size, b, x)
        noises = self._noise(noise)

        feat = self.conv_body_first(x)
        shifts = [self.condition_shift[0](feat)]
        for j, down in enumerate(self.conv_body_down, start=1):
            feat = down(feat)
            shifts.append(self.condition_shift[j](feat))
        scales1 = [lin(cond) for lin in self.condition_scale1]
        scales2 = [lin(cond) for lin in self.condition_scale2]
        # decoder order: 16x16 first
        shifts, scales1, scales2 = shifts[::-1], scales1[::-1], scales2[::-1]

        code = self.final_down2(self.final_down1(feat))
        latent = self.final_linear(code.reshape(b, -1)).view(b, self.num_latent, self.num_style_feat)

        out = self.style_conv1(self.final_conv(feat), latent[:, 0], noises[0],
                               scales1[0], scales2[0], shifts[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for lvl, to_rgb in enumerate(self.to_rgbs, start=1):
            i = 2 * lvl - 1
            out = self.style_convs[2 * lvl - 2](out, latent[:, i], noises[i])
            out = self.style_convs[2 * lvl - 1](out, latent[:, i + 1], noises[i + 1],
                                                 scales1[lvl], scales2[lvl], shifts[lvl])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip if self.signed_io else (skip + 1) / 2


@MODELS.register("stylegan2_d")
class StyleGAN2D(nn.Module):
    """StyleGAN2 discriminator without the minibatch-stddev layer (the authors'
    ``StyleGAN2Discriminator_no_std``, used by GCFSR training); one logit per image, shape (N, 1).

    Keys and channel table are the original's (= BasicSR's StyleGAN2Discriminator except that
    ``final_conv`` has no extra stddev input channel). Images in [0, 1] (gankd's convention),
    mapped to the original's [-1, 1] inside; ``signed_io=True`` takes [-1, 1] directly.
    It judges images of exactly ``out_size``: ``fixed_input_size`` says so to callers that feed
    it other maps (DCD's pseudo-images are resized to it).
    """

    width_keys: ClassVar[tuple[str, ...]] = ("narrow",)
    penultimate: ClassVar[str] = "final_linear.1"

    def __init__(self, out_size: int = 512, channel_multiplier: int = 2,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), narrow: float = 1.0,
                 signed_io: bool = False) -> None:
        super().__init__()
        self.signed_io = signed_io
        log_size = _check_out_size(out_size, "StyleGAN2D")
        ch = _channels(narrow, channel_multiplier, out_size, "StyleGAN2D")
        self.out_size = out_size
        self.narrow = narrow
        rk = tuple(resample_kernel)
        body: list[nn.Module] = [ConvLayer(3, ch[out_size], 1)]
        c_in = ch[out_size]
        for i in range(log_size, 2, -1):
            body.append(ResBlock(c_in, ch[2 ** (i - 1)], rk))
            c_in = ch[2 ** (i - 1)]
        self.conv_body = nn.Sequential(*body)
        self.final_conv = ConvLayer(c_in, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 16, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )

    def example_inputs(self, batch: int = 1, size: int | None = None) -> tuple[torch.Tensor, ...]:
        size = self.out_size if size is None else size
        if size != self.out_size:
            raise ValueError(f"StyleGAN2D(out_size={self.out_size}) takes images of that size, got {size}")
        device = self.final_conv[0].weight.device
        x = torch.rand(batch, 3, size, size, device=device)
        return (x * 2 - 1 if self.signed_io else x,)

    @property
    def fixed_input_size(self) -> int:
        return self.out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.out_size, f"StyleGAN2D(out_size={self.out_size})")
        if not self.signed_io:
            x = x * 2 - 1
        out = self.final_conv(self.conv_body(x))
        return self.final_linear(out.reshape(out.shape[0], -1))
