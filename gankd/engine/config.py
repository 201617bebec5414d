"""Configs of the engine: the base recipe of a model family and the training schedule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class RecipeConfig:
    """The base recipe of a model family: losses, optimizers, EMA (SPEC section 4).

    Family values live in ``benchmarks/models/<family>.yaml``; these defaults are Real-ESRGAN's.
    """

    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    #: VGG layer -> weight, VGG19 names (conv taken before ReLU, as BasicSR's PerceptualLoss);
    #: with no VGG19 weights offline each maps to its VGG16 equivalent (reported).
    perceptual_layers: dict[str, float] = field(default_factory=lambda: {
        "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0})
    perceptual_network: Literal["vgg19", "vgg16"] = "vgg19"
    perceptual_criterion: Literal["l1", "l2"] = "l1"
    #: vanilla: BCE on logits (Real-ESRGAN, DCGAN); nonsat_logistic: softplus form (StyleGAN2 /
    #: GCFSR); lsgan: least squares on raw outputs, real 1 and fake 0 (CycleGAN)
    gan_type: Literal["vanilla", "nonsat_logistic", "lsgan"] = "vanilla"
    gan_weight: float = 0.1
    r1_weight: float = 0.0
    r1_every: int = 16
    #: the range pixel losses and R1 are computed in: unit [0, 1] (BasicSR's Real-ESRGAN) or
    #: signed [-1, 1] (GCFSR normalises with mean = std = 0.5); see gankd.engine.recipe
    loss_range: Literal["unit", "signed"] = "unit"
    #: g_then_d: G steps, then D judges that same output (BasicSR realesrgan_model.py);
    #: d_then_g: D steps on a fresh no-grad output, then G on a new forward (GCFSR gcfsr_model.py)
    step_order: Literal["g_then_d", "d_then_g"] = "g_then_d"
    lr_g: float = 1e-4
    betas_g: tuple[float, float] = (0.9, 0.99)
    lr_d: float = 1e-4  # Adam gets exactly these: no implicit lazy-regularisation rescale
    betas_d: tuple[float, float] = (0.9, 0.99)
    ema_decay: float = 0.999
    #: the EMA's decay warms up as min(ema_decay, (1 + t) / (ema_warmup + t)) (gankd.engine.ema);
    #: 0 = constant decay from the first update
    ema_warmup: int = 10

    def __post_init__(self) -> None:
        if self.r1_every < 1:
            raise ValueError("r1_every must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.ema_warmup < 0:
            raise ValueError("ema_warmup must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 4
    log_every: int = 10
    val_every: int = 0  # 0: no validation curve
    ckpt_every: int = 0  # 0: only at the end
    ckpt_keep: int = 2
    grad_clip: float | None = None  # off by default, as in the papers
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None  # CPU threads (torch.set_num_threads); None leaves torch's default
    bf16: bool = True  # autocast on CUDA only; CPU runs in fp32
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the generators (CUDA)
    #: per cache of no-grad features by pool row (gankd.engine.rowcache): the perceptual loss's
    #: targets, DCD's teacher images. 1 GiB holds every cpu-suite pool (512 rows): per row 1.07
    #: MiB for Real-ESRGAN's 48-pixel targets, 0.13 MiB for GCFSR's (conv4_3 only), 1.88 MiB for
    #: DCD's VGG16 of a 64-pixel GCFSR teacher image. 0: off
    feature_cache_mb: float = 1024.0

    #: how fast a run goes, never what it trains (to last bits): left out of the cache keys of
    #: trained networks, so adding one keeps every key (and cached teacher) as it was
    SPEED_ONLY: ClassVar[tuple[str, ...]] = ("feature_cache_mb",)

    def identity(self) -> dict[str, Any]:
        """What a cached network trained with this schedule is keyed by."""
        return {k: v for k, v in asdict(self).items() if k not in self.SPEED_ONLY}

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
