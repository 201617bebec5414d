"""``make report``: reports/leaderboard.csv and a static, self-contained leaderboard.html
(tables sortable by clicking a header, best student per column marked, quality-vs-GMACs plots,
training curves and a grid of the same crops from every method) built from results/."""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.bench import store
from gankd.bench.images import center_crop, data_uri, load_png
from gankd.bench.leaderboard import COLUMNS, DIRECTION, GROUP, QUALITY, aggregate, best_per_column, flatten

LABELS = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID (patch)", "kid": "KID",
    "niqe": "NIQE", "params_m": "Params (M)", "gmacs": "GMACs", "latency_ms": "Latency (ms)",
    "speedup": "Speed-up", "train_min": "Train (min)",
}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "fid": 2, "kid": 4, "niqe": 3, "params_m": 3, "gmacs": 2,
          "latency_ms": 1, "speedup": 2, "train_min": 1}
REFERENCES = ("teacher", "bicubic")


def build(results: Path, out: Path) -> dict[str, Path]:
    runs = list(store.iter_runs(results))
    refs = list(store.iter_references(results))
    rows = [flatten(r) for r in runs] + [flatten(r) for r in refs]
    aggs = aggregate(rows)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "leaderboard.csv"
    atomic.write_text(csv_path, _csv(aggs))
    html_path = out / "leaderboard.html"
    atomic.write_text(html_path, _html(aggs, runs, refs, results))
    return {"csv": csv_path, "html": html_path}


# -- CSV ------------------------------------------------------------------------------------
def _csv(aggs: list[dict[str, Any]]) -> str:
    fields = [*GROUP, "method", "n", "seeds", "failed"]
    for col in COLUMNS:
        fields += [col, col + "_std"]
    fields += [c + s for c in QUALITY for s in ("_delta", "_noise")] + ["errors"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for a in aggs:
        w.writerow({**a, "seeds": " ".join(map(str, a["seeds"]))})
    return buf.getvalue()


# -- HTML -----------------------------------------------------------------------------------
def _fmt(value: float | None, std: float | None, col: str) -> str:
    if value is None:
        return "–"
    d = DIGITS[col]
    s = f"{value:.{d}f}"
    if std is not None:
        s += f" ± {std:.{d}f}"
    return s


def _group_key(a: dict[str, Any]) -> tuple:
    return tuple(a[k] for k in GROUP)


def _html(aggs: list[dict[str, Any]], runs: list[dict], refs: list[dict], results: Path) -> str:
    by_group: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for a in aggs:
        if a["method"] in REFERENCES:
            continue
        by_group[_group_key(a)].append(a)
    ref_aggs = {(a["suite"], a["model"], a["method"]): a for a in aggs if a["method"] in REFERENCES}
    sections = []
    for key in sorted(by_group, key=lambda k: tuple(str(x) for x in k)):
        suite, model, _ = key
        members = by_group[key] + [ref_aggs[(suite, model, r)] for r in REFERENCES
                                   if (suite, model, r) in ref_aggs]
        group_runs = [r for r in runs if (r["suite"], r["model"], r["ratio"]) == key]
        group_refs = [r for r in refs if (r["suite"], r["model"]) == (suite, model)]
        sections.append(_section(key, members, group_runs, group_refs, results))
    notes = _notes(runs)
    body = "\n".join(sections) if sections else (
        "<p class='empty'>No runs yet: try <code>make bench METHOD=sdakd MODEL=gcfsr</code>.</p>")
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return _PAGE.format(generated=generated, notes=notes, body=body, css=_CSS, js=_JS)


def _notes(runs: list[dict]) -> str:
    items = []
    if any(r.get("data") == "builtin" for r in runs):
        items.append("Runs on <code>builtin</code> data (photos shipped inside installed wheels) are "
                     "<b>not comparable with the papers' numbers</b>: no standard SR test set is "
                     "available offline.")
    percep = sorted({r.get("perceptual_network", "") for r in runs if r.get("perceptual_network")})
    if percep:
        items.append("Perceptual loss network: " + "; ".join(html.escape(p) for p in percep) + ".")
    patches = sorted({(r.get("metrics") or {}).get("fid_patches") for r in runs} - {None})
    if patches:
        items.append("FID/KID are patch-based over " + ", ".join(str(int(p)) for p in patches)
                     + " HR-sized patches of the evaluation set; KID is less biased at such counts.")
    shas = sorted({r.get("git_sha", "?") for r in runs})
    if shas:
        items.append("Code: " + ", ".join(f"<code>{html.escape(s[:12])}</code>" for s in shas) + ".")
    items.append("Students are the final EMA weights of each run; no checkpoint is picked by its "
                 "evaluation score. Best student per column is marked ★.")
    return "".join(f"<li>{i}</li>" for i in items)


def _section(key: tuple, members: list[dict[str, Any]], runs: list[dict], refs: list[dict],
             results: Path) -> str:
    suite, model, ratio = key
    best = best_per_column([m for m in members if m["method"] not in REFERENCES])
    order = sorted(members, key=lambda a: (a["method"] in REFERENCES, a["method"]))
    head = "".join(
        f"<th data-col='{i + 1}' data-dir='{'desc' if DIRECTION[c] else 'asc'}'>{LABELS[c]}</th>"
        for i, c in enumerate(COLUMNS))
    body = []
    for a in order:
        cls = "ref" if a["method"] in REFERENCES else ("failed" if not a["n"] else "")
        seeds = f"<span class='n'>n={a['n']}</span>" if a["n"] and a["method"] not in REFERENCES else ""
        cells = []
        for c in COLUMNS:
            mark = " class='best' title='best student'" if best.get(c) == a["method"] else ""
            val = a[c]
            sort = "" if val is None else f" data-v='{val:.9g}'"
            star = " ★" if mark else ""
            cells.append(f"<td{mark}{sort}>{_fmt(val, a[c + '_std'], c)}{star}</td>")
        if not a["n"] and a["method"] not in REFERENCES:
            cells = [f"<td colspan='{len(COLUMNS)}' class='err'>failed: {html.escape(a['errors'])}</td>"]
        body.append(f"<tr class='{cls}'><th scope='row'>{html.escape(str(a['method']))} {seeds}</th>"
                    + "".join(cells) + "</tr>")
    table = (f"<table class='board sortable'><thead><tr>"
             f"<th data-col='0' data-dir='asc'>Method</th>{head}</tr>"
             f"</thead><tbody>{''.join(body)}</tbody></table>")
    failed_rows = [a for a in members if a["failed"] and a["n"]]
    failed_note = "".join(f"<p class='err'>{html.escape(a['method'])}: {a['failed']} failed run(s): "
                          f"{html.escape(a['errors'])}</p>" for a in failed_rows)
    return (f"<section><h2>{html.escape(model)} · student r={ratio:g} · suite {html.escape(suite)}</h2>"
            f"{table}{failed_note}{_paired_table(members)}"
            f"<div class='plots'>{_plot_quality(members)}{_plot_curves(runs)}</div>"
            f"{_grid(runs, refs, results)}</section>")


def _paired_table(members: list[dict[str, Any]]) -> str:
    rows = []
    for a in sorted(members, key=lambda a: a["method"]):
        if a["method"] in (*REFERENCES, "scratch") or a.get("psnr_delta") is None:
            continue
        cells = []
        for c in QUALITY:
            d = a.get(c + "_delta")
            if d is None:
                cells.append("<td>–</td>")
                continue
            better = (d > 0) == DIRECTION[c]
            noise = a.get(c + "_noise") or ""
            cls = "noise" if noise != "significant" else ("up" if better else "down")
            cells.append(f"<td class='{cls}' title='{html.escape(noise)}'>{d:+.{DIGITS[c]}f}"
                         f"<span class='nz'>{html.escape(noise)}</span></td>")
        rows.append(f"<tr><th scope='row'>{html.escape(a['method'])}</th>{''.join(cells)}</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{LABELS[c]}</th>" for c in QUALITY)
    return (f"<details><summary>Paired difference against scratch (same seeds)</summary>"
            f"<table class='paired'><thead><tr><th>Method</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></details>")


def _figure_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plot_quality(members: list[dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [a for a in members if a.get("gmacs") and (a.get("psnr") is not None or a.get("lpips") is not None)]
    if not pts:
        return ""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, col in zip(axes, ("psnr", "lpips")):
        for a in pts:
            if a.get(col) is None:
                continue
            marker = "s" if a["method"] == "teacher" else "o"
            ax.errorbar(a["gmacs"], a[col], yerr=a.get(col + "_std") or 0, fmt=marker, capsize=3)
            ax.annotate(a["method"], (a["gmacs"], a[col]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("GMACs (log)")
        ax.set_ylabel(LABELS[col] + (" ↑" if DIRECTION[col] else " ↓"))
        ax.grid(alpha=0.3)
    fig.suptitle("Quality vs compute")
    return f"<img class='plot' alt='quality vs GMACs' src='{_figure_uri(fig)}'>"


def _plot_curves(runs: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in runs if r.get("history")]
    if not done:
        return ""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for r in sorted(done, key=lambda r: (r["method"], r["seed"])):
        steps = [h["step"] for h in r["history"]]
        total = [sum(v for k, v in h.items() if k.startswith("g/")) for h in r["history"]]
        axes[0].plot(steps, total, label=f"{r['method']} s{r['seed']}", lw=1)
        val = r.get("val_history") or []
        if val and "psnr" in val[0]:
            axes[1].plot([v["step"] for v in val], [v["psnr"] for v in val], marker=".", lw=1,
                         label=f"{r['method']} s{r['seed']}")
    axes[0].set_title("generator loss (sum of weighted terms)")
    axes[0].set_xlabel("step")
    axes[1].set_title("validation PSNR (EMA, separate images)")
    axes[1].set_xlabel("step")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return f"<img class='plot' alt='training curves' src='{_figure_uri(fig)}'>"


def _grid(runs: list[dict], refs: list[dict], results: Path, crop: int = 96) -> str:
    done = [r for r in runs if r.get("status") == "done" and r.get("seed") == min(x["seed"] for x in runs)]
    if not done:
        return ""
    evalset = done[0].get("eval", {}).get("evalset")
    ref_dir = None
    for ref in refs:
        if ref.get("evalset") == evalset and ref.get("samples_dir"):
            ref_dir = results / ref["samples_dir"]
    names = sorted(p.stem for p in (results / done[0]["run_dir"] / "samples").glob("*.png")) \
        if done[0].get("run_dir") else []
    if not names:
        return ""
    columns: list[tuple[str, Path | None]] = []
    if ref_dir:
        columns += [(c, ref_dir / c.lower()) for c in ("LR", "bicubic", "teacher")]
    columns += [(r["method"], results / r["run_dir"] / "samples")
                for r in sorted(done, key=lambda r: r["method"])]
    if ref_dir:
        columns.append(("HR", ref_dir / "hr"))
    head = "".join(f"<th>{html.escape(c)}</th>" for c, _ in columns)
    rows = []
    for name in names:
        cells = []
        for label, folder in columns:
            path = folder / f"{name}.png" if folder else None
            if path is None or not path.is_file():
                cells.append("<td>–</td>")
                continue
            arr = load_png(path)
            if label == "LR":  # show the LR region matching the crop, nearest-upscaled by the browser
                hr_side = load_png(ref_dir / "hr" / f"{name}.png").shape[0] if ref_dir else arr.shape[0]
                scale = max(1, hr_side // arr.shape[0])
                arr = center_crop(arr, max(1, crop // scale))
            else:
                arr = center_crop(arr, crop)
            cells.append(f"<td><img class='crop' alt='{html.escape(label)} {html.escape(name)}' "
                         f"src='{data_uri(arr)}'></td>")
        rows.append(f"<tr><th scope='row'>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return (f"<h3>Same crops from every method ({crop}×{crop} HR pixels, centre of each evaluation image)</h3>"
            f"<div class='gridwrap'><table class='grid'><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1300px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0} th,td{padding:.3em .6em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
thead th{background:#f6f6f6;cursor:pointer;user-select:none} thead th:after{content:' ⇅';color:#bbb}
thead th.asc:after{content:' ▲';color:#333} thead th.desc:after{content:' ▼';color:#333}
tbody th{text-align:left} tr.ref{color:#666;background:#fafafa;font-style:italic}
td.best{font-weight:700;background:#eaf7ea} td.err,p.err{color:#b00;text-align:left;white-space:normal}
.n{color:#999;font-size:11px;font-weight:400} .nz{display:block;font-size:10px;color:#888}
td.up{color:#070} td.down{color:#b00} td.noise{color:#777}
.plots img{max-width:49%;margin-right:1%} img.crop{width:144px;height:144px;image-rendering:pixelated}
.gridwrap{overflow-x:auto} table.grid th{text-align:center;font-weight:500} ul.notes{color:#444}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th) {
    th.addEventListener('click', function () {
      var col = parseInt(th.dataset.col, 10);
      var asc = th.classList.contains('asc') ? false : th.classList.contains('desc') ? true : th.dataset.dir === 'asc';
      table.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.children[col];
        if (!cell) { return null; }
        if (col === 0) { return cell.textContent.trim(); }
        return cell.dataset.v === undefined ? null : parseFloat(cell.dataset.v);
      }
      rows.sort(function (a, b) {
        var ka = key(a), kb = key(b);
        if (ka === null) { return 1; }
        if (kb === null) { return -1; }
        if (ka < kb) { return asc ? -1 : 1; }
        if (ka > kb) { return asc ? 1 : -1; }
        return 0;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>gankd leaderboard</title><style>{css}</style></head>
<body><h1>gankd leaderboard</h1><p>Knowledge distillation of super-resolution GANs · generated {generated}</p>
<ul class="notes">{notes}</ul>
{body}
<script>{js}</script></body></html>
"""
