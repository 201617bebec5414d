"""Where things live on disk: the cache (weights, data, teacher pools), the results tree, and the
benchmark configs (suites and model families)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``$GANKD_CACHE``, default ``~/.cache/gankd``."""
    env = os.environ.get("GANKD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gankd"


def trained_dir() -> Path:
    """Where the networks a suite trains once live (a teacher without released weights, the
    students' supervised stage): ``$GANKD_TRAINED``, default the cache. A sweep grown over sessions
    on several machines points it at a folder kept with its results, so that every seed of every
    method distils from the same teacher and starts from the same student, wherever it ran (two
    machines train two different networks from the same seed: their kernels differ)."""
    env = os.environ.get("GANKD_TRAINED")
    return Path(env).expanduser() if env else cache_dir()


def results_dir() -> Path:
    """``$GANKD_RESULTS``, default ``results/`` beside the package (the repository checkout)."""
    env = os.environ.get("GANKD_RESULTS")
    return Path(env).expanduser() if env else REPO_ROOT / "results"


def reports_dir() -> Path:
    env = os.environ.get("GANKD_REPORTS")
    return Path(env).expanduser() if env else REPO_ROOT / "reports"


def benchmarks_dir() -> Path:
    return REPO_ROOT / "benchmarks"


def family_file(family: str) -> Path:
    """``benchmarks/models/<family>.yaml``: a model family's defaults (teacher, discriminator,
    data, recipe, training, evaluation)."""
    return benchmarks_dir() / "models" / f"{family}.yaml"


def family_names() -> list[str]:
    """The model families, one per file under ``benchmarks/models/``: a new family is a new file
    there, and the zoo and the suites accept it without any list to edit. Here, below every
    layer, so that the models layer can check its zoo against them."""
    return sorted(p.stem for p in (benchmarks_dir() / "models").glob("*.yaml"))
