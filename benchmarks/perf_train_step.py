"""Per-method training-step time on the cpu suite, against the sum of its parts.

For each method, one engine step (``Trainer.train_step``) is timed and compared with the same
work done as bare parts: the student's forward+backward, each active discriminator's
forward+backward (generator side on the fake, D side on real and fake), the perceptual VGG
forward+backward and the teacher lookup from its cache. ``step / parts`` is the engine's and the
method's own overhead (method-specific losses such as DCD's connectors or SDAKD's adapters show
up here). Run: ``python benchmarks/perf_train_step.py [--model realesrgan] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from gankd.bench.assemble import POOL_SEED, teacher_pool_dir
from gankd.bench.compose import build_trainer, seeded_build
from gankd.bench.data import training_pool
from gankd.bench.suite import load_suite, method_options
from gankd.bench.teachers import load_teacher
from gankd.engine.sampler import PoolSampler
from gankd.engine.trainer import Trainer
from gankd.models import zoo

METHODS = load_suite("cpu").methods  # every registered method unless the suite lists some


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(method: str, model: str = "realesrgan", suite: str = "cpu", pool_size: int = 16) -> Trainer:
    s = load_suite(suite)
    setup = s.models[model]
    setup = dataclasses.replace(setup, data=dataclasses.replace(setup.data, pool_size=pool_size))
    cfg = method_options(s, model, method)
    if method == "sdakd":  # time the full stage-3 step: every term, the student D stepping
        cfg = dataclasses.replace(cfg, stage_fractions=(0.0, 0.0, 1.0))
    pool = training_pool(setup, "builtin", POOL_SEED)
    tr = build_trainer(student=seeded_build(zoo.student(setup.teacher, s.ratios[0], setup.student), 0),
                       teacher=load_teacher(setup, "builtin", progress=False),
                       d_entry=zoo.get(setup.discriminator), recipe=setup.recipe, method=method,
                       method_cfg=cfg, train=setup.train,
                       sampler=PoolSampler(pool, setup.train.batch_size, 0), ratio=s.ratios[0], seed=0,
                       image_size=setup.data.hr_crop, progress=False)
    if tr.method.uses_teacher:
        tr.teacher.precompute(pool, teacher_pool_dir(), progress=False)
    return tr


def parts(tr: Trainer, repeats: int) -> dict[str, float]:
    batch = tr.sampler.next()
    out: dict[str, float] = {}

    def student() -> None:
        tr.student.zero_grad(set_to_none=True)
        tr.student(*batch.g_input).mean().backward()

    out["student fwd/bwd"] = _time(student, repeats)
    with torch.no_grad():
        fake = tr.student(*batch.g_input)
    for name in tr.method.active_discriminators(tr.cfg.steps - 1):
        d = tr.method.discriminators[name]

        def disc(d: torch.nn.Module = d) -> None:
            d.zero_grad(set_to_none=True)
            f = fake.detach().requires_grad_(True)
            (d(f).mean() + d(f).mean() + d(batch.real).mean()).backward()  # G side + D side

        out[f"D {name} fwd/bwd"] = _time(disc, repeats)
    vgg = tr.method.recipe.vgg
    if vgg is not None:
        cached = tr.method.recipe.target_cache.budget > 0  # the step looks the targets' side up

        def percep() -> None:
            f = fake.detach().requires_grad_(True)
            sum(v.mean() for v in vgg(f).values()).backward()
            if not cached:
                with torch.no_grad():
                    vgg(batch.target)

        out["perceptual VGG"] = _time(percep, repeats)
    if tr.method.uses_teacher and tr.teacher is not None:
        out["teacher (cache)"] = _time(lambda: tr.teacher.outputs(batch), repeats)
    return out


def run(methods: tuple[str, ...] = METHODS, model: str = "realesrgan", repeats: int = 3) -> list[dict]:
    torch.set_num_threads(2)
    rows = []
    for method in methods:
        tr = build(method, model)
        p = parts(tr, repeats)
        for _ in range(len(tr.sampler.pool) // tr.sampler.batch_size):  # one epoch: every row cached
            tr.train_step()
        step = _time(tr.train_step, repeats)
        rows.append({"method": method, "step_s": step, "parts_s": sum(p.values()),
                     "ratio": step / sum(p.values()), "parts": p})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="realesrgan")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = run(model=args.model, repeats=args.repeats)
    print(f"{'method':8s} {'step (s)':>9s} {'parts (s)':>9s} {'step/parts':>10s}  parts")
    for r in rows:
        detail = ", ".join(f"{k} {v:.3f}" for k, v in r["parts"].items())
        print(f"{r['method']:8s} {r['step_s']:9.3f} {r['parts_s']:9.3f} {r['ratio']:10.2f}  {detail}")


if __name__ == "__main__":
    main()
