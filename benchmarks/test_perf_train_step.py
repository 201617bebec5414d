"""pytest-benchmark entry for perf_train_step.py: one engine step per method (cpu suite)."""

from __future__ import annotations

import pytest

from benchmarks.perf_train_step import METHODS, build, parts


@pytest.mark.parametrize("method", METHODS)
def test_train_step_vs_parts(benchmark, method: str) -> None:
    tr = build(method)
    assert tr is not None, f"{method} applies to none of the cpu suite's Real-ESRGAN students"
    p = parts(tr, repeats=1)
    benchmark.extra_info.update({f"part {k} (s)": v for k, v in p.items()})
    benchmark.extra_info["parts total (s)"] = sum(p.values())
    benchmark.pedantic(tr.train_step, rounds=3, warmup_rounds=1)
    assert tr.step >= 1 and sum(p.values()) > 0
