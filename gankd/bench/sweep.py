"""Sweeps: every (model, ratio, seed, method) of a suite as independent jobs.

Jobs are ordered model -> ratio -> seed -> method, so the teacher, its training pool and its
cached outputs are built by the first job and reused by the rest. Finished runs are skipped,
interrupted ones resume. To spread a sweep over machines, give each job-array task a shard::

    gankd sweep --suite cpu --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT

with a results folder they share (``--results``) or merged afterwards (copy the run folders under
one ``results/runs``; ``gankd report`` reads whatever is there). ``--executor slurm`` submits the
jobs as a Slurm job array itself (``gankd.bench.executors``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gankd.bench.suite import RunSpec, SuiteConfig
from gankd.engine.livelog import LiveOptions
from gankd.engine.trainer import NonFiniteLoss
from gankd.errors import ConfigError, DiskFullError, unknown_choice

log = logging.getLogger(__name__)


def jobs(suite: SuiteConfig, data: str) -> list[RunSpec]:
    return [RunSpec(suite.name, model, method, shape.ratio, seed, data, shape.depth)
            for model in suite.models for shape in suite.student_shapes(model)
            for seed in suite.seeds_for(model, shape)
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


def check_clean(files: list[str] | None = None) -> None:
    """Refuse a sweep from a tree with modified tracked files (``files``: those, else asked of
    git): each of its runs would record ``<sha>-dirty``, code no commit holds, and the leaderboard
    would leave it out of every mean. Untracked files do not count (results, caches)."""
    from gankd.bench.environment import modified_tracked_files

    files = modified_tracked_files() if files is None else files
    if not files:
        return
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    raise ConfigError(f"the working tree has modified tracked files ({shown}): runs from it would record a "
                      "commit whose code they did not run, and the leaderboard leaves such runs out of its "
                      "means. Commit or stash them, or pass --allow-dirty to run anyway (the runs are "
                      "recorded as -dirty and shown, not counted)")


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
    with another config or in an older code epoch: runs again), ``resumes at step N``, ``failed``
    (runs again) or ``to run``."""
    from gankd.bench.run import run_dir_of
    from gankd.bench.suite import resolve
    from gankd.engine.checkpoint import latest_step
    from gankd.results import store
    from gankd.results.record import RunStatus
    from gankd.results.store import config_change

    run_dir = run_dir_of(results, spec)
    record = store.read_metrics(run_dir)
    if record is not None and record.status.has_results:
        stale = config_change(run_dir, resolve(suite, spec).config, record)
        return "stale (another config or code epoch: runs again)" if stale else RunStatus.DONE.value
    if record is not None and record.status is RunStatus.NOT_APPLICABLE:
        return RunStatus.NOT_APPLICABLE.value
    step = latest_step(run_dir / "checkpoints")
    if step:
        return f"resumes at step {step}"
    return "failed (runs again)" if record is not None else "to run"


def run_one(spec: RunSpec, suite: SuiteConfig, results: Path, progress: bool = True,
            live: LiveOptions | None = None) -> bool:
    """Runs one job (skipped if done, resumed if interrupted: ``run``); False when it failed (NaN
    loss, a crash: recorded as failed by ``run``). A ``ConfigError`` or a full disk is raised:
    the same mistake, or the same full disk, would stop every job. ``live``: where its training
    curves go (default: TensorBoard in its run folder)."""
    from gankd.bench.run import run
    from gankd.bench.suite import resolve

    try:
        run(resolve(suite, spec), results, progress=progress, live=live)
    except NonFiniteLoss as exc:
        log.error("%s failed: %s", spec.rel_dir, exc)
        return False
    except (ConfigError, DiskFullError):
        raise
    except Exception:  # recorded as failed by run(); the other jobs are independent
        log.exception("%s crashed; going on with the next job", spec.rel_dir)
        return False
    return True


def run_jobs(specs: list[RunSpec], suite: SuiteConfig, results: Path, progress: bool = True,
             live: LiveOptions | None = None) -> list[RunSpec]:
    """Runs each job in this process; a run that fails is recorded as failed and the sweep goes
    on; the failures are returned (the command then exits non-zero)."""
    failures = []
    for i, spec in enumerate(specs, 1):
        log.info("[%d/%d] %s", i, len(specs), spec.rel_dir)
        if not run_one(spec, suite, results, progress, live):
            failures.append(spec)
    return failures
