"""Unpaired translation (CycleGAN): a photo in, no paired target.

Domain A is always the builtin photos; domain B -- what the discriminators see as real -- is the
teacher's outputs on other crops of the training photos (a distillation target, not real images
of that style; with six training photos, held out crop by crop rather than photo by photo), or
``DATA=``'s images. Evaluation: the test photos' crops, each student output against the teacher's
output for the same photo (the teacher is the reference, its own quality is not measured). The
no-network baseline is the input itself ("identity"). A family of this task may carry CycleGAN's
cycle and identity terms (``cycle:``, gankd.engine.cycle).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from gankd.cachekeys import cache_key
from gankd.tasks import TASKS
from gankd.tasks.base import DataCheck, Task, TeacherSource

if TYPE_CHECKING:
    from gankd.bench.suite import ModelSetup
    from gankd.datasets.batch import EvalSample
    from gankd.datasets.evalset import EvalSet
    from gankd.tasks.teacher_outputs import UnpairedPool

# A task module's top imports nothing that loads data code or torch: the results side reads a
# task's declaration (references, baseline, primary metric, image columns) from the class without
# them; what a method runs it imports where it runs.

#: domain A of a translation family: the inputs are always the builtin photos
DOMAIN_A = "builtin"


@TASKS.register("translation")
class Translation(Task):
    name = "translation"
    references = ("teacher", "identity")
    baseline = "identity"
    paired = False
    primary = "lpips"  # LPIPS to the teacher's output: what this family's lpips measures
    secondary = ("psnr", "ssim", "fid")
    takes_cycle = True
    teacher_is_reference = True
    grid_before = (("input", "lr"), ("teacher", "hr"))

    def check_data(self, setup: ModelSetup, data: str) -> DataCheck:
        # builtin: the domain-A photos it reads, checked as any photos; a folder: its images
        from gankd.tasks.images import check_images

        return check_images(setup, data)

    def training_pool(self, setup: ModelSetup, data: str, pool_seed: int,
                      teacher: TeacherSource) -> UnpairedPool:
        import torch

        from gankd.datasets import pool as pools
        from gankd.tasks.teacher_outputs import UnpairedPool, pool_size, real_images, teacher_outputs

        pool_size(setup, self.name)
        t = teacher()
        real = real_images(setup, data, pool_seed)
        a = pools.build_pool(setup.data, DOMAIN_A, pool_seed)
        inputs = a.batch(torch.arange(len(a))).g_input[0]
        if real is None:  # the teacher's outputs on other crops of the same photos
            b = pools.build_pool(setup.data, DOMAIN_A, pool_seed + 1)
            b_in = b.batch(torch.arange(len(b))).g_input[0]
            real = teacher_outputs(t, lambda s, e: (b_in[s:e],), len(b_in),
                                   {"kind": "domain-b", "pool": b.key})
        key = cache_key({"kind": "unpaired-pool", "a": a.key, "teacher": t.identity, "real": data})
        return UnpairedPool(key, inputs, real)

    def evaluation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> EvalSet:
        from gankd.datasets.evalset import build_evalset

        return _with_teacher_hr(teacher, build_evalset(setup.data, DOMAIN_A, suite), "eval")

    def validation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> list[EvalSample]:
        from gankd.datasets.evalset import build_valset

        return _with_teacher_hr(teacher, build_valset(setup.data, DOMAIN_A, suite), "val").samples


def _with_teacher_hr(teacher: TeacherSource, es: EvalSet, kind: str) -> EvalSet:
    import torch

    from gankd.tasks.teacher_outputs import teacher_outputs

    t = teacher()
    inputs = [s.g_input for s in es.samples]
    outs = teacher_outputs(t, lambda a, b: tuple(torch.stack(x) for x in zip(*inputs[a:b])),
                           len(inputs), {"kind": kind, "evalset": es.key})
    samples = [dataclasses.replace(s, hr=o) for s, o in zip(es.samples, outs)]
    key = cache_key({"evalset": es.key, "teacher": t.identity})
    return dataclasses.replace(es, key=f"{es.key[:8]}-{key[:8]}", samples=samples)
