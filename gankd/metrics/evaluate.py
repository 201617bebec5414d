"""The one evaluation entry point: run a generator over an evaluation set and score it.

``evaluate`` judges any callable that maps generator inputs to images (a trained student, the
teacher, the bicubic baseline); it knows nothing of training. Outputs are clamped to [0, 1] and
quantised to 8 bit, ``round(x * 255) / 255``, which is what saving a PNG and loading it back does
(and what BasicSR's ``tensor2img`` does before its metrics), so every metric sees the image a user
would see. HR images go through the same quantisation (a no-op for images loaded from 8-bit files).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gankd.datasets.batch import EvalSample
from gankd.errors import ConfigError, GankdError, MetricNotApplicable, MissingAssetError, unknown_choice
from gankd.metrics import METRICS, ImageMetric

GeneratorLike = Callable[..., torch.Tensor] | nn.Module


# --------------------------------------------------------------------------- inference set-up


@contextlib.contextmanager
def inference_ready(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and random noise off for the duration of the block.

    On exit the train/eval flag is restored. Noise follows that flag: a model that was training
    gets ``set_random_noise(True)`` back (noise injection is part of GCFSR's training forward);
    one that was already in eval mode is left with noise off. Models without
    ``set_random_noise`` are only switched to eval mode.
    """
    was_training = model.training
    has_noise = callable(getattr(model, "set_random_noise", None))
    model.eval()
    if has_noise:
        model.set_random_noise(False)
    try:
        yield model
    finally:
        model.train(was_training)
        if has_noise and was_training:
            model.set_random_noise(True)


class InferenceGenerator:
    """A model as an evaluation generator: eval mode, no autograd, random noise off per call."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        with inference_ready(self.model), torch.inference_mode():
            return self.model(*inputs)


def module_device(model: nn.Module) -> torch.device | None:
    """Device of the first parameter or buffer (None for a model without tensors)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return None


def check_on_device(model: nn.Module, device: torch.device | str) -> None:
    have, want = module_device(model), torch.device(device)
    if have is not None and (have.type, have.index or 0) != (want.type, want.index or 0):
        raise ValueError(f"{type(model).__name__} is on {have} but the evaluation device is {want}; "
                         f"move it first (model.to({str(want)!r}))")


# --------------------------------------------------------------------------- bicubic baseline


def _matlab_cubic(x: np.ndarray) -> np.ndarray:
    # Keys' cubic with a = -0.5, MATLAB imresize's 'bicubic' (torch's bicubic uses a = -0.75)
    ax = np.abs(x)
    near = (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
    far = (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def matlab_upsample_taps(in_len: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (out, 4) and weights (out, 4) of MATLAB ``imresize(x, scale, 'bicubic')``, scale >= 1.

    Output pixel ``i`` (1-based) sits at input coordinate ``u = i / s + (1 - 1 / s) / 2``; its four
    taps are the input pixels within 2 of ``u``, mirrored at the borders (MATLAB's symmetric
    padding, ``0 -> 1``, ``-1 -> 2``). Upsampling needs no antialiasing, so the kernel is unscaled.
    Computed in numpy, so that a traced forward (fvcore, export) sees constants; cached per size:
    the returned tensors are shared, never modify them.
    """
    u = np.arange(1, in_len * scale + 1) / scale + 0.5 * (1 - 1 / scale)
    taps = np.floor(u - 2)[:, None] + np.arange(1, 5)  # 1-based input indices
    weights = _matlab_cubic(u[:, None] - taps)
    weights /= weights.sum(1, keepdims=True)
    idx = (taps.astype(np.int64) - 1) % (2 * in_len)  # mirror with period 2L (1-pixel inputs too)
    idx = np.where(idx >= in_len, 2 * in_len - 1 - idx, idx)
    return torch.from_numpy(idx), torch.from_numpy(weights.astype(np.float32))


def matlab_bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, h*scale, w*scale), equal to BasicSR's (MATLAB) ``imresize`` up to float error.

    Vectorised: one gather of the 4 taps and a weighted sum per axis (H first, as BasicSR does).
    """
    n, c, h, w = (int(d) for d in x.shape)  # plain ints also under jit tracing (fvcore)
    idx_h, w_h = matlab_upsample_taps(h, scale)
    idx_w, w_w = matlab_upsample_taps(w, scale)
    dev, dt = x.device, x.dtype
    rows = x.index_select(2, idx_h.flatten().to(dev)).view(n, c, h * scale, 4, w)
    x = torch.einsum("nchkw,hk->nchw", rows, w_h.to(dev, dt))
    cols = x.index_select(3, idx_w.flatten().to(dev)).view(n, c, h * scale, w * scale, 4)
    return torch.einsum("nchwk,wk->nchw", cols, w_w.to(dev, dt))


class BicubicUpsampler(nn.Module):
    """The bicubic baseline as a generator: MATLAB-bicubic upsampling of the first input by ``scale``.

    Inputs whose spatial size is in ``passthrough_sizes`` are already upsampled LR images at HR size
    (GCFSR's first input is the bicubic-upsampled LR); they are returned unchanged. Other inputs are
    ignored (GCFSR's conditioning).
    """

    def __init__(self, scale: int, passthrough_sizes: Sequence[tuple[int, int]] = ()) -> None:
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise ConfigError(f"bicubic scale must be a positive integer, got {scale}")
        self.scale = int(scale)
        self.passthrough_sizes = frozenset(tuple(s) for s in passthrough_sizes)

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) in self.passthrough_sizes:
            return x
        return matlab_bicubic_upsample(x, self.scale)


def bicubic_generator(scale: int, samples: Sequence[EvalSample] = ()) -> BicubicUpsampler:
    """The bicubic baseline for an evaluation set.

    Decided per input size by comparing each sample's first generator input with its HR image:
    equal sizes mean the input is already the upsampled LR (GCFSR), returned as is; an input
    ``scale`` times smaller is upsampled (Real-ESRGAN). Without ``samples`` every input is upsampled.
    """
    passthrough: set[tuple[int, int]] = set()
    upsampled: set[tuple[int, int]] = set()
    for s in samples:
        inp, hr = tuple(s.g_input[0].shape[-2:]), tuple(s.hr.shape[-2:])
        if inp == hr:
            passthrough.add(inp)
        elif (inp[0] * scale, inp[1] * scale) == hr:
            upsampled.add(inp)
        else:
            raise ConfigError(f"sample {s.name!r}: first generator input is {inp[0]}x{inp[1]}, HR is "
                              f"{hr[0]}x{hr[1]}: neither the same size nor {scale} times smaller")
    if clash := passthrough & upsampled:
        raise ConfigError(f"bicubic baseline: input size {sorted(clash)[0]} is both HR-sized and LR-sized "
                          "in this evaluation set")
    return BicubicUpsampler(scale, sorted(passthrough))


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvalResult:
    metrics: dict[str, float]  # every result key of every metric that ran
    higher_is_better: dict[str, bool]  # per result key
    missing: dict[str, str]  # metric name -> why it is absent (MissingAssetError, MetricNotApplicable)
    num_images: int
    wall_s: float  # the whole evaluation: generator, quantisation and metrics
    generator_s: float  # time inside the generator
    metric_s: dict[str, float]  # time in each metric's update + compute
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # kept SR images, (3, H, W) on CPU
    #: result key -> evaluation image name -> its value, for the metrics with a value per image
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record (without the kept images). PSNR of a perfect output is ``inf``."""
        return {"metrics": dict(self.metrics), "higher_is_better": dict(self.higher_is_better),
                "missing": dict(self.missing), "num_images": self.num_images,
                "wall_s": self.wall_s, "generator_s": self.generator_s, "metric_s": dict(self.metric_s),
                "per_image": {k: dict(v) for k, v in self.per_image.items()}}


def quantize_like_png(img: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels, kept as float: what a PNG round trip gives."""
    return (img.float().clamp(0, 1) * 255.0).round() / 255.0


def _build_metrics(names: Sequence[str], scale: int, device: torch.device,
                   options: dict[str, dict[str, Any]]) -> tuple[dict[str, ImageMetric], dict[str, str]]:
    built: dict[str, ImageMetric] = {}
    missing: dict[str, str] = {}
    for name in names:
        cls = METRICS.get(name)  # unknown name -> ConfigError listing the registered metrics
        opts = options.get(name, {})
        try:
            inspect.signature(cls).bind(scale, device, **opts)
        except TypeError as e:
            raise ConfigError(f"metric {name!r}: bad options {sorted(opts)}: {e}") from None
        try:
            built[name] = cls(scale, device, **opts)
        except MissingAssetError as e:
            missing[name] = str(e)
    return built, missing


def _groups(samples: Sequence[EvalSample], batch_size: int) -> Iterator[list[EvalSample]]:
    """Batches of samples with equal input and HR shapes, in first-appearance order of the shapes."""
    by_shape: dict[tuple, list[EvalSample]] = {}
    for s in samples:
        key = (tuple(tuple(t.shape) for t in s.g_input), tuple(s.hr.shape))
        by_shape.setdefault(key, []).append(s)
    for group in by_shape.values():
        for i in range(0, len(group), batch_size):
            yield group[i:i + batch_size]


def _check_request(samples: Sequence[EvalSample], metrics: Sequence[str], batch_size: int,
                   options: dict[str, dict[str, Any]], keep_outputs: Sequence[str]) -> int:
    if not samples:
        raise ConfigError("evaluation set is empty")
    if not metrics:
        raise ConfigError("no metrics requested")
    if dupes := sorted({m for m in metrics if list(metrics).count(m) > 1}):
        raise ConfigError(f"metric listed twice: {', '.join(dupes)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if stray := sorted(set(options) - set(metrics)):
        raise ConfigError(f"metric_options for metrics not requested: {', '.join(stray)}")
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ConfigError("evaluation sample names are not unique")
    for want in keep_outputs:
        if want not in names:
            raise unknown_choice("sample to keep", want, names)
    scales = {s.scale for s in samples}
    if len(scales) != 1:
        raise ConfigError(f"evaluation set mixes SR scales {sorted(scales)}; evaluate one scale at a time")
    return scales.pop()


def evaluate(generator: GeneratorLike, samples: Sequence[EvalSample], metrics: Sequence[str],
             device: torch.device | str, batch_size: int = 4,
             metric_options: dict[str, dict[str, Any]] | None = None,
             keep_outputs: Sequence[str] = ()) -> EvalResult:
    """Run ``generator(*g_input_batch)`` over ``samples`` and score the outputs with ``metrics``.

    Samples of equal shapes are stacked into batches of up to ``batch_size``. An ``nn.Module`` is
    run in eval mode with noise off under ``torch.inference_mode`` (state restored afterwards) and
    must already be on ``device``; any other callable is called as is, under inference mode.
    Outputs are clamped and quantised to 8 bit (``quantize_like_png``) before every metric.
    A metric whose construction raises ``MissingAssetError`` is skipped and listed in ``missing``
    with the reason; every other error propagates.
    """
    t_start = time.perf_counter()
    device = torch.device(device)
    options = dict(metric_options or {})
    scale = _check_request(samples, metrics, batch_size, options, keep_outputs)
    built, missing = _build_metrics(metrics, scale, device, options)
    if isinstance(generator, nn.Module):
        check_on_device(generator, device)
        run: Callable[..., torch.Tensor] = InferenceGenerator(generator)
    else:
        run = generator
    keep = set(keep_outputs)
    order: list[str] = []  # the images in the order the metrics saw them (batched by shape)
    outputs: dict[str, torch.Tensor] = {}
    metric_s = dict.fromkeys(built, 0.0)
    generator_s = 0.0
    for metric in built.values():
        metric.reset()

    for group in _groups(samples, batch_size):
        g_input = tuple(torch.stack([s.g_input[i] for s in group]).to(device)
                        for i in range(len(group[0].g_input)))
        hr = quantize_like_png(torch.stack([s.hr for s in group]).to(device))
        t0 = time.perf_counter()
        with torch.inference_mode():
            sr = run(*g_input)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        generator_s += time.perf_counter() - t0
        _check_output(sr, hr, group)
        sr = quantize_like_png(sr)
        order.extend(s.name for s in group)
        for name, metric in list(built.items()):
            t0 = time.perf_counter()
            try:
                metric.update(sr, hr)
            except MetricNotApplicable as e:
                missing[name] = str(e)
                del built[name]
            metric_s[name] += time.perf_counter() - t0
        for i, s in enumerate(group):
            if s.name in keep:
                outputs[s.name] = sr[i].cpu()

    values: dict[str, float] = {}
    better: dict[str, bool] = {}
    per_image: dict[str, dict[str, float]] = {}
    for name, metric in built.items():
        t0 = time.perf_counter()
        result = metric.compute()
        metric_s[name] += time.perf_counter() - t0
        if clash := set(result) & set(values):
            raise GankdError(f"metric {name!r} returns key(s) {sorted(clash)} already set by another metric")
        declared = metric.higher_is_better()
        if undeclared := sorted(set(result) - set(declared)):
            raise GankdError(f"metric {name!r} returned {undeclared} without declaring them in "
                             "columns")
        values.update(result)
        better.update({k: declared[k] for k in result})
        for key, vals in metric.per_image().items():
            if key not in result or len(vals) != len(order):
                raise GankdError(f"metric {name!r}: {len(vals)} per-image values of {key!r} for "
                                 f"{len(order)} images (or a key compute() did not return)")
            per_image[key] = dict(zip(order, (float(v) for v in vals)))
    return EvalResult(metrics=values, higher_is_better=better, missing=missing, num_images=len(samples),
                      wall_s=time.perf_counter() - t_start, generator_s=generator_s, metric_s=metric_s,
                      outputs=outputs, per_image=per_image)


def _check_output(sr: object, hr: torch.Tensor, group: list[EvalSample]) -> None:
    names = ", ".join(s.name for s in group[:3]) + (", ..." if len(group) > 3 else "")
    if not isinstance(sr, torch.Tensor):
        raise GankdError(f"generator returned {type(sr).__name__}, not a tensor (samples {names})")
    if sr.shape != hr.shape:
        raise GankdError(f"generator output {tuple(sr.shape)} does not match HR {tuple(hr.shape)} "
                         f"(samples {names})")
    if not torch.isfinite(sr).all():
        raise GankdError(f"generator output has NaN/inf values (samples {names})")

