"""Real-ESRGAN and GCFSR degradations: published settings, statistics, determinism, geometry."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gankd._basicsr import USMSharp, imresize
from gankd.config import from_mapping, provenance
from gankd.datasets import DEGRADATIONS
from gankd.datasets.degradation import build_degradation, quantize8
from gankd.datasets.gcfsr_degradation import GCFSRConfig
from gankd.datasets.matlab_resize import imresize_batch
from gankd.datasets.realesrgan_degradation import KERNEL_TYPES, RealESRGANConfig
from gankd.datasets.seeding import derive_seed, seeded
from gankd.errors import ConfigError


def photo(n: int = 1, side: int = 96, seed: int = 0) -> torch.Tensor:
    """Smooth random images with edges: low-pass noise plus a few sharp rectangles."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, side // 8, side // 8, generator=g), size=(side, side),
                         mode="bicubic", align_corners=False)
    img = base.clamp(0, 1)
    for i in range(n):
        for _ in range(4):
            top, left, s = (int(v) for v in torch.randint(0, side // 2, (3,), generator=g))
            img[i, :, top:top + s + 4, left:left + s + 4] = torch.rand(3, 1, 1, generator=g)
    return quantize8(img)


def hf_energy(x: torch.Tensor) -> float:
    """Mean squared Laplacian response: high-frequency energy."""
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return float(F.conv2d(x, lap, groups=3).pow(2).mean())


def realesrgan(**overrides):
    return build_degradation("realesrgan", overrides)


# ---------------------------------------------------------------------------------------------
# Real-ESRGAN


def test_registered_names():
    """Exactly the degradations the model families' data name (benchmarks/models/*.yaml):
    the seed papers' two, and a new family's own when it brings one."""
    from gankd.config import load_yaml
    from gankd.paths import family_file, family_names

    used = {load_yaml(family_file(f))["data"]["degradation"] for f in family_names()}
    assert {"gcfsr", "realesrgan"} <= used
    assert DEGRADATIONS.names() == sorted(used)


def test_realesrgan_defaults_are_the_published_x4plus_options():
    c = RealESRGANConfig()
    # options/train_realesrgan_x4plus.yml
    assert c.kernel_list == c.kernel_list2 == (
        "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
    assert c.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03) == c.kernel_prob2
    assert (c.sinc_prob, c.sinc_prob2, c.final_sinc_prob) == (0.1, 0.1, 0.8)
    assert (c.blur_sigma, c.blur_sigma2) == ((0.2, 3.0), (0.2, 1.5))
    assert c.betag_range == c.betag_range2 == (0.5, 4.0) and c.betap_range == c.betap_range2 == (1.0, 2.0)
    assert (c.resize_prob, c.resize_range) == ((0.2, 0.7, 0.1), (0.15, 1.5))
    assert (c.resize_prob2, c.resize_range2) == ((0.3, 0.4, 0.3), (0.3, 1.2))
    assert (c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob) == (
        0.5, (1.0, 30.0), (0.05, 3.0), 0.4)
    assert (c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2, c.gray_noise_prob2) == (
        0.5, (1.0, 25.0), (0.05, 2.5), 0.4)
    assert c.jpeg_range == c.jpeg_range2 == (30.0, 95.0) and c.second_blur_prob == 0.8
    assert (c.scale, c.blur_kernel_size, c.usm_target) == (4, 21, True)
    assert set(provenance(RealESRGANConfig).values()) == {"paper"}


def test_realesrgan_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="kernel_list: unknown kernel 'box'"):
        from_mapping(RealESRGANConfig, {"kernel_list": ["box"], "kernel_prob": [1.0]}, "args")
    with pytest.raises(ConfigError, match="jpeg_range must lie within"):
        from_mapping(RealESRGANConfig, {"jpeg_range": [0, 95]}, "args")
    with pytest.raises(ConfigError, match="sinc_prob must be a probability"):
        from_mapping(RealESRGANConfig, {"sinc_prob": 1.5}, "args")
    with pytest.raises(ConfigError, match=r"blur_sigma must be .* 0 < low < high"):
        from_mapping(RealESRGANConfig, {"blur_sigma": [1, 1]}, "args")
    with pytest.raises(ConfigError, match="equal length"):
        from_mapping(RealESRGANConfig, {"kernel_prob": [1.0]}, "args")


def test_same_seed_same_lr_bit_for_bit_and_caller_rng_untouched():
    deg = realesrgan()
    hr = photo(2)
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    a = deg.train(hr, seed=7)
    after = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    torch.rand(5)  # other draws in between must not matter
    np.random.rand(3)
    b = deg.train(hr, seed=7)
    c = deg.train(hr, seed=8)
    assert torch.equal(a.g_input[0], b.g_input[0]) and torch.equal(a.target, b.target)
    assert a.params == b.params
    assert not torch.equal(a.g_input[0], c.g_input[0])


def test_lr_is_quantised_8bit_quarter_size_and_targets_follow_x4plus():
    deg = realesrgan()
    hr = photo(3, 96)
    d = deg.train(hr, seed=1)
    lr = d.g_input[0]
    assert lr.shape == (3, 3, 24, 24) and len(d.lr) == 3 and d.scale == [4, 4, 4]
    assert torch.equal(lr * 255, (lr * 255).round()) and lr.min() >= 0 and lr.max() <= 1
    assert d.real is not d.target and torch.equal(d.real, hr)  # the GAN sees the plain GT
    assert torch.allclose(d.target, USMSharp()(hr))  # pixel/perceptual losses the sharpened GT
    assert hf_energy(d.target) > hf_energy(hr)
    plain = realesrgan(usm_target=False).train(hr, seed=1)
    assert plain.target is plain.real


def test_per_sample_kernels_and_recorded_parameters():
    d = realesrgan().train(photo(4), seed=3)
    p = d.params
    assert len(p["kernel1"]) == len(p["kernel2"]) == len(p["final_sinc"]) == 4
    assert len(p["jpeg1"]) == len(p["jpeg2"]) == 4
    assert p["resize1"]["mode"] in ("area", "bilinear", "bicubic")
    assert p["noise1"]["noise"] in ("gaussian", "poisson")


def test_kernel_families_drawn_with_published_probabilities():
    deg = realesrgan()
    counts: Counter[str] = Counter()
    sizes: set[int] = set()
    n = 3000
    with seeded(derive_seed("kernel-test")):
        for _ in range(n):
            k, name = deg._blur_kernel(second=False)
            kind = name.rstrip("0123456789")
            counts[kind] += 1
            sizes.add(int(name[len(kind):]))
            assert k.shape == (21, 21) and abs(k.sum() - 1) < 1e-4
    assert sizes == set(range(7, 22, 2))
    assert abs(counts["sinc"] / n - 0.1) < 0.02
    for kind, p in zip(KERNEL_TYPES, RealESRGANConfig().kernel_prob):
        assert abs(counts[kind] / n - 0.9 * p) < 0.025, (kind, counts[kind])


def test_blur_lowers_high_frequency_energy():
    hr = photo(1, 96, seed=5)
    # keep everything else mild and identical: no resize, no noise, best JPEG, no final sinc
    calm = dict(resize_prob=[0, 0, 1], resize_prob2=[0, 0, 1], gaussian_noise_prob=1, gaussian_noise_prob2=1,
                noise_range=[0, 0], noise_range2=[0, 0], jpeg_range=[99, 99], jpeg_range2=[99, 99],
                final_sinc_prob=0, second_blur_prob=0, sinc_prob=0, kernel_list=["iso"], kernel_prob=[1])
    sharp = realesrgan(blur_sigma=[0.2, 0.3], **calm).train(hr, seed=11).g_input[0]
    blurred = realesrgan(blur_sigma=[2.9, 3.0], **calm).train(hr, seed=11).g_input[0]
    assert hf_energy(blurred) < 0.5 * hf_energy(sharp)


@pytest.mark.parametrize("kind", ["gaussian", "poisson"])
def test_noise_raises_variance(kind):
    flat = torch.full((1, 3, 96, 96), 0.5)
    calm = dict(resize_prob=[0, 0, 1], resize_prob2=[0, 0, 1], jpeg_range=[95, 95], jpeg_range2=[95, 95],
                final_sinc_prob=0, second_blur_prob=0, gaussian_noise_prob=float(kind == "gaussian"),
                gaussian_noise_prob2=float(kind == "gaussian"), gray_noise_prob=0, gray_noise_prob2=0)
    quiet = dict(noise_range=[0, 0], noise_range2=[0, 0], poisson_scale_range=[0, 0],
                 poisson_scale_range2=[0, 0])
    loud = dict(noise_range=[25, 30], noise_range2=[20, 25], poisson_scale_range=[2.5, 3],
                poisson_scale_range2=[2, 2.5])
    var_quiet = float(realesrgan(**calm, **quiet).train(flat, seed=2).g_input[0].var())
    out = realesrgan(**calm, **loud).train(flat, seed=2)
    assert out.params["noise1"]["noise"] == kind
    assert float(out.g_input[0].var()) > 20 * max(var_quiet, 1e-6)


def test_gray_noise_is_the_same_in_every_channel():
    flat = torch.full((1, 3, 96, 96), 0.5)
    calm = dict(resize_prob=[0, 0, 1], resize_prob2=[0, 0, 1], jpeg_range=[99, 99], jpeg_range2=[99, 99],
                final_sinc_prob=0, second_blur_prob=0, gaussian_noise_prob=1, gaussian_noise_prob2=1,
                noise_range=[20, 20], noise_range2=[1, 1])
    gray = realesrgan(**calm, gray_noise_prob=1, gray_noise_prob2=1).train(flat, seed=4).g_input[0]
    colour = realesrgan(**calm, gray_noise_prob=0, gray_noise_prob2=0).train(flat, seed=4).g_input[0]
    spread_gray = float((gray - gray.mean(1, keepdim=True)).abs().mean())
    spread_colour = float((colour - colour.mean(1, keepdim=True)).abs().mean())
    assert spread_gray < 0.25 * spread_colour


def test_jpeg_quality_sampled_in_range():
    deg = realesrgan()
    q1, q2 = [], []
    for s in range(8):
        p = deg.train(photo(2, 80, seed=s), seed=s).params
        q1 += p["jpeg1"]
        q2 += p["jpeg2"]
    assert all(30 <= q <= 95 for q in q1 + q2)
    assert max(q1 + q2) - min(q1 + q2) > 30  # really sampled, not fixed
    narrow = realesrgan(jpeg_range=[50, 52], jpeg_range2=[70, 71]).train(photo(3, 80), seed=0).params
    assert all(50 <= q <= 52 for q in narrow["jpeg1"]) and all(70 <= q <= 71 for q in narrow["jpeg2"])


def test_paired_crop_is_aligned():
    deg = realesrgan()
    hr = photo(2, 96)
    d = deg.train(hr, seed=9, crop=64)
    top, left, side = d.params["crop"]
    assert side == 64 and d.g_input[0].shape == (2, 3, 16, 16) and top % 4 == 0 and left % 4 == 0
    assert torch.equal(d.real, hr[:, :, top:top + 64, left:left + 64])
    full = deg.train(hr, seed=9)
    assert torch.equal(d.g_input[0], full.g_input[0][:, :, top // 4:top // 4 + 16, left // 4:left // 4 + 16])
    assert torch.equal(d.target, full.target[:, :, top:top + 64, left:left + 64])


def test_too_small_side_is_a_clear_error():
    deg = realesrgan()
    assert deg.min_side() == 76  # 0.15 * 76 = 11.4 px > the 10 px reflect padding of a 21-tap blur
    with pytest.raises(ValueError, match=r"HR height=64 is too small .* needs >= 76"):
        deg.train(photo(1, 64), seed=0)
    with pytest.raises(ValueError, match="multiple of the realesrgan scale 4"):
        deg.check_side(98, "eval_hr")
    deg.train(photo(1, 76), seed=0)  # the bound is tight enough to work


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_deterministic_on_each_available_device(device):
    deg = realesrgan()
    hr = photo(2, 80).to(device)
    a, b = deg.train(hr, seed=21), deg.train(hr, seed=21)
    assert a.g_input[0].device.type == device
    assert torch.equal(a.g_input[0], b.g_input[0])


# ---------------------------------------------------------------------------------------------
# GCFSR


def test_gcfsr_defaults_are_the_released_512_options():
    c = GCFSRConfig()
    assert c.scales == (32, 32, 32, 32, 16, 16, 8, 8, 4) and c.cond_norm == 32.0
    assert provenance(GCFSRConfig)["scales"] == "paper" and provenance(GCFSRConfig)["eval_scale"] == "ours"


def test_gcfsr_lr_is_basicsr_matlab_bicubic():
    deg = build_degradation("gcfsr", {"scales": [4, 8, 16], "eval_scale": 8})
    hr = photo(3, 64, seed=2)
    d = deg.degrade_at(hr, [4, 8, 16])
    lr_up, cond = d.g_input
    assert lr_up.shape == hr.shape and cond.shape == (3, 1) and cond.dtype == torch.float32
    for i, s in enumerate([4, 8, 16]):
        small = imresize(hr[i], 1 / s)  # BasicSR's own function, one image at a time
        ref_up = quantize8(imresize(small, s))
        assert d.lr[i].shape == (3, 64 // s, 64 // s)
        assert (d.lr[i] - quantize8(small)).abs().max() <= 1 / 255 + 1e-6
        diff = (lr_up[i] - ref_up).abs()
        assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).float().mean() < 1e-3  # rounding ties only
        assert torch.equal(lr_up[i] * 255, (lr_up[i] * 255).round())
    assert torch.equal(d.real, hr) and d.target is d.real and d.scale == [4, 8, 16]


def test_batched_matlab_resize_matches_imresize():
    x = torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(0))
    for scale in (1 / 4, 1 / 3, 2.0, 4.0):
        ref = torch.stack([imresize(x[i], scale) for i in range(2)])
        out = imresize_batch(x, scale)
        assert out.shape == ref.shape and (out - ref).abs().max() < 1e-5


def test_gcfsr_cond_values():
    paper512 = build_degradation("gcfsr")
    assert [paper512.cond(s) for s in (32, 16, 8, 4)] == [1.0, 0.5, 0.25, 0.125]
    # train_gcfsr.yml / inference_gcfsr.py (out 1024): in_size = scale / 64
    g1024 = build_degradation("gcfsr", {"scales": [64, 64, 64, 64, 32, 32, 16, 16, 8, 4], "cond_norm": 64,
                                        "eval_scale": 32})
    assert g1024.cond(32) == 0.5
    auto = build_degradation("gcfsr", {"scales": [4, 8], "cond_norm": None, "eval_scale": 8})
    assert auto.cond(4) == 0.5 and auto.cond(8) == 1.0
    d = auto.degrade_at(photo(2, 64), [8, 4])
    assert d.g_input[1].flatten().tolist() == [1.0, 0.5]


def test_gcfsr_draws_from_the_list_and_evaluates_at_eval_scale():
    deg = build_degradation("gcfsr", {"scales": [8, 8, 8, 4], "eval_scale": 4})
    hr = photo(64, 32, seed=1)
    d = deg.train(hr, seed=5)
    counts = Counter(d.scale)
    assert set(counts) == {4, 8} and counts[8] > counts[4]  # repeats in the list weight the draw
    assert deg.train(hr, seed=5).scale == d.scale and deg.train(hr, seed=6).scale != d.scale
    assert deg.eval(hr[:3], seed=0).scale == [4, 4, 4]


def test_gcfsr_sizes_must_divide():
    with pytest.raises(ConfigError, match="eval_scale=16 is not one of scales"):
        from_mapping(GCFSRConfig, {"scales": [4, 8], "eval_scale": 16}, "args")
    deg = build_degradation("gcfsr", {"scales": [4, 8, 32], "eval_scale": 8})
    with pytest.raises(ValueError, match=r"hr_crop=48 is not divisible by the gcfsr scale\(s\) \[32\]"):
        deg.check_side(48, "hr_crop")
    deg.check_side(64, "hr_crop")
    with pytest.raises(ValueError, match="cannot crop pairs"):
        deg.train(photo(1, 64), seed=0, crop=32)
