"""Sweeps: every (model, ratio, seed, method) of a suite as independent jobs.

Jobs are ordered model -> ratio -> seed -> method, so the teacher, its training pool and its
cached outputs are built by the first job and reused by the rest. Finished runs are skipped,
interrupted ones resume. To spread a sweep over machines, give each job-array task a shard::

    gankd sweep --suite cpu --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT

with a results folder they share (``--results``) or merged afterwards (copy the run folders under
one ``results/runs``; ``gankd report`` reads whatever is there).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gankd.bench.suite import RunSpec, SuiteConfig
from gankd.engine.trainer import NonFiniteLoss
from gankd.errors import ConfigError, unknown_choice

log = logging.getLogger(__name__)


def jobs(suite: SuiteConfig, data: str) -> list[RunSpec]:
    return [RunSpec(suite.name, model, method, shape.ratio, seed, data, shape.depth)
            for model in suite.models for shape in suite.student_shapes(model) for seed in suite.seeds
            for method in suite.methods if not shape.methods or method in shape.methods]


def select(specs: list[RunSpec], only: dict[str, list[str] | None]) -> list[RunSpec]:
    """The jobs whose ``model`` / ``method`` / ``shape`` (tag, e.g. ``r0.25``) is among the listed
    values; a value no job of the suite has is refused with the valid ones."""
    key = {"model": lambda s: s.model, "method": lambda s: s.method, "shape": lambda s: s.shape.tag}
    for field, wanted in only.items():
        if not wanted:
            continue
        valid = sorted({key[field](s) for s in specs})
        for w in wanted:
            if w not in valid:
                raise unknown_choice(f"{field} in this sweep:", w, valid)
        specs = [s for s in specs if key[field](s) in wanted]
    return specs


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must be K/N with 1 <= K <= N, got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard must be K/N with 1 <= K <= N, got {text!r}")
    return k, n


def job_state(spec: RunSpec, suite: SuiteConfig, results: Path) -> str:
    """What the sweep will do with ``spec``: ``done`` / ``not applicable`` (skip), ``stale`` (done
    with another config: runs again), ``resumes at step N``, ``failed`` (runs again) or ``to run``."""
    from gankd.bench import store
    from gankd.bench.run import config_change, run_dir_of
    from gankd.bench.suite import resolved
    from gankd.engine.checkpoint import latest_step

    run_dir = run_dir_of(results, spec)
    record = store.read_metrics(run_dir)
    if record is not None and record.status == store.STATUS_DONE:
        stale = config_change(run_dir, resolved(suite, spec))
        return "stale (another config: runs again)" if stale else "done"
    if record is not None and record.status == store.STATUS_NA:
        return "not applicable"
    step = latest_step(run_dir / "checkpoints")
    if step:
        return f"resumes at step {step}"
    return "failed (runs again)" if record is not None else "to run"


def run_jobs(specs: list[RunSpec], suite: SuiteConfig, results: Path, progress: bool = True) -> list[RunSpec]:
    """Runs each job; a run that fails (NaN loss, a crash) is recorded as failed and the sweep
    goes on; the failures are returned (the command then exits non-zero)."""
    from gankd.bench.run import run

    failures = []
    for i, spec in enumerate(specs, 1):
        log.info("[%d/%d] %s", i, len(specs), spec.rel_dir)
        try:
            run(spec, suite, results, progress=progress)
        except NonFiniteLoss as exc:
            log.error("%s failed: %s", spec.rel_dir, exc)
            failures.append(spec)
        except ConfigError:
            raise  # the same mistake would stop every job: say it once
        except Exception:  # recorded as failed by run(); the other jobs are independent
            log.exception("%s crashed; going on with the next job", spec.rel_dir)
            failures.append(spec)
    return failures
