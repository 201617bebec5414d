"""How far the smoke suite's metrics move across the code paths other machines take: the
measurement behind every tolerance of ``gankd regress`` (gankd/bench/regress.py explains why
machines differ).

Runs the smoke suite once per variant, each in its own process:

- ``default``       this machine as it is (its ISA, all cores);
- ``1 thread``      OMP_NUM_THREADS=1: reductions split differently;
- ``avx2``          ATen, oneDNN and MKL limited to AVX2 (a machine without AVX-512, e.g. AMD EPYC);
- ``sse4``          the same limited to SSE4 (an old or virtualised CPU);
- ``cold cache``    an empty $GANKD_CACHE (pools, evaluation sets, cached teachers built afresh;
                    converted weights linked, they are fixed files); ``gankd regress`` builds its
                    runs' caches afresh anyway (regress.hermetic), so this now repeats ``default``;
- ``reversed``      the suite's jobs in reverse order (caches filled in another order);
- ``loaded``        another process keeping both cores busy meanwhile

and writes, per run and metric, the largest difference between any two variants to
``results/baselines/smoke.spread.json``; ``gankd regress --update`` then sets each tolerance to
``SPREAD_MULTIPLE`` x that spread (never below the metric's floor). With ``--check`` it also
shows that a real change is still caught: the smoke suite with the ``mse`` weight raised by
1 % and with DCD's teacher taps in reverse order must each fail against the committed baseline.

    python benchmarks/regress_spread.py [--variants default,avx2] [--merge] [--check]
    python benchmarks/regress_spread.py --retolerance   # baseline tolerances from the spread file
    python benchmarks/regress_spread.py --merge --forget cyclegan   # after changing one family on purpose
    python benchmarks/regress_spread.py --merge --forget realesrgan,gcfsr,dcgan,cyclegan --carry
                                                                    # after changing every family's numbers

``--merge`` adds this machine's variants to the file's earlier ones (named "<CPU family>: <variant>",
e.g. "AMD AVX512: default"; the family from gankd.hardware.cpu_family): emulating AVX2 on an AVX-512
Intel CPU did not reproduce an AMD EPYC's last bits (MKL and oneDNN take vendor-specific paths), so
each CPU family a user may have is measured on itself. The file's ``families`` lists each family's
variants, its as-is run first; ``--retolerance`` gives each family its own values and tolerances in
the baseline (gankd/bench/regress.py). ``--forget`` drops the named families' runs from the other
machines' variants: after a change to one family, its values there are stale, while every other
family's still hold. ``--carry`` keeps, beside, the spreads the file had measured across every
machine (``carried``, with when and on which machines) as a floor of the new ones: after a change
that moves every value (a new initialisation rule), the machines not at hand cannot be measured
again, but how far their kernels carry a run from this machine's is a property of the code
paths, not of the seeds, so their last measured distance stays the allowance until they are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "sse4": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
             "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "cold cache": {},
    "reversed": {},
    "loaded": {},
}
DESCRIBED = {"cold cache": "an empty cache", "reversed": "reverse job order",
             "loaded": "a second CPU-bound process"}
HOG = "import torch\ntorch.set_num_threads(2)\nx = torch.randn(1500, 1500)\nwhile True:\n    x @ x\n"


def run_variant(name: str, out: Path, tmp: Path) -> dict:
    from gankd.paths import fresh_cache

    env = {**os.environ, **VARIANTS[name], "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gankd.cli", "regress", "--suite", "smoke", "--quiet", "--dump", str(out)]
    if name == "cold cache":
        env["GANKD_CACHE"] = str(fresh_cache(tmp / "cold-cache"))
    if name == "reversed":
        cmd.append("--reverse")
    hog = subprocess.Popen([sys.executable, "-c", HOG]) if name == "loaded" else None
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, env=env, check=True, cwd=ROOT)
    finally:
        if hog is not None:
            hog.kill()
    doc = json.loads(out.read_text())
    doc["seconds"] = round(time.perf_counter() - t0)
    return doc


def check() -> None:
    """A 1 % change of the ``mse`` weight and DCD's teacher taps in reverse order must each put
    metrics of their runs outside the committed baseline's tolerances."""
    import dataclasses

    import gankd.bench.compose as compose
    from gankd.bench.regress import collect, compare
    from gankd.bench.suite import load_suite, method_options
    from gankd.hardware import cpu_family

    baseline = json.loads((ROOT / "results" / "baselines" / "smoke.json").read_text())
    smoke = load_suite("smoke")

    def only(method: str, **options: object):
        opts = {**smoke.method_options, method: {**smoke.method_options.get(method, {}), **options}}
        return dataclasses.replace(smoke, methods=(method,), method_options=opts)

    real_setup = compose.Setup

    def swapped(*args: object, **kwargs: object):  # the teacher's taps in reverse order
        setup = real_setup(*args, **kwargs)
        pairs = setup.tap_pairs
        setup.tap_pairs = lambda k: (pairs(k)[0], pairs(k)[1][::-1])
        return setup

    weight = method_options(smoke, "realesrgan", "mse").weight * 1.01
    cases = {"mse weight x1.01": (only("mse", weight=weight), None),
             "dcd teacher taps swapped": (only("dcd"), swapped)}
    for what, (suite, patch) in cases.items():
        if patch is not None:
            compose.Setup = patch
        try:
            with tempfile.TemporaryDirectory() as tmp:
                records = collect(suite, "builtin", Path(tmp), progress=False)
        finally:
            compose.Setup = real_setup
        fails = [d for d in compare(baseline, records, cpu_family()) if d.run in records and not d.ok]
        print(f"{what}: {'caught' if fails else 'NOT CAUGHT'} ({len(fails)} metric(s) outside tolerance)")
        for d in fails[:8]:
            print(f"    {d.run} {d.metric}: baseline {d.baseline:.5g}, now {d.value:.5g}, "
                  f"tolerance {d.tolerance:.3g}")


def retolerance(spread_file: Path) -> int:
    """The committed baseline's spreads and tolerances from ``spread_file``, its values kept (a
    spread measured on one more machine needs no new baseline run)."""
    from gankd import atomic
    from gankd.bench.regress import by_family, family_values, tolerance

    path = ROOT / "results" / "baselines" / "smoke.json"
    baseline = json.loads(path.read_text())
    doc = json.loads(spread_file.read_text())
    runs, families = doc["runs"], family_values(doc)
    changed = 0
    for key, run in baseline["runs"].items():
        for name, m in run["metrics"].items():
            s = runs.get(key, {}).get(name)
            new = {"spread": s, "tolerance": tolerance(name, s), "by_family": by_family(families, key, name)}
            changed += new != {k: m.get(k) for k in new}
            m.update(new)
    baseline["produced_by"]["spread"] = str(spread_file.relative_to(ROOT))
    atomic.write_json(path, baseline)
    print(f"{changed} tolerance(s) changed in {path}")
    return 0


def with_carried(runs: dict[str, dict[str, float]], carried: dict[str, dict[str, float]]) -> dict:
    """Each spread at least the carried one of its run; a run measured now but not then (a method
    added since) takes the largest carried spread of its model family and shape."""
    out = {}
    for key, metrics in runs.items():
        group = key.rsplit("/", 2)[0] + "/"  # "<family>/<shape>/"
        near = [c for k, c in carried.items() if k.startswith(group)]
        floor = carried.get(key) or {m: max((c.get(m, 0.0) for c in near), default=0.0) for m in metrics}
        out[key] = {m: max(s, floor.get(m, 0.0)) for m, s in metrics.items()}
    return out


def main() -> int:
    from gankd.bench.regress import spreads_of
    from gankd.hardware import cpu_family

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: "
                   + ", ".join(VARIANTS))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "baselines" / "smoke.spread.json")
    p.add_argument("--check", action="store_true", help="only show that real changes are caught (against "
                   "the committed baseline)")
    p.add_argument("--merge", action="store_true", help="add this machine's variants to those already in "
                   "--out (measured on other machines): the spread then covers every machine measured")
    p.add_argument("--forget", default="", help="with --merge: comma-separated model families whose smoke "
                   "runs changed on purpose; their values measured on the other machines are dropped "
                   "(stale), so those machines fall back to the cross-family tolerance until measured again")
    p.add_argument("--carry", action="store_true", help="with --merge: keep the file's cross-machine "
                   "spreads as a floor of the new ones (machines whose values --forget dropped)")
    p.add_argument("--retolerance", action="store_true", help="only rewrite the committed baseline's "
                   "spreads and tolerances from --out, keeping its values")
    args = p.parse_args()
    if args.retolerance:
        return retolerance(args.out.resolve())
    from gankd.paths import family_names

    forgotten = [m.strip() for m in args.forget.split(",") if m.strip()]
    if (forgotten or args.carry) and not args.merge:
        p.error("--forget and --carry concern other machines' measurements: they need --merge")
    if unknown := [m for m in forgotten if m not in family_names()]:
        p.error(f"unknown model family {unknown[0]!r} in --forget; valid: {', '.join(family_names())}")
    with tempfile.TemporaryDirectory(prefix="gankd-spread-") as tmp:
        if args.check:
            check()
            return 0
        names = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            p.error(f"unknown variant {unknown[0]!r}; valid: {', '.join(VARIANTS)}")
        docs = {}
        for name in names:
            docs[name] = run_variant(name, Path(tmp) / f"{len(docs)}.json", Path(tmp))
            print(f"{name}: {docs[name]['seconds']} s", flush=True)
    here = docs[names[0]]["cpu"]
    family = cpu_family(here)
    variants = {n: VARIANTS[n] or DESCRIBED.get(n, "as is") for n in names}
    values = {n: d["runs"] for n, d in docs.items()}
    machines, families = [here], {family: names}
    carried: dict = {}
    if args.merge and args.out.is_file():  # another machine's variants join the earlier ones
        old = json.loads(args.out.read_text())
        if args.carry:
            carried = {"from": {"written_at": old.get("written_at"),
                                "machines": [m.get("model", "") + " " + m.get("torch_capability", "")
                                             for m in old.get("machines", [])]},
                       "runs": old.get("carried", {}).get("runs") or old["runs"]}
        forget = tuple(f"{m}/" for m in forgotten)
        for runs_of in old["values"].values():
            for key in [k for k in runs_of if k.startswith(forget)]:
                del runs_of[key]
        named = {n: f"{family}: {n}" for n in names}
        machines = [*old.get("machines", [old["measured_on"]]), here]
        variants = {**old["variants"], **{named[n]: v for n, v in variants.items()}}
        values = {**old["values"], **{named[n]: v for n, v in values.items()}}
        families = {**old.get("families", {}), family: [named[n] for n in names]}
    runs = with_carried(spreads_of(values), carried.get("runs", {}))
    doc = {"suite": "smoke", "measured_on": machines[0], "machines": machines,
           "written_at": time.strftime("%Y-%m-%d"), "variants": variants, "values": values, "runs": runs,
           "families": families}
    if carried:
        doc["carried"] = carried
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    worst: dict[str, float] = {}
    for metrics in runs.values():
        for m, s in metrics.items():
            worst[m] = max(worst.get(m, 0.0), s)
    print("largest spread per metric:", {m: round(s, 5) for m, s in sorted(worst.items())})
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
