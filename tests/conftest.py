"""Shared fixtures: tiny configs of the real architectures and a synthetic indexed pool."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from gankd.bench.compose import TeacherNet, build_trainer, seeded_build
from gankd.datasets.batch import Batch
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.engine.sampler import PoolSampler
from gankd.engine.trainer import Trainer
from gankd.errors import ConfigError
from gankd.methods import METHODS, method_config
from gankd.models import MODELS, has_paired_target, zoo
from gankd.paths import family_names
from gankd.registry import PLUGINS_ENV

#: the throwaway method of the README's recipe (tests/plugins/mse_copy.py), registered for this
#: session and every process it starts: each test that enumerates the registry runs it too
THROWAWAY = "mse-copy"
#: the tests' folder (on sys.path: test modules import this file as ``conftest``), the repository
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TEST_DATA = TESTS / "data"
PLUGIN = TESTS / "plugins" / "mse_copy.py"
_PLUGIN = str(PLUGIN)
if _PLUGIN not in os.environ.get(PLUGINS_ENV, "").split(os.pathsep):
    os.environ[PLUGINS_ENV] = os.pathsep.join(filter(None, [os.environ.get(PLUGINS_ENV), _PLUGIN]))


class SyntheticPool:
    """LR/HR pairs of smooth random images: the shape of a cached pool, no files."""

    def __init__(self, n: int = 8, lr: int = 8, scale: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        hr = torch.nn.functional.interpolate(torch.rand(n, 3, lr, lr, generator=g), scale_factor=scale,
                                             mode="bicubic", align_corners=False).clamp(0, 1)
        self.hr = hr
        self.lr = torch.nn.functional.avg_pool2d(hr, scale)
        self.key = f"synthetic-{n}-{lr}-{seed}"

    def __len__(self) -> int:
        return len(self.hr)

    def batch(self, index: torch.Tensor) -> Batch:
        return Batch(g_input=(self.lr[index],), real=self.hr[index], target=self.hr[index], index=index)


class SyntheticGCFSRPool(SyntheticPool):
    """The GCFSR shape of a pool: (LR upsampled to the output size, in_size) in, HR out."""

    def __init__(self, n: int = 8, side: int = 32, scale: int = 4, cond_norm: float = 8.0,
                 seed: int = 0) -> None:
        super().__init__(n=n, lr=side // scale, scale=scale, seed=seed)
        self.lr_up = torch.nn.functional.interpolate(self.lr, scale_factor=scale, mode="bicubic",
                                                     align_corners=False).clamp(0, 1)
        self.cond = torch.full((n, 1), scale / cond_norm)
        self.key = f"synthetic-gcfsr-{n}-{side}-{seed}"

    def batch(self, index: torch.Tensor) -> Batch:
        return Batch(g_input=(self.lr_up[index], self.cond[index]), real=self.hr[index],
                     target=self.hr[index], index=index)


class ExamplePool:
    """Any family's pool shape from its generator architecture's own ``example_inputs``: the
    inputs as the network takes them, smooth random HR images of its output's shape."""

    def __init__(self, entry: zoo.ZooEntry, n: int = 8, seed: int = 0, side: int = 8) -> None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = entry.build().eval()
            self.paired = has_paired_target(net)  # noise / unpaired translation: no target
            try:
                self.inputs = net.example_inputs(n, side)
            except ValueError:  # a fixed-size architecture takes its one size only
                self.inputs = net.example_inputs(n, entry.input)
            with torch.no_grad():
                side = net(*(x[:1] for x in self.inputs)).shape[-1]
            coarse = torch.rand(n, 3, max(1, side // 4), max(1, side // 4))
        self.hr = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic",
                                                  align_corners=False).clamp(0, 1)
        self.key = f"example-{entry.name}-{n}-{seed}"

    def __len__(self) -> int:
        return len(self.hr)

    def batch(self, index: torch.Tensor) -> Batch:
        return Batch(g_input=tuple(x[index] for x in self.inputs), real=self.hr[index],
                     target=self.hr[index] if self.paired else None, index=index)


TINY_TEACHER = dataclasses.replace(
    zoo.get("realesrgan_x4plus"), name="tiny_rrdb",
    kwargs={"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 16, "num_block": 4, "num_grow_ch": 8})
TINY_D = dataclasses.replace(zoo.get("realesrgan_unet_d"), name="tiny_unet_d",
                             kwargs={"num_in_ch": 3, "num_feat": 16, "skip_connection": True})
TINY_GCFSR = dataclasses.replace(zoo.get("gcfsr_32"), name="tiny_gcfsr",
                                 kwargs={"out_size": 32, "narrow": 0.0625, "cond_norm": 8.0})
TINY_GCFSR_D = dataclasses.replace(zoo.get("gcfsr_d_32"), name="tiny_gcfsr_d",
                                   kwargs={"out_size": 32, "narrow": 0.0625})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` run where torch sees a CUDA device (``make gpu-check`` runs them
    there); elsewhere they are skipped, saying why, rather than failing."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make gpu-check runs the cuda tests)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@dataclass(frozen=True)
class TinyFamily:
    """The networks and data of a family's tiny test runs (student at r = 0.5)."""

    teacher: zoo.ZooEntry
    discriminator: zoo.ZooEntry
    pool: Callable[[], Any]
    student: dict[str, Any] = field(default_factory=dict)  # student arch overrides
    image_size: int = 0  # the side fixed-size discriminators judge (0: any side)


#: hand-made for speed; any other family is tested through ``tiny_family``'s generic setup
TINY = {
    "realesrgan": TinyFamily(TINY_TEACHER, TINY_D, SyntheticPool, {"num_block": 2}),
    "gcfsr": TinyFamily(TINY_GCFSR, TINY_GCFSR_D, SyntheticGCFSRPool, image_size=32),
}
#: every model family (one per benchmarks/models/<family>.yaml): a new one is tested as it is added
FAMILIES = tuple(family_names())


def tiny_family(family: str) -> TinyFamily:
    """A family's tiny test setup: hand-made for the known ones; otherwise its smoke-suite
    teacher and discriminator (the smoke scale is seconds per run) fed their own example inputs."""
    if family in TINY:
        return TINY[family]
    from gankd.bench.suite import load_suite

    setup = load_suite("smoke").models[family]
    d_entry = zoo.get(setup.discriminator)
    # the smallest input whose output a patch discriminator can judge (PatchGAN: 24 pixels)
    side = max(8, getattr(MODELS.get(d_entry.arch), "min_input_size", 8))
    pool = ExamplePool(zoo.get(setup.teacher), side=side)
    return TinyFamily(zoo.get(setup.teacher), d_entry, lambda: pool, dict(setup.student),
                      image_size=pool.hr.shape[-1])


def tiny_student(method: str, family: str) -> zoo.ZooEntry | str:
    """The tiny student ``method`` can distil into: r = 0.5, else r = 1.0 (LIT needs the teacher's
    width); or, as a string, why the method cannot distil this family at all."""
    tiny = tiny_family(family)
    cls = METHODS.get(method)
    teacher = tiny.teacher.build()
    reason = ""
    for r in (0.5, 1.0):
        entry = zoo.student(tiny.teacher, r, tiny.student)
        reason = cls.not_applicable(entry.build(), teacher) or ""
        if not reason:
            return entry
    return reason


def tiny_overrides(method: str) -> dict[str, Any]:
    """Options a tiny run needs whatever the method: 2 feature taps (the tiny networks have 2
    RRDB blocks / 2 decoder levels)."""
    fields = {f.name for f in dataclasses.fields(METHODS.get(method).Config)}
    return {"taps": 2} if "taps" in fields else {}


def family_recipe(family: str) -> RecipeConfig:
    """The family's own recipe (benchmarks/models/<family>.yaml); Real-ESRGAN's with its two
    shallow VGG layers only (the deep ones cost time and change nothing a test looks at)."""
    from gankd.config import from_mapping, load_yaml
    from gankd.paths import benchmarks_dir

    raw = load_yaml(benchmarks_dir() / "models" / f"{family}.yaml")["recipe"]
    recipe = from_mapping(RecipeConfig, raw, f"{family}.yaml: recipe")
    if family == "realesrgan":
        return dataclasses.replace(recipe, perceptual_layers={"conv1_2": 0.1, "conv2_2": 0.1})
    return recipe


@pytest.fixture
def pool() -> SyntheticPool:
    return SyntheticPool()


@pytest.fixture
def make_trainer(tmp_path) -> Callable[..., Trainer]:
    """A Trainer of a tiny run of ``method`` (student at r=0.5): Real-ESRGAN-shaped (a 4-block
    RRDBNet teacher, 2-block student) or, with ``family="gcfsr"``, a 32-pixel GCFSR with its
    StyleGAN2 discriminator and the GCFSR family's own recipe."""

    def build(method: str, steps: int = 2, run_dir=None, method_overrides: dict | None = None,
              recipe: RecipeConfig | None = None, seed: int = 0, ckpt_every: int = 0,
              pool: Any = None, family: str = "realesrgan", cycle: Any = None) -> Trainer:
        tiny = tiny_family(family)
        pool = pool or tiny.pool()
        student_entry = tiny_student(method, family)
        if isinstance(student_entry, str):
            raise ConfigError(student_entry)
        method_overrides = {**tiny_overrides(method), **(method_overrides or {})}
        train = TrainConfig(steps=steps, batch_size=2, log_every=1, ckpt_every=ckpt_every, device="cpu")
        return build_trainer(
            student=seeded_build(student_entry, seed),
            teacher=TeacherNet(seeded_build(tiny.teacher, 123), "tiny"), d_entry=tiny.discriminator,
            recipe=recipe or family_recipe(family),
            method=method, method_cfg=method_config(method, method_overrides), train=train,
            sampler=PoolSampler(pool, 2, seed), ratio=0.5, seed=seed, run_dir=run_dir, progress=False,
            image_size=tiny.image_size, cycle=cycle)

    return build


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache of the test's own, sharing the real one's converted weights and downloads
    (fixed inputs: the teacher, VGG, LPIPS, not what data tests are about)."""
    from gankd.paths import fresh_cache

    cache = fresh_cache(tmp_path / "cache")
    monkeypatch.setenv("GANKD_CACHE", str(cache))
    return cache


def pretrained_student_path(setup: Any, student: zoo.ZooEntry) -> Path:
    """Where ``cached_training.pretrained_student`` keeps ``student``'s supervised stage (seed 0,
    builtin data) under the current environment, asked without training it."""
    from gankd.bench import cached_training

    asked: list[Path] = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cached_training, "train_cached", lambda path, *a, **k: asked.append(path) or path)
        cached_training.pretrained_student(setup, student, 0, "builtin", 0, progress=False)
    return asked[0]


def noise_photo(seed: int, w: int = 128, h: int = 128) -> np.ndarray:
    """A smooth random RGB image (bicubic-upsampled noise): distinct per seed, photo-like enough
    to crop, degrade and decode."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from a second thread, and on a loaded 2-core machine a
    second OpenMP thread spinning for a busy core slows a step down tenfold."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def load_script(name: str) -> types.ModuleType:
    """``scripts/<name>.py`` as a module (the scripts are not a package)."""
    from gankd.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
