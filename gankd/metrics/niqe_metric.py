"""NIQE (Mittal et al., "Making a completely blind image quality analyzer"), BasicSR's code.

No reference: only the SR image is judged, lower is better. Each image is quantised to 8 bit and
turned into a BGR uint8 HWC array exactly as BasicSR's ``tensor2img`` does, then handed to
BasicSR's ``calculate_niqe`` (Y channel, ``crop_border = scale``, 96x96 blocks, the pristine
model ``niqe_pris_params.npz`` that ships inside the BasicSR wheel, so it works offline).

BasicSR's NIQE is per-image numpy with Python loops over blocks; it is the slowest metric here
(measured: 35-45 ms per 256x256 image on one core of a shared 2-core machine) and is kept as is
so that the numbers are BasicSR's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from gankd._basicsr import calculate_niqe
from gankd.errors import MetricNotApplicable, MissingAssetError
from gankd.metrics import METRICS, Column, PerImageMean
from gankd.metrics.psnr_ssim_metric import quantize_8bit

NIQE_BLOCK = 96  # BasicSR's block size, no overlap; pixels beyond whole blocks are ignored
# the covariance of the block features needs two blocks: one block gives NaN and BasicSR's SVD fails
MIN_BLOCKS = 2


def niqe_params_file() -> Path:
    """The pristine-model parameters inside the installed BasicSR package."""
    import basicsr.metrics.niqe as niqe_module  # gankd._basicsr (imported above) already set BasicSR up

    return Path(niqe_module.__file__).with_name("niqe_pris_params.npz")


def to_bgr_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) RGB float in [0, 1] -> (H, W, 3) BGR uint8, as BasicSR's ``tensor2img``."""
    levels = quantize_8bit(img).to(torch.uint8).cpu()
    return levels.flip(0).permute(1, 2, 0).contiguous().numpy()


@METRICS.register("niqe")
class NIQE(PerImageMean):
    """Mean NIQE over images (BasicSR's ``calculate_niqe``, Y channel, border ``scale`` cropped)."""

    name = "niqe"
    key = "niqe"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("niqe", "NIQE", False, "NIQE, no-reference naturalness; lower is better", digits=3,
               tolerance=0.02, order=50),)
    needs_reference = False

    def __init__(self, scale: int, device: torch.device | str = "cpu",
                 crop_border: int | None = None) -> None:
        super().__init__(scale, device, crop_border)
        params = niqe_params_file()
        if not params.is_file():
            raise MissingAssetError(f"NIQE pristine model {params} is missing from the BasicSR install")

    def _per_image(self, sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        if sr.dim() != 4 or sr.shape[1] != 3:
            raise ValueError(f"niqe: expected RGB images of shape (N, 3, H, W), got {tuple(sr.shape)}")
        h, w = sr.shape[-2:]
        c = 2 * self.crop_border
        if max(h - c, 0) // NIQE_BLOCK * (max(w - c, 0) // NIQE_BLOCK) < MIN_BLOCKS:
            raise MetricNotApplicable(
                f"niqe: needs at least {MIN_BLOCKS} blocks of {NIQE_BLOCK}x{NIQE_BLOCK} pixels "
                f"after cropping {self.crop_border} per edge (e.g. {NIQE_BLOCK + c}x"
                f"{2 * NIQE_BLOCK + c}); got {h}x{w}")
        return torch.tensor([self._one(img, i) for i, img in enumerate(sr)], dtype=torch.float64)

    def _one(self, img: torch.Tensor, index: int) -> float:
        # A textureless block (clipped sky, a flat border) has MSCN coefficients of one sign only:
        # BasicSR's AGGD fit takes the mean of an empty side (numpy warns "Mean of empty slice")
        # and the block's features are NaN, which BasicSR then leaves out (nanmean, NaN rows
        # dropped from the covariance), as MATLAB's reference NIQE does. numpy's warnings on that
        # designed path are not faults; what is, a result that is not finite, is refused below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                value = float(calculate_niqe(to_bgr_uint8(img), self.crop_border, input_order="HWC",
                                             convert_to="y"))
            except np.linalg.LinAlgError:
                value = float("nan")
        if not np.isfinite(value):  # every block textureless: nothing left to fit
            raise MetricNotApplicable(f"niqe: undefined on image {index} of a batch: too few of its "
                                      f"{NIQE_BLOCK}x{NIQE_BLOCK} blocks have texture (a flat image)")
        return value
