"""Where things live on disk: the cache (weights, data, teacher pools) and the results tree."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``$GANKD_CACHE``, default ``~/.cache/gankd``."""
    env = os.environ.get("GANKD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gankd"


def results_dir() -> Path:
    """``$GANKD_RESULTS``, default ``results/`` beside the package (the repository checkout)."""
    env = os.environ.get("GANKD_RESULTS")
    return Path(env).expanduser() if env else REPO_ROOT / "results"


def reports_dir() -> Path:
    env = os.environ.get("GANKD_REPORTS")
    return Path(env).expanduser() if env else REPO_ROOT / "reports"


def benchmarks_dir() -> Path:
    return REPO_ROOT / "benchmarks"
