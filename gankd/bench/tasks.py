"""The data of the tasks beyond super-resolution (SPEC section 10, issue 18).

A family's ``task`` says what its generator does:

- ``sr``: a degraded image in, its HR the paired target (``gankd.datasets``: pools, evaluation
  sets);
- ``unconditional`` (DCGAN): noise in, no target. No face images exist offline, so the
  discriminators' real images are the teacher's own samples on independent noise (the
  MSE-method distils the generator's mapping; AKDG's D_kd sees the teacher's samples by
  definition), unless ``DATA=`` names a folder of real images. Evaluation: fixed noise vectors,
  identical for every method; each sample is judged against the teacher's sample for the same
  noise (PSNR / LPIPS: how closely the mapping is copied) and the sets against each other (FID,
  KID, precision / recall: how closely the distribution is);
- ``translation`` (CycleGAN): a photo in, no paired target. Domain A is always the builtin
  photos; domain B -- what the discriminators see as real -- is the teacher's outputs on other
  crops of the training photos (a distillation target, not real images of that style; with six
  training photos, held out crop by crop rather than photo by photo), or ``DATA=``'s images.
  Evaluation: the test photos' crops, each student output against the teacher's output for the
  same photo.

An evaluation sample's ``hr`` is the teacher's output here; reference outputs and domain-B images
are computed once and cached under ``$GANKD_CACHE/task-outputs`` by the teacher's identity and
what they were computed on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gankd import atomic
from gankd.bench.suite import ModelSetup
from gankd.cachekeys import cache_key
from gankd.datasets import evalset as evalsets
from gankd.datasets import pool as pools
from gankd.datasets.batch import Batch, EvalSample
from gankd.datasets.seeding import derive_seed, generator
from gankd.errors import ConfigError
from gankd.locks import file_lock
from gankd.paths import cache_dir

log = logging.getLogger(__name__)

#: domain A of a translation family: the inputs are always the builtin photos
DOMAIN_A = "builtin"


def has_target(setup: ModelSetup) -> bool:
    return setup.task == "sr"


# -- the teacher's outputs, cached ---------------------------------------------------------------
def _teacher(setup: ModelSetup, data: str) -> Any:
    from gankd.bench.teachers import load_teacher

    return load_teacher(setup, data, progress=False)


@torch.no_grad()
def teacher_outputs(teacher: Any, inputs: Callable[[int, int], tuple[torch.Tensor, ...]], n: int,
                    what: dict[str, Any], batch_size: int = 8) -> torch.Tensor:
    """The frozen teacher's outputs on ``n`` inputs (``inputs(start, stop)`` gives a batch), as
    uint8 images on disk: computed once per (teacher, ``what``), then read and checked."""
    from gankd.engine.teacher import freeze

    key = cache_key({"teacher": teacher.identity, **what})
    folder = cache_dir() / "task-outputs"
    path = folder / f"{key}.pt"
    with file_lock(folder / f".{key}.lock"):
        side = path.with_suffix(".sha256")
        if path.is_file() and side.is_file() and side.read_text().strip() == atomic.sha256_file(path):
            return torch.load(path, map_location="cpu", weights_only=True).float() / 255.0
        net = freeze(teacher.net)
        out = []
        for start in range(0, n, batch_size):
            out.append(net(*inputs(start, min(n, start + batch_size))).clamp(0, 1))
        images = (torch.cat(out) * 255).round().to(torch.uint8)
        atomic.torch_save(path, images)
        atomic.write_text(side, atomic.sha256_file(path) + "\n")
        log.info("teacher outputs %s: %d image(s) of %s", key, n, what.get("kind"))
    return images.float() / 255.0


def noise(n: int, nz: int, *seed_parts: object) -> torch.Tensor:
    return torch.randn(n, nz, 1, 1, generator=generator(derive_seed(*seed_parts)))


def _nz(teacher: Any) -> int:
    return int(teacher.net.example_inputs(1)[0].shape[1])


# -- training pools --------------------------------------------------------------------------
@dataclass
class UnpairedPool:
    """Generator inputs and the discriminators' real images, drawn together by row but unrelated
    (``real`` has rows of its own; row i of a batch pairs input i with real i mod its length)."""

    key: str
    inputs: torch.Tensor
    real: torch.Tensor

    def __len__(self) -> int:
        return len(self.inputs)

    def batch(self, index: torch.Tensor) -> Batch:
        index = torch.as_tensor(index).to("cpu", torch.long).reshape(-1)
        return Batch(g_input=(self.inputs[index],), real=self.real[index % len(self.real)], target=None,
                     index=index)


def _real_images(setup: ModelSetup, data: str, seed: int) -> torch.Tensor | None:
    """A user folder's images as the real distribution (None: builtin data, no real images)."""
    if data == "builtin":
        return None
    pool = pools.build_pool(setup.data, data, seed)
    return pool.batch(torch.arange(len(pool))).real


def training_pool(setup: ModelSetup, data: str, seed: int) -> UnpairedPool:
    n = setup.data.pool_size
    if n < 1:
        raise ConfigError(f"the {setup.task} task needs a training pool: set data.pool_size >= 1")
    teacher = _teacher(setup, data)
    real = _real_images(setup, data, seed)
    if setup.task == "unconditional":
        nz = _nz(teacher)
        z = noise(n, nz, "pool-noise", seed)
        if real is None:
            z_real = noise(n, nz, "pool-real-noise", seed)
            real = teacher_outputs(teacher, lambda a, b: (z_real[a:b],), n,
                                   {"kind": "samples", "n": n, "seed": seed})
        key = cache_key({"kind": "noise-pool", "n": n, "nz": nz, "seed": seed, "teacher": teacher.identity,
                         "real": data})
        return UnpairedPool(key, z, real)
    a = pools.build_pool(setup.data, DOMAIN_A, seed)
    inputs = a.batch(torch.arange(len(a))).g_input[0]
    if real is None:  # the teacher's outputs on other crops of the same photos
        b = pools.build_pool(setup.data, DOMAIN_A, seed + 1)
        b_in = b.batch(torch.arange(len(b))).g_input[0]
        real = teacher_outputs(teacher, lambda s, e: (b_in[s:e],), len(b_in),
                               {"kind": "domain-b", "pool": b.key})
    key = cache_key({"kind": "unpaired-pool", "a": a.key, "teacher": teacher.identity, "real": data})
    return UnpairedPool(key, inputs, real)


# -- evaluation and validation sets ----------------------------------------------------------
def _with_teacher_hr(setup: ModelSetup, data: str, es: evalsets.EvalSet, kind: str) -> evalsets.EvalSet:
    teacher = _teacher(setup, data)
    inputs = [s.g_input for s in es.samples]
    outs = teacher_outputs(teacher, lambda a, b: tuple(torch.stack(t) for t in zip(*inputs[a:b])),
                           len(inputs), {"kind": kind, "evalset": es.key})
    samples = [dataclasses.replace(s, hr=o) for s, o in zip(es.samples, outs)]
    key = cache_key({"evalset": es.key, "teacher": teacher.identity})
    return dataclasses.replace(es, key=f"{es.key[:8]}-{key[:8]}", samples=samples)


def _noise_set(setup: ModelSetup, data: str, suite: str, kind: str, n: int) -> evalsets.EvalSet:
    teacher = _teacher(setup, data)
    nz = _nz(teacher)
    z = noise(n, nz, suite, kind)
    outs = teacher_outputs(teacher, lambda a, b: (z[a:b],), n, {"kind": kind, "suite": suite, "n": n})
    samples = [EvalSample(name=f"z{i:03d}", g_input=(z[i],), hr=o, lr=o, scale=1)
               for i, o in enumerate(outs)]
    key = cache_key({"kind": kind, "suite": suite, "n": n, "nz": nz, "teacher": teacher.identity})
    how = f"N(0, I) from derive_seed({suite!r}, {kind!r})"
    return evalsets.EvalSet(key=key, root=cache_dir() / "task-outputs", manifest_sha256=key,
                            samples=samples, manifest={"kind": kind, "noise": how})


def evaluation_set(setup: ModelSetup, data: str, suite: str) -> evalsets.EvalSet:
    if setup.task == "unconditional":
        return _noise_set(setup, data, suite, "eval-noise", setup.data.eval_samples)
    return _with_teacher_hr(setup, data, evalsets.build_evalset(setup.data, DOMAIN_A, suite), "eval")


def validation_set(setup: ModelSetup, data: str, suite: str) -> list[EvalSample]:
    if setup.task == "unconditional":
        return _noise_set(setup, data, suite, "val-noise", max(4, setup.data.eval_samples // 4)).samples
    return _with_teacher_hr(setup, data, evalsets.build_valset(setup.data, DOMAIN_A, suite), "val").samples


def resampled(samples: list[EvalSample], suite: str) -> list[EvalSample]:
    """The unconditional teacher's reference: its samples on a second set of noise vectors, judged
    against its samples on the evaluation noise -- the level a perfect copy of its distribution
    reaches (FID's sampling floor; PSNR / LPIPS between unrelated samples)."""
    nz = int(samples[0].g_input[0].shape[0])
    z = noise(len(samples), nz, suite, "eval-noise-b")
    return [dataclasses.replace(s, g_input=(z[i],)) for i, s in enumerate(samples)]
