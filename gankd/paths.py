"""Where things live on disk: the cache (weights, data, teacher pools), the results tree, and the
benchmark configs (suites and model families)."""

from __future__ import annotations

import os
from pathlib import Path

from gankd.errors import ConfigError

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


#: what a cache holds that is fixed input, not derived from a run: converted pretrained weights and
#: the downloaded archives they came from
FIXED_CACHE = ("weights", "downloads")


def fresh_cache(root: Path) -> Path:
    """An empty cache at ``root`` sharing only the current cache's fixed inputs (``FIXED_CACHE``,
    linked): every pool, evaluation set and trained-once network is built again inside it."""
    root.mkdir(parents=True, exist_ok=True)
    for name in FIXED_CACHE:
        if (cache_dir() / name).is_dir() and not (root / name).exists():
            (root / name).symlink_to((cache_dir() / name).resolve(), target_is_directory=True)
    return root


#: the networks the committed sample was made from (GCFSR's cpu teacher, the students' supervised
#: stages), each beside the record of its sha256
SAMPLE_KEPT = REPO_ROOT / "reports" / "sample" / "trained"
#: the committed sample's run records (`make bench` compares a run with them)
SAMPLE_RESULTS = REPO_ROOT / "reports" / "sample" / "results"

#: the value of ``GANKD_KEPT`` that turns the kept set off
KEPT_OFF = "none"


def kept_dir() -> Path | None:
    """The kept set: trained-once networks committed with the repository, read (never written, never
    locked) in place of training when one has the key a run asks for and its sha256 matches its
    record. ``$GANKD_KEPT`` names another such folder, ``GANKD_KEPT=none`` turns it off; by default
    it is ``reports/sample/trained``, unless ``$GANKD_TRAINED`` names a store of its own (then that
    store is the only one, as before the kept set existed). None when there is no kept set."""
    env = os.environ.get("GANKD_KEPT", "").strip()
    if env.lower() == KEPT_OFF:
        return None
    if env:
        kept = Path(env).expanduser().absolute()
        if not kept.is_dir():
            raise ConfigError(f"GANKD_KEPT={env} is not a folder: name a kept set of trained networks "
                              f"(default {SAMPLE_KEPT.relative_to(REPO_ROOT)}) or {KEPT_OFF}")
    elif os.environ.get("GANKD_TRAINED"):
        return None
    else:
        kept = SAMPLE_KEPT
    # the writable store is never also read as a read-only set
    return None if kept == trained_dir().absolute() else kept


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
