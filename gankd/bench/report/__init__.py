"""``make report``: reports/leaderboard.csv and a static, self-contained leaderboard.html built
from results/.

The page has, per model, a quality-vs-GMACs plot over every student ratio, then per (model,
student ratio) a table of every method with the teacher and bicubic on the same evaluation set
(mean ± sample s.d. over seeds, best student per column marked, sortable by clicking a header),
the paired comparison of each method against ``scratch`` on shared seeds, training curves, and
a grid of the same crops from every method beside LR, bicubic, teacher and HR. Plots and crops
are embedded as data URIs and the sorting script is inline, so the file opens from disk in any
browser with no server and no network.

Rooms: ``sections`` groups records into tables (pandas, gankd/bench/leaderboard.py), ``views``
turns a table into what the template shows, ``plots`` and ``grid`` make the figures and crops,
``page`` renders ``templates/page.html.j2`` with ``static/report.{css,js}``.
"""

from __future__ import annotations

from pathlib import Path

from gankd import atomic
from gankd.bench import store
from gankd.bench.report.page import to_html
from gankd.bench.report.sections import CSV_FIELDS, Section, sections_of, to_csv
from gankd.bench.report.views import DASH

__all__ = ["CSV_FIELDS", "DASH", "Section", "build", "sections_of", "to_csv", "to_html"]


def build(results: Path, out: Path) -> dict[str, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.html`` under ``out``; return their paths."""
    runs = list(store.iter_runs(results))
    refs = list(store.iter_references(results))
    sections = sections_of(runs, refs)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "leaderboard.csv"
    atomic.write_text(csv_path, to_csv(sections))
    html_path = out / "leaderboard.html"
    atomic.write_text(html_path, to_html(sections, runs, results))
    return {"csv": csv_path, "html": html_path}
