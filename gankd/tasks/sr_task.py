"""Super-resolution: a degraded image in, its HR the paired target (Real-ESRGAN, GCFSR).

The data come from ``gankd.datasets``: a cached pool of degraded pairs (CPU suites) or an online
stream (GPU suites), evaluation and validation crops of held-out photos. A student must beat
bicubic upsampling, the no-network baseline, on LPIPS (the floors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gankd.tasks import TASKS
from gankd.tasks.base import DataCheck, Task, TeacherSource

if TYPE_CHECKING:
    from gankd.bench.suite import ModelSetup
    from gankd.datasets.batch import EvalSample
    from gankd.datasets.evalset import EvalSet
    from gankd.datasets.pool import TrainPool

# A task module's top imports nothing that loads data code or torch: the results side reads a
# task's declaration (references, baseline, primary metric, image columns) from the class without
# them; what a method runs it imports where it runs.


@TASKS.register("sr")
class SuperResolution(Task):
    name = "sr"
    references = ("teacher", "bicubic")
    baseline = "bicubic"
    paired = True
    primary = "lpips"  # LPIPS to the HR image
    secondary = ("psnr", "ssim", "fid")
    grid_before = (("LR", "lr"), ("bicubic", "bicubic"), ("teacher", "teacher"))
    grid_after = (("HR", "hr"),)

    def check_data(self, setup: ModelSetup, data: str) -> DataCheck:
        from gankd.tasks.images import check_images

        return check_images(setup, data)

    def training_pool(self, setup: ModelSetup, data: str, pool_seed: int,
                      teacher: TeacherSource) -> TrainPool | None:
        from gankd.datasets import pool as pools

        if setup.data.pool_size == 0:
            return None
        return pools.build_pool(setup.data, data, pool_seed)

    def training_images(self, setup: ModelSetup, data: str, pool_seed: int) -> dict[str, Any]:
        # the pool's identity: the content of its images, not the name of the source (a rebuilt
        # or edited set of the same name is other data)
        from gankd.datasets import pool as pools

        if setup.data.pool_size > 0:
            return pools.pool_identity(setup.data, data, pool_seed)[0]
        return {"source": data}

    def evaluation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> EvalSet:
        from gankd.datasets.evalset import build_evalset

        return build_evalset(setup.data, data, suite)

    def validation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> list[EvalSample]:
        from gankd.datasets.evalset import build_valset

        return build_valset(setup.data, data, suite).samples
