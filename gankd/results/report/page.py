"""The page: ``templates/page.html.j2`` rendered with the views, figures and crops of every
section; the page's CSS and JavaScript are the package's ``static/`` files, inlined so the file
opens from disk with no server and no network."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from gankd.results import store
from gankd.results.leaderboard import BASELINE, FLOOR_METRIC
from gankd.results.record import RunRecord
from gankd.results.report import grid, plots, views
from gankd.results.report.sections import Section, slug


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("gankd.results.report", "templates"),
                              autoescape=True, keep_trailing_newline=True)


def _static(name: str) -> Markup:
    return Markup(resources.files("gankd.results.report").joinpath("static", name).read_text())


def to_html(sections: list[Section], runs: list[RunRecord], results: Path,
            unreadable: Sequence[store.Unreadable] = ()) -> str:
    palette = views.colours(a["method"] for s in sections for a in s.students)
    by_model: dict[tuple, list[Section]] = defaultdict(list)
    for s in sections:
        by_model[(s.suite, s.model)].append(s)
    models = [_model(suite, model, secs, palette, results) for (suite, model), secs in by_model.items()]
    toc = [{"anchor": s.anchor, "model": s.model, "title": s.title, "suite": s.suite,
            "methods": len(s.students), "seeds": len({seed for a in s.students for seed in a["seeds"]}),
            "failed": sum(a["failed"] for a in s.students)} for s in sections]
    return _environment().get_template("page.html.j2").render(
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), notes=_notes(runs), toc=toc,
        unreadable=unreadable,
        models=models, baseline=BASELINE, dash=views.DASH, css=_static("report.css"), js=_static("report.js"))


def _model(suite: str, model: str, secs: list[Section], palette: dict[str, str],
           results: Path) -> dict[str, Any]:
    runs = [r for s in secs for r in s.runs]
    first = runs[0] if runs else None
    return {"anchor": slug(f"{suite}-{model}"), "suite": suite, "model": model,
            "teacher": first.teacher if first else "",
            "teacher_source": first.teacher_source if first else "",
            "data": sorted({r.data for r in runs if r.data}),
            "quality_plots": plots.quality_views(secs, palette),
            "sections": [_section(s, palette, results) for s in secs]}


def _section(s: Section, palette: dict[str, str], results: Path) -> dict[str, Any]:
    images = sorted({r.eval.get("images") for r in s.runs} - {None})
    return {"anchor": s.anchor, "model": s.model, "title": s.title, "suite": s.suite,
            "students": ", ".join(sorted({r.student for r in s.runs if r.student})),
            "evalset": s.evalset, "images": ", ".join(map(str, images)), "evalsets": s.evalsets,
            "board": views.board(s, palette), "verdicts": views.verdicts(s), "paired": views.paired(s),
            "deployment": views.deployment(s),
            "failure_notes": [{"method": a["method"], "failed": a["failed"], "errors": a["errors"]}
                              for a in s.students if a["failed"] and a["n"]],
            "curves": plots.curves(s.runs, palette), "grid": grid.grid(s, results)}


def _notes(runs: list[RunRecord]) -> dict[str, Any]:
    return {
        "builtin": sorted({r.data for r in runs if r.data in ("builtin", "photos", "faces")}),
        "percep": sorted({r.perceptual_network for r in runs if r.perceptual_network}),
        "patches": [str(int(p)) for p in sorted({r.metrics.get("fid_patches") for r in runs} - {None})],
        "devices": sorted({_device(r) for r in runs} - {""}),
        "shas": sorted({_short_sha(r.git_sha or "?") for r in runs}),
        "floor_metric": FLOOR_METRIC,
    }


def _short_sha(sha: str) -> str:
    return sha[:12] + ("-dirty" if sha.endswith("-dirty") else "")


def _device(r: RunRecord) -> str:
    d = r.device
    if not d:
        return ""
    if d.get("name"):  # an accelerator's model name
        return str(d["name"])
    cores = f", {d['cpu_count']} cores" if d.get("cpu_count") else ""
    threads = f", {d['torch_threads']} torch threads" if d.get("torch_threads") else ""
    return f"{d.get('type', '?')} ({d.get('cpu') or '?'}{cores}{threads})"
