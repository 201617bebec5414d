"""``DataConfig``: what a suite says about its data, per model family.

A suite's YAML holds one mapping per model family, loaded with
``gankd.config.from_mapping(DataConfig, mapping, "suite.yaml: data.realesrgan")``. Validation
happens here, once: the degradation name, its arguments (by the degradation's own ``Config``)
and every crop side against what the degradation can handle.

Real-ESRGAN (paper suite): ``hr_crop: 256, degrade_size: 400, queue_size: 180`` (BasicSR crops
or pads 400x400, degrades, then crops 256; a 180-pair queue mixes batches).
GCFSR (paper suite): ``degradation: gcfsr, hr_crop: 512`` (whole FFHQ 512 images, h-flips only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gankd.config import ours, paper
from gankd.datasets.degradation import Degradation, build_degradation

#: part of every evaluation-set and training-pool key: bump when the cache layout or the pipeline
#: changes what the same config denotes, and each such cache is rebuilt once
CACHE_FORMAT = 1

#: DataConfig fields that change what a network is trained on (``training_identity``)
TRAINING_FIELDS = ("degradation", "degradation_args", "hr_crop", "degrade_size", "hflip", "rot90",
                   "resize_short", "pool_size", "queue_size", "test_images", "val_images", "small_images")


@dataclass
class DataConfig:
    # -- degradation --------------------------------------------------------------------------
    degradation: str = paper("realesrgan", "a registered degradation (`gankd list`)")
    degradation_args: dict[str, Any] = paper(  # noqa: RUF009 (paper() gives a default_factory for dicts)
        {}, "overrides of the degradation's Config; normalised to the full resolved config")
    # -- training crops -----------------------------------------------------------------------
    hr_crop: int = paper(256, "GT side of a training pair (Real-ESRGAN gt_size; GCFSR: the output size)")
    degrade_size: int | None = ours(
        None, "HR side degraded before cropping hr_crop (BasicSR Real-ESRGAN: 400); None = hr_crop")
    hflip: bool = paper(True, "random horizontal flips (use_hflip in both papers)")
    rot90: bool = paper(False, "random 90-degree rotations + vertical flips (use_rot false in both papers)")
    resize_short: int | None = ours(
        None, "resize every image (Lanczos) so its short side is this before cropping, e.g. FFHQ 1024 -> 512")
    # -- CPU pools / GPU online ---------------------------------------------------------------
    pool_size: int = ours(0, "fixed cached training pairs (CPU suites); 0 = online streaming")
    queue_size: int = ours(0, "online training-pair queue mixing batches (Real-ESRGAN: 180); 0 = none")
    num_workers: int = ours(2, "DataLoader worker processes in online mode")
    # -- evaluation / validation --------------------------------------------------------------
    eval_hr: int = ours(256, "HR side of the deterministic evaluation crops")
    eval_crops: int = ours(1, "crops per test image: 1 = centre; k = first k of an even grid")
    val_hr: int | None = ours(None, "HR side of validation crops (curves only); None = eval_hr")
    val_crops: int = ours(1, "crops per validation image")
    eval_samples: int = ours(64, "unconditional tasks: fixed noise vectors of the evaluation set "
                                 "(validation: a quarter, at least 4)")
    # -- folder splits (builtin has a fixed split) --------------------------------------------
    test_images: int = ours(10, "folder data: images held out for evaluation (first by sha256 of name)")
    val_images: int = ours(2, "folder data: images held out for validation curves (next by sha256)")
    small_images: Literal["error", "skip"] = ours(
        "error", "an image smaller than its crop: fail naming it, or skip it and log the count and names")

    def __post_init__(self) -> None:
        for name in ("hr_crop", "eval_hr", "eval_crops", "val_crops", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pool_size", "queue_size", "num_workers", "test_images", "val_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("degrade_size", "val_hr", "resize_short"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {value}")
        deg = build_degradation(self.degradation, self.degradation_args, "degradation_args")
        self.degradation_args = deg.describe()["config"]  # resolved: cache keys see every value
        if self.degrade_size is not None and self.degrade_size != self.hr_crop:
            if not deg.crop_after:
                raise ValueError(f"degrade_size={self.degrade_size} must equal hr_crop={self.hr_crop} "
                                 f"for the {self.degradation} degradation (it cannot crop pairs)")
            if self.degrade_size < self.hr_crop:
                raise ValueError(f"degrade_size={self.degrade_size} is smaller than hr_crop={self.hr_crop}")
            deg.check_crop(self.hr_crop, "hr_crop")
        deg.check_side(self.degrade_side, "degrade_size" if self.degrade_size else "hr_crop")
        deg.check_side(self.eval_hr, "eval_hr")
        deg.check_side(self.val_side, "val_hr" if self.val_hr else "eval_hr (used for val_hr)")

    def training_identity(self) -> dict[str, Any]:
        """What decides the pairs a network is trained on: the cache key of a trained network
        (teacher, supervised stage) uses this, so changing how it is evaluated or validated, or
        how many workers load the data, never retrains it."""
        return {name: getattr(self, name) for name in TRAINING_FIELDS}

    @property
    def degrade_side(self) -> int:
        """Side of the HR region cut from an image and degraded for one training pair."""
        return self.degrade_size or self.hr_crop

    @property
    def val_side(self) -> int:
        return self.val_hr or self.eval_hr

    def build_degradation(self) -> Degradation:
        return build_degradation(self.degradation, self.degradation_args)
