"""Every network's init and every data stream come from (seed, role) alone: a run is the same
whether its cached pieces (a GCFSR teacher trained on first use) were made in this process or
found in the cache."""

from __future__ import annotations

import pytest
import torch

from gankd.bench.assemble import assemble
from gankd.bench.suite import load_suite, method_options
from gankd.paths import cache_dir


def _assembled(method: str):
    suite = load_suite("smoke")
    setup = suite.models["gcfsr"]
    trainer = assemble(setup, method, method_options(suite, "gcfsr", method), ratio=0.25, seed=0,
                       data="builtin", progress=False).trainer
    return trainer, torch.get_rng_state()


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_scratch_is_built_identically_with_a_cold_and_a_warm_cache(tmp_path, monkeypatch, one_thread):
    weights = cache_dir() / "weights"  # the converted VGG16 (perceptual loss): not under test here
    monkeypatch.setenv("GANKD_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "weights").symlink_to(weights)
    torch.manual_seed(1234)  # whatever the process did before
    cold, cold_rng = _assembled("scratch")  # trains the smoke GCFSR teacher in this process first
    assert any((tmp_path / "cache" / "teachers").iterdir())
    torch.manual_seed(999)
    warm, warm_rng = _assembled("scratch")  # finds it in the cache
    assert _equal(cold.student, warm.student)
    assert _equal(cold.method.discriminators["d"], warm.method.discriminators["d"])
    assert torch.equal(cold_rng, warm_rng)  # the training stream (noise injection) starts alike
    assert torch.equal(cold.sampler.next().index, warm.sampler.next().index)


def test_a_discriminator_is_the_same_network_in_every_method_that_builds_it(make_trainer, one_thread):
    # the role's seed alone: not what a method built before it (AKDG's second D, DCD's connectors)
    ref = make_trainer("scratch").method.discriminators["d"]
    compared = []
    for method in ("mse", "akdg", "dcd", "omgd"):
        ds = make_trainer(method).method.discriminators
        d = ds["d"] if "d" in ds else None
        if d is not None and d.state_dict().keys() == ref.state_dict().keys() and \
                all(d.state_dict()[k].shape == v.shape for k, v in ref.state_dict().items()):
            assert _equal(d, ref), method
            compared.append(method)
    assert len(compared) >= 3, compared  # the test compares something
    assert not _equal(make_trainer("scratch", seed=1).method.discriminators["d"], ref)


def test_a_teacher_and_a_student_of_one_seed_start_from_unrelated_draws(tmp_path, monkeypatch):
    """The cpu GCFSR teacher (pool seed 0) and seed 0's students are drawn by role: built from the
    raw seed, a student of the teacher's width began as the very network the teacher began as."""
    from gankd.bench import compose
    from gankd.bench.cached_training import pretrained_student
    from gankd.bench.teachers import train_teacher
    from gankd.models import zoo

    monkeypatch.setenv("GANKD_TRAINED", str(tmp_path))
    built: list[torch.nn.Module] = []

    class Built(Exception):
        pass

    def capture(**kw):
        built.append(kw["student"])
        raise Built

    monkeypatch.setattr(compose, "build_trainer", capture)
    setup = load_suite("cpu").models["gcfsr"]  # a teacher trained here and a supervised stage
    with pytest.raises(Built):
        train_teacher(setup, "builtin", 0, progress=False)
    with pytest.raises(Built):
        pretrained_student(setup, zoo.student(setup.teacher, 1.0, setup.student), 0, "builtin", 0,
                           progress=False)
    teacher, student = built
    same_shapes = {k: v for k, v in teacher.state_dict().items() if v.is_floating_point()}
    assert same_shapes.keys() == student.state_dict().keys()
    assert not any(torch.equal(v, student.state_dict()[k]) for k, v in same_shapes.items() if v.numel() > 1
                   and v.std() > 0)


def test_trained_networks_are_keyed_by_the_content_of_their_training_images(monkeypatch):
    """A set rebuilt or edited under the same name (a manifest re-pinned, a folder grown) is other
    data: the cached teacher and supervised students it trained are not taken for the new ones."""
    from gankd.bench.cached_training import pretrained_student
    from gankd.bench.teachers import trained_teacher_path
    from gankd.datasets import pool
    from gankd.models import zoo

    monkeypatch.setattr("gankd.bench.cached_training.train_cached", lambda path, *a, **k: path)
    setup = load_suite("cpu").models["gcfsr"]
    student = zoo.student(setup.teacher, 0.25, setup.student)
    real = pool.pool_identity

    def paths() -> tuple:
        return (trained_teacher_path(setup, "builtin", 0),
                pretrained_student(setup, student, 0, "builtin", 0, progress=False))

    before = paths()
    assert paths() == before
    monkeypatch.setattr(pool, "pool_identity", lambda *a: ({**real(*a)[0], "used_images": {"x": "0" * 64}},))
    after = paths()
    assert after[0] != before[0] and after[1] != before[1]
