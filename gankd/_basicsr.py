"""The one door through which gankd imports BasicSR.

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, removed from torchvision in
0.17; its ``rgb_to_grayscale`` now lives in ``torchvision.transforms.functional``. The alias must
exist before BasicSR's first import, so every gankd module takes BasicSR symbols from here.
BasicSR's StyleGAN2 ops (fused_act, upfirdn2d) are never used: GCFSR is plain PyTorch.
"""

import sys

import torchvision.transforms.functional as _tvf

sys.modules.setdefault("torchvision.transforms.functional_tensor", _tvf)

from basicsr.archs.discriminator_arch import UNetDiscriminatorSN  # noqa: E402
from basicsr.archs.rrdbnet_arch import RRDB, RRDBNet  # noqa: E402
from basicsr.data import degradations  # noqa: E402
from basicsr.metrics.niqe import calculate_niqe  # noqa: E402
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.utils.diffjpeg import DiffJPEG  # noqa: E402
from basicsr.utils.img_process_util import USMSharp, filter2D  # noqa: E402
from basicsr.utils.img_util import tensor2img  # noqa: E402
from basicsr.utils.matlab_functions import calculate_weights_indices, imresize  # noqa: E402

__all__ = [
    "RRDB",
    "DiffJPEG",
    "RRDBNet",
    "UNetDiscriminatorSN",
    "USMSharp",
    "calculate_niqe",
    "calculate_psnr",
    "calculate_ssim",
    "calculate_weights_indices",
    "degradations",
    "filter2D",
    "imresize",
    "tensor2img",
]
