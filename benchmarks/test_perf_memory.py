"""Peak memory of one training step, per method and model, on the cpu suite's configs.

Each (model, method) runs in a fresh process, built as ``gankd bench`` builds it -- the suite's
training pool at its full size, the teacher's cached outputs over it, the student, every
discriminator and loss network -- and takes two steps; the trainer's per-step peak is the
process's peak resident set during the step (``VmHWM`` after a reset, see
``gankd.engine.trainer``), so it counts everything a real run holds. Step 1 also creates the
optimizer states and oneDNN's primitives; step 2 is the steady state. "before" is what is
resident when training starts (weights, the pool, the teacher's cached outputs, the heap left by
building them): glibc reuses freed pages, so a step can add little to a process whose setup
already peaked higher.

A teacher without weights here (the cpu suite's GCFSR teacher before ``gankd teacher`` trained it)
is a random init of the same network: memory does not depend on the values.

    python benchmarks/test_perf_memory.py                  # the table, every model x method
    pytest benchmarks/test_perf_memory.py                  # the same, asserting the 8 GiB budget
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MB = 8 * 1024  # the cpu suite runs on an 8 GiB laptop

def suite_path() -> str:
    return str(ROOT / "benchmarks" / "cpu.yaml")


def cpu_runs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cpu suite's models and methods (every registered method unless it lists some)."""
    from gankd.bench.suite import load_suite

    suite = load_suite(suite_path())
    return tuple(suite.models), suite.methods


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # here, not in a decorator: importing this file (a measuring child process) loads no gankd
    if {"model", "method"} <= set(metafunc.fixturenames):
        models, methods = cpu_runs()
        metafunc.parametrize("model", models)
        metafunc.parametrize("method", methods)


def measure(model: str, method: str, suite: str, steps: int = 2) -> dict[str, Any]:
    """In this process: build the run as ``gankd bench`` does and take ``steps`` steps."""
    import torch

    from gankd.bench.assemble import POOL_SEED, teacher_pool_dir
    from gankd.bench.compose import build_trainer, seeded_build
    from gankd.bench.data import training_pool
    from gankd.bench.dryrun import dry_run_teacher
    from gankd.bench.suite import load_suite, method_options
    from gankd.engine.sampler import PoolSampler
    from gankd.methods import METHODS as REGISTRY
    from gankd.models import zoo

    s = load_suite(suite)
    setup = s.models[model]
    if setup.train.threads:
        torch.set_num_threads(setup.train.threads)
    loaded, random_teacher = dry_run_teacher(setup, "builtin")  # its weights if here, else a random init
    # the method's fullest step (SDAKD's stage 3: every network of the method in use)
    cfg = dataclasses.replace(method_options(s, model, method), **REGISTRY.get(method).every_term_options)
    pool = training_pool(setup, "builtin", POOL_SEED, lambda: loaded)
    tr = build_trainer(student=seeded_build(zoo.student(setup.teacher, s.ratios[0], setup.student), 0),
                       teacher=loaded, d_entry=zoo.get(setup.discriminator), recipe=setup.recipe,
                       method=method, method_cfg=cfg, train=setup.train,
                       sampler=PoolSampler(pool, setup.train.batch_size, 0), ratio=s.ratios[0], seed=0,
                       image_size=setup.data.hr_crop, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        if tr.method.uses_teacher:  # a random teacher's outputs are not worth keeping in the shared cache
            tr.teacher.precompute(pool, Path(tmp) if random_teacher else teacher_pool_dir(), progress=False)
        tr.memory.start()
        before = tr.memory.current_peak_mb()  # resident now (the mark was just reset)
        peaks = []
        for _ in range(steps):
            tr.memory.start()
            tr.train_step()
            peaks.append(tr.memory.current_peak_mb())
    return {"model": model, "method": method, "suite": s.name, "teacher": setup.teacher,
            "random_teacher": random_teacher, "pool_size": len(pool), "batch": setup.train.batch_size,
            "hr_crop": setup.data.hr_crop, "before_step_mb": before, "step_peaks_mb": peaks,
            "measures": tr.memory.source}


def measure_in_subprocess(model: str, method: str, suite: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, "--one", model, method, "--suite", suite], env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{model}/{method} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'model':10s} {'method':8s} {'before (MiB)':>12s} {'step 1 (MiB)':>12s} {'step 2 (MiB)':>12s}"
             f" {'step 2 - before':>15s}  note"]
    for r in rows:
        p1, p2 = r["step_peaks_mb"][:2]
        note = "random-init teacher (not trained yet)" if r["random_teacher"] else ""
        lines.append(f"{r['model']:10s} {r['method']:8s} {r['before_step_mb']:12.0f} {p1:12.0f} {p2:12.0f} "
                     f"{p2 - r['before_step_mb']:15.0f}  {note}")
    r0 = rows[0]
    lines.append(f"(suite {r0['suite']}: batch {r0['batch']}, pool {r0['pool_size']}; {r0['measures']})")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def suite() -> str:
    return suite_path()


def test_step_peak_memory_within_budget(model: str, method: str, suite: str) -> None:
    r = measure_in_subprocess(model, method, suite)
    print("\n" + table([r]))
    assert r["measures"].endswith("per step")  # a real per-step peak, not the lifetime mark
    assert 0 < r["before_step_mb"] <= max(r["step_peaks_mb"]) < BUDGET_MB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "METHOD"), help="measure one run in this process")
    ap.add_argument("--suite", default=None, help="suite name or YAML (default: cpu)")
    args = ap.parse_args()
    suite = args.suite or suite_path()
    if args.one:
        print(json.dumps(measure(*args.one, suite)))
        return
    rows, errors = [], []
    models, methods = cpu_runs()
    for model in models:
        for method in methods:
            try:
                rows.append(measure_in_subprocess(model, method, suite))
            except RuntimeError as exc:  # a config that does not build is reported, not hidden
                errors.append(f"{model:10s} {method:8s} ERROR: {str(exc).strip().splitlines()[-1]}")
    print(table(rows) if rows else "no run could be measured")
    print("\n".join(errors))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # this checkout's gankd, not another installed copy
    main()
