"""A test photo re-saved, re-encoded, resized or trimmed is the same photo (issue 38, item 2): its
copy in train/ or val/ is dropped with a line naming both, while distinct photos stay distinct
and the builtin split loses nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gankd.bench.data import check_data
from gankd.bench.suite import load_suite
from gankd.datasets import near_duplicates as near
from gankd.datasets.builtin_dataset import BUILTIN_IMAGES, builtin_path
from gankd.datasets.images import read_image
from gankd.datasets.source import open_data

HELD_OUT = [n for n, (_, _, split) in BUILTIN_IMAGES.items() if split != "train"]
PHOTOS = {n: read_image(builtin_path(n)) for n in BUILTIN_IMAGES}
PRINTS = {n: near.fingerprint(img) for n, img in PHOTOS.items()}


def _encode(img: np.ndarray, fmt: str, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **({} if fmt == "PNG" else {"quality": quality}))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@st.composite
def copies(draw: st.DrawFn) -> tuple[str, np.ndarray, str]:
    """A held-out builtin photo, cropped by up to 2 % of each side (anywhere), resized by 0.25x to
    2x (each side at least 64 pixels), then re-encoded: the documented range."""
    name = draw(st.sampled_from(HELD_OUT))
    img = PHOTOS[name]
    h, w = img.shape[:2]
    # allow_subnormal=False: the engine flushes denormals process-wide (trainer.py), and hypothesis
    # refuses subnormal draws once a training test has run earlier in the same process.
    cut = [draw(st.floats(0, 0.02, allow_subnormal=False)) for _ in range(4)]  # top, bottom, left, right
    img = img[round(cut[0] * h):h - round(cut[1] * h), round(cut[2] * w):w - round(cut[3] * w)]
    scale = draw(st.floats(0.25, 2.0, allow_subnormal=False))
    size = (max(64, round(img.shape[1] * scale)), max(64, round(img.shape[0] * scale)))
    resample = draw(st.sampled_from([Image.Resampling.BICUBIC, Image.Resampling.LANCZOS,
                                     Image.Resampling.BILINEAR, Image.Resampling.NEAREST]))
    img = np.asarray(Image.fromarray(img).resize(size, resample))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "WEBP"]))
    quality = draw(st.integers(30, 100))
    what = f"{name}: cut {np.round(cut, 3).tolist()}, x{scale:.2f} {resample.name}, {fmt} q{quality}"
    return name, _encode(img, fmt, quality), what


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(copies())
def test_a_reencoded_resized_or_trimmed_photo_is_the_same_photo(copy):
    name, img, what = copy
    fp = near.fingerprint(img)
    assert near.same_photo(PRINTS[name], fp), (what, near.similarity(PRINTS[name], fp),
                                                near.colour_difference(PRINTS[name], fp))


def test_distinct_photos_stay_distinct():
    """Every pair of builtin photos and scikit-image's other photos (textures, greyscale scans)
    is below the threshold with room to spare, the two views of the stereo pair included (the
    module doc gives the measurement on 150 photos)."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    extra = {f: near.fingerprint(read_image(folder / f)) for f in ("brick.png", "camera.png", "cell.png",
                                                                   "coins.png", "grass.png", "gravel.png",
                                                                   "moon.png", "page.png", "text.png")
             if (folder / f).is_file()}
    prints = {**PRINTS, **extra}
    for a, b in itertools.combinations(prints, 2):
        assert near.similarity(prints[a], prints[b]) < 0.94, (a, b)
        assert not near.same_photo(prints[a], prints[b])


def test_smooth_images_of_other_colours_are_not_one_photo():
    """Two smooth random gradients (the split property test's photos) can share the direction of
    their few DCT coefficients; their colours tell them apart."""
    def gradient(seed: int) -> np.ndarray:
        small = np.random.default_rng(seed).integers(0, 256, (2, 2, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((32, 32), Image.Resampling.BICUBIC))

    a, b = near.fingerprint(gradient(1004)), near.fingerprint(gradient(1005))
    assert near.similarity(a, b) > near.SIMILAR and not near.same_photo(a, b)
    assert near.same_photo(a, near.fingerprint(_encode(gradient(1004), "JPEG", 90)))


def test_the_builtin_split_has_no_copies_across_splits():
    """So the rule, were it applied to the hand-made builtin split, would drop nothing."""
    splits = {split: [n for n, (_, _, s) in BUILTIN_IMAGES.items() if s == split] for split in near.PRIORITY}
    assert near.across_splits(splits, PRINTS) == []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path / "cache"))


def _folder(root: Path) -> Path:
    """train/ and test/ of other builtin photos, test/ holding astronaut."""
    for split, names in (("train", ["hubble_deep_field", "retina", "rocket", "motorcycle_left"]),
                         ("test", ["astronaut", "chelsea"])):
        (root / split).mkdir(parents=True, exist_ok=True)
        for n in names:
            Image.fromarray(PHOTOS[n]).save(root / split / f"{n}.png")
    return root


def test_a_resaved_test_photo_in_train_is_dropped_with_a_line_naming_both(tmp_path, cache, caplog):
    """What the issue found: test/astronaut.png re-saved as a pixel-identical PNG (other bytes)
    and as a JPEG at quality 95 trained with no word."""
    root = _folder(tmp_path / "d")
    Image.fromarray(PHOTOS["astronaut"]).save(root / "train" / "copy.png", compress_level=1)
    Image.fromarray(PHOTOS["astronaut"]).save(root / "train" / "copy.jpg", quality=95)
    setup = load_suite("smoke").models["realesrgan"]
    with caplog.at_level(logging.WARNING, logger="gankd.datasets"):
        checked = check_data(setup, str(root))
    splits = open_data(str(root)).splits(setup.data)
    names = {r.name for r in (*splits.train, *splits.val)}
    assert not names & {"train/copy.png", "train/copy.jpg"}
    assert checked.train + checked.val == 4
    assert "2 near-duplicate image(s) dropped" in caplog.text
    assert re.search(r"train/copy.jpg ~ test/astronaut.png \(0.99\d|1.000\)", caplog.text)
    assert "train/copy.png ~ test/astronaut.png (1.000)" in caplog.text


def test_a_copy_that_lands_in_val_by_name_order_is_dropped_too(tmp_path, cache, caplog):
    """Without train/ and test/ the split is by sha256 of the names: a copy may land in
    validation, which tuning scores on."""
    root = tmp_path / "flat"
    root.mkdir()
    for n in BUILTIN_IMAGES:
        Image.fromarray(PHOTOS[n]).save(root / f"{n}.png")
    cfg = dataclasses.replace(load_suite("smoke").models["realesrgan"].data, test_images=2, val_images=2)
    splits = open_data(str(root)).splits(cfg)

    def order(name: str) -> str:
        return hashlib.sha256(name.encode("utf-8")).hexdigest()

    # names that sort after the test images (so these stay the test set), one of them before the
    # first validation image (so without the rule it would be a validation image)
    names = [f"copy{i}.png" for i in range(500) if order(f"copy{i}.png") > order(splits.test[-1].name)]
    into_val = next(n for n in names if order(n) < order(splits.val[0].name))
    names = [into_val, *[n for n in names if n != into_val][:19]]
    original = PHOTOS[splits.test[0].name.removesuffix(".png")]
    for q, name in enumerate(names, 70):  # other bytes each: byte-identical copies are another rule
        Image.fromarray(_encode(original, "JPEG", q)).save(root / name)
    with caplog.at_level(logging.WARNING, logger="gankd.datasets"):
        after = open_data(str(root)).splits(cfg)
    assert [r.name for r in after.test] == [r.name for r in splits.test]
    assert not [r.name for r in (*after.train, *after.val) if r.name.startswith("copy")]
    assert "20 near-duplicate image(s) dropped" in caplog.text
    assert f"{into_val} ~ {splits.test[0].name}" in caplog.text
    assert os.path.isfile(root / into_val)  # dropped from the run, not from the folder
