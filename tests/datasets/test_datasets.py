"""Image loading, sources and splits, evaluation sets, training pools and online batches."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

from gankd.config import from_mapping
from gankd.datasets import DATASETS
from gankd.datasets.builtin_dataset import BUILTIN_IMAGES
from gankd.datasets.config import DataConfig
from gankd.datasets.crops import eval_boxes, random_crop
from gankd.datasets.evalset import build_evalset, build_valset
from gankd.datasets.images import ImageError, probe_size, read_image
from gankd.datasets.online import online_batches
from gankd.datasets.pool import build_pool
from gankd.datasets.seeding import derive_seed
from gankd.datasets.source import load_hr, open_data
from gankd.errors import ConfigError

REPO = ROOT

# small settings: Real-ESRGAN degrades 80px regions (its minimum is 76) and keeps 64px pairs
REALESRGAN = {"hr_crop": 64, "degrade_size": 80, "eval_hr": 96, "val_hr": 80, "pool_size": 6,
              "num_workers": 0, "test_images": 2, "val_images": 1}
GCFSR = {"degradation": "gcfsr", "degradation_args": {"scales": [4, 8], "eval_scale": 8}, "hr_crop": 32,
         "eval_hr": 32, "pool_size": 6, "num_workers": 0, "test_images": 2, "val_images": 1}


def cfg(base: dict, **over) -> DataConfig:
    return from_mapping(DataConfig, {**base, **over}, "test")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("GANKD_CACHE", str(path))
    return path


def smooth(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth colour fields with a few sharp edges."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img[h // 3:h // 2, w // 4:w // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


def save(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def photo_folder(root: Path, n: int = 6, size: tuple[int, int] = (120, 100)) -> Path:
    for i in range(n):
        save(root / f"{i:04d}.png", smooth(*size, seed=i))
    return root


# ---------------------------------------------------------------------------------------------
# reading images


def test_16bit_rgb_png_is_rounded_to_8bit(tmp_path):
    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    rgb16[0, 0] = [65535, 0, 32896]
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])  # OpenCV writes BGR
    got = read_image(path)
    want = np.rint(rgb16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert not np.array_equal(got, (rgb16 >> 8).astype(np.uint8))  # not a truncation to the high byte
    assert got[0, 0].tolist() == [255, 0, 128]


def test_16bit_grey_png(tmp_path):
    grey16 = (np.arange(30, dtype=np.uint16) * 2000).reshape(5, 6)
    path = tmp_path / "grey16.png"
    assert cv2.imwrite(str(path), grey16)
    got = read_image(path)
    want = np.rint(grey16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert got.shape == (5, 6, 3) and all(np.array_equal(got[:, :, c], want) for c in range(3))


def test_rgba_drops_alpha_and_keeps_colour(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3] = smooth(5, 4)
    rgba[..., 3] = 0  # fully transparent: the colour is still the colour
    rgba[0, 0, 3] = 255
    got = read_image(save(tmp_path / "a.png", rgba))
    assert got.shape == (4, 5, 3) and np.array_equal(got, rgba[..., :3])


def test_grey_and_palette_images_become_rgb(tmp_path):
    grey = smooth(6, 4)[:, :, 0]
    got = read_image(save(tmp_path / "g.png", grey))
    assert got.shape == (4, 6, 3) and all(np.array_equal(got[:, :, c], grey) for c in range(3))
    la = Image.fromarray(np.stack([grey, np.full_like(grey, 7)], -1), "LA")
    la.save(tmp_path / "la.png")
    assert np.array_equal(read_image(tmp_path / "la.png")[:, :, 1], grey)
    pal = Image.fromarray(smooth(6, 4)).convert("P")
    pal.save(tmp_path / "p.bmp")
    assert np.array_equal(read_image(tmp_path / "p.bmp"), np.asarray(pal.convert("RGB")))


def test_jpeg_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(smooth(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "cam.jpg", exif=exif, quality=95)
    assert probe_size(tmp_path / "cam.jpg") == (20, 40)
    assert read_image(tmp_path / "cam.jpg").shape == (40, 20, 3)


def test_corrupt_truncated_and_empty_files_name_themselves(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    with pytest.raises(ImageError, match=r"junk\.png"):
        read_image(junk)
    buf = io.BytesIO()
    Image.fromarray(smooth(64, 64)).save(buf, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert probe_size(cut) == (64, 64)  # the header is fine ...
    with pytest.raises(ImageError, match=r"cut\.jpg.*truncated"):  # ... the pixels are not
        read_image(cut)
    (tmp_path / "empty.webp").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty image file: .*empty\.webp"):
        read_image(tmp_path / "empty.webp")
    with pytest.raises(ImageError, match=r"not a readable image .*junk\.png"):
        probe_size(junk)


# ---------------------------------------------------------------------------------------------
# sources and splits


def test_registered_sources():
    assert DATASETS.names() == ["builtin", "faces", "folder", "lmdb", "photos"]


def test_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist: .*nowhere"):
        open_data(str(tmp_path / "nowhere"))
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="got a file"):
        open_data(str(tmp_path / "f.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no images .* under .*empty \(the folder is empty\)"):
        open_data(str(tmp_path / "empty")).splits(cfg(REALESRGAN))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"1 other file\(s\) ignored"):
        open_data(str(tmp_path / "notes")).splits(cfg(REALESRGAN))
    with pytest.raises(ConfigError, match="DATA must be"):
        open_data("")
    few = photo_folder(tmp_path / "few", n=3)
    with pytest.raises(ConfigError, match=r"has 3 image\(s\); test_images=2 \+ val_images=1 leave none"):
        open_data(str(few)).splits(cfg(REALESRGAN))


def test_folder_scans_recursively_any_layout(tmp_path):
    root = tmp_path / "mixed"
    save(root / "images1024x1024" / "00000" / "00000.png", smooth(100, 100))  # FFHQ
    save(root / "DIV2K_train_HR" / "0001.PNG", smooth(100, 90))  # DIV2K, upper-case extension
    save(root / "celeba" / "a.jpg", smooth(90, 90, seed=1))  # (the same pixels twice as JPEG would be
    save(root / "b.jpeg", smooth(90, 90))                    # one photo: byte-identical files)
    save(root / "c.webp", smooth(90, 90))
    save(root / "d.bmp", smooth(90, 90))
    save(root / ".hidden" / "e.png", smooth(90, 90))
    (root / "README.txt").write_text("not an image")
    src = open_data(str(root))
    names = sorted(r.name for r in src.images())
    assert names == ["DIV2K_train_HR/0001.PNG", "b.jpeg", "c.webp", "celeba/a.jpg", "d.bmp",
                     "images1024x1024/00000/00000.png"]
    assert {r.name: r.size for r in src.images()}["DIV2K_train_HR/0001.PNG"] == (100, 90)


def test_hash_split_is_fixed_and_disjoint(tmp_path):
    root = photo_folder(tmp_path / "d", n=9)
    c = cfg(REALESRGAN)
    s1 = open_data(str(root)).splits(c)
    assert (len(s1.test), len(s1.val), len(s1.train)) == (2, 1, 6)
    names = [{r.name for r in s1.get(k)} for k in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    # contents change, names do not: the split stays
    for r in s1.train:
        save(r.path, smooth(120, 100, seed=99))
    s2 = open_data(str(root)).splits(c)
    assert [r.name for r in s2.test] == [r.name for r in s1.test]
    assert [r.name for r in s2.val] == [r.name for r in s1.val]


def test_explicit_train_test_layout(tmp_path):
    root = tmp_path / "div2k"
    for i in range(4):
        save(root / "train" / f"t{i}.png", smooth(100, 100, i))
    save(root / "test" / "x.png", smooth(100, 100, 7))
    save(root / "LR_bicubic" / "x.png", smooth(25, 25, 7))
    s = open_data(str(root)).splits(cfg(REALESRGAN))
    assert [r.name for r in s.test] == ["test/x.png"]
    assert len(s.val) == 1 and len(s.train) == 3 and all(r.name.startswith("train/") for r in s.train + s.val)
    save(root / "val" / "v.png", smooth(100, 100, 8))
    s = open_data(str(root)).splits(cfg(REALESRGAN))
    assert [r.name for r in s.val] == ["val/v.png"] and len(s.train) == 4


def test_header_index_is_cached_and_refreshed(tmp_path, monkeypatch):
    root = photo_folder(tmp_path / "d", n=4)
    open_data(str(root)).images()
    import gankd.datasets.folder_dataset as fd

    calls = []
    real_probe = fd.probe_size
    monkeypatch.setattr(fd, "probe_size", lambda p: calls.append(p) or real_probe(p))
    assert len(open_data(str(root)).images()) == 4 and calls == []
    save(root / "0001.png", smooth(150, 140, 5))
    refs = {r.name: r for r in open_data(str(root)).images()}
    assert [p.name for p in calls] == ["0001.png"] and refs["0001.png"].size == (150, 140)


def test_builtin_works_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    src = open_data("builtin")
    s = src.splits(cfg(REALESRGAN))
    assert [r.name for r in s.test] == ["astronaut", "chelsea", "coffee"]
    assert [r.name for r in s.val] == ["grace_hopper"]
    assert [r.name for r in s.train] == ["hubble_deep_field", "immunohistochemistry", "motorcycle_left",
                                         "motorcycle_right", "retina", "rocket"]
    assert len(BUILTIN_IMAGES) == 10
    for ref in s.train + s.val + s.test:
        img = load_hr(ref, cfg(REALESRGAN))
        assert img.dtype == np.uint8 and img.shape == (ref.height, ref.width, 3)
        assert img.std() > 10  # a photograph, not a blank placeholder
    sizes = {r.name: r.size for r in s.train + s.val + s.test}
    assert sizes["astronaut"] == (512, 512) and sizes["grace_hopper"] == (512, 600)
    assert sizes["chelsea"] == (451, 300) and sizes["retina"] == (1411, 1411)


def test_small_images_error_or_skip_with_count(tmp_path, caplog):
    root = photo_folder(tmp_path / "d", n=8)
    c = cfg(REALESRGAN)
    train = open_data(str(root)).splits(c).train
    save(train[0].path, smooth(70, 60, 3))  # smaller than the 80px degrade region
    with pytest.raises(ImageError, match=rf"{train[0].name}: image is 70x60, smaller than the 80x80 train"):
        build_pool(c, str(root), seed=0)
    with caplog.at_level(logging.WARNING, logger="gankd.datasets"):
        pool = build_pool(cfg(REALESRGAN, small_images="skip"), str(root), seed=0)
    assert len(pool) == 6
    assert f"skipped 1 image(s) smaller than the 80x80 training crop: {train[0].name} (70x60)" in caplog.text


# ---------------------------------------------------------------------------------------------
# crops


def test_eval_boxes_centre_and_grid():
    assert eval_boxes(100, 80, 64, 1) == [(8, 18)]
    boxes = eval_boxes(200, 100, 64, 4)
    assert boxes == [(0, 0), (0, 136), (36, 0), (36, 136)]
    assert len(eval_boxes(70, 70, 64, 5)) == 5
    with pytest.raises(ValueError):
        eval_boxes(60, 100, 64, 1)


def test_random_crop_flips_and_rotations():
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    seen = set()
    for s in range(40):
        out = random_crop(img, 8, np.random.default_rng(s), hflip=True, rot90=True)
        seen.add(out.tobytes())
        assert sorted(out.reshape(-1).tolist()) == sorted(img.reshape(-1).tolist())
    assert len(seen) == 8  # the eight symmetries of the square
    plain = {random_crop(img, 8, np.random.default_rng(s), hflip=False, rot90=False).tobytes()
             for s in range(10)}
    assert plain == {img.tobytes()}


# ---------------------------------------------------------------------------------------------
# evaluation sets


def test_evalset_is_cached_verified_and_reproduces_the_seeded_degradation(cache, monkeypatch):
    c = cfg(REALESRGAN)
    ev = build_evalset(c, "builtin", "smoke")
    assert [s.name for s in ev.samples] == ["astronaut", "chelsea", "coffee"]
    s = ev.samples[0]
    assert s.hr.shape == (3, 96, 96) and s.lr.shape == (3, 24, 24) and s.scale == 4
    assert len(s.g_input) == 1 and torch.equal(s.g_input[0], s.lr)
    # the stored sample is exactly the centre crop degraded with the seed of (suite, name)
    img = load_hr(open_data("builtin").splits(c).test[0], c)
    (top, left), = eval_boxes(512, 512, 96, 1)
    hr = torch.from_numpy(img[top:top + 96, left:left + 96].transpose(2, 0, 1).copy()).float() / 255
    assert torch.equal(s.hr, hr)
    again = c.build_degradation().eval(hr[None], derive_seed("smoke", "astronaut", 0))
    assert torch.equal(s.lr, again.g_input[0][0])
    # the manifest holds the sha256 of every file
    manifest = json.loads((ev.root / "manifest.json").read_text())
    files = sorted(p.relative_to(ev.root).as_posix() for p in ev.root.rglob("*.png"))
    assert sorted(manifest["files"]) == files and len(files) == 6
    # second call: read from the cache, no degradation runs
    import gankd.datasets.realesrgan_degradation as rd

    monkeypatch.setattr(rd.RealESRGANDegradation, "eval", lambda *a, **k: pytest.fail("rebuilt"))
    ev2 = build_evalset(c, "builtin", "smoke")
    assert ev2.key == ev.key and ev2.manifest_sha256 == ev.manifest_sha256
    assert all(torch.equal(a.lr, b.lr) and torch.equal(a.hr, b.hr) for a, b in zip(ev.samples, ev2.samples))


def test_damaged_evalset_is_rebuilt_identically(caplog):
    c = cfg(REALESRGAN)
    ev = build_evalset(c, "builtin", "smoke")
    victim = next((ev.root / "LR").iterdir())
    victim.write_bytes(victim.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING, logger="gankd.datasets"):
        ev2 = build_evalset(c, "builtin", "smoke")
    assert "is damaged" in caplog.text and "does not match its sha256" in caplog.text
    assert ev2.manifest_sha256 == ev.manifest_sha256


def test_evalset_depends_on_suite_and_config():
    c = cfg(REALESRGAN)
    a, b = build_evalset(c, "builtin", "smoke"), build_evalset(c, "builtin", "cpu")
    assert a.key != b.key and not torch.equal(a.samples[0].lr, b.samples[0].lr)
    assert torch.equal(a.samples[0].hr, b.samples[0].hr)
    d = build_evalset(cfg(REALESRGAN, degradation_args={"jpeg_range": [40, 50]}), "builtin", "smoke")
    assert d.key != a.key
    # training-only settings do not change the evaluation set
    assert build_evalset(cfg(REALESRGAN, pool_size=99, hflip=False), "builtin", "smoke").key == a.key


def test_evalset_several_crops_and_valset():
    ev = build_evalset(cfg(REALESRGAN, eval_crops=3), "builtin", "smoke")
    assert [s.name for s in ev.samples[:3]] == ["astronaut#0", "astronaut#1", "astronaut#2"]
    assert len(ev) == 9 and not torch.equal(ev.samples[0].hr, ev.samples[1].hr)
    val = build_valset(cfg(REALESRGAN), "builtin", "smoke")
    assert [s.name for s in val.samples] == ["grace_hopper"] and val.samples[0].hr.shape == (3, 80, 80)


def test_gcfsr_evalset_inputs():
    ev = build_evalset(cfg(GCFSR), "builtin", "smoke")
    s = ev.samples[0]
    lr_up, cond = s.g_input
    assert lr_up.shape == s.hr.shape == (3, 32, 32) and s.lr.shape == (3, 4, 4) and s.scale == 8
    assert cond.dtype == torch.float32 and cond.tolist() == [8 / 32]
    assert torch.equal(lr_up * 255, (lr_up * 255).round())


_BUILD = textwrap.dedent("""
    import json, sys
    from gankd.config import from_mapping
    from gankd.datasets.config import DataConfig
    from gankd.datasets.evalset import build_evalset
    cfg = from_mapping(DataConfig, json.loads(sys.argv[1]), "test")
    ev = build_evalset(cfg, "builtin", "smoke")
    print(json.dumps({"key": ev.key, "sha": ev.manifest_sha256, "root": str(ev.root)}))
""")


def _spawn(cache: Path, config: dict) -> subprocess.Popen:
    env = {**os.environ, "GANKD_CACHE": str(cache), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _BUILD, json.dumps(config)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_evalset_identical_across_processes_and_safe_when_concurrent(tmp_path):
    # three processes at once: two share a cache (concurrent builders of one key), one has its own
    shared = tmp_path / "shared"
    procs = [_spawn(shared, GCFSR), _spawn(shared, GCFSR), _spawn(tmp_path / "own", GCFSR)]
    results = [_result(p) for p in procs]
    assert len({r["key"] for r in results}) == 1
    assert len({r["sha"] for r in results}) == 1  # identical manifests, byte for byte
    key = results[0]["key"]
    entries = sorted(e.name for e in (shared / "evalsets").iterdir())
    assert entries == [f".{key}.lock", key]  # one published set, no temporary leftovers


# ---------------------------------------------------------------------------------------------
# training pools


def test_realesrgan_pool(cache, tmp_path, monkeypatch):
    c = cfg(REALESRGAN, pool_size=4)
    pool = build_pool(c, "builtin", seed=0)
    assert len(pool) == 4 and pool.path == cache / "pools" / f"{pool.key}.pt"
    assert {k: v.dtype for k, v in pool.tensors.items()} == {
        "g0": torch.uint8, "real": torch.uint8, "target": torch.float16}
    b = pool.batch(torch.tensor([3, 1]))
    assert b.g_input[0].shape == (2, 3, 16, 16) and b.real.shape == b.target.shape == (2, 3, 64, 64)
    assert b.index.tolist() == [3, 1] and len(b) == 2
    assert torch.equal(b.real, pool.tensors["real"][[3, 1]].float() / 255)
    assert b.target is not b.real and (b.target - b.real).abs().max() > 0.01  # USM-sharpened target
    lr = b.g_input[0]
    assert torch.equal(lr * 255, (lr * 255).round())
    with pytest.raises(IndexError):
        pool.batch(torch.tensor([4]))
    # depends only on (config, data, seed): a fresh cache rebuilds the same bytes
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path / "other"))
    again = build_pool(c, "builtin", seed=0)
    assert again.key == pool.key and again.sha256 == pool.sha256
    other = build_pool(c, "builtin", seed=1)
    assert other.key != pool.key and not torch.equal(other.tensors["g0"], pool.tensors["g0"])
    assert build_pool(cfg(REALESRGAN, pool_size=4, hflip=False), "builtin", seed=0).key != pool.key


def test_pool_cache_is_verified(caplog, monkeypatch):
    c = cfg(GCFSR)
    pool = build_pool(c, "builtin", seed=3)
    import gankd.datasets.pool as pm

    with monkeypatch.context() as m:
        m.setattr(pm, "_make", lambda *a: pytest.fail("rebuilt"))
        assert build_pool(c, "builtin", seed=3).sha256 == pool.sha256  # read, not rebuilt
    data = bytearray(pool.path.read_bytes())
    data[-100] ^= 0xFF
    pool.path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="gankd.datasets"):
        fixed = build_pool(c, "builtin", seed=3)
    assert "does not match its recorded sha256" in caplog.text and fixed.sha256 == pool.sha256


def test_gcfsr_pool_and_errors():
    pool = build_pool(cfg(GCFSR), "builtin", seed=0)
    b = pool.batch(torch.arange(6))
    lr_up, cond = b.g_input
    assert lr_up.shape == b.real.shape == (6, 3, 32, 32) and cond.shape == (6, 1)
    assert b.target is b.real and set(cond.flatten().tolist()) <= {4 / 32, 8 / 32}
    assert pool.tensors["g0"].dtype == torch.uint8 and pool.tensors["g1"].dtype == torch.float32
    with pytest.raises(ConfigError, match="pool_size is 0"):
        build_pool(cfg(GCFSR, pool_size=0), "builtin", seed=0)


# ---------------------------------------------------------------------------------------------
# online batches


def test_online_batches_on_cpu():
    c = cfg(REALESRGAN)
    first = online_batches(c, "builtin", batch_size=3, seed=0)
    b1, b2 = next(first), next(first)
    assert b1.g_input[0].shape == (3, 3, 16, 16) and b1.real.shape == b1.target.shape == (3, 3, 64, 64)
    assert b1.index is None and not torch.equal(b1.real, b2.real)
    same = online_batches(c, "builtin", batch_size=3, seed=0)
    assert torch.equal(next(same).g_input[0], b1.g_input[0])
    other_rank = online_batches(c, "builtin", batch_size=3, seed=0, rank=1, world_size=2)
    assert not torch.equal(next(other_rank).real, b1.real)
    gq = online_batches(cfg(GCFSR, queue_size=4), "builtin", batch_size=2, seed=1)
    batches = [next(gq) for _ in range(3)]  # two fill the queue, the third is drawn from it
    assert all(b.g_input[0].shape == (2, 3, 32, 32) and b.target is b.real for b in batches)
    with pytest.raises(ConfigError, match="queue_size=3 must be divisible by the batch size 2"):
        next(online_batches(cfg(GCFSR, queue_size=3), "builtin", batch_size=2, seed=1))


@pytest.mark.slow
def test_worker_errors_surface_in_the_main_process_with_the_file_name(tmp_path):
    root = photo_folder(tmp_path / "d", n=5)
    c = cfg(REALESRGAN, num_workers=1, test_images=1, val_images=1)
    bad = open_data(str(root)).splits(c).train[0]
    buf = io.BytesIO()
    Image.fromarray(smooth(120, 100)).save(buf, "PNG")
    bad.path.write_bytes(buf.getvalue()[:200])  # same header and size, truncated pixels
    stream = online_batches(c, str(root), batch_size=4, seed=0)  # the header scan passes
    with pytest.raises(ImageError, match=rf"cannot decode image .*{bad.path}: image file is truncated"):
        for _ in range(3):
            next(stream)


def test_data_config_errors():
    with pytest.raises(ConfigError, match="degrade_size=48 is smaller than hr_crop=64"):
        cfg(REALESRGAN, degrade_size=48)
    with pytest.raises(ConfigError, match="must equal hr_crop=32 for the gcfsr degradation"):
        cfg(GCFSR, degrade_size=64)
    with pytest.raises(ConfigError, match="pool_size must be >= 0"):
        cfg(REALESRGAN, pool_size=-1)
    with pytest.raises(ConfigError, match=r"eval_hr=36 is not divisible by the gcfsr scale\(s\) \[8\]"):
        cfg(GCFSR, eval_hr=36)
    c = cfg(REALESRGAN)
    assert c.degradation_args["jpeg_range"] == [30.0, 95.0] or tuple(c.degradation_args["jpeg_range"]) == (
        30.0, 95.0)
