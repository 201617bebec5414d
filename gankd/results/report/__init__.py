"""``make report``: reports/leaderboard.csv and a static, self-contained leaderboard.html built
from results/.

The page has, per model, a quality-vs-GMACs plot over every student ratio, then per (model,
student ratio) a table of every method with the teacher and bicubic on the same evaluation set
(mean ± sample s.d. over seeds, best student per column marked, sortable by clicking a header),
the paired comparison of each method against ``scratch`` on shared seeds, training curves, and
a grid of the same crops from every method beside LR, bicubic, teacher and HR. Plots and crops
are embedded as data URIs and the sorting script is inline, so the file opens from disk in any
browser with no server and no network.

Nothing here builds a suite or imports the training side: what the records' suites declare comes
in as a ``gankd.results.suites.Suites`` (``gankd.bench.suite.SuiteIndex`` for this checkout's).

Rooms: ``sections`` groups records into tables (pandas, gankd/results/leaderboard.py), ``views``
turns a table into what the template shows, ``plots`` and ``grid`` make the figures and crops,
``page`` renders ``templates/page.html.j2`` with ``static/report.{css,js}``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from gankd import atomic
from gankd.results import store
from gankd.results.report.page import to_html
from gankd.results.report.sections import CSV_FIELDS, Section, sections_of, to_csv
from gankd.results.report.views import DASH
from gankd.results.suites import Suites

__all__ = ["CSV_FIELDS", "DASH", "Section", "build", "current", "sections_of", "tables", "to_csv", "to_html"]

log = logging.getLogger(__name__)


def current(results: Path, runs: list[store.RunRecord], left_out: list[store.Unreadable] | None = None,
            suites: Suites | None = None) -> list[store.RunRecord]:
    """``runs`` without those of a suite ``suites`` knows that ran with another config than the
    suite's current one (an edited suite, re-tuned weights): a sample grown over sessions may hold
    both until `gankd sweep` runs them again, and the two are never ranked side by side. Runs of
    suites it does not know are kept as they are. Each run left out goes to ``left_out`` (kind
    "older config", with what changed), so the report names it where a reader sees it."""
    suites = suites or Suites()
    keep, old = [], []
    for r in runs:
        changed = suites.config_change(results, r)
        (old if changed else keep).append(r)
        if changed and left_out is not None:
            what = ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
            left_out.append(store.Unreadable(f"{r.run_dir}/metrics.json", f"run with an older config "
                                             f"({what}); `gankd sweep` runs it again", kind="older config"))
    if old:
        log.warning("left out of the report: %d run(s) of an older config (%s); `gankd sweep` runs them "
                    "again", len(old), ", ".join(r.run_dir for r in old))
    return keep


def tables(results: Path, suites: Suites | None = None, left_out: list[store.Unreadable] | None = None,
           include_dirty: bool = False) -> tuple[list[store.RunRecord], list[Section]]:
    """The records under ``results`` as the report judges them: (the runs of each suite's current
    config, their tables). ``left_out`` collects what was not read or not current;
    ``include_dirty``: runs from dirty trees count as clean (planning only: `gankd power`)."""
    runs = current(results, list(store.iter_runs(results, left_out)), left_out, suites)
    if include_dirty:
        runs = [dataclasses.replace(r, git_sha=r.git_sha.removesuffix("-dirty")) for r in runs]
    return runs, sections_of(runs, list(store.iter_references(results, left_out)), suites)


def mixed_starts(runs: list[store.RunRecord]) -> list[str]:
    """What the runs of one comparison do not share: the teacher's weights (per suite, model and
    data) or a seed's starting student (per shape and seed, across methods). A teacher or a
    supervised stage trained on two machines differs (other kernels), and a sample grown over
    sessions could rank their runs together; keep them in one place with ``GANKD_TRAINED``."""
    groups: dict[tuple[str, ...], dict[str, set[str]]] = {}

    def add(key: tuple[str, ...], source: str, run_dir: str) -> None:
        groups.setdefault(key, {}).setdefault(source, set()).add(run_dir)

    for r in runs:
        if r.teacher_source:
            add(("teachers", r.suite, r.model, r.data), r.teacher_source, r.run_dir)
        if r.student_init.startswith("supervised"):
            shape = (f"r{r.ratio:g}", f"d{r.depth}", f"seed{r.seed}")
            add(("starting students", r.suite, r.model, r.data, *shape), r.student_init, r.run_dir)
    return [f"{' '.join(k[1:])}: {len(v)} different {k[0]} ("
            + "; ".join(f"{src}: {len(dirs)} run(s)" for src, dirs in sorted(v.items())) + ")"
            for k, v in groups.items() if len(v) > 1]


def build(results: Path, out: Path, suites: Suites | None = None) -> dict[str, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.html`` under ``out``; return their paths. A
    record that cannot be read is named in both (a CSV row of kind ``unreadable``, a note at the
    top of the page), not only in a log nobody keeps. ``suites``: what is known of the records'
    suites (``gankd.bench.suite.SuiteIndex``: this checkout's), for stale runs, protocols, tasks."""
    unreadable: list[store.Unreadable] = []
    runs, sections = tables(results, suites, unreadable)
    for line in mixed_starts(runs):
        log.warning("runs compared below do not share their networks: %s", line)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "leaderboard.csv"
    atomic.write_text(csv_path, to_csv(sections, unreadable))
    html_path = out / "leaderboard.html"
    atomic.write_text(html_path, to_html(sections, runs, results, unreadable))
    return {"csv": csv_path, "html": html_path}
