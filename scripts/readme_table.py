"""Print one leaderboard table as the README's markdown, so its numbers come from a committed CSV.

    python scripts/readme_table.py reports/sample/leaderboard.csv realesrgan 0.25 [depth]

Columns: method, seeds, s/step, training minutes, PSNR / SSIM / LPIPS / FID (mean +- s.d. over
seeds where n > 1), the paired LPIPS difference to ``scratch`` (with its 95 % interval, or
"n < 2"), and the sanity floor.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def _f(row: dict[str, str], key: str, digits: int) -> str:
    v = row.get(key, "")
    if not v:
        return "–"
    s = f"{float(v):.{digits}f}"
    sd = row.get(f"{key}_std", "")
    if sd and int(row.get("n") or 0) > 1:
        s += f" ± {float(sd):.{digits}f}"
    return s


def table(csv_path: Path, model: str, ratio: float, depth: str = "") -> str:
    with csv_path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh)
                if r["model"] == model and float(r["ratio"] or 0) == ratio and r["depth"] == depth]
    cols = ("method", "n", "s/step", "train (min)", "PSNR", "SSIM", "LPIPS", "FID",
            "paired ΔLPIPS vs scratch", "floor")
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        name = f"`{r['method']}`" if r["kind"] == "student" else r["method"]
        if r.get("not_applicable"):
            lines.append(f"| {name} | – | – | – | not applicable: {r['not_applicable']} | | | | | |")
            continue
        delta = "–"
        if r.get("lpips_delta"):
            delta = f"{float(r['lpips_delta']):+.4f}"
            if r.get("lpips_ci"):
                delta += f" ± {float(r['lpips_ci']):.4f}"
            if r.get("lpips_noise"):
                delta += f" ({r['lpips_noise']})"
        lines.append(" | ".join([
            f"| {name}", r.get("n") or "–", _f(r, "s_step", 2), _f(r, "train_min", 1), _f(r, "psnr", 2),
            _f(r, "ssim", 3), _f(r, "lpips", 3), _f(r, "fid", 0), delta, r.get("floor") or ""]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (3, 4):
        sys.exit(__doc__)
    print(table(Path(args[0]), args[1], float(args[2]), args[3] if len(args) == 4 else ""))
