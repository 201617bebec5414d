"""The page's figures, as embedded PNGs: quality against compute per model, training curves and
the distillation's gradient pull per table."""

from __future__ import annotations

import base64
import io
from typing import Any

from gankd.deploy import RUNTIMES
from gankd.results.leaderboard import BASELINE
from gankd.results.record import RunRecord
from gankd.results.report.sections import Section
from gankd.results.report.views import arrow, label
from gankd.tasks import baseline_roles

STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.3, "axes.titlesize": 10, "legend.fontsize": 8, "legend.frameon": False}
DPI = 144  # 1.5 device pixels per CSS pixel: sharp on high-density screens too
#: the base recipe's generator terms; every other term of a method is its distillation
BASE_TERMS = ("l1", "percep", "gan")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(fig: Any, alt: str, caption: str) -> dict[str, Any]:
    """The figure as an embedded PNG shown at its size in inches (96 CSS px per inch)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    png = buf.getvalue()
    width = int.from_bytes(png[16:20], "big")  # IHDR: the tight bbox decides the final size
    return {"alt": alt, "caption": caption, "width": round(width * 96 / DPI),
            "src": "data:image/png;base64," + base64.b64encode(png).decode()}


#: the quality plot's x axes: compute, then each deployment runtime's measured latency
X_AXES = {"gmacs": ("GMACs", "GMACs per image"),
          **{f"lat_{rt}_ms": (f"{rt} latency", f"{rt} latency, ms") for rt in RUNTIMES}}


def quality_views(secs: list[Section], colours: dict[str, str]) -> list[dict[str, Any]]:
    """The quality plot once per x axis that has values (GMACs always; a runtime's latency where
    the runs measured it): the page shows one and switches between them."""
    views = []
    for x, (name, _) in X_AXES.items():
        fig = quality(secs, colours, x)
        if fig:
            views.append({"key": x, "name": name, "figure": fig})
    return views


def quality(secs: list[Section], colours: dict[str, str], x: str = "gmacs") -> dict[str, Any] | None:
    """PSNR and LPIPS against ``x`` (an ``X_AXES`` key) over every student of a model: a method's
    points are joined across students, the teacher is a square, bicubic (no network) a dashed
    level."""
    short, axis = X_AXES[x]
    cols = [c for c in ("psnr", "lpips") if any(a.get(c) is not None for s in secs for a in s.aggs)]
    points = [(s, a) for s in secs for a in s.students if a.get(x) and a["n"]]
    if not cols or not points:
        return None
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.0), squeeze=False)
        methods = sorted({a["method"] for _, a in points}, key=lambda m: (m != BASELINE, m))
        for ax, col in zip(axes[0], cols):
            for k, m in enumerate(methods):
                pts = sorted(((a[x], a[col], a[col + "_std"] or 0.0) for _, a in points
                              if a["method"] == m and a[col] is not None))
                if not pts:
                    continue
                # students of one shape share their cost: a small multiplicative dodge keeps them legible
                dodge = 1 + 0.025 * (k - (len(methods) - 1) / 2)
                ax.errorbar([p[0] * dodge for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                            fmt="o-", ms=5, lw=1, capsize=3, color=colours.get(m), label=m)
            every = [a for s in secs for a in s.aggs]
            t = next((a for a in every if a["method"] == "teacher" and a.get(x) and a[col] is not None),
                     None)
            if t:
                ax.plot([t[x]], [t[col]], "s", color="black", ms=7, label="teacher")
            b = next((a for a in every if a["method"] in baseline_roles() and a[col] is not None), None)
            if b:
                ax.axhline(b[col], color="grey", ls="--", lw=1, label=b["method"])
            ax.set_xscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2×10¹
            ax.xaxis.set_major_formatter(plain)
            lo, hi = ax.get_xlim()
            # within about a decade the decade ticks alone are too few; over several they suffice
            ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0) if hi / lo < 30 else ()))
            ax.xaxis.set_minor_formatter(plain if hi / lo < 30 else NullFormatter())
            ax.set_xlabel(f"{axis} (log scale)")
            ax.set_ylabel(f"{label(col)} {arrow(col)}")
            ax.set_title(f"{label(col)} vs {short}")
        if axes[0][-1].get_legend_handles_labels()[0]:
            axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        model = secs[0].model
        return figure(fig, f"{model}: quality vs {short}",
                      f"Quality against {axis} for every student of {model} (mean ± s.d. over seeds; "
                      "students of one shape are offset slightly along x).")


def _numeric_sum(row: dict[str, Any], prefix: str) -> float | None:
    vals = [v for k, v in row.items() if k.startswith(prefix) and isinstance(v, (int, float))]
    return sum(vals) if vals else None


def kd_pull(row: dict[str, Any]) -> float | None:
    """Sum of the distillation terms' gradient norms on the student over the base recipe's: how
    hard a method's distillation pulls against the recipe (logged once per log window)."""
    norms = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("gradnorm/")}
    base = sum(v for k, v in norms.items() if k in BASE_TERMS)
    kd = sum(v for k, v in norms.items() if k not in BASE_TERMS)
    return kd / base if base > 0 and any(k not in BASE_TERMS for k in norms) else None


def _value(row: dict[str, Any], panel: str) -> float | None:
    return kd_pull(row) if panel == "gradnorm/" else _numeric_sum(row, panel)


def curves(runs: list[RunRecord], colours: dict[str, str]) -> dict[str, Any] | None:
    """Generator and discriminator losses (sums of their weighted terms), the distillation's
    gradient pull against the base recipe and, when the suite validates, validation PSNR of the
    EMA on images apart from the evaluation set."""
    with_hist = [r for r in runs if r.history]
    if not with_hist:
        return None
    has_val = any(v.get("psnr") is not None for r in with_hist for v in r.val_history)
    panels = [("g/", "generator loss (sum of weighted terms)"), ("d/", "discriminator loss"),
              ("gradnorm/", "distillation pull: |grad KD| / |grad base|")]
    panels = [p for p in panels if any(_value(h, p[0]) is not None for r in with_hist for h in r.history)]
    n = len(panels) + has_val
    if not n:
        return None
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, n, figsize=(3.9 * n, 2.6), squeeze=False)
        seen: set[str] = set()
        for r in sorted(with_hist, key=lambda r: (str(r.method), str(r.seed))):
            m = str(r.method)
            name = None if m in seen else m
            seen.add(m)
            style = {"color": colours.get(m), "lw": 1.2, "ls": "-" if r.status.has_results else "--"}
            for ax, (prefix, _) in zip(axes[0], panels):
                pts = [(h["step"], _value(h, prefix)) for h in r.history]
                pts = [p for p in pts if p[1] is not None]
                if pts:
                    ax.plot(*zip(*pts), label=name, **style)
            if has_val:
                val = [v for v in r.val_history if v.get("psnr") is not None]
                if val:
                    axes[0][-1].plot([v["step"] for v in val], [v["psnr"] for v in val], marker=".", **style)
        for ax, (prefix, title) in zip(axes[0], panels):
            ax.set_title(title)
            values = [v for r in with_hist for h in r.history if (v := _value(h, prefix)) is not None]
            if values and min(values) > 0 and max(values) > 20 * min(values):
                ax.set_yscale("log")  # methods whose loss scales differ by orders of magnitude
        if has_val:
            axes[0][-1].set_title("validation PSNR (EMA, held-out images)")
        for ax in axes[0]:
            ax.set_xlabel("step")
        if axes[0][-1].get_legend_handles_labels()[0]:  # a panel with no validation points has none
            axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        failed = any(not r.status.has_results for r in with_hist)
        dashed = "; dashed: failed runs" if failed else ""
        return figure(fig, "training curves", f"Training curves, one line per seed{dashed}.")
