"""``make report``: reports/leaderboard.csv and a static, self-contained leaderboard.html built
from results/.

The page has, per model, a quality-vs-GMACs plot over every student ratio, then per (model,
student ratio) a table of every method with the teacher and bicubic on the same evaluation set
(mean ± sample s.d. over seeds, best student per column marked, sortable by clicking a header),
the paired comparison of each method against ``scratch`` on shared seeds, training curves, and
a grid of the same crops from every method beside LR, bicubic, teacher and HR. Plots and crops
are embedded as data URIs and the sorting script is inline, so the file opens from disk in any
browser with no server and no network.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.bench import store
from gankd.bench.images import center_crop, data_uri, load_png
from gankd.bench.leaderboard import (
    BASELINE,
    COLUMNS,
    DIRECTION,
    FLOOR_METRIC,
    GROUP,
    QUALITY,
    REFERENCES,
    SIGNIFICANT,
    aggregate,
    best_per_column,
    flatten,
    mark_floors,
)

LABELS = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID", "kid": "KID",
    "niqe": "NIQE", "params_m": "Params (M)", "gmacs": "GMACs", "latency_ms": "Latency (ms)",
    "speedup": "Speed-up", "train_min": "Train (min)", "train_gmacs": "Train GMACs/step",
    "s_step": "s/step",
}
HINTS = {
    "psnr": "PSNR on the Y channel of the evaluation set; higher is better",
    "ssim": "SSIM; higher is better",
    "lpips": "LPIPS (AlexNet); lower is better",
    "fid": "patch FID against the HR patches; lower is better; compare only at equal patch counts",
    "kid": "kernel inception distance over the same patches; lower is better",
    "niqe": "NIQE, no-reference naturalness; lower is better",
    "params_m": "generator parameters, millions",
    "gmacs": "multiply-accumulates per image at the model's standard input, billions",
    "latency_ms": "median forward time of one image at the suite's latency input",
    "speedup": "teacher latency / this latency, measured on the same machine",
    "train_min": "training wall time (excluding evaluation)",
    "train_gmacs": "multiply-accumulates of one training step, forward and backward, generator and "
                   "discriminator sides (gankd.engine.cost); cached teacher outputs cost nothing",
    "s_step": "measured seconds per training step on the run's machine",
}
#: quality columns: fixed decimals, so a column's digits line up; costs span orders of magnitude
#: (a 9 MMAC student beside a 73 GMAC teacher): three significant digits
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "fid": 2, "kid": 4, "niqe": 3}
SIGNIFICANT_DIGITS = 3
DASH = "–"
#: a method's colour is the same in every plot of the page
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")


@dataclass
class Section:
    """One (suite, model, student ratio): its runs, the references on the same evaluation set and
    their aggregates (students first, then teacher and bicubic)."""

    suite: str
    model: str
    ratio: float
    runs: list[dict[str, Any]]
    refs: dict[str, dict[str, Any]]  # role -> reference record
    aggs: list[dict[str, Any]]
    evalset: str | None
    evalsets: list[str]  # every evaluation set the section's finished runs used

    @property
    def anchor(self) -> str:
        return _slug(f"{self.suite}-{self.model}-r{self.ratio:g}")

    @property
    def students(self) -> list[dict[str, Any]]:
        return [a for a in self.aggs if a["method"] not in REFERENCES]


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


def sections_of(runs: list[dict[str, Any]], refs: list[dict[str, Any]]) -> list[Section]:
    """Group runs by (suite, model, ratio); attach the teacher and bicubic records of the
    evaluation set those runs were scored on."""
    by_key: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_key[tuple(r.get(k) for k in GROUP)].append(r)
    student_aggs = aggregate(flatten(r) for r in runs)
    sections = []
    for key in sorted(by_key, key=lambda k: (str(k[0]), str(k[1]), _num(k[2]))):
        suite, model, ratio = key
        group = by_key[key]
        used = Counter(r["eval"]["evalset"] for r in group
                       if r.get("status") == store.STATUS_DONE and (r.get("eval") or {}).get("evalset"))
        candidates = [x for x in refs if (x.get("suite"), x.get("model")) == (suite, model)]
        if used:
            evalset = used.most_common(1)[0][0]
        else:  # nothing finished: show the references if they are unambiguous
            sets = sorted({x.get("evalset") for x in candidates})
            evalset = sets[0] if len(sets) == 1 else None
        chosen = {x.get("role") or x.get("method"): x for x in candidates if x.get("evalset") == evalset}
        ref_aggs = aggregate(flatten({**chosen[role], "ratio": ratio}) for role in REFERENCES
                             if role in chosen)
        aggs = [a for a in student_aggs if tuple(a[k] for k in GROUP) == key]
        aggs.sort(key=lambda a: (a["method"] != BASELINE, str(a["method"])))
        aggs += sorted(ref_aggs, key=lambda a: REFERENCES.index(a["method"]))
        mark_floors(aggs)
        sections.append(Section(suite, model, ratio, group, chosen, aggs, evalset, sorted(used)))
    return sections


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.inf


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


# -- CSV ------------------------------------------------------------------------------------
CSV_FIELDS = [
    *GROUP, "kind", "method", "n", "seeds", "failed", "failed_seeds", "floor",
    *(f for col in COLUMNS for f in (col, col + "_std")), "weights",
    "paired_n", *(col + s for col in QUALITY for s in ("_delta", "_ci", "_noise")),
    "evalset", "errors",
]


def to_csv(sections: Iterable[Section]) -> str:
    """One row per (suite, model, ratio, method), teacher and bicubic repeated in every ratio's
    block so each block reads on its own. Empty cells: no value (missing metric, failed run)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for sec in sections:
        for a in sec.aggs:
            paired_n = max((a.get(c + "_paired_n") or 0 for c in QUALITY), default=0)
            w.writerow({
                **{k: ("" if v is None else v) for k, v in a.items()},
                "kind": "reference" if a["method"] in REFERENCES else "student",
                "seeds": " ".join(map(str, a["seeds"])),
                "failed_seeds": " ".join(map(str, a["failed_seeds"])),
                "paired_n": paired_n if any(c + "_delta" in a for c in QUALITY) else "",
                "evalset": sec.evalset or "",
            })
    return buf.getvalue()


# -- HTML -----------------------------------------------------------------------------------
def to_html(sections: list[Section], runs: list[dict[str, Any]], results: Path) -> str:
    colours = _colours(a["method"] for s in sections for a in s.students)
    parts = []
    by_model: dict[tuple, list[Section]] = defaultdict(list)
    for s in sections:
        by_model[(s.suite, s.model)].append(s)
    for (suite, model), secs in by_model.items():
        parts.append(f"<section class='model' id='{_slug(f'{suite}-{model}')}'>"
                     f"<h2>{_e(model)} <span class='sub'>suite {_e(suite)}</span></h2>"
                     f"{_model_meta(secs)}{_plot_quality(secs, colours)}"
                     + "".join(_section(s, colours, results) for s in secs) + "</section>")
    body = "\n".join(parts) if parts else (
        "<p class='empty'>No runs yet: try <code>make bench METHOD=sdakd MODEL=gcfsr</code>.</p>")
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return _PAGE.format(generated=generated, notes=_notes(runs), toc=_toc(sections), body=body,
                        css=_CSS, js=_JS)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _colours(methods: Iterable[str]) -> dict[str, str]:
    names = sorted(set(methods), key=lambda m: (m != BASELINE, m))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(names)}


def _toc(sections: list[Section]) -> str:
    if not sections:
        return ""
    items = []
    for s in sections:
        seeds = sorted({seed for a in s.students for seed in a["seeds"]})
        failed = sum(a["failed"] for a in s.students)
        extra = f", <span class='bad'>{failed} failed</span>" if failed else ""
        items.append(f"<li><a href='#{s.anchor}'>{_e(s.model)} · student r={s.ratio:g}</a> "
                     f"<span class='sub'>suite {_e(s.suite)}: {len(s.students)} methods, "
                     f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}{extra}</span></li>")
    return f"<nav><h2>Contents</h2><ul>{''.join(items)}</ul></nav>"


def _notes(runs: list[dict[str, Any]]) -> str:
    items = []
    if any(r.get("data") == "builtin" for r in runs):
        items.append("Runs on <code>builtin</code> data (photos shipped inside installed wheels) are "
                     "<b>not comparable with the papers' numbers</b>: no standard SR test set is "
                     "available offline.")
    percep = sorted({str(r["perceptual_network"]) for r in runs if r.get("perceptual_network")})
    if percep:
        items.append("Perceptual loss network: " + "; ".join(_e(p) for p in percep) + ".")
    patches = sorted({(r.get("metrics") or {}).get("fid_patches") for r in runs} - {None})
    if patches:
        items.append("FID/KID are patch-based over " + ", ".join(str(int(p)) for p in patches)
                     + " HR-sized patches of the evaluation set per run; compare them only at equal "
                     "patch counts (KID is less biased at such counts).")
    devices = sorted({_device(r) for r in runs} - {""})
    if devices:
        items.append("Latency measured on: " + "; ".join(_e(d) for d in devices) + ".")
    shas = sorted({str(r.get("git_sha") or "?") for r in runs})
    if shas:
        items.append("Code: " + ", ".join(f"<code>{_e(_short_sha(s))}</code>" for s in shas) + ".")
    items.append("Students are the final EMA weights of each run; no checkpoint is picked by its "
                 "evaluation score. Values are the mean ± sample standard deviation over seeds "
                 "(<i>n</i> seeds); ★ marks the best student per column (teacher and bicubic are "
                 "references, never marked); a dash is a value that was not measured.")
    items.append(f"Paired comparison against <code>{BASELINE}</code>: per shared seed the difference "
                 "method − scratch; <i>significant</i> when the 95% Student-t interval of the mean "
                 "difference excludes zero, <i>within noise</i> otherwise, <i>unknown</i> with one "
                 "shared seed.")
    return "".join(f"<li>{i}</li>" for i in items)


def _short_sha(sha: str) -> str:
    return sha[:12] + ("-dirty" if sha.endswith("-dirty") else "")


def _device(r: dict[str, Any]) -> str:
    d = r.get("device")
    if not isinstance(d, dict):
        return str(d or "")
    if d.get("name"):  # an accelerator's model name
        return str(d["name"])
    cores = f", {d['cpu_count']} cores" if d.get("cpu_count") else ""
    threads = f", {d['torch_threads']} torch threads" if d.get("torch_threads") else ""
    return f"{d.get('type', '?')} ({d.get('cpu') or '?'}{cores}{threads})"


def _model_meta(secs: list[Section]) -> str:
    runs = [r for s in secs for r in s.runs]
    first = runs[0] if runs else {}
    facts = []
    if first.get("teacher"):
        src = f" ({_e(first['teacher_source'])})" if first.get("teacher_source") else ""
        facts.append(f"teacher <code>{_e(first['teacher'])}</code>{src}")
    data = sorted({str(r.get("data")) for r in runs if r.get("data")})
    if data:
        facts.append("training data " + ", ".join(f"<code>{_e(d)}</code>" for d in data))
    return f"<p class='meta'>{'; '.join(facts)}</p>" if facts else ""


def _decimals(value: float, col: str) -> int:
    if col in DIGITS:
        return DIGITS[col]
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def _fmt(value: float | None, col: str, std: float | None = None) -> tuple[str, str]:
    """(value, '± spread') as shown; the spread gets the value's decimals."""
    if value is None:
        return DASH, ""
    d = _decimals(value, col)
    text = f"{value:.{d}f}" + ("×" if col == "speedup" else "")
    return text, ("" if std is None else f"± {std:.{d}f}")


def _missing_reasons(runs: list[dict[str, Any]], method: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in runs:
        if r.get("method") != method:
            continue
        for k, why in (r.get("missing_metrics") or {}).items():
            out.setdefault(k, str(why))
    if "fid" in out:
        out.setdefault("kid", out["fid"])  # one network computes both
    return out


def _section(s: Section, colours: dict[str, str], results: Path) -> str:
    best = best_per_column(s.students)
    head = "".join(
        f"<th data-col='{i + 1}' data-dir='{'desc' if DIRECTION[c] else 'asc'}' title='{_e(HINTS[c])}'>"
        f"{LABELS[c]}<span class='dir'>{'↑' if DIRECTION[c] else '↓'}</span></th>"
        for i, c in enumerate(COLUMNS))
    body = []
    for a in s.aggs:
        method = str(a["method"])
        is_ref = method in REFERENCES
        ref_runs = [s.refs[method]] if is_ref and method in s.refs else []
        missing = _missing_reasons(ref_runs or s.runs, method)
        label = _e(method)
        if not is_ref:
            label = f"<span class='swatch' style='background:{colours.get(method, '#999')}'></span>{label}"
            if a["n"]:
                label += f" <span class='n' title='seeds {_e(' '.join(map(str, a['seeds'])))}'>n={a['n']}</span>"
            if a["failed"] and a["n"]:
                label += f" <span class='badge' title='{_e(a['errors'])}'>{a['failed']} failed</span>"
            if a.get("weights"):
                label += f"<div class='weights'>{_e(a['weights'])}</div>"
        else:
            label += " <span class='n'>reference</span>"
        if a.get("floor"):
            label += (f" <span class='badge floor' title='mean {FLOOR_METRIC} does not beat bicubic on this "
                      f"evaluation set: not ranked'>{_e(a['floor'])}</span>")
        if not is_ref and not a["n"]:
            cls = "failed"
            cells = [f"<td colspan='{len(COLUMNS)}' class='err'><b>failed</b> "
                     f"({a['failed']} run{'s' if a['failed'] != 1 else ''}): {_e(a['errors'])}</td>"]
        else:
            cls = "ref" if is_ref else ""
            cells = []
            for c in COLUMNS:
                val, std = a[c], a[c + "_std"]
                marked = c in best and method in best[c]
                attrs = "" if val is None else f" data-v='{val:.10g}'"
                if marked:
                    attrs += " class='best'"
                if val is None and c in missing:
                    attrs += f" title='not measured: {_e(missing[c])}'"
                text, spread = _fmt(val, c, std)
                if marked:
                    text += "<span class='star' title='best student'>★</span>"
                if spread and c not in ("params_m", "gmacs"):  # sizes do not vary by seed
                    text += f"<span class='sd'>{spread}</span>"
                cells.append(f"<td{attrs}>{text}</td>")
        body.append(f"<tr class='{cls}' data-method='{_e(method)}'><th scope='row'>{label}</th>"
                    + "".join(cells) + "</tr>")
    for role in REFERENCES:
        if role not in s.refs:
            body.append(f"<tr class='ref missing' data-method='{role}'><th scope='row'>{role} "
                        f"<span class='n'>reference</span></th><td colspan='{len(COLUMNS)}' class='note'>"
                        "not evaluated yet (a run computes it after its training finishes)</td></tr>")
    table = (f"<div class='tablewrap'><table class='board sortable' data-suite='{_e(s.suite)}' "
             f"data-model='{_e(s.model)}' data-ratio='{s.ratio:g}'><thead><tr>"
             f"<th data-col='0' data-dir='asc'>Method</th>{head}</tr>"
             f"</thead><tbody>{''.join(body)}</tbody></table></div>")
    notes = []
    for a in s.students:
        if a["failed"] and a["n"]:
            notes.append(f"<p class='err'><b>{_e(a['method'])}</b>: {a['failed']} failed run(s), "
                         f"not in the mean: {_e(a['errors'])}</p>")
    if len(s.evalsets) > 1:
        notes.append("<p class='err'>Runs of this table were evaluated on different evaluation sets ("
                     + ", ".join(f"<code>{_e(e)}</code>" for e in s.evalsets)
                     + f"); teacher and bicubic are on <code>{_e(s.evalset)}</code>.</p>")
    evalinfo = ""
    images = sorted({(r.get("eval") or {}).get("images") for r in s.runs} - {None})
    if s.evalset:
        evalinfo = (f" · evaluation set <code>{_e(s.evalset)}</code>"
                    + (f" ({', '.join(map(str, images))} images)" if images else ""))
    students = sorted({str(r["student"]) for r in s.runs if r.get("student")})
    who = f" · student <code>{_e(', '.join(students))}</code>" if students else ""
    return (f"<section class='group' id='{s.anchor}'>"
            f"<h3>{_e(s.model)} · student r={s.ratio:g}</h3>"
            f"<p class='meta'>suite <code>{_e(s.suite)}</code>{who}{evalinfo}</p>"
            f"{table}<p class='legend'>mean <span class='sd'>± s.d.</span> over seeds · ★ best student "
            f"per column · ↑/↓ higher/lower is better · click a header to sort</p>"
            f"{''.join(notes)}{_paired_table(s)}"
            f"{_plot_curves(s.runs, colours)}{_grid(s, results)}</section>")


def _paired_table(s: Section) -> str:
    rows = []
    for a in s.students:
        if a["method"] == BASELINE or not any(a.get(c + "_delta") is not None for c in QUALITY):
            continue
        cells = []
        for c in QUALITY:
            d = a.get(c + "_delta")
            if d is None:
                cells.append(f"<td>{DASH}</td>")
                continue
            noise = a.get(c + "_noise") or ""
            better = (d > 0) == DIRECTION[c]
            cls = ("better" if better else "worse") if noise == SIGNIFICANT else "noise"
            ci = a.get(c + "_ci")
            ci_txt = f" ± {ci:.{DIGITS[c]}f}" if ci is not None else ""
            cells.append(f"<td class='{cls}' data-verdict='{_e(noise)}'>{d:+.{DIGITS[c]}f}"
                         f"<span class='sd'>{ci_txt}</span><span class='nz'>{_e(noise)}</span></td>")
        n = max(a.get(c + "_paired_n") or 0 for c in QUALITY)
        rows.append(f"<tr data-method='{_e(a['method'])}'><th scope='row'>{_e(a['method'])}</th>"
                    f"<td>{n}</td>{''.join(cells)}</tr>")
    if not rows:
        if any(a["method"] == BASELINE and a["n"] for a in s.students):
            return ""
        return (f"<p class='note'>No paired comparison: no finished <code>{BASELINE}</code> run in "
                "this table.</p>")
    head = "".join(f"<th title='{_e(HINTS[c])}'>Δ {LABELS[c]}<span class='dir'>"
                   f"{'↑' if DIRECTION[c] else '↓'}</span></th>" for c in QUALITY)
    return (f"<h4>Against {BASELINE}, paired by seed</h4>"
            f"<div class='tablewrap'><table class='paired'><thead><tr><th>Method</th>"
            f"<th title='seeds both runs finished'>shared seeds</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            f"<p class='legend'>mean difference method − {BASELINE} <span class='sd'>± 95% interval "
            f"half-width</span>; green/red: significantly better/worse, grey: within noise or unknown</p>")


# -- plots ----------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
          "grid.alpha": 0.3, "axes.titlesize": 10, "legend.fontsize": 8, "legend.frameon": False}


_DPI = 144  # 1.5 device pixels per CSS pixel: sharp on high-density screens too


def _figure_img(fig: Any, alt: str) -> str:
    """The figure as an embedded PNG shown at its size in inches (96 CSS px per inch)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    _pyplot().close(fig)
    png = buf.getvalue()
    width = int.from_bytes(png[16:20], "big")  # IHDR: the tight bbox decides the final size
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    return f"<img class='plot' alt='{_e(alt)}' width='{round(width * 96 / _DPI)}' src='{uri}'>"


def _plot_quality(secs: list[Section], colours: dict[str, str]) -> str:
    """PSNR and LPIPS against GMACs over every ratio of a model: a method's points are joined
    across ratios, the teacher is a square, bicubic (no network) a dashed level."""
    cols = [c for c in ("psnr", "lpips") if any(a[c] is not None for s in secs for a in s.aggs)]
    points = [(s, a) for s in secs for a in s.students if a["gmacs"] and a["n"]]
    if not cols or not points:
        return ""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.0), squeeze=False)
        methods = sorted({a["method"] for _, a in points}, key=lambda m: (m != BASELINE, m))
        for ax, col in zip(axes[0], cols):
            for k, m in enumerate(methods):
                pts = sorted(((a["gmacs"], a[col], a[col + "_std"] or 0.0) for _, a in points
                              if a["method"] == m and a[col] is not None))
                if not pts:
                    continue
                # same-ratio students share their GMACs: a small multiplicative dodge keeps them legible
                dodge = 1 + 0.025 * (k - (len(methods) - 1) / 2)
                ax.errorbar([p[0] * dodge for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                            fmt="o-", ms=5, lw=1, capsize=3, color=colours.get(m), label=m)
            teacher = [s.aggs for s in secs]
            t = next((a for aggs in teacher for a in aggs if a["method"] == "teacher"
                      and a["gmacs"] and a[col] is not None), None)
            if t:
                ax.plot([t["gmacs"]], [t[col]], "s", color="black", ms=7, label="teacher")
            b = next((a for aggs in teacher for a in aggs if a["method"] == "bicubic" and a[col] is not None),
                     None)
            if b:
                ax.axhline(b[col], color="grey", ls="--", lw=1, label="bicubic")
            ax.set_xscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2×10¹
            ax.xaxis.set_major_formatter(plain)
            lo, hi = ax.get_xlim()
            # within about a decade the decade ticks alone are too few; over several they suffice
            ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0) if hi / lo < 30 else ()))
            ax.xaxis.set_minor_formatter(plain if hi / lo < 30 else NullFormatter())
            ax.set_xlabel("GMACs per image (log scale)")
            ax.set_ylabel(f"{LABELS[col]} {'↑' if DIRECTION[col] else '↓'}")
            ax.set_title(f"{LABELS[col]} vs compute")
        if axes[0][-1].get_legend_handles_labels()[0]:  # a panel with no validation points has none
            axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        img = _figure_img(fig, f"{secs[0].model}: quality vs GMACs")
    model = secs[0].model
    return (f"<figure>{img}"
            f"<figcaption>Quality against compute for every student ratio of {_e(model)} "
            "(mean ± s.d. over seeds; students of one ratio are offset slightly along x).</figcaption></figure>")


def _numeric_sum(row: dict[str, Any], prefix: str) -> float | None:
    vals = [v for k, v in row.items() if k.startswith(prefix) and isinstance(v, (int, float))]
    return sum(vals) if vals else None


def _value(row: dict[str, Any], panel: str) -> float | None:
    return _kd_pull(row) if panel == "gradnorm/" else _numeric_sum(row, panel)


#: the base recipe's generator terms; every other term of a method is its distillation
BASE_TERMS = ("l1", "percep", "gan")


def _kd_pull(row: dict[str, Any]) -> float | None:
    """Sum of the distillation terms' gradient norms on the student over the base recipe's: how
    hard a method's distillation pulls against the recipe (logged once per log window)."""
    norms = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("gradnorm/")}
    base = sum(v for k, v in norms.items() if k in BASE_TERMS)
    kd = sum(v for k, v in norms.items() if k not in BASE_TERMS)
    return kd / base if base > 0 and any(k not in BASE_TERMS for k in norms) else None


def _plot_curves(runs: list[dict[str, Any]], colours: dict[str, str]) -> str:
    """Generator and discriminator losses (sums of their weighted terms), the distillation's
    gradient pull against the base recipe and, when the suite validates, validation PSNR of the
    EMA on images apart from the evaluation set."""
    with_hist = [r for r in runs if r.get("history")]
    if not with_hist:
        return ""
    has_val = any(v.get("psnr") is not None for r in with_hist for v in r.get("val_history") or [])
    panels = [("g/", "generator loss (sum of weighted terms)"), ("d/", "discriminator loss"),
              ("gradnorm/", "distillation pull: |grad KD| / |grad base|")]
    panels = [p for p in panels if any(_value(h, p[0]) is not None for r in with_hist for h in r["history"])]
    n = len(panels) + has_val
    if not n:
        return ""
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, n, figsize=(3.9 * n, 2.6), squeeze=False)
        seen: set[str] = set()
        for r in sorted(with_hist, key=lambda r: (str(r.get("method")), str(r.get("seed")))):
            m = str(r.get("method"))
            label = None if m in seen else m
            seen.add(m)
            style = {"color": colours.get(m), "lw": 1.2, "ls": "--" if r.get("status") != "done" else "-"}
            for ax, (prefix, _) in zip(axes[0], panels):
                pts = [(h["step"], _value(h, prefix)) for h in r["history"]]
                pts = [p for p in pts if p[1] is not None]
                if pts:
                    ax.plot(*zip(*pts), label=label, **style)
            if has_val:
                val = [v for v in r.get("val_history") or [] if v.get("psnr") is not None]
                if val:
                    axes[0][-1].plot([v["step"] for v in val], [v["psnr"] for v in val], marker=".",
                                     **style)
        for ax, (prefix, title) in zip(axes[0], panels):
            ax.set_title(title)
            values = [v for r in with_hist for h in r["history"] if (v := _value(h, prefix)) is not None]
            if values and min(values) > 0 and max(values) > 20 * min(values):
                ax.set_yscale("log")  # methods whose loss scales differ by orders of magnitude
        if has_val:
            axes[0][-1].set_title("validation PSNR (EMA, held-out images)")
        for ax in axes[0]:
            ax.set_xlabel("step")
        if axes[0][-1].get_legend_handles_labels()[0]:  # a panel with no validation points has none
            axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        img = _figure_img(fig, "training curves")
    failed = any(r.get("status") != "done" for r in with_hist)
    return (f"<figure>{img}<figcaption>Training curves, "
            "one line per seed" + ("; dashed: failed runs" if failed else "") + ".</figcaption></figure>")


# -- image grid -----------------------------------------------------------------------------
def _grid(s: Section, results: Path, crop: int = 96) -> str:
    """The same centre crop of each kept evaluation image from every source, side by side. Each
    method shows its lowest finished seed. LR shows the matching LR region (nearest-upscaled by
    the browser, so its pixels stay visible)."""
    done: dict[str, dict[str, Any]] = {}
    for r in sorted(s.runs, key=lambda r: _num(r.get("seed"))):
        if r.get("status") == store.STATUS_DONE and r.get("run_dir"):
            done.setdefault(str(r["method"]), r)
    ref_dir = None
    if s.refs:
        some = next(iter(s.refs.values()))
        if some.get("samples_dir"):
            ref_dir = results / some["samples_dir"]
    columns: list[tuple[str, Path]] = []
    if ref_dir is not None:
        columns += [("LR", ref_dir / "lr"), ("bicubic", ref_dir / "bicubic"), ("teacher", ref_dir / "teacher")]
    order = sorted(done, key=lambda m: (m != BASELINE, m))
    columns += [(m, results / done[m]["run_dir"] / "samples") for m in order]
    if ref_dir is not None:
        columns.append(("HR", ref_dir / "hr"))
    names = sorted({p.stem for _, folder in columns if folder.is_dir() for p in folder.glob("*.png")})
    if not names or not done:
        return ""
    rows = []
    side = crop
    for name in names:
        hr_path = ref_dir / "hr" / f"{name}.png" if ref_dir is not None else None
        hr_side = min(load_png(hr_path).shape[:2]) if hr_path is not None and hr_path.is_file() else None
        cells = []
        for label, folder in columns:
            path = folder / f"{name}.png"
            if not path.is_file():
                cells.append(f"<td class='none'>{DASH}</td>")
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
            cells.append(f"<td><img class='crop' alt='{_e(label)}: {_e(name)}' title='{_e(label)}: "
                         f"{_e(name)}' src='{data_uri(arr)}'></td>")
        rows.append(f"<tr><th scope='row'>{_e(name)}</th>{''.join(cells)}</tr>")
    head = "".join(
        f"<th class='refcol'>{_e(label)}</th>" if label not in done else
        f"<th>{_e(label)} <span class='n'>seed {_e(done[label].get('seed'))}</span></th>"
        for label, _ in columns)
    return (f"<h4>Same crops from every method</h4><p class='legend'>centre {side}×{side} HR pixels of "
            "each kept evaluation image; each method's lowest finished seed; LR shows the same region "
            "with its pixels enlarged</p>"
            f"<div class='gridwrap'><table class='grid'><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


_CSS = """
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--head:#f5f6f8;--accent:#2563eb;--good:#e7f6ec;--goodfg:#146c2e;--bad:#b42318}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:var(--fg);background:#fff}
header{background:#111827;color:#f9fafb;padding:1.4em 2em 1.1em}
header h1{margin:0;font-size:1.6em;font-weight:650;letter-spacing:.01em} header p{margin:.2em 0 0;color:#cbd5e1}
main{max-width:1400px;margin:0 auto;padding:1em 2em 3em}
h2{font-size:1.35em;margin:1.8em 0 .4em;padding-bottom:.25em;border-bottom:2px solid var(--line)}
h3{font-size:1.12em;margin:1.6em 0 .2em} h4{font-size:1em;margin:1.3em 0 .3em;color:#344054}
.sub{color:var(--muted);font-weight:400;font-size:.8em} .meta{color:var(--muted);margin:.1em 0 .6em}
code{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:#f2f4f7;padding:.05em .3em;border-radius:3px}
ul.notes{color:#344054;background:#f9fafb;border:1px solid var(--line);border-radius:6px;padding:.7em 1em .7em 2.2em;margin:1em 0}
nav ul{columns:2;padding-left:1.2em} nav h2{margin-top:1em} a{color:var(--accent);text-decoration:none} a:hover{text-decoration:underline}
.tablewrap,.gridwrap{overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0;font-variant-numeric:tabular-nums}
th,td{padding:.38em .7em;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
thead th{background:var(--head);font-weight:600;color:#344054;border-bottom:2px solid #d0d5dd;vertical-align:bottom}
table.board thead th{white-space:normal;min-width:4.5em;line-height:1.25}
table.sortable thead th{cursor:pointer;user-select:none}
table.sortable thead th:hover{background:#eceef2}
table.sortable thead th:after{content:'⇅';color:#c0c5cf;margin-left:.3em;font-size:.85em}
table.sortable thead th.asc:after{content:'▲';color:var(--accent)} table.sortable thead th.desc:after{content:'▼';color:var(--accent)}
.dir{color:var(--muted);font-weight:400;margin-left:.2em}
tbody th{text-align:left;font-weight:600}
tbody tr:hover{background:#fafbfc}
tr.ref th,tr.ref td{color:#475467;background:#f8f9fb;font-style:italic}
tr.ref th{font-weight:500}
td.best{font-weight:700;background:var(--good);color:var(--goodfg)}
.sd{color:var(--muted);font-size:.86em;font-weight:400}
table.board{font-size:13px} table.board td{vertical-align:top;padding:.35em .6em}
table.board .sd{display:block;font-size:11px;line-height:1.15}
.star{color:#d97706;margin-left:.2em}
td.err,p.err{color:var(--bad);text-align:left;white-space:normal} tr.failed th{color:var(--bad)}
td.note,p.note{color:var(--muted);text-align:left;font-style:italic}
.n{color:var(--muted);font-size:11px;font-weight:400;margin-left:.3em;font-style:normal}
.badge{background:#fee4e2;color:var(--bad);border-radius:8px;padding:0 .45em;font-size:11px;font-weight:600}
.weights{font-weight:400;font-size:11px;color:var(--muted,#667);max-width:22em;white-space:normal}
.swatch{display:inline-block;width:.7em;height:.7em;border-radius:2px;margin-right:.45em;vertical-align:baseline}
.bad{color:var(--bad)}
.legend{color:var(--muted);font-size:12px;margin:.1em 0 .8em}
table.paired td{min-width:7em} .nz{display:block;font-size:10.5px;color:var(--muted);font-style:normal}
td.better{color:var(--goodfg);background:var(--good)} td.worse{color:var(--bad);background:#fef3f2} td.noise{color:#475467}
figure{margin:1em 0} figcaption{color:var(--muted);font-size:12px}
img.plot{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px;padding:4px;background:#fff}
table.grid th,table.grid td{text-align:center;border:none;padding:.25em}
table.grid thead th{background:none;border:none;font-weight:600} table.grid th.refcol{color:var(--muted);font-style:italic}
table.grid tbody th{writing-mode:horizontal-tb;font-weight:500;color:var(--muted);font-size:12px;max-width:9em;overflow:hidden;text-overflow:ellipsis}
img.crop{width:128px;height:128px;image-rendering:pixelated;display:block;border-radius:3px;box-shadow:0 0 0 1px var(--line)}
td.none{color:var(--muted);width:128px}
section.group{margin-bottom:2.2em}
.empty{color:var(--muted);font-size:1.1em}
footer{color:var(--muted);font-size:12px;text-align:center;padding:2em}
"""

_JS = """
(function () {
  function key(row, col) {
    var cell = row.children[col];
    if (!cell) { return null; }
    if (col === 0) { return cell.textContent.trim().toLowerCase(); }
    return cell.dataset.v === undefined ? null : parseFloat(cell.dataset.v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th) {
      th.setAttribute('aria-sort', 'none');
      th.addEventListener('click', function () {
        var col = parseInt(th.dataset.col, 10);
        // first click: best first (the column's direction); next clicks flip
        var asc = th.classList.contains('asc') ? false : th.classList.contains('desc') ? true : th.dataset.dir === 'asc';
        heads.forEach(function (h) { h.classList.remove('asc', 'desc'); h.setAttribute('aria-sort', 'none'); });
        th.classList.add(asc ? 'asc' : 'desc');
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ka = key(a, col), kb = key(b, col);
          if (ka === null || kb === null) { return (ka === null) - (kb === null); }  // no value: last
          if (ka < kb) { return asc ? -1 : 1; }
          if (ka > kb) { return asc ? 1 : -1; }
          return 0;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>gankd leaderboard</title><style>{css}</style></head>
<body><header><h1>gankd leaderboard</h1><p>Knowledge distillation of super-resolution GANs · generated {generated}</p></header>
<main><ul class="notes">{notes}</ul>
{toc}
{body}
</main><footer>Static report written by <code>gankd report</code>; every figure and image is embedded.</footer>
<script>{js}</script></body></html>
"""
