"""Networks a suite trains once (the GCFSR teacher, the students' supervised stage) are checked
against the sha256 their record holds every time they are used (issue 38, item 1): a damaged
file is refused by name, never trained on with other numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import pretrained_student_path

from gankd import atomic
from gankd.bench import cached_training
from gankd.bench.suite import load_suite
from gankd.cli import main
from gankd.errors import GankdError
from gankd.models import zoo


def _cache(path: Path, net: torch.nn.Module) -> Path:
    """A cached network as ``train_cached`` leaves it: the weights and their record."""
    atomic.torch_save(path, net.state_dict())
    atomic.write_json(path.with_suffix(".json"), {"sha256": atomic.sha256_file(path)})
    return path


def _flip(path: Path, n: int = 2) -> None:
    """Change ``n`` low-order bytes in the middle of the file: still a loadable state dict."""
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[len(data) // 2 + 4 * i] ^= 0x01
    path.write_bytes(bytes(data))


def _never(*args, **kwargs):
    raise AssertionError("trained again")


def test_a_damaged_cached_student_is_refused_by_name(tmp_path, monkeypatch):
    entry = zoo.student(zoo.get("realesrgan_x4plus"), 0.25, {"num_block": 2})
    path = _cache(tmp_path / "students" / "s" / "student.pth", entry.build())
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)
    # unused past the role: nothing is trained
    args = (entry, 0, "student", "supervised", None, None, None, "builtin", 0, "")
    assert cached_training.train_cached(path, *args) == path
    cached_training.load_into(entry.build(), path)  # intact: loads

    _flip(path)
    with pytest.raises(GankdError, match=rf"cached network {path} is damaged: its sha256 .* delete "
                                         rf"{path.parent} to train it again"):
        cached_training.train_cached(path, *args)
    with pytest.raises(GankdError, match="is damaged"):
        cached_training.load_into(entry.build(), path)
    path.with_suffix(".json").write_text("{")  # a damaged record is no record to trust either
    with pytest.raises(GankdError, match=r"its record student.json cannot be read"):
        cached_training.load_into(entry.build(), path)


def test_a_damaged_trained_teacher_is_refused_by_name(tmp_path, monkeypatch):
    from gankd.bench import teachers

    monkeypatch.setenv("GANKD_TRAINED", str(tmp_path / "kept"))
    setup = load_suite("smoke").models["gcfsr"]
    path = teachers.trained_teacher_path(setup, "builtin", 0)
    _cache(path, zoo.get(setup.teacher).build())
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)
    loaded = teachers.load_teacher(setup, "builtin", 0, progress=False)
    assert loaded.identity.endswith(atomic.sha256_file(path)[:16])

    _flip(path)
    with pytest.raises(GankdError, match=rf"cached network {path} is damaged"):
        teachers.load_teacher(setup, "builtin", 0, progress=False)


def test_a_run_on_a_damaged_cached_student_exits_with_one_line(tmp_path, monkeypatch, capsys, own_cache):
    """What the issue saw: two changed bytes gave other numbers and exit 0."""
    monkeypatch.setenv("GANKD_TRAINED", str(tmp_path / "kept"))
    setup = load_suite("smoke").models["realesrgan"]
    student = zoo.student(setup.teacher, 0.25, setup.student)
    path = pretrained_student_path(setup, student)
    _cache(path, student.build())
    _flip(path)

    results = tmp_path / "results"
    rc = main(["bench", "--suite", "smoke", "--model", "realesrgan", "--method", "scratch", "--results",
               str(results), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith(f"gankd: failed: cached network {path} is damaged")
    assert "Traceback" not in "\n".join(err)
    assert not list(results.rglob("metrics.json"))
