"""LMDB databases as BasicSR writes them (issue 41, item 3): built here with basicsr's own
``make_lmdb_from_imgs``, split as the folder of the same images is, refused image by image and
line by line as a folder's files are, and trained from by a smoke run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lmdb
import numpy as np
import pytest
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from conftest import noise_photo
from PIL import Image

from gankd.bench.suite import load_suite
from gankd.cli import main
from gankd.datasets.lmdb_dataset import LmdbSource
from gankd.datasets.lmdb_store import read_value
from gankd.datasets.source import content_identity, load_hr, open_data
from gankd.errors import ConfigError

SIDE = 128  # above the smoke suite's 96-pixel crops
N = 14  # the smoke suite's Real-ESRGAN holds out 10 test and 2 validation images


pytestmark = pytest.mark.usefixtures("own_cache")


def photo(seed: int, w: int = SIDE, h: int = SIDE) -> np.ndarray:
    return noise_photo(seed, w, h)


def folder(root: Path, n: int = N) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(photo(i)).save(root / f"{i:04d}.png")
    return root


def basicsr_lmdb(images: Path, db: Path) -> Path:
    """The database basicsr's create_lmdb.py makes of a flat folder of PNG files (its keys: the
    file names without extension)."""
    names = sorted(p.name for p in images.glob("*.png"))
    make_lmdb_from_imgs(str(images), str(db), names, [n[:-len(".png")] for n in names])
    return db


def put(db: Path, key: str, value: bytes | None) -> None:
    """Change one value, as a damaged or hand-edited database would have it (before gankd opens
    the database: LMDB allows one handle per process)."""
    env = lmdb.open(str(db), map_size=1 << 26)
    with env.begin(write=True) as txn:
        if value is None:
            txn.delete(key.encode())
        else:
            txn.put(key.encode(), value)
    env.close()


def names(splits) -> dict[str, list[str]]:
    return {s: [r.name for r in splits.get(s)] for s in ("train", "val", "test")}


def setup():
    return load_suite("smoke").models["realesrgan"]


def test_basicsr_layout_is_read_and_split_as_the_folder_of_the_same_images(tmp_path):
    images = folder(tmp_path / "hr")
    cfg = setup().data
    held = [r.name for s in ("test", "val") for r in open_data(str(images)).splits(cfg).get(s)]
    # a resized copy of a test image, named to fall in training, and a byte-identical copy
    last = max(hashlib.sha256(n.encode()).hexdigest() for n in held)
    copy = next(f"z{i}.png" for i in range(1000) if hashlib.sha256(f"z{i}.png".encode()).hexdigest() > last)
    test_name = open_data(str(images)).splits(cfg).test[0].name
    Image.open(images / test_name).resize((SIDE + 8, SIDE + 8), Image.Resampling.LANCZOS).save(images / copy)
    (images / "0000b.png").write_bytes((images / "0000.png").read_bytes())
    db = basicsr_lmdb(images, tmp_path / "DF2K_HR.lmdb")
    assert sorted(p.name for p in db.iterdir()) == ["data.mdb", "lock.mdb", "meta_info.txt"]
    assert "0000.png (128,128,3) 1" in (db / "meta_info.txt").read_text().splitlines()

    source = open_data(str(db))
    assert isinstance(source, LmdbSource) and source.describe()["kind"] == "lmdb"
    got, want = source.splits(cfg), open_data(str(images)).splits(cfg)
    assert names(got) == names(want)
    everywhere = [n for ns in names(got).values() for n in ns]
    assert copy not in everywhere and "0000b.png" not in everywhere and "0000.png" in everywhere
    assert got.rule == want.rule
    ref = got.train[0]
    assert np.array_equal(load_hr(ref, cfg), np.asarray(Image.open(images / ref.name).convert("RGB")))
    # what caches are keyed on: the stored bytes (basicsr re-encodes: other bytes than the file's)
    stored = read_value(db, ref.key, ref.name)
    assert content_identity([ref])[ref.name] == hashlib.sha256(stored).hexdigest()
    assert stored != (images / ref.name).read_bytes()
    # a second open reads the index, not the database, and gives the same refs
    again = open_data(str(db))
    assert again.images() == source.images()


def test_keys_under_train_and_test_are_the_explicit_layout(tmp_path):
    images = tmp_path / "hr"
    for sub, n in (("train", 4), ("test", 2)):
        (images / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(photo(10 * n + i)).save(images / sub / f"{sub[:2]}{i}.png")
    paths = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))
    db = tmp_path / "x.lmdb"
    make_lmdb_from_imgs(str(images), str(db), paths, [p[:-len(".png")] for p in paths])
    got = open_data(str(db)).splits(setup().data)
    assert names(got) == names(open_data(str(images)).splits(setup().data))
    assert {r.name for r in got.test} == {"test/te0.png", "test/te1.png"}
    assert got.rule.startswith("explicit train/ and test/")


LAYOUT = r"'<key>\.png \(h,w,c\) <compress_level>', as basicsr's create_lmdb\.py writes it"


@pytest.mark.parametrize("case, says", [
    ("no meta_info", r"x\.lmdb has no meta_info\.txt \(one line per image: " + LAYOUT),
    ("bad line", r"meta_info\.txt line 3: '0002\.png 128x128' is not " + LAYOUT),
    ("empty meta_info", r"meta_info\.txt lists no images"),
    ("twice", r"meta_info\.txt line 15: 0003\.png is listed twice \(first on line 4\)"),
    ("missing key", r"x\.lmdb/0005\.png: key '0005' is listed in meta_info\.txt but not in data\.mdb"),
    ("corrupt value", r"not a readable image \(corrupt or unknown format\): .*x\.lmdb/0006\.png$"),
    ("empty value", r"empty image \(0 bytes\): .*x\.lmdb/0007\.png$"),
    ("wrong size", r"x\.lmdb/0008\.png: the stored image is 96x128, meta_info\.txt says 128x128"),
    ("no data.mdb", r"x\.lmdb has no data\.mdb"),
])
def test_a_broken_database_is_one_line_naming_what_is_wrong(tmp_path, case, says, capsys):
    db = basicsr_lmdb(folder(tmp_path / "hr"), tmp_path / "x.lmdb")
    meta = db / "meta_info.txt"
    lines = meta.read_text().splitlines()
    if case == "no meta_info":
        meta.unlink()
    elif case == "bad line":
        meta.write_text("\n".join([*lines[:2], "0002.png 128x128", *lines[3:]]) + "\n")
    elif case == "empty meta_info":
        meta.write_text("\n")
    elif case == "twice":
        meta.write_text("\n".join([*lines, lines[3]]) + "\n")
    elif case == "missing key":
        put(db, "0005", None)
    elif case == "corrupt value":
        put(db, "0006", b"\x89PNG not really")
    elif case == "empty value":
        put(db, "0007", b"")
    elif case == "wrong size":
        import cv2

        put(db, "0008", cv2.imencode(".png", photo(8, w=96))[1].tobytes())
    elif case == "no data.mdb":
        (db / "data.mdb").unlink()
    with pytest.raises(ConfigError, match=says):
        open_data(str(db)).splits(setup().data)
    capsys.readouterr()  # basicsr's progress bars
    assert main(["bench", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--data", str(db),
                 "--results", str(tmp_path / "results"), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gankd: error: ")


def test_a_too_large_image_is_refused_by_key(tmp_path, monkeypatch):
    db = basicsr_lmdb(folder(tmp_path / "hr"), tmp_path / "x.lmdb")
    monkeypatch.setenv("GANKD_MAX_PIXELS", str(SIDE * SIDE - 1))
    with pytest.raises(ConfigError, match=r"x\.lmdb/0000\.png: 128x128 is .* more than the limit"):
        open_data(str(db)).images()


@pytest.mark.slow
def test_a_smoke_run_trains_from_a_basicsr_lmdb(tmp_path):
    db = basicsr_lmdb(folder(tmp_path / "hr"), tmp_path / "DF2K_HR.lmdb")
    results = tmp_path / "results"
    assert main(["bench", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--data", str(db),
                 "--results", str(results), "--quiet", "--no-report"]) == 0
    rec = json.loads((results / "runs/smoke/realesrgan/r0.25/mse/seed0/metrics.json").read_text())
    assert rec["status"] == "done" and rec["data"] == str(db)
    assert all(np.isfinite(v) for v in rec["metrics"].values() if isinstance(v, float))
    assert rec["eval"]["images"] == 10 * 2  # the 14 images' test split, two crops each (smoke.yaml)
