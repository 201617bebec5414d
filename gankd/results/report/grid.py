"""The same crops from every source of a table, side by side (LR, bicubic, teacher, each method,
HR), as data for the template."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gankd.images import center_crop, data_uri, load_png
from gankd.results.leaderboard import BASELINE
from gankd.results.record import RunRecord
from gankd.results.report.sections import Section
from gankd.tasks import task


def _seed_order(r: RunRecord) -> float:
    return math.inf if r.seed is None else float(r.seed)


def grid(s: Section, results: Path, crop: int = 96) -> dict[str, Any] | None:
    """The same centre crop of each kept evaluation image from every source. Each method shows
    its lowest finished seed. LR shows the matching LR region (nearest-upscaled by the browser,
    so its pixels stay visible)."""
    done: dict[str, RunRecord] = {}
    for r in sorted(s.runs, key=_seed_order):
        if r.status.has_results and r.run_dir:
            done.setdefault(str(r.method), r)
    ref_dir = None
    if s.refs:
        some = next(iter(s.refs.values()))
        if some.samples_dir:
            ref_dir = results / some.samples_dir
    # the columns the section's task declares (gankd.tasks: Task.grid_before / grid_after)
    kind = task(s.task)
    before, after = kind.grid_before, kind.grid_after
    sources: list[tuple[str, Path]] = []
    if ref_dir is not None:
        sources += [(who, ref_dir / folder) for who, folder in before]
    order = sorted(done, key=lambda m: (m != BASELINE, m))
    sources += [(m, results / done[m].run_dir / "samples") for m in order]
    if ref_dir is not None:
        sources += [(who, ref_dir / folder) for who, folder in after]
    names = sorted({p.stem for _, folder in sources if folder.is_dir() for p in folder.glob("*.png")})
    if not names or not done:
        return None
    rows = []
    side = crop
    for name in names:
        hr_path = ref_dir / "hr" / f"{name}.png" if ref_dir is not None else None
        hr_side = min(load_png(hr_path).shape[:2]) if hr_path is not None and hr_path.is_file() else None
        cells: list[dict[str, str] | None] = []
        for who, folder in sources:
            path = folder / f"{name}.png"
            if not path.is_file():
                cells.append(None)
                continue
            arr = load_png(path)
            own = min(arr.shape[:2])
            full = hr_side or own
            size = min(crop, full)
            side = min(side, size)
            if own < full:  # a low-resolution image: the same region, at its own scale
                arr = center_crop(arr, max(1, round(size * own / full)))
            else:
                arr = center_crop(arr, size)
            cells.append({"alt": f"{who}: {name}", "src": data_uri(arr)})
        rows.append({"name": name, "cells": cells})
    head = [{"label": who, "seed": done[who].seed if who in done else None} for who, _ in sources]
    return {"side": side, "head": head, "rows": rows}
