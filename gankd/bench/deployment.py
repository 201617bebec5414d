"""Deployment latency of a run's student and of its teacher (``gankd export``; a step of every
run where the suite says ``eval.deploy.in_run``): each network exported and checked
(gankd/deploy/export.py), then timed on every runtime and input size, each measurement in a
process of its own (gankd/deploy/latency.py). The result goes into the record as ``deploy``:

    {"exports": {runtime: {ok, max_abs_diff, error, status}},
     "latency": {runtime: {size: {median_ms, iqr_ms, ... | error}}}, "threads", "cpu"}

A runtime whose export failed or does not match torch is not timed; its latency says why. Where
torch sees a CUDA device the CUDA runtimes are timed too (``timed_runtimes``); ``cpu`` then
still names the host, and each CUDA latency its GPU.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gankd.bench.suite import DeployConfig
from gankd.deploy import CUDA_RUNTIMES, EXPORT_OF, EXPORTED
from gankd.deploy.export import export, summary
from gankd.deploy.latency import measure
from gankd.hardware import cpu_info
from gankd.models import zoo
from gankd.paths import cache_dir

if TYPE_CHECKING:
    from gankd.datasets.batch import EvalSample

log = logging.getLogger(__name__)


def deploy_network(net: nn.Module, entry: zoo.ZooEntry, cfg: DeployConfig, samples: Sequence[EvalSample],
                   progress: bool = False, runtimes: list[str] | None = None) -> dict[str, Any]:
    """Export, check and time ``net`` (built from ``entry``) per the suite's deploy settings
    ``cfg``, on ``runtimes`` (default: every runtime this machine times, ``timed_runtimes``); each
    export is checked against torch on the first ``cfg.check_images`` of ``samples`` (the run's
    evaluation set, handed in by the caller that has it)."""
    net = copy.deepcopy(net).cpu().eval()  # the caller's network stays where and as it is
    check = [tuple(t[None].numpy() for t in s.g_input) for s in samples[: cfg.check_images]]  # batch 1
    folder = cache_dir() / "exports"
    results = export(net, check, folder, threads=cfg.threads)
    files = {k: v for r in results.values() for k, v in r.files.items()}
    state = folder / "states" / f"{entry.name}-{id(net)}.pt"
    state.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, state)
    latency: dict[str, dict[str, Any]] = {}
    try:
        for runtime in timed_runtimes(cfg) if runtimes is None else runtimes:
            needs = EXPORT_OF.get(runtime, runtime)
            for size in cfg.sizes:
                at = latency.setdefault(runtime, {})
                if needs in EXPORTED and not results[needs].ok:
                    at[str(size)] = {"error": f"not timed: {results[needs].status}"}
                    continue
                if progress:
                    log.info("latency %s %s at %d", entry.name, runtime, size)
                at[str(size)] = measure(runtime, entry.arch, entry.kwargs, state, files, size, cfg.threads,
                                        cfg.warmup, cfg.repeats)
    finally:
        state.unlink(missing_ok=True)
    return {"exports": summary(results), "latency": latency, "threads": cfg.threads,
            "cpu": cpu_info()["model"]}


def timed_runtimes(cfg: DeployConfig) -> tuple[str, ...]:
    """The suite's runtimes, and the CUDA ones wherever torch sees a CUDA device."""
    extra = CUDA_RUNTIMES if torch.cuda.is_available() else ()
    return (*cfg.runtimes, *(rt for rt in extra if rt not in cfg.runtimes))
