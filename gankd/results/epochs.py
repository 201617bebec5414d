"""Code epochs: changes that move a run's numbers while its config stays the same.

A stored run is "current" when the config it ran with equals the suite's config now
(``store.config_change``). Some changes move every number without touching a config key: how
networks draw their random init, a loss's implementation. Each such change opens an epoch here,
named by the first commit whose runs have the new numbers; a run of an earlier epoch is "older"
as a changed config is, so the report leaves it out (naming why) and `gankd sweep` runs it again.

Runs record the epoch they ran in (``RunRecord.epoch``). Records written before that field are
dated by their commit: by git ancestry where this checkout's history knows both commits, else by
``written_at`` against the epoch commit's date (a shallow clone, a tarball).

Open a new epoch (append one, never edit one) right after the commit that changes numbers without
a config key (a commit cannot name itself), before any run is made at it, and say why; the runs
before it then run again (docs/extending.md).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache

from gankd.paths import REPO_ROOT
from gankd.results.record import RunRecord

__all__ = ["CURRENT", "EPOCHS", "Epoch", "dated", "epoch_change", "epoch_of"]


@dataclass(frozen=True)
class Epoch:
    number: int
    commit: str  # the first commit whose runs have this epoch's numbers
    date: str  # that commit's date, UTC, in ``RunRecord.written_at``'s format
    why: str


EPOCHS: tuple[Epoch, ...] = (
    Epoch(1, "32abebb9adc9695e7d6567e66fa532976195c607", "2026-12-06T21:50:36Z",
          "students and the cpu GCFSR teacher seeded by role; DCD, LIT and OMGD as their authors ran "
          "them (issue 36)"),
)
#: the epoch of runs made by this checkout
CURRENT = EPOCHS[-1].number


@cache
def _descends(sha: str, ancestor: str) -> bool | None:
    """Whether commit ``sha`` has ``ancestor`` in its history (None: git cannot tell here)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "merge-base", "--is-ancestor", ancestor, sha],
                             capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    # 0: an ancestor, 1: not one; anything else (an unknown commit, no repository): cannot tell
    return {0: True, 1: False}.get(out.returncode)


def epoch_of(record: RunRecord) -> int | None:
    """The epoch ``record`` was run in (None: undatable, no field, commit or date)."""
    return record.epoch if record.epoch is not None else dated(record.git_sha, record.written_at)


def dated(git_sha: str, written_at: str = "") -> int | None:
    """The epoch of a result made at commit ``git_sha`` (``-dirty`` or not) and written at
    ``written_at`` (UTC, ``RunRecord.written_at``'s format; empty: unknown); None: undatable."""
    sha = git_sha.removesuffix("-dirty")
    for e in reversed(EPOCHS):
        after = _descends(sha, e.commit) if sha and sha != "unknown" else None
        if after is None and written_at:
            after = written_at >= e.date
        if after is None:
            return None
        if after:
            return e.number
    return 0


def epoch_change(record: RunRecord) -> str | None:
    """Why ``record``'s numbers are of an older epoch than this checkout's runs (None: they are not,
    or it cannot be dated: a record with neither commit nor date is taken as it is)."""
    n = epoch_of(record)
    if n is None or n >= CURRENT:
        return None
    newer = [e for e in EPOCHS if e.number > n]
    return f"code epoch {n}, before {newer[0].commit[:7]}: {newer[0].why}"
