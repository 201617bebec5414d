"""Unconditional generation (DCGAN): noise in, no target.

No face images exist offline, so the discriminators' real images are the teacher's own samples on
independent noise (the MSE method distils the generator's mapping; AKDG's D_kd sees the teacher's
samples by definition), unless ``DATA=`` names a folder of real images. Evaluation: fixed noise
vectors, identical for every method; each sample is judged against the teacher's sample for the
same noise (PSNR / LPIPS: how closely the mapping is copied) and the sets against each other
(FID, KID, precision / recall: how closely the distribution is). The teacher's own row is its
samples on a second set of noise (``teacher_samples``). No no-network baseline exists.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from gankd.cachekeys import cache_key
from gankd.paths import cache_dir
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

log = logging.getLogger("gankd.bench.data")


@TASKS.register("unconditional")
class Unconditional(Task):
    name = "unconditional"
    references = ("teacher",)
    baseline = None
    paired = False
    primary = "fid"  # its papers' metric: FID to the teacher's samples
    secondary = ("kid", "lpips", "precision", "recall")
    psnr_guard = False
    grid_before = (("teacher", "hr"),)

    def check_data(self, setup: ModelSetup, data: str) -> DataCheck:
        if data != "builtin":
            from gankd.tasks.images import check_images

            return check_images(setup, data)
        rule = "no images: the teacher's samples are the real distribution"
        log.info("data builtin: %s", rule)
        return DataCheck(0, 0, 0, rule)

    def training_pool(self, setup: ModelSetup, data: str, pool_seed: int,
                      teacher: TeacherSource) -> UnpairedPool:
        from gankd.tasks.teacher_outputs import (
            UnpairedPool,
            latent_size,
            noise,
            pool_size,
            real_images,
            teacher_outputs,
        )

        n = pool_size(setup, self.name)
        t = teacher()
        real = real_images(setup, data, pool_seed)
        nz = latent_size(t)
        z = noise(n, nz, "pool-noise", pool_seed)
        if real is None:
            z_real = noise(n, nz, "pool-real-noise", pool_seed)
            real = teacher_outputs(t, lambda a, b: (z_real[a:b],), n,
                                   {"kind": "samples", "n": n, "seed": pool_seed})
        key = cache_key({"kind": "noise-pool", "n": n, "nz": nz, "seed": pool_seed, "teacher": t.identity,
                         "real": data})
        return UnpairedPool(key, z, real)

    def evaluation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> EvalSet:
        return _noise_set(teacher, suite, "eval-noise", setup.data.eval_samples)

    def validation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> list[EvalSample]:
        return _noise_set(teacher, suite, "val-noise", max(4, setup.data.eval_samples // 4)).samples

    def teacher_samples(self, samples: list[EvalSample], suite: str) -> list[EvalSample]:
        """The teacher's samples on a second set of noise vectors, judged against its samples on
        the evaluation noise: the level a perfect copy of its distribution reaches (FID's sampling
        floor; PSNR / LPIPS between unrelated samples)."""
        from gankd.tasks.teacher_outputs import noise

        nz = int(samples[0].g_input[0].shape[0])
        z = noise(len(samples), nz, suite, "eval-noise-b")
        return [dataclasses.replace(s, g_input=(z[i],)) for i, s in enumerate(samples)]


def _noise_set(teacher: TeacherSource, suite: str, kind: str, n: int) -> EvalSet:
    from gankd.datasets.batch import EvalSample
    from gankd.datasets.evalset import EvalSet
    from gankd.tasks.teacher_outputs import latent_size, noise, teacher_outputs

    t = teacher()
    nz = latent_size(t)
    z = noise(n, nz, suite, kind)
    outs = teacher_outputs(t, lambda a, b: (z[a:b],), n, {"kind": kind, "suite": suite, "n": n})
    samples = [EvalSample(name=f"z{i:03d}", g_input=(z[i],), hr=o, lr=o, scale=1)
               for i, o in enumerate(outs)]
    key = cache_key({"kind": kind, "suite": suite, "n": n, "nz": nz, "teacher": t.identity})
    how = f"N(0, I) from derive_seed({suite!r}, {kind!r})"
    return EvalSet(key=key, root=cache_dir() / "task-outputs", manifest_sha256=key,
                            samples=samples, manifest={"kind": kind, "noise": how})
