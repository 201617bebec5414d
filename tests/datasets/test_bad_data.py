"""Bad data is refused before a run writes or trains anything, and leaves nothing behind
(issue 13): links and duplicates, every kind of unusable file, the folder layouts that cannot
work; and the property that a split never puts one photo in two places."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import noise_photo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gankd.bench.data import check_data
from gankd.bench.suite import load_suite
from gankd.cli import main
from gankd.datasets.source import open_data
from gankd.errors import ConfigError

SIDE = 128  # above the smoke suite's 96-pixel crops


pytestmark = pytest.mark.usefixtures("own_cache")


def photo(seed: int, w: int = SIDE, h: int = SIDE) -> np.ndarray:
    return noise_photo(seed, w, h)


def save(path: Path, img: np.ndarray | Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(path, **kw)
    return path


def dataset(root: Path, n_train: int = 4, n_test: int = 2) -> Path:
    for i in range(n_train):
        save(root / "train" / f"t{i}.png", photo(i))
    for i in range(n_test):
        save(root / "test" / f"x{i}.png", photo(100 + i))
    return root


def setup():
    return load_suite("smoke").models["realesrgan"]


def bench(data: Path, results: Path, method: str = "mse") -> int:
    return main(["bench", "--suite", "smoke", "--model", "realesrgan", "--method", method,
                 "--data", str(data), "--results", str(results), "--quiet", "--no-report"])


# -- the four reported cases ------------------------------------------------------------------
def test_a_symlink_loop_neither_multiplies_the_data_nor_leaks_test_images(tmp_path):
    root = dataset(tmp_path / "d")
    os.symlink(".", root / "loop")
    os.symlink("..", root / "train" / "up")
    src = open_data(str(root))
    assert sorted(r.name for r in src.images()) == sorted(
        [f"train/t{i}.png" for i in range(4)] + ["test/x0.png", "test/x1.png"])
    s = src.splits(setup().data)
    assert {r.name for r in s.test} == {"test/x0.png", "test/x1.png"}
    assert not {r.name for r in s.test} & {r.name for r in (*s.train, *s.val)}


def test_four_photos_and_a_loop_fail_the_minimum_as_four_photos_do(tmp_path, capsys):
    root = tmp_path / "flat"
    for i in range(4):
        save(root / f"p{i}.png", photo(i))
    os.symlink(".", root / "loop")
    assert bench(root, tmp_path / "results") == 2
    assert "has 4 image(s)" in capsys.readouterr().err


def test_a_corrupt_evaluation_image_is_found_before_training_and_leaves_nothing(tmp_path, capsys):
    root = dataset(tmp_path / "d")
    buf = io.BytesIO()
    Image.fromarray(photo(7)).save(buf, "JPEG")
    (root / "test" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    results = tmp_path / "results"
    assert bench(root, results) == 2
    err = capsys.readouterr().err
    assert "cut.jpg" in err and "truncated" in err and len(err.strip().splitlines()) == 1
    assert not (results / "runs" / "smoke" / "realesrgan" / "r0.25").exists()  # no config, checkpoint
    assert not list(results.rglob("index.jsonl")) and not list(results.rglob("config.yaml"))


@pytest.mark.slow
def test_after_a_data_error_the_corrected_rerun_just_runs(tmp_path):
    root = dataset(tmp_path / "d")
    bad = save(root / "train" / "tiny.png", photo(9, 1, 1))
    results = tmp_path / "results"
    assert bench(root, results) == 2
    bad.unlink()
    assert bench(root, results) == 0
    rec = json.loads((results / "runs/smoke/realesrgan/r0.25/mse/seed0/metrics.json").read_text())
    assert rec["status"] == "done"


def test_a_config_without_checkpoints_does_not_block_a_rerun(tmp_path, monkeypatch):
    """A config.yaml with no checkpoint beside it (an older version wrote it before its data
    check failed) holds nothing to resume: the run goes on."""
    import gankd.bench.run as run_mod
    from gankd.bench.suite import RunSpec, resolve

    spec = RunSpec("smoke", "realesrgan", "mse", 0.25, 0, "builtin")
    run_dir = run_mod.run_dir_of(tmp_path / "results", spec)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run: {other: config}\n")

    class Reached(Exception):
        pass

    def assemble(*args, **kwargs):
        raise Reached  # past the config check: training would start here

    monkeypatch.setattr(run_mod, "assemble", assemble)
    with pytest.raises(Reached):
        run_mod.run(resolve(load_suite("smoke"), spec), tmp_path / "results", progress=False)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "step_0000002.pt").write_bytes(b"x")
    (run_dir / "config.yaml").write_text("run: {other: config}\n")
    with pytest.raises(ConfigError, match="different config"):
        run_mod.run(resolve(load_suite("smoke"), spec), tmp_path / "results", progress=False)


def test_unknown_method_lists_only_what_the_command_accepts(capsys):
    for name in ("nosuch", "supervised"):
        assert main(["bench", "--suite", "smoke", "--model", "gcfsr", "--method", name, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert "sdakd" in err and "supervised" not in err.split("valid choices:")[1]
    assert main(["list"]) == 0
    methods_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("methods"))
    assert "supervised" not in methods_line and "dcd" in methods_line


# -- every kind of input ----------------------------------------------------------------------
def _jpeg_cut(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo(3)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[:500])


def _png_cut(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo(3)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[:-200])


def _webp_cut(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo(3)).save(buf, "WEBP")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _png_header(w: int, h: int):
    """A PNG that declares ``w`` x ``h`` pixels (a real one that large takes a gigabyte to make):
    its header is what a size check reads."""
    def make(path: Path) -> None:
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        chunk = b"IHDR" + ihdr
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
                         + struct.pack(">I", zlib.crc32(chunk)) + b"\0\0\0\0IEND\xaeB`\x82")
    return make


def _jpeg_header(w: int, h: int):
    def make(path: Path) -> None:
        buf = io.BytesIO()
        Image.fromarray(photo(3)).save(buf, "JPEG")
        data = bytearray(buf.getvalue())
        sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
        data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
        path.write_bytes(bytes(data))
    return make


REFUSED = {  # file name -> (how to make it, what the message says)
    # Pillow's DecompressionBombError (no file named) and its bare warning (issue 38, item 6)
    "huge.png": (_png_header(20000, 14000), "20000x14000 is 280 megapixels, more than the limit of 100 "
                                            "(set GANKD_MAX_PIXELS to allow larger images)"),
    "large.jpg": (_jpeg_header(12000, 12000), "12000x12000 is 144 megapixels, more than the limit of 100"),
    "cut.jpg": (_jpeg_cut, "truncated"),
    "cut.png": (_png_cut, "truncated"),
    "cut.webp": (_webp_cut, "cut.webp"),
    "empty.png": (lambda p: p.write_bytes(b""), "empty image file"),
    "one.png": (lambda p: save(p, photo(1, 1, 1)), "1x1"),
    "small.png": (lambda p: save(p, photo(1, 64, 64)), "64x64, smaller than the 96x96"),
    "text.jpg": (lambda p: p.write_text("not an image at all"), "not a readable image"),
    "dangling.png": (lambda p: os.symlink("nowhere.png", p), "cannot stat image file"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unusable_files_are_refused_by_name_before_any_work(tmp_path, name):
    root = dataset(tmp_path / "d")
    make, says = REFUSED[name]
    make(root / "test" / name)
    with pytest.raises(ConfigError) as info:
        check_data(setup(), str(root))
    msg = str(info.value)
    assert name in msg and says.lower() in msg.lower() and "\n" not in msg


def test_the_pixel_limit_is_ours_and_configurable(tmp_path, monkeypatch):
    from gankd.datasets.images import probe_size

    between = tmp_path / "between.png"  # above Pillow's warning (89 MP), within our limit
    _png_header(9500, 9500)(between)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe_size(between) == (9500, 9500)
    root = dataset(tmp_path / "d")
    monkeypatch.setenv("GANKD_MAX_PIXELS", "10000")
    with pytest.raises(ConfigError, match=r"/[tx]0.png: 128x128 is 0.0164 megapixels, more than the limit "
                                          r"of 0.01 "):
        check_data(setup(), str(root))
    monkeypatch.setenv("GANKD_MAX_PIXELS", "300e6")
    huge = tmp_path / "huge.png"
    _png_header(20000, 14000)(huge)
    assert probe_size(huge) == (20000, 14000)
    monkeypatch.setenv("GANKD_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match=r"GANKD_MAX_PIXELS must be a positive number of pixels"):
        probe_size(huge)


def test_an_unreadable_folder_is_refused_by_name(tmp_path, monkeypatch):
    """os.walk skips a folder it cannot list unless asked (issue 38, item 9): its photos would
    silently be missing from the data."""
    root = dataset(tmp_path / "d", n_train=5)
    locked = root / "train" / "more"
    save(locked / "t9.png", photo(9))
    if os.geteuid() == 0:  # root lists anything: make the listing fail as a permission error would
        real = os.scandir

        def scandir(path="."):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        with pytest.raises(ConfigError, match=rf"^cannot read folder {locked}: Permission denied \(make it "
                                             rf"readable, or move it out of {root}\)$"):
            check_data(setup(), str(root))
    finally:
        locked.chmod(0o755)


def test_an_unreadable_file_is_refused_by_name(tmp_path, monkeypatch):
    root = dataset(tmp_path / "d")
    locked = save(root / "train" / "locked.png", photo(5))
    if os.geteuid() == 0:  # root reads anything: make the read fail as a permission error would
        real = Path.read_bytes

        def read_bytes(self):
            if self.name == "locked.png":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    else:
        locked.chmod(0)
    with pytest.raises(ConfigError, match=r"locked\.png.*Permission denied"):
        check_data(setup(), str(root))


CONVERTED = {  # handled, not refused: what each becomes is tested in test_datasets.py
    "grey.png": lambda p: save(p, Image.fromarray(photo(1)).convert("L")),
    "rgba.png": lambda p: save(p, Image.fromarray(photo(2)).convert("RGBA")),
    "palette.png": lambda p: save(p, Image.fromarray(photo(3)).convert("P")),
    "cmyk.jpg": lambda p: save(p, Image.fromarray(photo(4)).convert("CMYK")),
    "deep.png": lambda p: _png16(p),
    "rotated.jpg": lambda p: _exif_rotated(p),
}


def _png16(path: Path) -> None:
    import cv2

    assert cv2.imwrite(str(path), photo(5).astype(np.uint16) * 257)  # a 16-bit RGB PNG


def _exif_rotated(path: Path) -> None:
    img = Image.fromarray(photo(6, SIDE, SIDE + 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, exif=exif)


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_convertible_files_are_used(tmp_path, name):
    root = dataset(tmp_path / "d")
    CONVERTED[name](root / "train" / name)
    check = check_data(setup(), str(root))
    assert check.train + check.val == 5


@pytest.mark.parametrize("case, says", [
    ("missing", "does not exist"), ("file", "got a file"), ("empty", "the folder is empty"),
    ("only_test", "no train/ folder"),
])
def test_folders_that_cannot_work(tmp_path, case, says, capsys):
    target = tmp_path / case
    if case == "file":
        save(target, photo(1), format="PNG")
    elif case == "empty":
        target.mkdir()
    elif case == "only_test":
        for i in range(3):
            save(target / "test" / f"x{i}.png", photo(i))
    results = tmp_path / "results"
    assert bench(target, results) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not results.exists() or not list(results.rglob("*.yaml"))


# -- links and duplicates ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["symlink", "hardlink", "copy"])
def test_the_same_photo_is_never_in_two_splits(tmp_path, how):
    root = dataset(tmp_path / "d")
    target = root / "train" / "t0.png"
    other = root / "test" / "again.png"
    {"symlink": lambda: os.symlink(target, other), "hardlink": lambda: os.link(target, other),
     "copy": lambda: shutil.copyfile(target, other)}[how]()
    s = open_data(str(root)).splits(setup().data)
    names = {r.name for r in (*s.train, *s.val, *s.test)}
    assert "test/again.png" in names and "train/t0.png" not in names  # the test copy wins
    assert len(names) == 6


# -- property: random trees with duplicates and links -----------------------------------------
TREE = st.lists(st.tuples(st.integers(0, 5),  # which photo
                          st.sampled_from(["", "a/", "a/b/", "c/"]),  # where
                          st.sampled_from(["file", "copy", "symlink", "hardlink"])),
                min_size=1, max_size=14)


def _build(root: Path, items: list, loops: bool) -> dict[str, int]:
    """Write the tree; returns {file name: photo id}."""
    placed: dict[int, Path] = {}
    where: dict[str, int] = {}
    for k, (pid, folder, how) in enumerate(items):
        path = root / folder / f"f{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        first = placed.get(pid)
        if first is None or how in ("file", "copy"):
            if first is None:
                save(path, photo(1000 + pid, 32, 32))
                placed[pid] = path
            else:
                shutil.copyfile(first, path)
        elif how == "symlink":
            os.symlink(first, path)
        else:
            os.link(first, path)
        where[path.relative_to(root).as_posix()] = pid
    if loops:
        os.symlink(".", root / "loop")
        (root / "a").mkdir(exist_ok=True)
        os.symlink("..", root / "a" / "up")
    return where


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=TREE, loops=st.booleans(), n_test=st.integers(1, 3), n_val=st.integers(0, 2))
def test_split_is_disjoint_deterministic_and_independent_of_the_machine(items, loops, n_test, n_val):
    data = dataclasses.replace(setup().data, test_images=n_test, val_images=n_val)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GANKD_CACHE"] = str(Path(tmp) / "cache")
        where = _build(Path(tmp) / "d", items, loops)
        photos = set(where.values())
        src = open_data(str(Path(tmp) / "d"))
        names = [r.name for r in src.images()]
        assert sorted(where[n] for n in names) == sorted(photos)  # every photo once, no loop copies
        try:
            s = src.splits(data)
        except ConfigError:
            assert len(photos) < n_test + n_val + 1  # too few photos for this split: said so
            return
        ids = [[where[r.name] for r in part] for part in (s.train, s.val, s.test)]
        assert sum(len(i) for i in ids) == len(photos) and set().union(*map(set, ids)) == photos
        again = open_data(str(Path(tmp) / "d")).splits(data)  # the index is now warm
        assert [r.name for r in again.train + again.val + again.test] == \
               [r.name for r in s.train + s.val + s.test]
        # a copy of the tree elsewhere (other inodes, another scan order): the same split by name
        moved = Path(tmp) / "elsewhere"
        shutil.copytree(Path(tmp) / "d", moved, symlinks=True)
        os.environ["GANKD_CACHE"] = str(Path(tmp) / "cache2")
        third = open_data(str(moved)).splits(data)
        assert [r.name for r in third.train + third.val + third.test] == \
               [r.name for r in s.train + s.val + s.test]
