"""The evaluation entry point: batching, quantisation, missing metrics, kept outputs, baselines."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankd._basicsr import imresize
from gankd.datasets.batch import EvalSample
from gankd.errors import ConfigError, GankdError, MissingAssetError
from gankd.metrics import METRICS, Column, ImageMetric
from gankd.metrics.evaluate import (
    BicubicUpsampler,
    bicubic_generator,
    evaluate,
    inference_ready,
    matlab_bicubic_upsample,
    quantize_like_png,
)
from gankd.metrics.psnr_ssim_metric import psnr_y, ssim_y


def smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    """A photo-like image at 8-bit levels (as loaded from a PNG): smooth colour fields plus texture."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g), size=(h, w), mode="bicubic",
                         align_corners=False)
    return ((base + 0.03 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)[0] * 255).round() / 255


def sr_samples(n: int, h: int, w: int, scale: int = 2, start: int = 0) -> list[EvalSample]:
    out = []
    for i in range(start, start + n):
        hr = smooth_image(h, w, seed=i)
        lr = F.avg_pool2d(hr[None], scale)[0]
        out.append(EvalSample(name=f"img{i:03d}", g_input=(lr,), hr=hr, lr=lr, scale=scale))
    return out


def nearest_x2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def test_metrics_equal_direct_computation_on_quantised_outputs() -> None:
    samples = sr_samples(5, 40, 36)
    res = evaluate(nearest_x2, samples, ["psnr", "ssim"], device="cpu", batch_size=2)
    sr = quantize_like_png(torch.stack([nearest_x2(s.g_input[0][None])[0] for s in samples]))
    hr = torch.stack([s.hr for s in samples])
    assert res.metrics["psnr"] == pytest.approx(psnr_y(sr, hr, 2).mean().item(), abs=1e-9)
    assert res.metrics["ssim"] == pytest.approx(ssim_y(sr, hr, 2).mean().item(), abs=1e-9)
    assert 15 < res.metrics["psnr"] < 50 and 0.3 < res.metrics["ssim"] < 1
    assert res.higher_is_better == {"psnr": True, "ssim": True}
    assert res.missing == {} and res.num_images == 5 and res.outputs == {}
    assert res.wall_s >= res.generator_s > 0 and set(res.metric_s) == {"psnr", "ssim"}
    json.dumps(res.to_dict())


def test_identity_on_hr_is_perfect() -> None:
    samples = [EvalSample(s.name, g_input=(s.hr,), hr=s.hr, lr=s.lr, scale=2) for s in sr_samples(3, 32, 32)]
    res = evaluate(lambda x: x, samples, ["psnr", "ssim"], device="cpu")
    assert math.isinf(res.metrics["psnr"]) and res.metrics["psnr"] > 0
    assert res.metrics["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_outputs_are_clamped_and_quantised_like_a_png() -> None:
    samples = sr_samples(2, 32, 32)
    # 0.4 of an 8-bit level above HR: gone after rounding; values beyond [0, 1] are clamped
    res = evaluate(lambda lr: (F.interpolate(lr, scale_factor=2) * 0 + 2.0), samples, ["psnr"], device="cpu",
                   keep_outputs=["img001"])
    assert torch.equal(res.outputs["img001"], torch.ones(3, 32, 32))
    on_hr = [EvalSample(s.name, (s.hr,), s.hr, s.lr, 2) for s in samples]
    res = evaluate(lambda hr: hr + 0.4 / 255, on_hr, ["psnr"], device="cpu", keep_outputs=["img000"])
    assert math.isinf(res.metrics["psnr"])
    kept = res.outputs["img000"]
    assert torch.equal(kept * 255, (kept * 255).round())


def test_batches_group_equal_shapes_and_keep_outputs() -> None:
    samples = sr_samples(5, 32, 40) + sr_samples(2, 24, 24, start=5)
    samples = [samples[i] for i in (0, 5, 1, 2, 6, 3, 4)]  # shapes interleaved
    seen: list[tuple[int, ...]] = []

    def gen(lr: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(lr.shape))
        return nearest_x2(lr)

    res = evaluate(gen, samples, ["psnr"], device="cpu", batch_size=3, keep_outputs=["img006", "img002"])
    assert seen == [(3, 3, 16, 20), (2, 3, 16, 20), (2, 3, 12, 12)]
    assert res.num_images == 7
    assert set(res.outputs) == {"img006", "img002"}
    by_name = {s.name: s for s in samples}
    for name, out in res.outputs.items():
        assert torch.equal(out, quantize_like_png(nearest_x2(by_name[name].g_input[0][None])[0]))
    # the per-image mean does not depend on the batching
    one_by_one = evaluate(nearest_x2, samples, ["psnr"], device="cpu", batch_size=1)
    assert res.metrics["psnr"] == pytest.approx(one_by_one.metrics["psnr"], abs=1e-9)
    # each image's value lands on its own name, whatever order the batches took them in
    assert set(res.per_image["psnr"]) == {s.name for s in samples}
    for s in samples:
        alone = psnr_y(quantize_like_png(nearest_x2(s.g_input[0][None])), s.hr[None], 2).item()
        assert res.per_image["psnr"][s.name] == pytest.approx(alone, abs=1e-9)
        assert res.per_image["psnr"][s.name] == one_by_one.per_image["psnr"][s.name]


def test_per_image_values_leave_the_aggregates_as_they_were() -> None:
    """Storing per-image values moves no number: each aggregate is computed as before (PSNR and
    SSIM the mean of the concatenated values, LPIPS the running sum of batch sums over the count)
    and the per-image values average to it. Set metrics (FID) have none."""
    from gankd.metrics.lpips_metric import LPIPSMetric

    samples = sr_samples(5, 32, 32)
    res = evaluate(nearest_x2, samples, ["psnr", "ssim", "lpips"], device="cpu", batch_size=2)
    sr = quantize_like_png(torch.stack([nearest_x2(s.g_input[0][None])[0] for s in samples]))
    hr = torch.stack([s.hr for s in samples])
    assert res.metrics["psnr"] == float(torch.cat([psnr_y(sr[:2], hr[:2], 2), psnr_y(sr[2:4], hr[2:4], 2),
                                                   psnr_y(sr[4:], hr[4:], 2)]).mean())
    lp = LPIPSMetric(2)
    total = sum(float(lp.distances(sr[i:i + 2], hr[i:i + 2]).sum()) for i in (0, 2, 4))
    assert res.metrics["lpips"] == total / 5  # bitwise: the same operations in the same order
    for key in ("psnr", "ssim", "lpips"):
        assert list(res.per_image[key]) == [s.name for s in samples]
        assert math.fsum(res.per_image[key].values()) / 5 == pytest.approx(res.metrics[key], abs=1e-12)
    assert json.loads(json.dumps(res.to_dict()))["per_image"]["lpips"] == res.per_image["lpips"]


@contextlib.contextmanager
def registered(name: str, cls: type[ImageMetric]) -> Iterator[str]:
    """A test-only metric in the real registry, removed afterwards."""
    assert name not in METRICS
    cls.name = name
    METRICS.register(name)(cls)
    try:
        yield name
    finally:
        del METRICS._items[name]


class NeedsWeights(ImageMetric):
    columns: ClassVar[tuple[Column, ...]] = (Column("x", "X", True),)

    def __init__(self, scale: int, device: torch.device | str = "cpu") -> None:
        raise MissingAssetError("weights for the test metric are not in the cache")


class Undeclared(ImageMetric):
    columns: ClassVar[tuple[Column, ...]] = (Column("declared", "Declared", True),)

    def reset(self) -> None:
        pass

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        pass

    def compute(self) -> dict[str, float]:
        return {"declared": 1.0, "surprise": 2.0}


@pytest.fixture
def missing_metric() -> Iterator[str]:
    with registered("_test_missing_weights", NeedsWeights) as name:
        yield name


def test_a_metric_without_weights_is_recorded_as_missing(missing_metric: str) -> None:
    res = evaluate(nearest_x2, sr_samples(2, 32, 32), ["psnr", missing_metric, "ssim"], device="cpu")
    assert res.missing == {missing_metric: "weights for the test metric are not in the cache"}
    assert set(res.metrics) == {"psnr", "ssim"}
    assert json.loads(json.dumps(res.to_dict()))["missing"] == res.missing


def test_result_keys_must_be_declared() -> None:
    with registered("_test_undeclared", Undeclared) as name, pytest.raises(GankdError, match="surprise"):
        evaluate(nearest_x2, sr_samples(1, 32, 32), [name], device="cpu")


def test_unknown_metric_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'psnrr'; valid choices: .*psnr.*ssim"):
        evaluate(nearest_x2, sr_samples(1, 32, 32), ["psnrr"], device="cpu")


def test_request_errors_are_clear() -> None:
    s = sr_samples(2, 32, 32)
    with pytest.raises(ConfigError, match="bad options"):
        evaluate(nearest_x2, s, ["psnr"], device="cpu", metric_options={"psnr": {"crop": 0}})
    with pytest.raises(ConfigError, match="not requested: ssim"):
        evaluate(nearest_x2, s, ["psnr"], device="cpu", metric_options={"ssim": {}})
    with pytest.raises(ConfigError, match="unknown sample to keep 'nope'"):
        evaluate(nearest_x2, s, ["psnr"], device="cpu", keep_outputs=["nope"])
    with pytest.raises(ConfigError, match="mixes SR scales"):
        evaluate(nearest_x2, s + sr_samples(1, 32, 32, scale=4, start=9), ["psnr"], device="cpu")
    with pytest.raises(ConfigError, match="empty"):
        evaluate(nearest_x2, [], ["psnr"], device="cpu")
    with pytest.raises(GankdError, match=r"does not match HR \(2, 3, 32, 32\)"):
        evaluate(lambda x: x, s, ["psnr"], device="cpu")
    with pytest.raises(GankdError, match="NaN"):
        evaluate(lambda x: nearest_x2(x) * float("nan"), s, ["psnr"], device="cpu")


def test_metric_options_reach_the_metric() -> None:
    s = sr_samples(2, 32, 32)
    a = evaluate(nearest_x2, s, ["psnr"], device="cpu")
    b = evaluate(nearest_x2, s, ["psnr"], device="cpu", metric_options={"psnr": {"crop_border": 0}})
    sr = quantize_like_png(torch.stack([nearest_x2(x.g_input[0][None])[0] for x in s]))
    hr = torch.stack([x.hr for x in s])
    assert b.metrics["psnr"] == pytest.approx(psnr_y(sr, hr, 0).mean().item(), abs=1e-9)
    assert a.metrics["psnr"] != b.metrics["psnr"]


class NoisyUpsampler(nn.Module):
    """Learned x2 upsampler with GCFSR's noise switch; records its state at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.noise = True
        self.seen: list[tuple[bool, bool, bool]] = []

    def set_random_noise(self, enabled: bool) -> None:
        self.noise = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, self.noise, torch.is_grad_enabled()))
        return F.pixel_shuffle(self.conv(x), 2)


def test_a_module_runs_in_eval_mode_without_noise_or_grad() -> None:
    net = NoisyUpsampler().train()
    evaluate(net, sr_samples(3, 32, 32), ["psnr"], device="cpu", batch_size=2)
    assert net.seen == [(False, False, False)] * 2
    assert net.training and net.noise
    with pytest.raises(ValueError, match="is on cpu but the evaluation device is meta"):
        evaluate(net, sr_samples(1, 32, 32), ["psnr"], device="meta")


def test_inference_ready_leaves_an_eval_model_without_noise() -> None:
    net = NoisyUpsampler().eval()
    with inference_ready(net):
        assert not net.training and not net.noise
    assert not net.training and not net.noise


def test_bicubic_baseline_upsamples_lr_like_matlab() -> None:
    samples = sr_samples(2, 36, 28, scale=4)
    gen = bicubic_generator(4, samples)
    assert isinstance(gen, BicubicUpsampler) and gen.passthrough_sizes == frozenset()
    out = gen(torch.stack([s.g_input[0] for s in samples]))
    ref = torch.stack([imresize(s.lr, 4) for s in samples])  # BasicSR's MATLAB-compatible imresize
    assert out.shape == (2, 3, 36, 28)
    assert (out - ref).abs().max().item() < 1e-5
    res = evaluate(gen, samples, ["psnr", "ssim"], device="cpu")
    assert 15 < res.metrics["psnr"] < 60


def test_bicubic_baseline_passes_through_an_already_upsampled_input() -> None:
    # GCFSR-style samples: the first input is the upsampled LR at HR size, the second a condition
    samples = []
    for s in sr_samples(2, 32, 32, scale=4):
        up = matlab_bicubic_upsample(s.lr[None], 4)[0]
        samples.append(EvalSample(s.name, (up, torch.tensor([0.25])), s.hr, s.lr, 4))
    gen = bicubic_generator(4, samples)
    assert gen.passthrough_sizes == frozenset({(32, 32)})
    x = samples[0].g_input[0][None]
    assert gen(x, torch.tensor([[0.25]])) is x
    res = evaluate(gen, samples, ["psnr"], device="cpu")
    lr_style = evaluate(bicubic_generator(4), sr_samples(2, 32, 32, scale=4), ["psnr"], device="cpu")
    assert res.metrics["psnr"] == pytest.approx(lr_style.metrics["psnr"], abs=1e-9)


def test_bicubic_baseline_rejects_inconsistent_sizes() -> None:
    s = sr_samples(1, 32, 32, scale=2)[0]
    with pytest.raises(ConfigError, match="neither the same size nor 4 times smaller"):
        bicubic_generator(4, [s])
    with pytest.raises(ConfigError, match="positive integer"):
        BicubicUpsampler(0)


def test_metric_that_cannot_judge_the_images_is_missing_not_fatal() -> None:
    """NIQE needs two 96x96 blocks: on 32x32 images it is reported missing with its reason."""
    samples = [EvalSample(f"s{i}", (torch.rand(3, 32, 32),), torch.rand(3, 32, 32), torch.rand(3, 8, 8), 4)
               for i in range(2)]
    result = evaluate(lambda x: x, samples, ["psnr", "niqe"], "cpu")
    assert "psnr" in result.metrics and "niqe" not in result.metrics
    assert "96x96" in result.missing["niqe"]


def test_a_metric_declares_per_image_values_exactly_when_it_keeps_them() -> None:
    """``has_per_image`` tells the verdicts whether a record can hold a metric per image: it must
    match whether the metric overrides ``per_image`` (FID and precision/recall are set metrics)."""
    declared = {}
    for name in METRICS.names():
        cls = METRICS.get(name)
        declared[name] = cls.has_per_image
        assert cls.has_per_image == (cls.per_image is not ImageMetric.per_image), name
    assert declared["lpips"] and declared["psnr"] and declared["niqe"] and not declared["fid"]
