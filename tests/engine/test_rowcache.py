"""The row cache of no-grad features: looked-up values equal recomputed ones, its budget holds,
rows without an index are never cached, and a trainer's step gives the same losses with it."""

from __future__ import annotations

import torch

from gankd.engine.rowcache import RowCache


def _fn(calls: list[int]):
    w = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0))

    def fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(len(x))
        return {"a": torch.nn.functional.conv2d(x, w, padding=1), "b": x.mean(dim=(1, 2, 3))}
    return fn


def test_lookup_equals_recompute_and_skips_known_rows() -> None:
    calls: list[int] = []
    fn = _fn(calls)
    cache = RowCache(megabytes=1)
    pool = torch.rand(6, 3, 8, 8)
    first = cache(fn, pool[[0, 1, 2]], torch.tensor([0, 1, 2]))
    second = cache(fn, pool[[2, 3, 0]], torch.tensor([2, 3, 0]))
    assert calls == [3, 1]  # only row 3 was new
    direct = fn(pool[[2, 3, 0]])
    for k in direct:
        torch.testing.assert_close(second[k], direct[k], rtol=1e-5, atol=1e-6)  # batch composition: last bits
    torch.testing.assert_close(second["a"][0], first["a"][2], rtol=0, atol=0)
    assert (cache.hits, cache.misses) == (2, 4)


def test_budget_and_no_index() -> None:
    calls: list[int] = []
    fn = _fn(calls)
    row_bytes = (8 * 8 * 8 + 1) * 4
    cache = RowCache(megabytes=3 * row_bytes / 2**20)  # room for three rows
    pool = torch.rand(6, 3, 8, 8)
    cache(fn, pool[:2], torch.tensor([0, 1]))
    assert len(cache) == 2
    out = cache(fn, pool[2:4], torch.tensor([2, 3]))  # two more do not fit: computed, not kept
    assert len(cache) == 2 and out["a"].shape[0] == 2
    cache(fn, pool[:2], None)
    assert calls[-1] == 2 and len(cache) == 2
    off = RowCache()
    off(fn, pool[:2], torch.tensor([0, 1]))
    assert len(off) == 0


def test_training_with_the_cache_logs_the_same_losses(make_trainer, one_thread) -> None:
    """Six steps of DCD (the perceptual targets and the teacher images' VGG both cached) over a
    pool of four rows, so steps 3-6 draw only cached rows: the same terms as without caching."""
    from conftest import SyntheticPool

    def run(cache_mb: float) -> tuple[list[dict[str, float]], list[int]]:
        tr = make_trainer("dcd", steps=6, pool=SyntheticPool(n=4))
        tr.log_grad_norms = False
        for cache in tr.method.row_caches():
            cache.budget = int(cache_mb * 2**20)
        logged = [tr.train_step() for _ in range(6)]
        return logged, [c.hits for c in tr.method.row_caches()]

    cached, hits = run(64)
    plain, no_hits = run(0)
    assert hits == [8, 8] and no_hits == [0, 0]  # 12 rows drawn, the first 4 computed
    for a, b in zip(cached, plain):
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (k, a[k], b[k])


def test_speed_only_settings_keep_the_keys_of_trained_networks() -> None:
    """The cache size changes how fast a teacher trains, not what: its cached file keeps its
    name; the number of steps is what it trains, and makes a new one."""
    import dataclasses

    from gankd.bench.suite import load_suite
    from gankd.bench.teachers import trained_teacher_path

    setup = load_suite("cpu").models["gcfsr"]

    def path(**train: object):
        return trained_teacher_path(dataclasses.replace(
            setup, teacher_train=dataclasses.replace(setup.teacher_train, **train)), "builtin", 0)

    assert path(feature_cache_mb=0) == path(feature_cache_mb=4096) == path()
    assert path(steps=setup.teacher_train.steps + 1) != path()
