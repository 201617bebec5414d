"""The data sets built from Debian packages (gankd/datasets/packaged.py): the builder on a tiny
.deb made here with dpkg-deb (nothing is downloaded), and the committed manifests' promises."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import yaml
from PIL import Image

from gankd.bench import commands
from gankd.bench.suite import load_suite
from gankd.datasets import packaged
from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageError, read_image
from gankd.datasets.packaged import PackagedDataError, ensure_built, load_manifest, manifest_names
from gankd.datasets.packaged_dataset import PackagedSource
from gankd.datasets.source import open_data

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")
COPYRIGHT = b"Files: *\nCopyright: 2024 Nobody\nLicense: CC0-1.0\n"


def _photo(w: int, h: int, seed: int, alpha: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if alpha:
        img = np.concatenate([img, np.full((h, w, 1), 255, np.uint8)], axis=2)
    return img


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture
def fake_set(tmp_path, monkeypatch):
    """A .deb holding a JPEG, an RGBA PNG and a copyright file; a manifest using them three
    ways (copied, rotated, cropped by a quad); the cache in tmp_path."""
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fake-pics\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: two photos\n")
    pics = root / "usr/share/fake-pics"
    pics.mkdir(parents=True)
    jpeg = _encode(_photo(40, 24, 0), "JPEG")
    (pics / "scene.jpg").write_bytes(jpeg)
    (pics / "face.png").write_bytes(_encode(_photo(32, 48, 1, alpha=True), "PNG"))
    (root / "usr/share/doc/fake-pics").mkdir(parents=True)
    (root / "usr/share/doc/fake-pics/copyright").write_bytes(COPYRIGHT)
    debs = tmp_path / "cache" / "data" / "debs"
    debs.mkdir(parents=True)
    deb = debs / "fake-pics_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    common = {"package": "fake-pics", "licence": "CC0-1.0", "attribution": "Nobody"}
    doc = {
        "name": "fakeset", "face_size": 16, "split_rule": "by hand",
        "packages": {"fake-pics": {"source": "debian", "version": "1.0-1", "deb": deb.name, "deb_sha256": "",
                                   "copyright": "usr/share/doc/fake-pics/copyright"}},
        "images": [
            {"name": "scene.jpg", "path": "usr/share/fake-pics/scene.jpg", "split": "val", **common},
            {"name": "scene_rot90.png", "path": "usr/share/fake-pics/scene.jpg", "split": "train",
             "rotate": 90, **common},
            {"name": "faces/f0.png", "path": "usr/share/fake-pics/face.png", "split": "test",
             "quad": [[4, 10], [4, 26], [20, 26], [20, 10]], "side": 16, **common},
        ],
    }
    path = tmp_path / "fakeset.yaml"
    path.write_text(packaged.dump_manifest(doc))
    packaged.build(load_manifest(path), packaged.data_root("fakeset"), record=True, progress=False)
    shutil.rmtree(packaged.data_root("fakeset"))  # recorded: the tests build from the manifest alone
    return {"manifest": path, "jpeg": jpeg, "root": root, "deb": deb}


@needs_dpkg
def test_builder_splits_rotates_crops_and_copies_licences(fake_set):
    manifest = load_manifest(fake_set["manifest"])
    doc = manifest.doc
    deb_sha = hashlib.sha256(fake_set["deb"].read_bytes()).hexdigest()
    assert doc["packages"]["fake-pics"]["deb_sha256"] == deb_sha
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["sha256"]) for e in doc["images"])
    source = PackagedSource(manifest)
    splits = source.splits(DataConfig())
    assert [r.name for r in splits.train] == ["scene_rot90.png"]
    assert [r.name for r in splits.val] == ["scene.jpg"] and [r.name for r in splits.test] == ["faces/f0.png"]
    assert "by hand" in splits.rule
    root = packaged.data_root("fakeset")
    # copied byte for byte; rotated 90 degrees clockwise; the quad is the square it names
    assert (root / "images/scene.jpg").read_bytes() == fake_set["jpeg"]
    scene = read_image(root / "images/scene.jpg")
    np.testing.assert_array_equal(read_image(root / "images/scene_rot90.png"), np.rot90(scene, k=-1))
    assert splits.train[0].size == (24, 40)
    face = np.asarray(Image.open(fake_set["root"] / "usr/share/fake-pics/face.png").convert("RGB"))
    got = read_image(root / "images/faces/f0.png")
    assert got.shape == (16, 16, 3)
    assert np.abs(got.astype(int) - face[10:26, 4:20].astype(int)).max() <= 1
    # licences beside the data, the versions used, the stamp
    assert (root / "licenses/fake-pics.copyright").read_bytes() == COPYRIGHT
    assert "fake-pics 1.0-1 fake-pics_1.0-1_all.deb sha256=" in (root / "SOURCES.txt").read_text()
    assert json.loads((root / "BUILD.json").read_text())["manifest_sha256"] == manifest.sha256
    source.verified([*splits.train, *splits.val, *splits.test])
    (root / "images/scene.jpg").write_bytes(fake_set["jpeg"][:-1] + b"\x00")  # same size, other bytes
    with pytest.raises(ImageError, match=r"scene.jpg changed since the fakeset set was built.*--force"):
        source.verified(splits.val)


@needs_dpkg
def test_second_call_finds_the_set_and_a_changed_manifest_rebuilds(fake_set, monkeypatch):
    manifest = load_manifest(fake_set["manifest"])
    root = ensure_built(manifest)
    stamp = (root / "BUILD.json").stat().st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError("built again")

    real_build = packaged.build
    monkeypatch.setattr(packaged, "build", no_build)
    assert ensure_built(manifest) == root and ensure_built(load_manifest(fake_set["manifest"])) == root
    assert (root / "BUILD.json").stat().st_mtime_ns == stamp
    monkeypatch.setattr(packaged, "build", real_build)
    (root / "images/scene.jpg").write_bytes(b"truncated")  # damaged: its size differs from the stamp
    assert ensure_built(manifest) == root
    assert (root / "images/scene.jpg").read_bytes() == fake_set["jpeg"]


@needs_dpkg
def test_a_different_source_file_is_one_line_naming_it_and_what_to_do(fake_set):
    doc = yaml.safe_load(fake_set["manifest"].read_text())
    doc["images"][2]["source_sha256"] = "0" * 64
    fake_set["manifest"].write_text(packaged.dump_manifest(doc))
    with pytest.raises(PackagedDataError) as err:
        ensure_built(load_manifest(fake_set["manifest"]))
    msg = str(err.value)
    assert "\n" not in msg and "faces/f0.png" in msg and "usr/share/fake-pics/face.png" in msg
    assert "another Debian release" in msg and "DATA=builtin" in msg and "snapshot.debian.org" in msg
    assert not packaged.data_root("fakeset").exists()  # nothing half-built is published


@needs_dpkg
def test_a_different_produced_image_names_the_decoder(fake_set):
    doc = yaml.safe_load(fake_set["manifest"].read_text())
    doc["images"][1]["sha256"] = "f" * 64
    fake_set["manifest"].write_text(packaged.dump_manifest(doc))
    with pytest.raises(PackagedDataError,
                       match=r"scene_rot90.png.*its source file matches.*Pillow.*DATA=builtin"):
        ensure_built(load_manifest(fake_set["manifest"]))


@needs_dpkg
def test_another_deb_with_the_same_files_builds_with_a_warning(fake_set, caplog):
    doc = yaml.safe_load(fake_set["manifest"].read_text())
    doc["packages"]["fake-pics"]["deb_sha256"] = "1" * 64
    fake_set["manifest"].write_text(packaged.dump_manifest(doc))
    root = ensure_built(load_manifest(fake_set["manifest"]))
    assert "checking its files one by one" in caplog.text
    assert "(manifest: fake-pics_1.0-1_all.deb 1111" in (root / "SOURCES.txt").read_text()


@needs_dpkg
def test_without_apt_the_message_says_builtin(fake_set, monkeypatch):
    fake_set["deb"].unlink()
    real = shutil.which
    monkeypatch.setattr(packaged.shutil, "which", lambda name: None if name == "apt-get" else real(name))
    with pytest.raises(PackagedDataError) as err:
        ensure_built(load_manifest(fake_set["manifest"]))
    msg = str(err.value)
    assert "\n" not in msg and "'apt-get'" in msg and "DATA=builtin" in msg and "fake-pics" in msg


def test_names_select_sources_lazily_and_families_default_to_their_own(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path))
    src = open_data("photos")
    assert src.kind == "photos" and not (tmp_path / "data").exists()  # nothing built until used
    assert open_data("faces").kind == "faces" and open_data("builtin").kind == "builtin"
    cpu = load_suite("cpu")
    assert commands.data_for(cpu, "") == {"realesrgan": "photos", "gcfsr": "faces", "dcgan": "builtin",
                                          "cyclegan": "builtin"}
    assert commands.data_for(cpu, "builtin") == dict.fromkeys(cpu.models, "builtin")
    smoke = load_suite("smoke")  # tests and CI: no download
    assert commands.data_for(smoke, "") == dict.fromkeys(smoke.models, "builtin")
    assert commands.run_spec(cpu, "gcfsr", "sdakd", "0.25", 0, "").data == "faces"
    with pytest.raises(Exception, match="suite paper needs DATA=<folder of images> for realesrgan"):
        commands.data_for(load_suite("paper"), "")
    # the face suites judge whole faces: one sample per face, resized to the output size
    gc = cpu.models["gcfsr"].data
    assert (gc.resize_short, gc.hr_crop, gc.eval_hr, gc.eval_crops, gc.val_crops) == (64, 64, 64, 1, 1)


# ---- the committed manifests ------------------------------------------------------------------
MINIMA = {"photos": {"train": 80, "val": 5, "test": 30}, "faces": {"train": 50, "val": 5, "test": 30}}


@pytest.mark.parametrize("name", ["photos", "faces"])
def test_committed_manifest_keeps_its_promises(name):
    assert set(manifest_names()) == {"photos", "faces"}
    m = load_manifest(name)
    images = m.images
    counts = defaultdict(int)
    splits_of_group, splits_of_file = defaultdict(set), defaultdict(set)
    for e in images:
        counts[e["split"]] += 1
        splits_of_group[e["group"]].add(e["split"])
        splits_of_file[(e["package"], e["path"])].add(e["split"])
        assert e["licence"].strip() and e["attribution"].strip(), e["name"]
        for key in ("sha256", "source_sha256"):
            assert re.fullmatch(r"[0-9a-f]{64}", e[key]), (e["name"], key)
        assert len(e["size"]) == 2 and min(e["size"]) >= 1
    for split, least in MINIMA[name].items():
        assert counts[split] >= least, (split, counts[split])
    crossing = {g: s for g, s in splits_of_group.items() if len(s) > 1}
    assert not crossing, f"groups (people / scenes) in two splits: {crossing}"
    assert not {f: s for f, s in splits_of_file.items() if len(s) > 1}, "one source photo in two splits"
    for pkg, info in m.packages.items():
        assert info["copyright"] and info["version"], pkg
        if info["source"] == "debian":
            assert re.fullmatch(r"[0-9a-f]{64}", info["deb_sha256"]) and info["deb_size"] > 0, pkg
    assert m.doc["distribution"] and m.doc["pillow"] and m.split_rule


def test_photos_test_set_is_distinct_colour_photos_and_faces_are_whole_aligned_faces():
    photos = load_manifest("photos")
    test = [e for e in photos.images if e["split"] == "test"]
    assert len({e["source_sha256"] for e in test}) == len(test) >= 30  # distinct photos, not crops
    assert not any(e.get("mode") == "L" for e in photos.images)  # no greyscale photo at all
    assert all(min(e["size"]) >= 256 and max(e["size"]) <= photos.doc["max_side"] for e in test)
    faces = load_manifest("faces")
    size = faces.doc["face_size"]
    for e in faces.images:
        assert e["size"] == [size, size] and ("quad" in e) != bool(e.get("chip")), e["name"]
        if e["split"] != "train" and "quad" in e:
            assert e["side"] >= 64, e["name"]  # a 64-px suite never upsamples a judged face
            assert e.get("outside", 0) <= 0.25
