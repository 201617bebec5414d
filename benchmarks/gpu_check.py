"""The prepared GPU check (issue 41, item 5): on one CUDA GPU, in about 8 minutes, whether gankd's
CUDA path is right and how fast it is, written to one JSON.

Parts, each recorded as pass / fail / skipped with its reason and wall time:

- ``cuda_tests``: the tests marked ``cuda`` (pytest ``-m cuda``; skipped without a GPU).
- ``train_steps``: one paper-suite training step (``Trainer.train_step``) of every method the
  suite runs, per model, in bf16 (the paper suite's path: autocast, channels_last, fp32 D heads)
  and fp32, at the paper's global batch and crop, with the step's median seconds and the peak
  of ``torch.cuda.max_memory_allocated``. A batch that does not fit is recorded as such and
  tried again at half (the batch one GPU of a multi-GPU run takes is a fraction of it). The
  batch is one real crop of the builtin photos repeated (data loading and the online
  degradation are not timed: the methods' step is); the teacher is the real one where its
  weights are here, else a random init of the same network (a step's time does not depend on
  weights); SDAKD is timed in its last stage (every term).
- ``vs_basicsr``: BasicSR's own ``RealESRGANModel.optimize_parameters`` beside gankd's
  ``scratch`` step on the same device, networks and batch (``benchmarks/perf_vs_basicsr.py``),
  at the paper's crop and BasicSR's per-GPU batch; the ratio gankd / BasicSR.
- ``ddp``: a 2-process ``torchrun`` smoke of the engine's DistributedDataParallel path (the smoke
  suite's GCFSR, online data, 3 steps): NCCL when there are two GPUs, else gloo on the CPU (one
  GPU cannot hold two NCCL ranks); the replicas must end identical.

``--dry`` runs the same code on the CPU at the smallest sizes, skipping (and saying so) only
what needs CUDA: the CUDA tests are collected, not run; bf16 steps (the Trainer's bf16 autocast
is the CUDA path) and peak GPU memory are left out. It is how this script is tested without a GPU
(``tests/scripts/test_gpu_check.py``).

    scripts/gpu_check.sh [--dry] [--out results/gpu_check.json] [--models ...] [--methods ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("cuda_tests", "train_steps", "vs_basicsr", "ddp")
PRECISIONS = ("bf16", "fp32")
#: BasicSR's ``batch_size_per_gpu`` in train_realesrgan_x4plus.yml (48 over 4 GPUs)
BASICSR_BATCH = 12
#: times a batch that does not fit is halved before the configuration is given up
HALVINGS = 2


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    dry: bool = False
    models: tuple[str, ...] = ()  # empty: every model of the paper suite
    methods: tuple[str, ...] = ()  # empty: every method of the paper suite
    precisions: tuple[str, ...] = PRECISIONS
    warmup: int = 2
    steps: int = 3
    budget_s: float = 330.0  # train_steps: configurations past it are skipped, and say so
    tests_timeout_s: float = 150.0
    parts: tuple[str, ...] = PARTS

    @property
    def device(self) -> torch.device:
        return torch.device("cpu" if self.dry else "cuda")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def environment(cfg: CheckConfig) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {"dry": cfg.dry, "device": str(cfg.device), "cuda_available": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_count": torch.cuda.device_count() if cuda else 0,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "python": platform.python_version(), "host_cpu": platform.processor() or platform.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# -- cuda_tests ------------------------------------------------------------------------------
def _marked_files() -> list[str]:
    """The test files that mark tests ``cuda`` (collecting only those keeps this part short)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if "mark.cuda" in p.read_text())


def cuda_tests(cfg: CheckConfig) -> dict[str, Any]:
    files = _marked_files()
    if not files:
        return {"status": "fail", "reason": "no test file marks a test cuda"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-o", "addopts=",
           *(["--collect-only"] if cfg.dry else ["-rs"]), *files]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=cfg.tests_timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "fail", "files": files,
                "reason": f"pytest -m cuda ran past {cfg.tests_timeout_s:.0f} s"}
    out = proc.stdout + proc.stderr
    selected = [line.strip() for line in proc.stdout.splitlines() if "::" in line and " " not in line.strip()]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", out)}
    res: dict[str, Any] = {"files": files, "command": " ".join(cmd[2:]), "counts": counts,
                           "returncode": proc.returncode}
    if cfg.dry:
        res["selected"] = selected
        ok = proc.returncode == 0 and bool(selected)
        return {**res, "status": "skipped" if ok else "fail",
                "reason": ("needs CUDA: collected only" if ok else "collecting the cuda tests failed: "
                           + out.strip()[-2000:])}
    ok = proc.returncode == 0 and counts.get("passed", 0) > 0 and not counts.get("skipped")
    return {**res, "status": "pass" if ok else "fail", **({} if ok else {"reason": out.strip()[-3000:]})}


# -- train_steps -----------------------------------------------------------------------------
class OneBatch:
    """The same batch every step (the Trainer's sampler protocol). No pool index: as with the
    paper suite's online data, no per-row cache applies."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def next(self) -> Any:
        return self.batch

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _repeat(batch: Any, n: int) -> Any:
    from gankd.datasets.batch import Batch

    def rep(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.expand(n, *t.shape[1:]).contiguous()

    return Batch(tuple(rep(t) for t in batch.g_input), rep(batch.real), rep(batch.target), None)


def _one_crop(setup: Any, dry: bool) -> tuple[Any, Any]:
    """The data config timed (the suite's, or the dry run's smallest) and one real training pair
    of it, cut from the builtin photos on the CPU."""
    from gankd.bench.dryrun import _tiny_data
    from gankd.engine.distributed import training_sampler

    data = _tiny_data(setup) if dry else dataclasses.replace(setup.data, pool_size=0, queue_size=0,
                                                              num_workers=0)
    return data, training_sampler(data, "builtin", 1, 0, None, "cpu").next()


def _trainer(suite: Any, model: str, method: str, teacher: Any, data: Any, batch: Any, batch_size: int,
             bf16: bool, device: torch.device) -> Any:
    from gankd.bench.compose import build_trainer, role_build
    from gankd.bench.suite import method_options
    from gankd.bench.tune import tuning_shape
    from gankd.models import zoo

    setup = suite.models[model]
    shape = tuning_shape(suite, model, method)
    cfg = method_options(suite, model, method)
    if method == "sdakd":  # the last stage's step: every term, the student D stepping
        cfg = dataclasses.replace(cfg, stage_fractions=(0.0, 0.0, 1.0))
    train = dataclasses.replace(setup.train, steps=10**6, batch_size=batch_size, log_every=10**6, val_every=0,
                                ckpt_every=0, device=device.type, bf16=bf16, channels_last=bf16,
                                compile=False)
    entry = zoo.student(setup.teacher, shape.ratio, setup.student, depth=shape.depth)
    return build_trainer(student=role_build(entry, 0, "student"), teacher=teacher,
                         d_entry=zoo.get(setup.discriminator), recipe=setup.recipe, cycle=setup.cycle,
                         method=method, method_cfg=cfg, train=train,
                         sampler=OneBatch(_repeat(batch, batch_size)), ratio=shape.ratio, seed=0,
                         image_size=data.hr_crop, progress=False)


def time_steps(make: Callable[[], Any], warmup: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Median seconds of ``steps`` training steps after ``warmup`` of the trainer ``make`` builds,
    with the peak GPU memory of the timed steps (None on the CPU)."""
    trainer = make()
    try:
        for _ in range(warmup):
            trainer.train_step()
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            terms = trainer.train_step()
            _sync(device)
            times.append(time.perf_counter() - t0)
        bad = sorted(k for k, v in terms.items() if isinstance(v, float) and v != v)
        return {"step_s": statistics.median(times), "times_s": times,
                "peak_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                                   if device.type == "cuda" else None),
                "nan_terms": bad}
    finally:
        del trainer
        _free(device)


def _fitting(run: Callable[[int], dict[str, Any]], batch: int, device: torch.device) -> dict[str, Any]:
    """``run(batch)``, halving the batch (at most ``HALVINGS`` times) while it runs out of memory."""
    oom: list[int] = []
    while True:
        try:
            return {**run(batch), "batch": batch, "oom_at": oom}
        except torch.OutOfMemoryError:
            oom.append(batch)
            _free(device)
            if len(oom) > HALVINGS or batch < 2:
                return {"status": "fail", "reason": f"out of memory at batch {', '.join(map(str, oom))}",
                        "oom_at": oom}
            batch //= 2


def train_steps(cfg: CheckConfig) -> dict[str, Any]:
    from gankd.bench.dryrun import dry_run_teacher
    from gankd.bench.suite import load_suite
    from gankd.bench.tune import tuning_shape

    suite = load_suite("paper")
    models = cfg.models or tuple(suite.models)
    methods = cfg.methods or tuple(suite.methods)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for model in models:
        setup = suite.models[model]
        data, one = _one_crop(setup, cfg.dry)
        loaded, random = dry_run_teacher(setup, "builtin")
        batch = 1 if cfg.dry else setup.train.batch_size
        for method in methods:
            shape = tuning_shape(suite, model, method)
            for precision in cfg.precisions:
                row: dict[str, Any] = {"model": model, "method": method, "precision": precision,
                                       "hr_crop": data.hr_crop, "paper_batch": setup.train.batch_size,
                                       "teacher": "random init" if random else loaded.source}
                if shape is None:
                    rows.append({**row, "status": "skipped",
                                 "reason": f"the paper suite runs {method} on none of {model}'s shapes"})
                    continue
                row["student"] = shape.tag
                if precision == "bf16" and cfg.device.type != "cuda":
                    rows.append({**row, "status": "skipped", "reason": "needs CUDA (bf16 autocast is the "
                                 "Trainer's CUDA path; on the CPU it trains in fp32)"})
                    continue
                if time.perf_counter() - t_start > cfg.budget_s:
                    rows.append({**row, "status": "skipped",
                                 "reason": f"past the part's {cfg.budget_s:.0f} s"})
                    continue

                def run(b: int, model: str = model, method: str = method, precision: str = precision,
                        data: Any = data, one: Any = one, loaded: Any = loaded) -> dict[str, Any]:
                    return time_steps(lambda: _trainer(suite, model, method, loaded, data, one, b,
                                                       precision == "bf16", cfg.device),
                                      cfg.warmup, cfg.steps, cfg.device)

                try:
                    res = _fitting(run, batch, cfg.device)
                except Exception as exc:  # one configuration's failure is a result
                    res = {"status": "fail", "reason": _one_line(exc)}
                if "status" not in res:
                    nan = res["nan_terms"]
                    res["status"] = "fail" if nan else "pass"
                    if nan:
                        res["reason"] = f"non-finite loss terms {nan}"
                rows.append({**row, **res})
                print(f"train step {model} {method} {precision}: {_brief(rows[-1])}", flush=True)
        del loaded
        _free(cfg.device)
    failed = [f"{r['model']}/{r['method']}/{r['precision']}" for r in rows if r["status"] == "fail"]
    ran = [r for r in rows if r["status"] == "pass"]
    return {"status": "fail" if failed or not ran else "pass", "rows": rows,
            **({"reason": f"failed: {', '.join(failed)}" if failed else "no configuration ran"}
               if failed or not ran else {}),
            "timed": "Trainer.train_step on one repeated real crop (data loading and degradation not timed)",
            "warmup": cfg.warmup, "steps": cfg.steps}


def _brief(row: dict[str, Any]) -> str:
    if row["status"] != "pass":
        return f"{row['status']}: {row.get('reason', '')}"
    mem = f", peak {row['peak_memory_mb']:.0f} MB" if row.get("peak_memory_mb") is not None else ""
    return f"{row['step_s']:.3f} s/step at batch {row['batch']}{mem}"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


# -- vs_basicsr ------------------------------------------------------------------------------
def vs_basicsr(cfg: CheckConfig) -> dict[str, Any]:
    try:
        from benchmarks import perf_vs_basicsr
    except ImportError as exc:
        return {"status": "fail",
                "reason": f"BasicSR cannot be imported ({_one_line(exc)}): pip install basicsr==1.4.2"}
    if cfg.dry:
        kw = {"suite": "cpu", "ratio": 0.25, "batch_size": 1, "gt_side": 32, "steps": cfg.steps,
              "warmup": cfg.warmup}
    else:
        from gankd.bench.suite import load_suite

        setup = load_suite("paper").models["realesrgan"]
        kw = {"suite": "paper", "ratio": max(load_suite("paper").ratios), "batch_size": BASICSR_BATCH,
              "gt_side": setup.data.hr_crop, "steps": max(cfg.steps, 5), "warmup": cfg.warmup}
    # no per-row feature cache: the paper suite's online data has none, and BasicSR has none
    res = perf_vs_basicsr.compare(device=str(cfg.device), cache=False, **kw)
    return {"status": "pass", **res}


# -- ddp -------------------------------------------------------------------------------------
DDP_STEPS, DDP_BATCH = 3, 4


def ddp_worker(out: Path, device: str) -> None:
    """One torchrun rank: the smoke suite's GCFSR ``mse`` on its online data under DDP."""
    from gankd.bench.compose import build_trainer, role_build
    from gankd.bench.dryrun import dry_run_teacher
    from gankd.bench.suite import load_suite, method_options
    from gankd.engine import distributed
    from gankd.models import zoo

    torch.set_num_threads(1)
    dist = distributed.from_env(device)
    suite = load_suite("smoke")
    setup = suite.models["gcfsr"]
    dev = torch.device(f"cuda:{dist.local_rank}" if device == "cuda" else "cpu")
    data = dataclasses.replace(setup.data, pool_size=0, queue_size=0, num_workers=0)
    train = dataclasses.replace(setup.train, steps=DDP_STEPS, batch_size=DDP_BATCH, log_every=1, ckpt_every=0,
                                val_every=0, device=device)
    teacher, _ = dry_run_teacher(setup, "builtin")
    trainer = build_trainer(
        student=role_build(zoo.student(setup.teacher, 0.25, setup.student), 0, "student"), teacher=teacher,
        d_entry=zoo.get(setup.discriminator), recipe=setup.recipe, method="mse",
        method_cfg=method_options(suite, "gcfsr", "mse"), train=train,
        sampler=distributed.training_sampler(data, "builtin", DDP_BATCH, 0, None, dev, dist), ratio=0.25,
        seed=0, image_size=data.hr_crop, progress=False, dist=dist)
    wrapped = type(trainer.g_loss).__name__ == "DistributedDataParallel"
    result = trainer.fit()
    flat = torch.cat([p.detach().float().flatten().cpu() for p in trainer.student.parameters()])
    replicas = dist.gather(flat)
    if dist.is_main:
        spread = max(float((r - replicas[0]).abs().max()) for r in replicas)
        (out / "ddp.json").write_text(json.dumps({
            "world_size": dist.world_size, "backend": torch.distributed.get_backend(),
            "wrapped_in_ddp": wrapped,
            "steps": result.steps, "losses": [r.get("g/total", r.get("g/l1")) for r in result.history],
            "replica_max_diff": spread}))
    distributed.shutdown()


def ddp(cfg: CheckConfig) -> dict[str, Any]:
    two_gpus = not cfg.dry and torch.cuda.device_count() >= 2
    device = "cuda" if two_gpus else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               "--nproc_per_node=2", str(Path(__file__)), "--ddp-worker", tmp, "--ddp-device", device]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return {"status": "fail", "reason": "torchrun ran past 300 s"}
        found = Path(tmp) / "ddp.json"
        if proc.returncode != 0 or not found.is_file():
            return {"status": "fail", "reason": f"torchrun exited {proc.returncode}: "
                    + (proc.stdout + proc.stderr).strip()[-3000:]}
        res = json.loads(found.read_text())
    ok = (res["world_size"] == 2 and res["wrapped_in_ddp"] and res["steps"] == DDP_STEPS
          and res["replica_max_diff"] <= 1e-6)
    note = ("NCCL on two GPUs" if two_gpus else
            "gloo on the CPU: " + ("a dry run" if cfg.dry else "one GPU cannot hold two NCCL ranks"))
    return {"status": "pass" if ok else "fail", "note": note, **res,
            **({} if ok else {"reason": "the ranks' replicas differ or DDP did not wrap the generator"})}


# -- the check -------------------------------------------------------------------------------
RUNNERS: dict[str, Callable[[CheckConfig], dict[str, Any]]] = {
    "cuda_tests": cuda_tests, "train_steps": train_steps, "vs_basicsr": vs_basicsr, "ddp": ddp}


def check(cfg: CheckConfig) -> dict[str, Any]:
    """Every part of ``cfg.parts``; one part's crash is its failure, not the check's end."""
    report: dict[str, Any] = {"environment": environment(cfg), "parts": {}}
    for name in PARTS:
        if name not in cfg.parts:
            report["parts"][name] = {"status": "skipped", "reason": "not asked for (--parts)"}
            continue
        t0 = time.perf_counter()
        print(f"gpu check: {name} ...", flush=True)
        try:
            res = RUNNERS[name](cfg)
        except Exception as exc:  # reported in the JSON, traceback's end too
            res = {"status": "fail", "reason": _one_line(exc), "traceback": traceback.format_exc()[-3000:]}
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        report["parts"][name] = res
        why = f" ({res['reason'][:300]})" if res.get("reason") else ""
        print(f"gpu check: {name} {res['status']}{why}", flush=True)
    statuses = [p["status"] for p in report["parts"].values()]
    report["status"] = "fail" if "fail" in statuses else "pass"
    return report


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry", action="store_true",
                    help="on the CPU at the smallest sizes; the CUDA-only parts skipped")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "gpu_check.json")
    ap.add_argument("--models", nargs="+", default=[], help="paper-suite models (default: all)")
    ap.add_argument("--methods", nargs="+", default=[], help="methods (default: all the paper suite runs)")
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    ap.add_argument("--steps", type=int, help="timed steps per configuration (default 3; dry 1)")
    ap.add_argument("--warmup", type=int, help="untimed steps first (default 2; dry 1)")
    ap.add_argument("--budget-s", type=float, default=330.0, help="train_steps' time budget")
    ap.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ddp-device", default="cpu", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args.ddp_worker, args.ddp_device)
        return 0
    from gankd.bench.suite import load_suite
    from gankd.errors import unknown_choice

    paper = load_suite("paper")
    for kind, names, valid in (("model", args.models, list(paper.models)), ("method", args.methods,
                                                                            list(paper.methods))):
        for name in names:
            if name not in valid:
                err = unknown_choice(f"paper-suite {kind}", name, valid)
                print(f"gpu_check: error: {err}", file=sys.stderr)
                return 2
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: error: torch sees no CUDA device; run it where one is, or --dry for the parts "
              "a CPU can run", file=sys.stderr)
        return 2
    cfg = CheckConfig(dry=args.dry, models=tuple(args.models), methods=tuple(args.methods),
                      precisions=tuple(args.precisions), parts=tuple(args.parts), budget_s=args.budget_s,
                      steps=args.steps if args.steps is not None else (1 if args.dry else 3),
                      warmup=args.warmup if args.warmup is not None else (1 if args.dry else 2))
    report = check(cfg)
    from gankd import atomic

    atomic.write_json(args.out, report)
    print(f"gpu check: {report['status']}; {args.out}")
    return 0 if report["status"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
