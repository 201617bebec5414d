"""The kept set (issue 41, item 1): a network a suite trains once is read from the committed
``reports/sample/trained`` when its name, config key and sha256 match, so a first run does not
train the sample's teacher again; the kept set is never written; a damaged kept file stops the
run naming it; any other key is trained into the cache as before."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import pretrained_student_path

from gankd import atomic
from gankd.bench import cached_training, kept, teachers
from gankd.bench.suite import load_suite
from gankd.cli import main
from gankd.engine.trainer import TrainResult
from gankd.errors import ConfigError, GankdError
from gankd.models import zoo
from gankd.paths import SAMPLE_KEPT, fresh_cache, kept_dir, trained_dir


def _never(*args, **kwargs):
    raise AssertionError("trained, although the kept set holds this network")


def _keep(path: Path, net: torch.nn.Module) -> Path:
    """A network as the kept set holds it: the weights and the record of their sha256."""
    atomic.torch_save(path, net.state_dict())
    atomic.write_json(path.with_suffix(".json"), {"sha256": atomic.sha256_file(path)})
    return path


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` with its content's digest and mtime: what 'not written' means."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def stores(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A kept set and an empty cache of this test's own, ``GANKD_TRAINED`` unset (the default)."""
    kept_root, cache = tmp_path / "kept", tmp_path / "cache"
    kept_root.mkdir()
    monkeypatch.delenv("GANKD_TRAINED", raising=False)
    monkeypatch.setenv("GANKD_KEPT", str(kept_root))
    monkeypatch.setenv("GANKD_CACHE", str(fresh_cache(cache)))  # converted weights linked
    return kept_root, cache


def _teacher_rel(setup) -> Path:
    """The teacher's path relative to a store (computed while the kept set does not hold it)."""
    return teachers.trained_teacher_path(setup, "builtin", 0).relative_to(trained_dir())


def test_a_kept_teacher_with_its_key_and_sha_is_used_and_nothing_is_trained_or_written(
        stores, monkeypatch, caplog):
    kept_root, cache = stores
    setup = load_suite("smoke").models["gcfsr"]
    rel = _teacher_rel(setup)
    path = _keep(kept_root / rel, zoo.get(setup.teacher).build())
    before = _snapshot(kept_root)
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)

    with caplog.at_level(logging.INFO, logger="gankd.bench.cached_training"):
        loaded = teachers.load_teacher(setup, "builtin", 0, progress=False)
    digest = atomic.sha256_file(path)
    assert loaded.identity == f"{setup.teacher}:{digest[:16]}"
    assert rel.parent.name in loaded.source  # the record names the same folder as a cached teacher's
    said = [r.getMessage() for r in caplog.records if "kept set" in r.getMessage()]
    assert said == [f"teacher {setup.teacher}: kept set {path} (sha256 {digest[:16]})"]
    assert _snapshot(kept_root) == before  # read only: no lock, no checkpoint, no record rewritten
    assert not list(kept_root.rglob(".lock"))
    assert not (cache / rel).exists()


def test_a_kept_student_with_its_key_and_sha_is_used(stores, monkeypatch):
    kept_root, cache = stores
    setup = load_suite("smoke").models["realesrgan"]
    student = zoo.student(setup.teacher, 0.25, setup.student)
    rel = pretrained_student_path(setup, student).relative_to(cache)  # not kept yet: the cache's path
    path = _keep(kept_root / rel, student.build())
    before = _snapshot(kept_root)
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)

    assert cached_training.pretrained_student(setup, student, 0, "builtin", 0, progress=False) == path
    cached_training.load_into(student.build(), path)
    assert _snapshot(kept_root) == before
    assert not (cache / "students").exists()


def test_a_tampered_kept_teacher_is_refused_naming_it(stores, monkeypatch, capsys):
    kept_root, cache = stores
    setup = load_suite("smoke").models["gcfsr"]
    path = _keep(kept_root / _teacher_rel(setup), zoo.get(setup.teacher).build())
    _flip(path)
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)  # never trained again in silence

    with pytest.raises(GankdError, match=rf"kept network {path} is damaged: its sha256 .* restore it "
                                         rf"\(git checkout -- {kept_root}\) or set GANKD_KEPT=none"):
        teachers.load_teacher(setup, "builtin", 0, progress=False)
    rc = main(["teacher", "--suite", "smoke", "--model", "gcfsr", "--data", "builtin", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith(f"gankd: failed: kept network {path} is damaged")
    assert "Traceback" not in "\n".join(err)
    assert not (cache / "teachers").exists()


def test_a_kept_file_without_its_record_is_refused(stores, monkeypatch):
    kept_root, _ = stores
    setup = load_suite("smoke").models["gcfsr"]
    path = _keep(kept_root / _teacher_rel(setup), zoo.get(setup.teacher).build())
    path.with_suffix(".json").unlink()
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)
    with pytest.raises(GankdError, match=rf"kept network {path}: its record teacher.json is missing"):
        teachers.load_teacher(setup, "builtin", 0, progress=False)


class _FakeTrainer:
    """Stands for the trainer: the cached-training path around it is what is tested, not training."""

    def __init__(self, student: torch.nn.Module) -> None:
        self.ema = student

    def fit(self) -> TrainResult:
        return TrainResult(steps=1, wall_time_s=0.0)


def test_an_unmatched_key_is_trained_into_the_cache(stores, monkeypatch, caplog):
    kept_root, cache = stores
    setup = load_suite("smoke").models["gcfsr"]
    rel = _teacher_rel(setup)
    other = _keep(kept_root / rel.parent.parent / f"{setup.teacher}-0123456789abcdef" / rel.name,
                  zoo.get(setup.teacher).build())
    before = _snapshot(kept_root)
    monkeypatch.setattr("gankd.bench.compose.build_trainer", lambda **kw: _FakeTrainer(kw["student"]))

    with caplog.at_level(logging.INFO, logger="gankd.bench.cached_training"):
        loaded = teachers.load_teacher(setup, "builtin", 0, progress=False)
    trained = cache / rel
    assert trained.is_file() and json.loads(trained.with_suffix(".json").read_text())["sha256"] == \
        atomic.sha256_file(trained)
    assert loaded.identity == f"{setup.teacher}:{atomic.sha256_file(trained)[:16]}"
    said = [r.getMessage() for r in caplog.records if "trained into" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith(f"teacher {setup.teacher}: trained into the cache, {trained}")
    assert said[0].endswith(f"the kept set holds {other.parent.name}, another config")
    assert _snapshot(kept_root) == before

    # the second use finds it in the cache
    monkeypatch.setattr("gankd.bench.compose.build_trainer", _never)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gankd.bench.cached_training"):
        teachers.load_teacher(setup, "builtin", 0, progress=False)
    assert any(r.getMessage().startswith(f"teacher {setup.teacher}: found in the cache, {trained}")
               for r in caplog.records)


def test_where_the_kept_set_is(tmp_path, monkeypatch):
    monkeypatch.delenv("GANKD_TRAINED", raising=False)
    monkeypatch.delenv("GANKD_KEPT", raising=False)
    assert kept_dir() == SAMPLE_KEPT  # the default: the sample's networks
    monkeypatch.setenv("GANKD_KEPT", "none")
    assert kept_dir() is None
    assert not kept.holds(SAMPLE_KEPT / "teachers" / "x" / "teacher.pth")
    monkeypatch.setenv("GANKD_KEPT", str(tmp_path))
    assert kept_dir() == tmp_path
    monkeypatch.setenv("GANKD_KEPT", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=rf"GANKD_KEPT={tmp_path / 'absent'} is not a folder.* or none"):
        kept_dir()
    # GANKD_TRAINED names a writable store of its own: as before, the only one
    monkeypatch.delenv("GANKD_KEPT")
    monkeypatch.setenv("GANKD_TRAINED", str(tmp_path))
    assert kept_dir() is None
    monkeypatch.setenv("GANKD_KEPT", str(tmp_path))  # the store itself is not also a read-only set
    assert kept_dir() is None


def test_every_committed_kept_network_matches_its_record():
    pths = sorted(SAMPLE_KEPT.rglob("*.pth"))
    assert pths, f"no networks under {SAMPLE_KEPT}"
    for pth in pths:
        assert atomic.sha256_file(pth) == json.loads(pth.with_suffix(".json").read_text())["sha256"], pth
