"""Does a method that wins in SR also win where its paper made its claims, and the reverse?

    python scripts/rank_agreement.py reports/sample/leaderboard.csv [--ratio 0.25] [--suite cpu]

Per model family, each method's paired difference to ``scratch`` on the family's headline metric
(SR and translation: LPIPS, against the ground truth and against the teacher's outputs;
unconditional: FID against the teacher's samples; lower is better in all three), its 95 % interval,
and its rank among the methods. Then, per method with a paper task (``Method.paper_task``): its
verdict against ``scratch`` in its own setting (better / worse / noise: the interval holds zero
or too few seeds) beside its verdict in SR (for a method proposed in SR: in the other settings),
and whether they agree; and Kendall's tau between the rankings of every
pair of families over the methods both rank. Missing rows (a family not yet swept, a method not
applicable) are said, not guessed.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from pathlib import Path


def verdict(row: dict[str, str], metric: str) -> str:
    """better / worse than scratch where the leaderboard calls the difference significant, else
    its own word for it (within noise, unknown with one seed); "–" without a paired difference."""
    from gankd.results.leaderboard import SIGNIFICANT

    delta, noise = row.get(f"{metric}_delta", ""), row.get(f"{metric}_noise", "")
    if not delta:
        return "–"
    if noise != SIGNIFICANT:
        return noise or "unknown"
    return "better" if float(delta) < 0 else "worse"


def kendall_tau(a: list[str], b: list[str]) -> float | None:
    """Kendall's tau-a of two rankings (best first) over the items both hold; None under 2."""
    common = [m for m in a if m in b]
    if len(common) < 2:
        return None
    pa, pb = ({m: i for i, m in enumerate(r)} for r in (a, b))
    pairs = list(itertools.combinations(common, 2))
    concordant = sum(1 for x, y in pairs if (pa[x] - pa[y]) * (pb[x] - pb[y]) > 0)
    return (2 * concordant - len(pairs)) / len(pairs)


def tables(csv_path: Path, suite: str, ratio: float) -> str:
    from gankd.bench.suite import load_suite
    from gankd.methods import METHODS
    from gankd.tasks import task

    setups = load_suite(suite).models
    with csv_path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["suite"] == suite and r["kind"] == "student"
                and r["ratio"] and float(r["ratio"]) == ratio and not r["depth"] and not r["not_applicable"]]
    task_of = {m: setups[m].task for m in setups}
    by_model: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        if r["model"] in task_of:
            by_model.setdefault(r["model"], {})[r["method"]] = r
    ranking: dict[str, list[str]] = {}
    out = ["| model | task | metric | method | n | paired Δ vs scratch | verdict | rank |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model in sorted(by_model):
        metric = task(task_of[model]).primary
        scored = [(m, r) for m, r in by_model[model].items() if m != "scratch" and r.get(f"{metric}_delta")]
        scored.sort(key=lambda mr: float(mr[1][f"{metric}_delta"]))
        ranking[model] = [m for m, _ in scored]
        for rank, (m, r) in enumerate(scored, 1):
            ci = r.get(f"{metric}_ci", "")
            delta = f"{float(r[f'{metric}_delta']):+.4g}" + (f" ± {float(ci):.2g}" if ci else "")
            out.append(f"| {model} | {task_of[model]} | {metric} | `{m}` | {r['n']} | {delta} | "
                       f"{verdict(r, metric)} | {rank} |")
    missing = sorted(m for m in task_of if not ranking.get(m))
    if missing:
        out.append(f"\nNo paired differences yet for: {', '.join(missing)}.")
    out += ["", "| method | paper's task | there | elsewhere | agree |", "| --- | --- | --- | --- | --- |"]
    for name in sorted({m for r in by_model.values() for m in r} - {"scratch"}):
        own = METHODS.get(name).paper_task if name in METHODS else None
        if own is None:
            continue
        there = [m for m in ranking if task_of[m] == own]
        # a method proposed in SR is compared with the other settings; any other with SR
        elsewhere = [m for m in ranking if (task_of[m] != own if own == "sr" else task_of[m] == "sr")]
        cells, plain = [], []
        for models in (there, elsewhere):
            got = [(m, verdict(by_model[m][name], task(task_of[m]).primary))
                   for m in models if name in by_model[m]]
            cells.append("; ".join(f"{m}: {v}" for m, v in got) or "not run")
            plain.append([v for _, v in got])
        both = plain[0] + plain[1]
        if not plain[0] or not plain[1]:
            agree = "– (not run)"
        elif any(v not in ("better", "worse") for v in both):
            agree = "– (not significant)"
        else:
            agree = "yes" if len(set(both)) == 1 else "no"
        out.append(f"| `{name}` | {own} | {cells[0]} | {cells[1]} | {agree} |")
    out += ["", "| families | Kendall's tau | methods |", "| --- | --- | --- |"]
    for a, b in itertools.combinations(sorted(ranking), 2):
        tau = kendall_tau(ranking[a], ranking[b])
        common = [m for m in ranking[a] if m in ranking[b]]
        out.append(f"| {a} / {b} | {'–' if tau is None else f'{tau:+.2f}'} | {len(common)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--suite", default="cpu")
    ap.add_argument("--ratio", type=float, default=0.25)
    args = ap.parse_args(argv)
    if not args.csv.is_file():
        print(f"no leaderboard CSV at {args.csv}", file=sys.stderr)
        return 2
    print(tables(args.csv, args.suite, args.ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
