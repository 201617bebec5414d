"""PSNR/SSIM equal BasicSR's calculate_psnr/calculate_ssim to 1e-6; NIQE is BasicSR's, offline."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

import gankd._basicsr as bsr  # installs BasicSR's torchvision alias before basicsr.utils below

# isort: split

from gankd.errors import MetricNotApplicable, MissingAssetError
from gankd.metrics import METRICS, niqe_metric
from gankd.metrics.psnr_ssim_metric import psnr_y, ssim_y

# photos that ship inside the scikit-image wheel (no download): name -> odd-sized crop (top, left, h, w)
PHOTOS = {
    "astronaut": (30, 41, 181, 227),
    "chelsea": (0, 0, 255, 301),
    "coffee": (77, 100, 199, 263),
    "rocket": (100, 200, 143, 187),
    "immunohistochemistry": (11, 3, 210, 157),
    "hubble_deep_field": (400, 500, 121, 135),
}


def photo(name: str, crop: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    top, left, h, w = crop or PHOTOS[name]
    img = getattr(data, name)()[top:top + h, left:left + w]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def _hwc(img: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(img.permute(1, 2, 0).numpy())


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()


def distort(img: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return (img + 0.06 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    if kind == "faint_noise":  # below 8-bit resolution for many pixels: tests the rounding
        return img + 0.002 * torch.randn(img.shape, generator=g)
    if kind == "blur":
        return _chw(cv2.GaussianBlur(_hwc(img), (9, 9), 2.0))
    if kind == "jpeg":
        u8 = (_hwc(img)[..., ::-1] * 255).round().astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, 15])
        assert ok
        return _chw(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] / 255.0)
    if kind == "shift":
        return torch.roll(img, shifts=(1, -2), dims=(1, 2))
    if kind == "down_up_x2":  # the SR setting: detail lost by downsampling, smooth reconstruction
        h, w = img.shape[1:]
        small = cv2.resize(_hwc(img), ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
        return _chw(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)).clamp(0, 1)
    raise ValueError(kind)


DISTORTIONS = ["noise", "faint_noise", "blur", "jpeg", "shift", "down_up_x2"]


def basicsr_psnr_ssim(sr: torch.Tensor, hr: torch.Tensor, crop: int) -> tuple[float, float]:
    """BasicSR's own validation path: tensor2img (RGB float -> BGR uint8), then the metrics."""
    a, b = bsr.tensor2img(sr), bsr.tensor2img(hr)
    return (bsr.calculate_psnr(a, b, crop, input_order="HWC", test_y_channel=True),
            bsr.calculate_ssim(a, b, crop, input_order="HWC", test_y_channel=True))


@pytest.mark.parametrize("name", list(PHOTOS))
def test_psnr_ssim_equal_basicsr_on_photos(name: str) -> None:
    hr = photo(name)
    for i, kind in enumerate(DISTORTIONS):
        sr = distort(hr, kind, seed=i)
        crop = (2, 3, 4)[i % 3]
        ref_psnr, ref_ssim = basicsr_psnr_ssim(sr, hr, crop)
        got_psnr = psnr_y(sr[None], hr[None], crop).item()
        got_ssim = ssim_y(sr[None], hr[None], crop).item()
        assert abs(got_psnr - ref_psnr) < 1e-6, (name, kind, got_psnr, ref_psnr)
        assert abs(got_ssim - ref_ssim) < 1e-6, (name, kind, got_ssim, ref_ssim)
        assert 10 < ref_psnr < 60 and 0.2 < ref_ssim < 1.0  # the distortions are real, not no-ops


def test_registered_metrics_average_per_image_over_batches() -> None:
    hrs = [photo("astronaut")[:, :120, :150], photo("chelsea")[:, :120, :150], photo("coffee")[:, :120, :150]]
    srs = [distort(h, k) for h, k in zip(hrs, ["noise", "jpeg", "blur"])]
    ref = [basicsr_psnr_ssim(s, h, 4) for s, h in zip(srs, hrs)]
    psnr, ssim = METRICS.get("psnr")(scale=4), METRICS.get("ssim")(scale=4)
    for m in (psnr, ssim):
        m.reset()
        m.update(torch.stack(srs[:2]), torch.stack(hrs[:2]))  # a batch of two, then one
        m.update(srs[2][None], hrs[2][None])
    assert psnr.compute()["psnr"] == pytest.approx(np.mean([r[0] for r in ref]), abs=1e-6)
    assert ssim.compute()["ssim"] == pytest.approx(np.mean([r[1] for r in ref]), abs=1e-6)
    assert psnr.higher_is_better() == {"psnr": True} and ssim.higher_is_better() == {"ssim": True}


def test_crop_border_is_scale_and_can_be_overridden() -> None:
    hr = photo("rocket")
    sr = hr.clone()
    sr[:, :, :2] = 1 - sr[:, :, :2]  # damage only the two leftmost columns
    for cls in ("psnr", "ssim"):
        cropped = METRICS.get(cls)(scale=2)
        cropped.update(sr[None], hr[None])
        full = METRICS.get(cls)(scale=2, crop_border=0)
        full.update(sr[None], hr[None])
        ref = basicsr_psnr_ssim(sr, hr, 0)[0 if cls == "psnr" else 1]
        assert cropped.compute()[cls] in (math.inf, 1.0)  # the damage is inside the 2-pixel border
        assert full.compute()[cls] == pytest.approx(ref, abs=1e-6)


def test_identical_and_sub_level_differences_are_perfect() -> None:
    hr = photo("chelsea")
    # 0.3 of an 8-bit level rounds away, as it would when the output is saved as PNG
    sr = hr + 0.3 / 255
    assert psnr_y(sr[None], hr[None], 4).item() == math.inf
    assert ssim_y(sr[None], hr[None], 4).item() == pytest.approx(1.0, abs=1e-12)


def test_bad_shapes_are_named() -> None:
    a = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(a, torch.rand(1, 3, 32, 31), 2)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        ssim_y(a[:, :1], a[:, :1], 2)
    with pytest.raises(ValueError, match="too small"):
        psnr_y(a, a, 16)
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(a[..., :16, :16], a[..., :16, :16], 3)


# ----------------------------------------------------------------------------------------- NIQE


def test_niqe_params_ship_with_basicsr() -> None:
    params = np.load(niqe_metric.niqe_params_file())
    assert params["mu_pris_param"].shape == (1, 36) and params["cov_pris_param"].shape == (36, 36)


def test_niqe_input_equals_basicsr_tensor2img() -> None:
    img = distort(photo("coffee"), "faint_noise")
    assert np.array_equal(niqe_metric.to_bgr_uint8(img), bsr.tensor2img(img))


def test_niqe_matches_basicsr_and_ranks_degradations() -> None:
    clean = torch.stack([photo("astronaut", (0, 0, 256, 256)), photo("coffee", (100, 200, 256, 256))])
    blurred = torch.stack([_chw(cv2.GaussianBlur(_hwc(c), (0, 0), 3.0)) for c in clean])
    noisy = torch.stack([distort(c, "noise") for c in clean])
    scores = {}
    for kind, batch in {"clean": clean, "blurred": blurred, "noisy": noisy}.items():
        m = METRICS.get("niqe")(scale=4)
        m.update(batch, None)
        scores[kind] = m.compute()["niqe"]
        direct = [bsr.calculate_niqe(bsr.tensor2img(img), 4, input_order="HWC", convert_to="y")
                  for img in batch]
        assert scores[kind] == pytest.approx(float(np.mean(direct)), abs=1e-9)
    assert scores["clean"] + 1.0 < scores["blurred"], scores
    assert scores["clean"] + 1.0 < scores["noisy"], scores
    assert METRICS.get("niqe").higher_is_better() == {"niqe": False}
    assert METRICS.get("niqe").needs_reference is False


def test_niqe_rejects_images_without_two_blocks() -> None:
    m = METRICS.get("niqe")(scale=4)
    with pytest.raises(MetricNotApplicable, match="at least 2 blocks"):
        m.update(torch.rand(1, 3, 103, 103), None)
    with pytest.raises(ValueError, match="before any update"):
        m.compute()


def test_niqe_of_partly_flat_images_is_basicsrs_quietly_and_of_a_flat_one_not_applicable() -> None:
    """A textureless block is one BasicSR's NIQE leaves out (numpy warns on the way: 'Mean of
    empty slice', printed once per evaluation before); an image without two textured blocks has
    no NIQE, and says so instead of failing the run with numpy's SVD error."""
    import warnings

    sky = photo("astronaut", (0, 0, 200, 200)).clone()
    sky[:, :100] = 0.5  # the top half one grey
    with warnings.catch_warnings():  # BasicSR's own call warns; ours must not
        warnings.simplefilter("ignore", RuntimeWarning)
        direct = bsr.calculate_niqe(bsr.tensor2img(sky), 4, input_order="HWC", convert_to="y")
    m = METRICS.get("niqe")(scale=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.update(sky[None], None)
    assert m.compute()["niqe"] == pytest.approx(float(direct), abs=1e-9) and math.isfinite(direct)
    with pytest.raises(MetricNotApplicable, match=r"niqe: undefined on image 1 .*flat image"):
        m.update(torch.stack([sky, torch.full_like(sky, 0.5)]), None)


def test_niqe_without_its_parameter_file_is_a_missing_asset(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setattr(niqe_metric, "niqe_params_file", lambda: tmp_path / "niqe_pris_params.npz")
    with pytest.raises(MissingAssetError, match="niqe_pris_params"):
        METRICS.get("niqe")(scale=4)
