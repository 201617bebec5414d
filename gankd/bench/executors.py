"""Where a sweep's jobs run: in this process (``local``, the default) or submitted through
submitit, one job per run: ``slurm`` (a Slurm job array, one GPU per job unless told), or
``submitit-local`` / ``debug`` (submitit's local and in-process executors: the same pickled jobs
on this machine, which is how the cluster path is tested without a cluster).

A submitted job runs exactly what a local sweep runs for that run (``sweep.run_one``), so the
rules are the same: a finished run is skipped, one finished with another config runs again, an
interrupted one resumes from its last checkpoint, and one run folder has one writer (its lock).
The submitting side leaves out the runs that are done or not applicable before it submits, so a
second submission of the same sweep submits only what is left. Submitting again while an earlier
array is still queued submits its unfinished runs twice; the second copy of each waits on the
run's lock and then finds it done, costing its queue slot only.

submitit keeps each job's pickled call, stdout and stderr under ``--submitit-folder`` (default
``<results>/submitit/<suite>``): that is where a failed job's traceback is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from gankd.bench.suite import RunSpec, SuiteConfig
from gankd.engine.livelog import LiveOptions
from gankd.errors import ConfigError, unknown_choice

log = logging.getLogger(__name__)

#: ``--executor`` choices; all but ``local`` go through submitit (its cluster name beside)
EXECUTORS = ("local", "slurm", "submitit-local", "debug")
_CLUSTER = {"slurm": "slurm", "submitit-local": "local", "debug": "debug"}


@dataclass(frozen=True)
class ClusterOptions:
    """What each submitted job asks for. ``gpus``: None = one on Slurm, none on this machine."""

    gpus: int | None = None
    timeout_min: int = 24 * 60
    partition: str | None = None
    parallelism: int = 64  # jobs of the array running at once (slurm_array_parallelism)
    cpus: int | None = None
    mem_gb: float | None = None
    slurm_args: dict[str, str] = field(default_factory=dict)  # more #SBATCH options (account, qos, ...)
    folder: Path | None = None  # submitit's logs and pickles; None = <results>/submitit/<suite>
    wait: bool = True  # wait for the jobs (and report) rather than return once submitted


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise unknown_choice("executor (--executor)", name, list(EXECUTORS))
    return name


def parse_slurm_args(items: list[str] | None) -> dict[str, str]:
    """``--slurm-arg account=abc`` (repeatable) -> ``{"account": "abc"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm-arg must be KEY=VALUE (an sbatch option without its dashes, e.g. "
                              f"account=myproject), got {item!r}")
        out[key.strip()] = value.strip()
    return out


def make_executor(name: str, folder: Path, suite: str, opts: ClusterOptions) -> Any:
    """The submitit executor for ``name`` (not ``local``), its parameters set from ``opts``."""
    if check_executor(name) not in _CLUSTER:
        raise ValueError(f"the {name} executor runs jobs in this process, not through submitit")
    cluster = _CLUSTER[name]
    try:
        ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    except RuntimeError as exc:  # no srun here: submit from a machine of the cluster
        raise ConfigError(f"--executor {name}: {exc} (submit from a login node of the cluster, or use "
                          f"--executor local / submitit-local here)") from None
    gpus = opts.gpus if opts.gpus is not None else (1 if cluster == "slurm" else 0)
    params: dict[str, Any] = {"name": f"gankd-{suite}", "timeout_min": opts.timeout_min,
                              "tasks_per_node": 1, "nodes": 1}
    if gpus:  # none: no GPU line at all (some Slurm versions refuse --gpus-per-node=0)
        params["gpus_per_node"] = gpus
    if opts.cpus is not None:
        params["cpus_per_task"] = opts.cpus
    if opts.mem_gb is not None:
        params["mem_gb"] = opts.mem_gb
    if cluster == "slurm":
        params["slurm_array_parallelism"] = opts.parallelism
        if opts.partition:
            params["slurm_partition"] = opts.partition
        if opts.slurm_args:
            params["slurm_additional_parameters"] = dict(opts.slurm_args)
    ex.update_parameters(**params)
    return ex


class RunJob(submitit.helpers.Checkpointable):
    """One submitted job: the run, as a local sweep runs it (``sweep.run_one``); True when it
    finished (or was finished already). Checkpointable: a job that reaches its time limit or is
    preempted is requeued with the same arguments, and the run resumes from its last checkpoint."""

    def __call__(self, spec: RunSpec, suite: SuiteConfig, results: Path,
                 live: LiveOptions | None = None) -> bool:
        from gankd.bench.sweep import run_one
        from gankd.engine import distributed

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        try:
            return run_one(spec, suite, results, progress=False, live=live)
        finally:
            distributed.shutdown()


def submit(specs: list[RunSpec], suite: SuiteConfig, results: Path, name: str,
           opts: ClusterOptions, live: LiveOptions | None = None) -> list[RunSpec]:
    """Submits the jobs of ``specs`` not done yet (one array); with ``opts.wait`` waits for them
    and returns the runs that failed (a job that crashed counts), else returns at once."""
    from gankd.bench.sweep import job_state
    from gankd.results.record import RunStatus

    finished = (RunStatus.DONE, RunStatus.NOT_APPLICABLE)  # a sweep job's state names them as they are
    todo = [s for s in specs if job_state(s, suite, results) not in finished]
    if len(todo) < len(specs):
        log.info("%d of %d job(s) finished already; not submitted", len(specs) - len(todo), len(specs))
    if not todo:
        return []
    folder = opts.folder or results / "submitit" / suite.name
    ex = make_executor(name, folder, suite.name, opts)
    results = results.resolve()  # a job may start in another working directory
    jobs = ex.map_array(RunJob(), todo, [suite] * len(todo), [results] * len(todo), [live] * len(todo))
    log.info("submitted %d job(s) to %s (job id %s%s); logs under %s", len(jobs), name, jobs[0].job_id,
             f" to {jobs[-1].job_id}" if len(jobs) > 1 else "", folder)
    if not opts.wait:
        return []
    failures = []
    for spec, job in zip(todo, jobs):
        try:
            ok = job.result()
        except Exception as exc:  # the job itself died (a refused config, a timeout, a lost node)
            first = next((line for line in reversed(str(exc).strip().splitlines()) if line.strip()), str(exc))
            log.error("%s: job %s failed: %s (its log: %s)", spec.rel_dir, job.job_id, first,
                      os.fspath(job.paths.stderr))
            ok = False
        if not ok:
            failures.append(spec)
    log.info("%d job(s) finished, %d failed", len(jobs) - len(failures), len(failures))
    return failures
