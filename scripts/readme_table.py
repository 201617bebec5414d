"""Print one leaderboard table as markdown (the tables of docs/sample-pilot.md and
docs/own-settings.md), so its numbers come from a committed CSV.

    python scripts/readme_table.py reports/sample/leaderboard.csv realesrgan 0.25 [depth]

Columns: method, seeds, s/step, training minutes, then the family's task's metrics (mean +- s.d.
over seeds where n > 1), the paired difference of the task's headline to ``scratch`` (with its
95 % interval, or "n < 2"), and the sanity floor. The task is the family's in the cpu suite
(``ModelSetup.task``, as scripts/rank_agreement.py reads it): super-resolution and translation
show PSNR / SSIM / LPIPS / FID against the HR or the teacher's output, headline LPIPS;
unconditional generation shows the set distances to the teacher's samples (KID, FID, precision,
recall), headline KID.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

#: per task: (column title, CSV key, digits) of its metrics, and the headline's CSV key
_COLUMNS = {
    "sr": ((("PSNR", "psnr", 2), ("SSIM", "ssim", 3), ("LPIPS", "lpips", 3), ("FID", "fid", 0)), "lpips"),
    "unconditional": ((("KID", "kid", 4), ("FID", "fid", 0), ("precision", "precision", 2),
                       ("recall", "recall", 2)), "kid"),
}
_COLUMNS["translation"] = _COLUMNS["sr"]


def _f(row: dict[str, str], key: str, digits: int) -> str:
    v = row.get(key, "")
    if not v:
        return "–"
    s = f"{float(v):.{digits}f}"
    sd = row.get(f"{key}_std", "")
    if sd and int(row.get("n") or 0) > 1:
        s += f" ± {float(sd):.{digits}f}"
    return s


def _delta(row: dict[str, str], key: str) -> str:
    if not row.get(f"{key}_delta"):
        return "–"
    s = f"{float(row[f'{key}_delta']):+.4f}"
    if row.get(f"{key}_ci"):
        s += f" ± {float(row[f'{key}_ci']):.4f}"
    if row.get(f"{key}_noise"):
        s += f" ({row[f'{key}_noise']})"
    return s


def task_of(model: str, suite: str = "cpu") -> str:
    from gankd.bench.suite import load_suite

    return load_suite(suite).models[model].task


def table(csv_path: Path, model: str, ratio: float, depth: str = "", task: str = "sr") -> str:
    metrics, headline = _COLUMNS[task]
    with csv_path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh)
                if r["model"] == model and float(r["ratio"] or 0) == ratio and r["depth"] == depth]
    cols = ("method", "n", "s/step", "train (min)", *(t for t, _, _ in metrics),
            f"paired Δ{headline.upper()} vs scratch", "floor")
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        name = f"`{r['method']}`" if r["kind"] == "student" else r["method"]
        if r.get("not_applicable"):
            lines.append(f"| {name} | – | – | – | not applicable: {r['not_applicable']} |"
                         + " |" * (len(cols) - 5))
            continue
        lines.append(" | ".join([
            f"| {name}", r.get("n") or "–", _f(r, "s_step", 2), _f(r, "train_min", 1),
            *(_f(r, key, digits) for _, key, digits in metrics), _delta(r, headline),
            r.get("floor") or ""]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (3, 4):
        sys.exit(__doc__)
    print(table(Path(args[0]), args[1], float(args[2]), args[3] if len(args) == 4 else "",
                task_of(args[1])))
