"""Per-method training-step time on the cpu suite, against the sum of its parts.

For each method, one engine step (``Trainer.train_step``) is timed and compared with the same
work done as bare parts: the student's forward+backward, each active discriminator's
forward+backward (generator side on the fake, D side on real and fake), the perceptual VGG
forward+backward and the teacher lookup from its cache. ``step / parts`` is the engine's and the
method's own overhead (method-specific losses such as DCD's connectors or SDAKD's adapters show
up here); ``step / all`` adds the networks the method runs beyond the base recipe's, timed
bare (``own_parts``), and leaves the engine's glue. LIT is timed on its own student (the
suite's first shape it applies to: r1-d6).
Run: ``python benchmarks/perf_train_step.py [--model realesrgan gcfsr] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from gankd.bench.assemble import POOL_SEED, teacher_pool_dir
from gankd.bench.compose import TeacherNet, build_trainer, seeded_build
from gankd.bench.data import training_pool
from gankd.bench.suite import ModelSetup, StudentShape, load_suite, method_options
from gankd.bench.teachers import load_teacher, trained_teacher_path
from gankd.bench.tune import tuning_shape
from gankd.engine.sampler import PoolSampler
from gankd.engine.trainer import Trainer
from gankd.methods import METHODS as REGISTRY
from gankd.methods.terms import Pair
from gankd.models import zoo
from gankd.paths import trained_dir

METHODS = load_suite("cpu").methods  # every registered method unless the suite lists some


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _teacher(setup: ModelSetup) -> TeacherNet:
    """The suite's teacher (keyed by the suite's own data config, so a kept teacher is found in
    the kept set, ``reports/sample/trained`` by default); a teacher gankd trains itself (GCFSR at cpu scale)
    and has not yet is timed untrained: a step's time does not depend on the weights, and a
    benchmark should not spend an hour training one."""
    if setup.teacher_train is not None and not trained_teacher_path(setup, "builtin", POOL_SEED).is_file():
        print(f"{setup.teacher}: no trained teacher in the kept set or {trained_dir()}; timing the "
              "untrained network",
              flush=True)
        return TeacherNet(zoo.get(setup.teacher).build(), "untrained")
    return load_teacher(setup, "builtin", POOL_SEED, progress=False)


def build(method: str, model: str = "realesrgan", suite: str = "cpu", pool_size: int = 16,
          shape: StudentShape | None = None) -> Trainer | None:
    """The engine of one ``method`` on ``shape``, by default the first student shape of ``suite``
    it runs on (None: the method applies to none of the model's shapes)."""
    s = load_suite(suite)
    shape = shape or tuning_shape(s, model, method)  # LIT runs on its own shallow, teacher-width student
    if shape is None:
        return None
    teacher = _teacher(s.models[model])
    # a small pool: every row's features cached after one epoch (a run's later steps)
    setup = s.models[model]
    setup = dataclasses.replace(setup, data=dataclasses.replace(setup.data, pool_size=pool_size))
    # the method's fullest step (SDAKD's stage 3: every term, the student D stepping)
    cfg = dataclasses.replace(method_options(s, model, method), **REGISTRY.get(method).every_term_options)
    pool = training_pool(setup, "builtin", POOL_SEED, lambda: teacher)
    tr = build_trainer(student=seeded_build(zoo.student(setup.teacher, shape.ratio, setup.student,
                                                             depth=shape.depth), 0),
                       teacher=teacher,
                       d_entry=zoo.get(setup.discriminator), recipe=setup.recipe, method=method,
                       method_cfg=cfg, train=setup.train,
                       sampler=PoolSampler(pool, setup.train.batch_size, 0), ratio=shape.ratio, seed=0,
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


def own_parts(tr: Trainer, repeats: int) -> dict[str, float]:
    """The networks a method runs beyond the base recipe's, each timed bare (forward and the
    backward the step takes), from detached student outputs so the student's own backward is not
    counted twice. DCD: its pseudo-images through D (student side with gradients, teacher side
    without) and its VGG16 output KD. Other methods: none timed here (OMGD's online teacher is a
    teacher-size generator trained every step; its step/parts shows it)."""
    m = tr.method
    if m.name != "dcd":
        return {}
    batch = tr.sampler.next()
    with torch.no_grad():
        _, s = tr.generator_forward(batch, tr._teacher_outputs(batch), tr.step)
    s = dataclasses.replace(s, fake=s.fake.detach().requires_grad_(True),
                            student_features=[f.detach().requires_grad_(True) for f in s.student_features])
    for d in m.discriminators.values():
        d.requires_grad_(False)  # as in the generator step: gradients go through D, not into it
    pair = Pair.of(s)
    out = {"DCD pseudo-images through D": _time(lambda: m.cd(pair)["dcd"].backward(), repeats),
           "DCD VGG16 output KD": _time(lambda: sum(m.weigh(m.output_kd(pair)).values()).backward(), repeats)}
    for d in m.discriminators.values():
        d.requires_grad_(True)
    return out


def run(methods: tuple[str, ...] = METHODS, model: str = "realesrgan", repeats: int = 3) -> list[dict]:
    torch.set_num_threads(2)
    rows = []
    for method in methods:
        shape = tuning_shape(load_suite("cpu"), model, method)
        if shape is None:
            continue
        tr = build(method, model, shape=shape)
        assert tr is not None
        p = parts(tr, repeats)
        own = own_parts(tr, repeats)
        for _ in range(len(tr.sampler.pool) // tr.sampler.batch_size):  # one epoch: every row cached
            tr.train_step()
        step = _time(tr.train_step, repeats)
        base, total = sum(p.values()), sum(p.values()) + sum(own.values())
        rows.append({"method": method, "shape": shape.tag, "step_s": step, "parts_s": base,
                     "ratio": step / base, "all_parts_s": total, "ratio_all": step / total,
                     "parts": {**p, **own}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["realesrgan", "gcfsr"],
                    choices=sorted(load_suite("cpu").models))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'model':10s} {'method':8s} {'student':8s} {'step (s)':>9s} {'parts (s)':>9s} "
          f"{'step/parts':>10s} {'+own (s)':>9s} {'step/all':>9s}  parts")
    for model in args.model:
        for r in run(model=model, repeats=args.repeats):
            detail = ", ".join(f"{k} {v:.3f}" for k, v in r["parts"].items())
            print(f"{model:10s} {r['method']:8s} {r['shape']:8s} {r['step_s']:9.3f} {r['parts_s']:9.3f} "
                  f"{r['ratio']:10.2f} {r['all_parts_s']:9.3f} {r['ratio_all']:9.2f}  {detail}", flush=True)


if __name__ == "__main__":
    main()
