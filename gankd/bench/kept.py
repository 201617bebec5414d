"""The kept set: networks a suite trains once, committed with the repository (``reports/sample/
trained``), so that a first run starts from the very teacher and students the sample was made
from instead of spending an hour training them again.

A kept network is used when the kept set holds a file under the same name and config key as the
network a run asks for (``teachers/<name>-<key>/teacher.pth``); its sha256 must match the one its
``.json`` recorded, or the run stops naming the file (never trains on other weights, never
trains again in silence). The kept set is only read: a fresh clone may be read-only, and a lock
or a checkpoint written into it would show up as a change to commit. Any other key (another
suite, ratio, seed or an edited config) is trained into the writable store as before.
"""

from __future__ import annotations

from pathlib import Path

from gankd.paths import KEPT_OFF, REPO_ROOT, cache_dir, kept_dir, trained_dir


def shown(path: Path) -> str:
    """``path`` as a user reads it in a log line: relative to the repository when inside it."""
    try:
        return str(path.absolute().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def holds(path: Path) -> bool:
    """Whether ``path`` lies in the kept set (so it is read only)."""
    kept = kept_dir()
    return kept is not None and path.absolute().is_relative_to(kept)


def locate(rel: Path) -> Path:
    """Where the trained-once network ``rel`` (relative to a store) is read from: the kept set's
    file when the kept set has one under this name and key, else the writable store's."""
    kept = kept_dir()
    if kept is not None and (kept / rel).is_file():
        return kept / rel
    return trained_dir() / rel


def store_name() -> str:
    """The writable store, as a log line names it."""
    return "the cache" if trained_dir().absolute() == cache_dir().absolute() else "GANKD_TRAINED"


def other_keys(path: Path) -> list[str]:
    """The kept set's folders for the same network under other config keys (``gcfsr_64-<key>``
    beside ``path``'s): why a kept network was not used, for the log."""
    kept = kept_dir()
    if kept is None:
        return []
    folder = path.parent
    name = folder.name.rsplit("-", 1)[0]
    here = kept / folder.parent.name
    if not here.is_dir():
        return []
    return sorted(p.name for p in here.glob(f"{name}-*") if p.is_dir() and p.name != folder.name
                  and p.name.rsplit("-", 1)[0] == name)


def fix() -> str:
    """What to do about a damaged kept file: it is restored, not deleted (it is the sample's)."""
    kept = kept_dir()
    assert kept is not None
    return (f"restore it (git checkout -- {shown(kept)}) or set GANKD_KEPT={KEPT_OFF} to train it into "
            f"{store_name()} instead")
