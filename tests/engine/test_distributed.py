"""DistributedDataParallel on CPU: torchrun with 2 gloo processes against one process; and
the parts of the CUDA path that run on a CPU (fp32 discriminator heads under autocast, the
compiled student with its feature taps).

``TrainConfig.batch_size`` is the global batch, so the same config run by 1 and by 2 processes
must train the same way: each rank takes its half of every global batch, DDP averages the
gradients, and the logged terms are averaged over ranks. The tiny Real-ESRGAN-shaped nets have
no BatchNorm, so the first step's gradients agree to float rounding (measured: 1e-6 of the
largest gradient with 1 thread per process against 1, 6e-8 against 2) and so do the losses of
every step (< 5e-6 relative). Weights agree less closely: Adam divides each gradient by its own
magnitude, and where a gradient is near zero -- AKDG's distillation D judging a random tiny
teacher's output against a similar student output -- rounding becomes up to ~lr/10 of movement
(measured max 1e-4 for akdg, 7e-5 for sdakd, 2e-6 for mse, against 3e-3 moved in 3 steps at lr
1e-3).

This file is also the worker: ``python tests/engine/test_distributed.py --worker OUT`` under torchrun.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TESTS

from gankd.methods import benchmark_methods

STEPS = 3
BATCH = 4  # global
#: options beside ``tiny_overrides``: sdakd runs one step of each stage (its adapters idle in
#: stage 1); lit's 3 steps are 2 of its hint phase (stem, upsampler and head idle) and 1 of fine-tuning
OVERRIDES: dict[str, dict] = {"sdakd": {"stage_fractions": [1 / 3, 1 / 3, 1 / 3]}}
LR = 1e-3


def ddp_methods() -> list[str]:
    """Every registered method that can distil the tiny Real-ESRGAN teacher: a new method gets
    its DDP test by being registered."""
    from conftest import tiny_student

    return [m for m in benchmark_methods() if not isinstance(tiny_student(m, "realesrgan"), str)]


def has_batchnorm(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


pytestmark = pytest.mark.usefixtures("one_thread")


def build(method: str, dist, steps: int = STEPS, run_dir: Path | None = None, ckpt_every: int = 0):
    from conftest import TINY_D, TINY_TEACHER, SyntheticPool, tiny_overrides

    from gankd.bench.compose import TeacherNet, build_trainer, seeded_build
    from gankd.engine.config import RecipeConfig, TrainConfig
    from gankd.engine.distributed import RankShare
    from gankd.engine.sampler import PoolSampler
    from gankd.methods import method_config

    pool = SyntheticPool(n=8)
    overrides = {**tiny_overrides(method), **OVERRIDES.get(method, {})}
    train = TrainConfig(steps=steps, batch_size=BATCH, log_every=1, ckpt_every=ckpt_every, device="cpu")
    return build_trainer(
        student=seeded_build(student_entry(method), 0),  # as initial_student()
        teacher=TeacherNet(seeded_build(TINY_TEACHER, 123), "tiny"), d_entry=TINY_D,
        recipe=RecipeConfig(perceptual_layers={"conv1_2": 0.1, "conv2_2": 0.1}, lr_g=LR, lr_d=LR),
        method=method, method_cfg=method_config(method, overrides), train=train,
        sampler=PoolSampler(RankShare(pool, dist) if dist.enabled else pool, BATCH, seed=0), ratio=0.5,
        seed=0, run_dir=run_dir, progress=False, dist=dist)


def student_entry(method: str):
    """The tiny r = 0.5 student, or the r = 1.0 one where the method needs the teacher's width."""
    from conftest import tiny_student

    return tiny_student(method, "realesrgan")


def initial_student(method: str = "sdakd") -> dict:
    from gankd.bench.compose import seeded_build

    return seeded_build(student_entry(method), 0).state_dict()


def first_grads(method: str, dist) -> dict[str, torch.Tensor]:
    """Every gradient after one step (DDP's averaged ones under torchrun), before Adam divides
    it by its own magnitude."""
    tr = build(method, dist)
    tr.train_step()
    named = [*(("student." + n, p) for n, p in tr.student.named_parameters()),
             *(("method." + n, p) for n, p in tr.method.named_parameters())]
    return {n: p.grad.detach().clone() for n, p in named if p.grad is not None}


def snapshot(tr) -> dict:
    return {"history": tr.history, "student": tr.student.state_dict(), "ema": tr.ema.state_dict(),
            "method": tr.method.state_dict()}


def worker(out: Path) -> None:
    """One torchrun rank: every method for STEPS steps, then an interrupted + resumed run."""
    from gankd.engine import distributed

    torch.set_num_threads(1)
    dist = distributed.from_env("cpu")
    assert dist.world_size == 2 and torch.distributed.get_backend() == "gloo"
    results = {"world_size": dist.world_size}
    for method in ddp_methods():
        tr = build(method, dist)
        assert type(tr.g_loss).__name__ == "DistributedDataParallel"
        assert type(tr.d_loss).__name__ == ("DistributedDataParallel" if tr.method.discriminators else
                                            "_DiscriminatorLoss")
        tr.fit()
        results[method] = {**snapshot(tr), "grads": first_grads(method, dist),
                           "batchnorm": has_batchnorm(tr.method)}
    # Resume under DDP: rank 0 writes the step-2 checkpoint (with both ranks' RNG states) and
    # broadcasts it back on resume.
    run = out / "run"
    first = build("mse", dist, run_dir=run, ckpt_every=2)
    first.cfg = dataclasses.replace(first.cfg, steps=2)
    first.fit()
    second = build("mse", dist, run_dir=run, ckpt_every=2)
    res = second.fit()
    results["resume"] = {**snapshot(second), "resumed_from": res.resumed_from,
                         "files": sorted(p.name for p in (run / "checkpoints").iterdir()),
                         "events": sorted(p.name for p in (run / "tb").glob("events.out.tfevents.*")),
                         "pid": os.getpid()}  # rank 0's: it saves the results
    if dist.is_main:
        torch.save(results, out / "ddp.pt")
    distributed.shutdown()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           str(Path(__file__)), "--worker", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return torch.load(out / "ddp.pt", weights_only=False)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


#: the parameters a method's first step leaves without a gradient, in one process and under DDP
#: alike (None, not 0): sdakd's adapters in stage 1; everything of lit's student but its trunk
IDLE_FIRST = {"sdakd": lambda name: name.startswith("method."),
              "lit": lambda name: not name.startswith("student.body.")}


@pytest.mark.slow
@pytest.mark.parametrize("method", ddp_methods())
def test_two_processes_equal_one_process_with_the_global_batch(ddp_results, method):
    from gankd.engine.distributed import Dist
    from gankd.methods import METHODS

    single = build(method, Dist())
    single.fit()
    ddp = ddp_results[method]
    assert ddp_results["world_size"] == 2
    assert len(ddp["history"]) == len(single.history) == STEPS
    if ddp["batchnorm"]:
        # gloo has no SyncBatchNorm: the method's own terms see each rank's half (the dcd test
        # below); the base recipe's terms of the first step, before any update, still agree
        first_ddp, first_one = ddp["history"][0], single.history[0]
        own = {f"g/{t}" for t in METHODS.get(method).defining_terms}
        base = [k for k in first_ddp if k.startswith("g/") and k not in own]
        assert base
        for k in base:
            assert first_ddp[k] == pytest.approx(first_one[k], rel=1e-5), k
        return
    for row_ddp, row_one in zip(ddp["history"], single.history):
        # per-term gradient norms are logged by a single process only (Trainer._grad_norms_due)
        assert row_ddp.keys() == {k for k in row_one if not k.startswith("gradnorm/")}
        assert any(k.startswith("gradnorm/") for k in row_one)
        for k, v in row_ddp.items():
            v = row_one[k]
            if k != "stage":
                assert row_ddp[k] == pytest.approx(v, rel=1e-4, abs=1e-6), (k, row_ddp["step"])
    # DDP's averaged gradients are the global batch's, to float rounding
    grads = first_grads(method, Dist())
    assert grads.keys() == ddp["grads"].keys()
    named = [*("student." + n for n, _ in single.student.named_parameters()),
             *("method." + n for n, _ in single.method.named_parameters())]
    idle = IDLE_FIRST.get(method, lambda name: False)
    assert {n for n in named if n not in grads} == {n for n in named if idle(n)}
    scale = max(float(g.abs().max()) for g in grads.values())
    assert _max_diff(ddp["grads"], grads) < 1e-5 * scale
    # Weights after STEPS Adam steps: Adam divides each gradient by its own running magnitude,
    # so a gradient near zero (a discriminator shown two near-identical image sets) turns
    # rounding into up to ~lr of movement; most weights agree far closer (module doc).
    for part in ("student", "ema", "method"):
        assert _max_diff(ddp[part], getattr(single, part).state_dict()) < 0.3 * LR, part
    assert _max_diff(ddp["student"], initial_student(method)) > 2 * LR  # and they really moved


@pytest.mark.slow
def test_dcd_runs_but_cpu_batchnorm_sees_each_ranks_share(ddp_results):
    # gloo has no SyncBatchNorm: DCD's connectors normalise each rank's half on its own, so its
    # DCD term differs from the single-process one while its other terms agree (documented).
    from gankd.engine.distributed import Dist

    single = build("dcd", Dist())
    single.fit()
    first_ddp, first_one = ddp_results["dcd"]["history"][0], single.history[0]
    assert first_ddp["g/l1"] == pytest.approx(first_one["g/l1"], rel=1e-5)
    assert first_ddp["g/dcd"] != pytest.approx(first_one["g/dcd"], rel=1e-4)


@pytest.mark.slow
def test_resume_under_ddp_matches_the_uninterrupted_run(ddp_results):
    resumed, full = ddp_results["resume"], ddp_results["mse"]
    assert resumed["resumed_from"] == 2
    assert resumed["files"] == ["step_0000002.pt", "step_0000002.sha256",
                                "step_0000003.pt", "step_0000003.sha256"]
    for part in ("student", "ema", "method"):
        for k, v in full[part].items():
            assert torch.equal(v, resumed[part][k]), (part, k)
    assert [r["g/l1"] for r in resumed["history"]] == [r["g/l1"] for r in full["history"]]


@pytest.mark.slow
def test_only_rank_0_writes_the_live_curves(ddp_results):
    """Both ranks ran the interrupted and the resumed run into one folder: one event file per
    session, each named with rank 0's process id (tensorboard's events.out.tfevents.T.HOST.PID.N)."""
    resumed = ddp_results["resume"]
    assert len(resumed["events"]) == 2
    assert {name.split(".")[-2] for name in resumed["events"]} == {str(resumed["pid"])}


def test_rank_share_splits_the_global_batch():
    from conftest import SyntheticPool

    from gankd.engine.distributed import Dist, RankShare
    from gankd.engine.sampler import PoolSampler
    from gankd.errors import ConfigError

    pool = SyntheticPool(n=8)
    whole = PoolSampler(pool, 4, seed=3)
    shares = [PoolSampler(RankShare(pool, Dist(rank=r, world_size=2)), 4, seed=3) for r in range(2)]
    for _ in range(5):  # across an epoch boundary
        full = whole.next()
        parts = [s.next() for s in shares]
        assert torch.equal(torch.cat([p.index for p in parts]), full.index)
        assert torch.equal(torch.cat([p.real for p in parts]), full.real)
    with pytest.raises(ConfigError, match="divisible by the number of processes 3"):
        PoolSampler(RankShare(pool, Dist(rank=0, world_size=3)), 4, seed=0).next()


def test_online_training_sampler_takes_its_share_of_batch_and_queue():
    from gankd.bench.suite import load_suite
    from gankd.engine.distributed import Dist, training_sampler
    from gankd.errors import ConfigError

    data = dataclasses.replace(load_suite("smoke").models["realesrgan"].data, pool_size=0, queue_size=4,
                               num_workers=0)
    batches = []
    for rank in range(2):
        sampler = training_sampler(data, "builtin", 4, 0, None, torch.device("cpu"), Dist(rank, 2))
        b = sampler.next()
        assert b.real.shape == (2, 3, 64, 64) and b.g_input[0].shape == (2, 3, 16, 16)
        batches.append(b.real)
    assert not torch.equal(batches[0], batches[1])  # each rank its own shard and seed
    with pytest.raises(ConfigError, match=r"queue_size 4 .* divisible by the number of processes 3"):
        training_sampler(data, "builtin", 6, 0, None, torch.device("cpu"), Dist(0, 3))
    with pytest.raises(ConfigError, match=r"batch_size 3 .* divisible by the number of processes 2"):
        training_sampler(data, "builtin", 3, 0, None, torch.device("cpu"), Dist(0, 2))


def test_single_process_env_is_not_distributed(monkeypatch):
    from gankd.engine import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = distributed.from_env("cpu")
    assert d == distributed.Dist() and not d.enabled and d.is_main
    assert d.mean({"a": 1.5}) == {"a": 1.5}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    from gankd.errors import ConfigError

    with pytest.raises(ConfigError, match="launch with torchrun"):
        distributed.from_env("cpu")


# -- CUDA-path glue that a CPU can check ---------------------------------------------------
@pytest.mark.parametrize("entry", ["tiny_unet_d", "gcfsr_d_32"])
def test_fp32_head_gives_fp32_logits_under_bf16_autocast(entry):
    from conftest import TINY_D

    from gankd.engine.distributed import fp32_head
    from gankd.models import zoo

    d = (TINY_D if entry == "tiny_unet_d" else zoo.get(entry)).build()
    x = torch.rand(2, 3, 32, 32)
    keys = list(d.state_dict())
    seen = {}
    d.get_submodule(d.penultimate).register_forward_pre_hook(lambda m, inp: seen.update(act=inp[0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert d(x).dtype == torch.bfloat16  # what autocast alone gives
        fp32_head(d)
        fp32_head(d)  # idempotent
        logits = d(x)
    assert logits.dtype == torch.float32
    head = d.get_submodule(d.penultimate)
    expected = type(head).forward(head, seen["act"].float())  # the head in fp32, outside autocast
    assert torch.equal(logits, expected)
    assert list(d.state_dict()) == keys  # names unchanged: checkpoints and taps still match


def test_compiled_student_keeps_its_taps_and_matches_eager(monkeypatch):
    import functools

    import torch._dynamo

    from gankd.engine.distributed import Dist
    from gankd.engine.trainer import Trainer

    torch._dynamo.reset()
    # dynamo's tracing, guards and hook handling as on a GPU; the eager backend skips codegen
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    ref = build("sdakd", Dist())
    ref.fit()
    tr = build("sdakd", Dist())
    cfg = dataclasses.replace(tr.cfg, compile=True)
    compiled = Trainer(cfg, tr.student, tr.method, tr.teacher, tr.sampler, progress=False)
    compiled.fit()  # 3 steps, 3 stages: a recompile per step would raise
    assert [r["g/kd_feat"] for r in compiled.history[1:]] == [r["g/kd_feat"] for r in ref.history[1:]]
    assert _max_diff(compiled.student.state_dict(), ref.student.state_dict()) == 0
    assert not compiled.ema.model._forward_hooks and not any(  # the EMA copy carries no taps
        m._forward_hooks for m in compiled.ema.model.modules())


@pytest.mark.parametrize("method", benchmark_methods())
def test_bf16_autocast_step_of_every_method(method):
    # The CUDA path's precision plumbing, run under CPU autocast: bf16 networks, fp32 teacher
    # outputs, student output, losses and discriminator logits.
    from gankd.engine.distributed import Dist, fp32_head

    tr = build(method, Dist())
    tr.amp = True  # what Trainer sets for device cuda + bf16
    for d in tr.method.discriminators.values():
        fp32_head(d)
    logits = []
    for d in tr.method.discriminators.values():
        d.register_forward_hook(lambda m, i, out: logits.append(out.dtype))
    teacher_dtypes = []
    tr.teacher.net.register_forward_hook(lambda m, i, out: teacher_dtypes.append(out.dtype))
    before = initial_student(method)
    for _ in range(STEPS):
        terms = tr.train_step()
        assert all(torch.isfinite(torch.tensor(v)) for v in terms.values()), terms
    assert _max_diff(tr.student.state_dict(), before) > LR
    assert logits and set(logits) == {torch.float32}
    if tr.method.uses_teacher:
        assert set(teacher_dtypes) == {torch.bfloat16}  # the teacher ran under autocast...
        out = tr._teacher_outputs(tr.sampler.next())
        assert out.image.dtype == torch.float32  # ... and hands the losses fp32
        assert all(f.dtype == torch.float32 for f in out.features)


def test_channels_last_batch_keeps_values_and_index():
    from conftest import SyntheticPool

    from gankd.engine.distributed import to_channels_last

    b = SyntheticPool().batch(torch.tensor([1, 2]))
    cl = to_channels_last(b)
    assert cl.g_input[0].is_contiguous(memory_format=torch.channels_last)
    assert cl.real.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cl.real, b.real) and torch.equal(cl.index, b.index)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", type=Path, required=True)
    worker(ap.parse_args().worker)
