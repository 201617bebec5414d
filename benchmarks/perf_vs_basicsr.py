"""gankd's training step against BasicSR's own, on identical networks and batches.

BasicSR 1.4.2's ``RealESRGANModel.optimize_parameters`` (the reference implementation of the
Real-ESRGAN GAN stage) and gankd's engine step for ``scratch`` with the Real-ESRGAN recipe: the
cpu suite's student (RRDBNet 16/23/8) and UNetDiscriminatorSN 64, L1 + perceptual (the VGG16
layers gankd falls back to, in both) + vanilla GAN 0.1, Adam lr 1e-4, batch 4 of 48-pixel GT. Both
start from the same weights and see the same batch every step; their steps are interleaved in one
process, so load on the machine hits both alike. Prints the median seconds per step of each and
the ratio gankd / BasicSR.

gankd caches the perceptual targets' VGG features by pool row (``feature_cache_mb``): here the one
batch hits the cache from the second step on; a cpu-suite run (1000 draws from 512 rows) hits it
on about half its steps. ``--no-cache`` times gankd computing them every step, as BasicSR does.

    python benchmarks/perf_vs_basicsr.py [--steps 12] [--threads 2] [--no-cache]

``compare`` is the same measurement for other suites, sizes and devices (the GPU check,
``benchmarks/gpu_check.py``, runs it on the GPU at the paper suite's crop).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

import gankd._basicsr  # noqa: F401  (the torchvision alias BasicSR needs, before any BasicSR import)
from gankd.bench.compose import build_trainer, seeded_build
from gankd.bench.suite import load_suite
from gankd.datasets.batch import Batch
from gankd.engine.sampler import PoolSampler
from gankd.engine.vgg import VGGFeatures, vgg19_to_vgg16
from gankd.methods import method_config
from gankd.models import zoo

BATCH, GT = 4, 48


class FixedPool:
    """One batch, forever: both implementations train on exactly the same pixels."""

    key = "fixed"

    def __init__(self, batch: Batch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch)

    def batch(self, index: torch.Tensor) -> Batch:
        return self._batch


def _vgg16_file(folder: Path) -> Path:
    """torchvision's full VGG16 state dict with gankd's VGG16 features (the classifier, unused by
    a perceptual loss, random), where BasicSR's VGGFeatureExtractor looks for its weights."""
    import torchvision

    net = torchvision.models.vgg16(weights=None)
    ours = VGGFeatures(["conv5_3"], network="vgg16")
    body = dict(ours.body.named_children())
    for idx, name in enumerate(n for n in body):
        layer = body[name]
        if isinstance(layer, torch.nn.Conv2d):
            net.features[idx].load_state_dict(layer.state_dict())
    path = folder / "vgg16.pth"
    torch.save(net.state_dict(), path)
    return path


def basicsr_model(student: torch.nn.Module, disc: torch.nn.Module, recipe, folder: Path,
                  device: torch.device | str = "cpu"):
    """A RealESRGANModel with our networks, its optimizers and losses, built without its
    constructor (which would load weights from disk and set up datasets)."""
    import basicsr.archs.vgg_arch as vgg_arch
    from basicsr.losses.basic_loss import L1Loss, PerceptualLoss
    from basicsr.losses.gan_loss import GANLoss
    from basicsr.models.realesrgan_model import RealESRGANModel

    vgg_arch.VGG_PRETRAIN_PATH = str(_vgg16_file(folder))
    layers = {vgg19_to_vgg16(name): w for name, w in recipe.perceptual_layers.items()}
    m = RealESRGANModel.__new__(RealESRGANModel)
    m.opt = {"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False, "dist": False}
    m.device = torch.device(device)
    m.net_g, m.net_d = student.to(m.device), disc.to(m.device)
    m.net_d_iters, m.net_d_init_iters, m.ema_decay, m.cri_ldl = 1, 0, 0, None
    m.cri_pix = L1Loss(recipe.pixel_weight)
    m.cri_perceptual = PerceptualLoss(layers, vgg_type="vgg16", use_input_norm=True, range_norm=False,
                                      perceptual_weight=recipe.perceptual_weight, style_weight=0.0,
                                      criterion="l1").to(m.device)
    m.cri_gan = GANLoss("vanilla", loss_weight=recipe.gan_weight)
    m.optimizer_g = torch.optim.Adam(student.parameters(), lr=recipe.lr_g, betas=recipe.betas_g)
    m.optimizer_d = torch.optim.Adam(disc.parameters(), lr=recipe.lr_d, betas=recipe.betas_d)
    return m


def compare(suite: str = "cpu", ratio: float = 0.25, batch_size: int = BATCH, gt_side: int = GT,
            steps: int = 12, device: str = "cpu", cache: bool = True, warmup: int = 2) -> dict:
    """Median seconds per step of BasicSR's ``optimize_parameters`` and gankd's ``scratch`` step,
    interleaved on ``device`` (fp32 both, NCHW: BasicSR's own precision and layout), on the
    ``suite``'s Real-ESRGAN recipe and its student at width ``ratio``."""
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_flush_denormal(True)  # as the engine does on CPU; BasicSR then runs as fast as it can
    setup = load_suite(suite).models["realesrgan"]
    recipe = setup.recipe
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(batch_size, 3, gt_side, gt_side, generator=g)
    usm = gt * 0.98 + 0.01  # stands in for the sharpened GT the L1 and perceptual terms see
    lr = torch.nn.functional.avg_pool2d(gt, 4)
    # on the device already, for both: neither side pays a copy the other does not
    batch = Batch(g_input=(lr,), real=gt, target=usm, index=torch.arange(batch_size)).to(dev)
    student_entry = zoo.student(setup.teacher, ratio, setup.student)
    train = dataclasses.replace(setup.train, steps=10**6, batch_size=batch_size, log_every=10**6, val_every=0,
                                ckpt_every=0, device=dev.type, bf16=False, channels_last=False,
                                compile=False, **({} if cache else {"feature_cache_mb": 0.0}))
    ours = build_trainer(student=seeded_build(student_entry, 0), teacher=None,
                         d_entry=zoo.get(setup.discriminator), recipe=recipe, method="scratch",
                         method_cfg=method_config("scratch"), train=train,
                         sampler=PoolSampler(FixedPool(batch), batch_size, 0), ratio=ratio, seed=0,
                         progress=False)
    ours.log_grad_norms = False
    with tempfile.TemporaryDirectory() as tmp:
        disc = copy.deepcopy(ours.method.discriminators["d"])
        ref = basicsr_model(copy.deepcopy(ours.student), disc, recipe, Path(tmp), dev)
    ref.lq, ref.gt, ref.gt_usm = batch.g_input[0], batch.real, batch.target

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times: dict[str, list[float]] = {"basicsr": [], "gankd": []}
    for i in range(steps + warmup):  # the first steps of each warm up (allocators, kernels' choice)
        for name in ("basicsr", "gankd"):
            sync()
            t0 = time.perf_counter()
            if name == "basicsr":
                ref.optimize_parameters(i + 1)
            else:
                ours.train_step()
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    b, o = statistics.median(times["basicsr"]), statistics.median(times["gankd"])
    return {"basicsr_s": b, "gankd_s": o, "ratio": o / b, "steps": steps, "batch": batch_size,
            "gt": gt_side, "suite": suite, "student": student_entry.name, "device": str(dev),
            "target_features": "cached" if cache else "computed every step"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true", help="gankd without its target-feature cache")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = compare(steps=args.steps, cache=not args.no_cache)
    print(f"BasicSR {r['basicsr_s']:.3f} s/step, gankd {r['gankd_s']:.3f} s/step, ratio gankd/BasicSR "
          f"{r['ratio']:.2f} (median of {args.steps} interleaved steps, {args.threads} threads, "
          f"batch {BATCH}, {GT}-pixel GT, target features {r['target_features']})")


if __name__ == "__main__":
    main()
