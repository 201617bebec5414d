"""What a result records about where it was produced: git sha, library versions, device, the
threading settings its timings depend on, and how loaded the machine was while it trained."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
from functools import cache
from importlib import metadata
from types import TracebackType
from typing import Any

import torch

from gankd.hardware import cpu_info
from gankd.paths import REPO_ROOT

LIBRARIES = ("torch", "torchvision", "basicsr", "numpy", "lpips", "pytorch-fid", "fvcore", "gankd")


@cache
def git_sha() -> str:
    """HEAD's commit, ``-dirty`` when tracked files outside ``OUTPUT_DIRS`` differ from it."""
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return (sha + ("-dirty" if modified_tracked_files() else "")) if sha else "unknown"


@cache
def versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    out["python"] = platform.python_version()
    return out


def device_info(device: torch.device) -> dict[str, Any]:
    cpu = cpu_info()
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads(),
                            "cpu": cpu["model"], "cpu_isa": cpu["isa"],
                            "torch_cpu_capability": cpu["torch_capability"], "kernel_env": cpu["kernel_env"],
                            "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


#: where runs write inside the repository (the committed sample's records, leaderboard and kept
#: networks; the regression baselines): a change there is a result, not code. Counted as code, a
#: tune or sweep into ``reports/sample`` made its own runs ``-dirty`` as soon as it re-scored a
#: stale record (issue 39 wants every run from a clean tree)
OUTPUT_DIRS = ("reports/", "results/")


def modified_tracked_files() -> list[str] | None:
    """The tracked files outside ``OUTPUT_DIRS`` that differ from HEAD (what makes ``git_sha`` end
    in ``-dirty``); None where this is no git checkout or git cannot tell."""
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    changed = [line[3:].split(" -> ")[-1] for line in out.stdout.splitlines() if line.strip()]
    return [f for f in changed if not f.startswith(OUTPUT_DIRS)]


#: the environment variables that set how OpenMP and MKL spread work and wait: a step time is
#: comparable only between runs that agree on them (the sample's first Real-ESRGAN table, with the
#: passive wait policy, timed scratch at 1.64 s/step where the default gives about 1.0)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT",
              "OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY", "OPENBLAS_NUM_THREADS")


def threading_info() -> dict[str, Any]:
    """torch's intra- and inter-op threads and each of ``THREAD_ENV`` (None: not set, the
    runtime's default)."""
    return {"torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "env": {k: os.environ.get(k) for k in THREAD_ENV}}


#: a run is *timed under load* when the 1-minute load average rose above the cores it used plus
#: this slack: the average counts the run's own threads, and the evaluation and Python's helper
#: threads wake in bursts that a busy-waiting OpenMP pool can lift a little past its size
LOAD_SLACK = 0.5


class LoadMonitor:
    """Samples the 1-minute load average every ``interval_s`` in a daemon thread while the block
    runs (training): its value before, after and the largest seen. Reading /proc/loadavg every few
    seconds costs nothing a step time could show."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.before: float | None = None
        self.after: float | None = None
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def load() -> float | None:
        try:
            return float(os.getloadavg()[0])
        except (AttributeError, OSError):  # a platform without a load average
            return None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            value = self.load()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> LoadMonitor:
        self.before = self.load()
        self._thread = threading.Thread(target=self._sample, name="gankd-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.after = self.load()

    def summary(self, cores_used: int) -> dict[str, Any]:
        seen = [v for v in (self.before, *self.samples, self.after) if v is not None]
        peak = max(seen) if seen else None
        return {"before": self.before, "after": self.after, "max": peak, "samples": len(self.samples),
                "interval_s": self.interval_s, "cores_used": cores_used, "cpu_count": os.cpu_count(),
                "under_load": None if peak is None else under_load(peak, cores_used)}


def under_load(max_load: float, cores_used: int) -> bool:
    return max_load > cores_used + LOAD_SLACK
