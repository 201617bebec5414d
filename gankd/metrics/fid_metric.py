"""Patch FID and KID with pytorch-fid's FID Inception (pool3, 2048-d).

Patch rule: every SR and HR image (same size) is cut into ``patch`` x ``patch`` tiles on a grid
anchored at the top-left corner with step ``stride`` (default ``stride = patch``: non-overlapping);
tiles that would cross the right or bottom edge are dropped. ``patch=None`` uses whole images.
Each tile goes through pytorch-fid's ``InceptionV3([3])`` unchanged: bilinear resize to 299x299
(``align_corners=False``), ``2x - 1``, pool3. SR tiles form one set, HR tiles the other.
Images are clamped to [0, 1] and, with ``quantize=True`` (default), rounded to 8-bit levels first,
so the numbers are those pytorch-fid gives on the saved PNGs. HR tile features are cached per
process (``HR_FEATURES``, keyed by the HR pixels and the tiling) since every model of a benchmark is
judged on the same HR images; ``cache_hr=False`` turns that off.

* ``fid``: Frechet distance between Gaussians fitted to the two sets (the same number as
  pytorch-fid's ``calculate_frechet_distance``; computed without ``sqrtm``, see
  ``frechet_distance``). With fewer tiles than 2048 the covariances are rank-deficient and FID is
  biased upwards, so compare FIDs only at equal ``fid_patches``.
* ``kid``: unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3`` averaged over
  ``kid_subsets`` random subsets of ``kid_subset_size`` tiles per set (as KID / torch-fidelity;
  the subset size is capped by the smaller set), ``kid_std`` its standard deviation over subsets.
* ``fid_patches``: tiles per set.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import numpy as np
import scipy.linalg
import torch
from torch import nn

from gankd.errors import ConfigError, GankdError
from gankd.metrics import METRICS, Column, ImageMetric

FEATURE_DIM = 2048

_MODELS: dict[str, tuple[nn.Module, str]] = {}
_MODELS_LOCK = threading.Lock()


class _FeatureCache:
    """LRU of HR tile features keyed by the HR pixels and the tiling: every model of a benchmark
    is judged on the same HR images, so their features are computed once per process."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(images: torch.Tensor, *config: object) -> tuple:
        data = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return (hashlib.blake2b(data.tobytes(), digest_size=20).hexdigest(), tuple(images.shape), *config)

    def get(self, key: tuple) -> torch.Tensor | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple, feats: torch.Tensor) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = feats
            self._bytes += feats.numel() * feats.element_size()
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


HR_FEATURES = _FeatureCache()


@contextmanager
def _fid_weights_instead_of_download(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """While pytorch-fid builds its FID Inception, hand it ``state`` instead of its URL download.

    ``pytorch_fid.inception.fid_inception_v3`` fetches ``FID_WEIGHTS_URL`` with
    ``load_state_dict_from_url`` and loads the result strictly; we swap that one module-level
    function for the duration of the construction, so pytorch-fid's own code builds the network
    and checks every key. The 1008-way ``fc`` it expects (and never uses for pool3) is zero.
    """
    import pytorch_fid.inception as pfi

    def provide(url: str, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        if url != pfi.FID_WEIGHTS_URL:
            raise GankdError(f"pytorch-fid asked for an unexpected download: {url}")
        full = dict(state)
        full.setdefault("fc.weight", torch.zeros(1008, FEATURE_DIM))
        full.setdefault("fc.bias", torch.zeros(1008))
        return full

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = provide
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


def build_inception(device: torch.device | str = "cpu", prepare_missing: bool = True
                    ) -> tuple[nn.Module, str]:
    """pytorch-fid's ``InceptionV3([3], resize_input=True, normalize_input=True)`` with the FID
    weights, frozen, in eval mode on ``device``, and where the weights came from. Cached per device.

    Raises MissingAssetError when neither an official file nor the converted copy can be had.
    """
    key = str(torch.device(device))
    with _MODELS_LOCK:
        if key not in _MODELS:
            from pytorch_fid.inception import InceptionV3

            from gankd.assets.fid_inception import fid_inception_state

            state, source = fid_inception_state(prepare_missing=prepare_missing)
            with _fid_weights_instead_of_download(state):
                model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]],
                                    resize_input=True, normalize_input=True, use_fid_inception=True)
            # channels-last convolutions run ~1.5x faster on CPU (oneDNN); same numbers to ~1e-5
            model = model.eval().to(device, memory_format=torch.channels_last)
            _MODELS[key] = (model, source)
        return _MODELS[key]


def pool3_features(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """(N, 2048) float32 pool3 features of (N, 3, H, W) images in [0, 1], on the CPU."""
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for chunk in images.split(batch_size):
            chunk = chunk.to(device, torch.float32).contiguous(memory_format=torch.channels_last)
            feats = model(chunk)[0]
            out.append(feats.flatten(1).float().cpu())
    return torch.cat(out) if out else torch.empty(0, FEATURE_DIM)


def extract_patches(images: torch.Tensor, patch: int | None, stride: int | None = None) -> torch.Tensor:
    """(N * rows * cols, C, patch, patch) tiles on a top-left-anchored grid with step ``stride``
    (default ``patch``), row-major per image; tiles crossing the right/bottom edge are dropped."""
    if patch is None:
        return images
    stride = stride or patch
    h, w = images.shape[-2:]
    if h < patch or w < patch:
        raise ConfigError(f"fid: patch {patch} is larger than the {h}x{w} images; "
                          "use a smaller patch or patch=None for whole images")
    tiles = images.unfold(2, patch, stride).unfold(3, patch, stride)  # N, C, rows, cols, p, p
    c = images.shape[1]
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, patch, patch)


def _as_float64(feats: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = feats.detach().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
    return arr.astype(np.float64, copy=False)


def frechet_distance(feats1: torch.Tensor | np.ndarray, feats2: torch.Tensor | np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) for (N, d) feature sets.

    The trace of the matrix square root is the sum of square roots of the eigenvalues of S1 S2,
    which are those of the symmetric PSD matrix F^T S2 F for any factor S1 = F F^T. F is the
    centred data itself when N1 <= d (an N1 x N1 problem) and the Cholesky factor of S1
    otherwise, so one symmetric eigenvalue solve replaces scipy's ``sqrtm`` (a 2048x2048 Schur
    decomposition, tens of seconds on two cores) and no imaginary parts can appear.
    """
    x, y = _as_float64(feats1), _as_float64(feats2)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise GankdError(f"frechet_distance: need (N, d) sets of one d, got {x.shape} and {y.shape}")
    if min(len(x), len(y)) < 2:
        raise GankdError(f"frechet_distance: need at least 2 samples per set, got {len(x)} and {len(y)}")
    mu1, mu2 = x.mean(0), y.mean(0)
    xc, yc = x - mu1, y - mu2
    s2 = yc.T @ yc / (len(y) - 1)
    factor = _covariance_factor(xc)
    m = factor.T @ s2 @ factor
    eig = scipy.linalg.eigvalsh((m + m.T) / 2, driver="evr")
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    tr1 = (xc * xc).sum() / (len(x) - 1)
    tr2 = np.trace(s2)
    return float(((mu1 - mu2) ** 2).sum() + tr1 + tr2 - 2 * tr_sqrt)


def _covariance_factor(xc: np.ndarray) -> np.ndarray:
    """F with F F^T = cov of the centred rows ``xc``: (d, N) when N <= d, else (d, d)."""
    n, d = xc.shape
    if n <= d:
        return xc.T / math.sqrt(n - 1)
    s1 = xc.T @ xc / (n - 1)
    try:
        return np.linalg.cholesky(s1)
    except np.linalg.LinAlgError:  # singular (e.g. a feature that is always 0): PSD square root
        w, v = scipy.linalg.eigh(s1)
        return v * np.sqrt(np.clip(w, 0, None))


def _poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 for a batch of (S, m, m) kernel blocks -> (S,)."""
    m = kxx.shape[-1]
    off_xx = kxx.sum((-2, -1)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)
    off_yy = kyy.sum((-2, -1)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (off_xx + off_yy) / (m * (m - 1)) - 2 * kxy.sum((-2, -1)) / (m * m)


def kernel_inception_distance(feats1: torch.Tensor | np.ndarray, feats2: torch.Tensor | np.ndarray,
                              subsets: int = 100, subset_size: int = 1000, seed: int = 0,
                              max_gram_bytes: int = 1 << 29) -> tuple[float, float]:
    """(mean, std) over ``subsets`` of the unbiased MMD^2 with kernel ``(x.y / d + 1)^3``.

    Each subset draws ``min(subset_size, N1, N2)`` rows without replacement from each set
    (``numpy.random.RandomState(seed).choice``, as torch-fidelity). When the full Gram matrices fit
    in ``max_gram_bytes`` they are computed once (float64) and subsets only index into them, which
    for typical sizes is ~``subsets`` times less arithmetic than per-subset kernels.
    """
    x = torch.from_numpy(_as_float64(feats1))
    y = torch.from_numpy(_as_float64(feats2))
    n1, n2 = len(x), len(y)
    m = min(subset_size, n1, n2)
    if m < 2:
        raise GankdError(f"KID needs at least 2 samples per set, got {n1} and {n2}")
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(n1, m, replace=False), rng.choice(n2, m, replace=False)) for _ in range(subsets)]
    values = torch.empty(subsets, dtype=torch.float64)
    if (n1 + n2) ** 2 * 8 <= max_gram_bytes:
        kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        for s, (i, j) in enumerate(draws):
            ti, tj = torch.from_numpy(i), torch.from_numpy(j)
            values[s] = _mmd2_unbiased(kxx[ti][:, ti], kyy[tj][:, tj], kxy[ti][:, tj])
    else:
        for s, (i, j) in enumerate(draws):
            xs, ys = x[torch.from_numpy(i)], y[torch.from_numpy(j)]
            values[s] = _mmd2_unbiased(_poly_kernel(xs, xs), _poly_kernel(ys, ys), _poly_kernel(xs, ys))
    return float(values.mean()), float(values.std(unbiased=False))


@METRICS.register("fid")
class PatchFID(ImageMetric):
    """Patch FID / KID between SR and HR tiles (see the module docstring for the tiling rule)."""

    name: ClassVar[str] = "fid"
    columns: ClassVar[tuple[Column, ...]] = (
        Column("fid", "FID", False, "patch FID against the HR patches; lower is better; compare only at "
               "equal patch counts", digits=2, tolerance=0.5, order=40),
        Column("kid", "KID", False, "kernel inception distance over the same patches; lower is better",
               digits=4, tolerance=0.001, order=41),
        Column("kid_std", "KID s.d.", False, "spread of KID over its subsets", shown=False),
        Column("fid_patches", "FID patches", True, "HR-sized patches FID and KID were computed on",
               shown=False),
    )
    needs_reference: ClassVar[bool] = True

    def __init__(self, scale: int, device: torch.device | str = "cpu", *, patch: int | None = 64,
                 stride: int | None = None, batch_size: int = 32, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, seed: int = 0, quantize: bool = True,
                 cache_hr: bool = True) -> None:
        super().__init__(scale, device)
        for key, value, low in (("patch", patch, 1), ("stride", stride, 1), ("batch_size", batch_size, 1),
                                ("kid_subsets", kid_subsets, 1), ("kid_subset_size", kid_subset_size, 2)):
            if value is not None and (not isinstance(value, int) or value < low):
                raise ConfigError(f"fid: {key} must be an integer >= {low}, got {value!r}")
        self.patch, self.stride, self.batch_size = patch, stride, batch_size
        self.kid_subsets, self.kid_subset_size, self.seed = kid_subsets, kid_subset_size, seed
        self.quantize, self.cache_hr = quantize, cache_hr
        self.model, self.weights_source = build_inception(self.device)
        self.reset()

    def reset(self) -> None:
        self._sr: list[torch.Tensor] = []
        self._hr: list[torch.Tensor] = []

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        if sr.shape != hr.shape or sr.ndim != 4 or sr.shape[1] != 3:
            raise GankdError(f"fid: SR and HR must both be (N, 3, H, W) of one size, "
                             f"got {tuple(sr.shape)} and {tuple(hr.shape)}")
        sr, hr = self._prepare(sr), self._prepare(hr)
        key = HR_FEATURES.key(hr, self.patch, self.stride, str(self.device)) if self.cache_hr else None
        hr_feats = HR_FEATURES.get(key) if key else None
        if hr_feats is None:
            tiles = extract_patches(torch.cat([sr, hr]), self.patch, self.stride)
            feats = pool3_features(self.model, tiles, self.batch_size)
            sr_feats, hr_feats = feats.chunk(2)
            if key:
                HR_FEATURES.put(key, hr_feats)
        else:
            tiles = extract_patches(sr, self.patch, self.stride)
            sr_feats = pool3_features(self.model, tiles, self.batch_size)
        self._sr.append(sr_feats)
        self._hr.append(hr_feats)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach().float().clamp(0, 1)
        if self.quantize:  # what pytorch-fid would read back from 8-bit PNGs
            images = (images * 255).round() / 255
        return images

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(SR, HR) pool3 features accumulated so far."""
        empty = torch.empty(0, FEATURE_DIM)
        return (torch.cat(self._sr) if self._sr else empty, torch.cat(self._hr) if self._hr else empty)

    def compute(self) -> dict[str, float]:
        sr, hr = self.features()
        if len(sr) < 2:
            raise GankdError(f"fid: {len(sr)} patches so far; FID needs at least 2 (feed more or "
                             "larger images, or a smaller patch)")
        kid, kid_std = kernel_inception_distance(sr, hr, self.kid_subsets, self.kid_subset_size, self.seed)
        return {"fid": frechet_distance(sr, hr), "kid": kid, "kid_std": kid_std,
                "fid_patches": float(len(sr))}


__all__ = ["PatchFID", "build_inception", "extract_patches", "frechet_distance",
           "kernel_inception_distance", "pool3_features"]

