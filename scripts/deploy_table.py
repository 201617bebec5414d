"""Print the deployment-latency table of one model (docs/deployment.md) from the run records, so its numbers
come from committed files (``gankd export`` writes each record's ``deploy`` section).

    python scripts/deploy_table.py reports/sample/results cpu realesrgan

One block per input size: the teacher's row, then per student shape the median over its
students (every method and seed: one architecture) with their range in brackets, and the
speed-up over the teacher on the same runtime (teacher median / student median) beside the
MAC ratio. The fastest runtime of each row is in bold. CPU runtimes only (the docs' table is
a CPU machine's); each record's ``deploy.cpu`` names its host, and a table mixing hosts says so.
Records without ``deploy`` are skipped and counted; a runtime not timed (its export failed or
did not match torch: the report's deployment table gives the reason) is a dash.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from gankd.deploy import CPU_RUNTIMES as RUNTIMES

HEADERS = ("torch", "torch channels_last", "ONNX Runtime", "ncnn")


def _shape(rec: dict[str, Any]) -> str:
    r = rec["ratio"]
    name = f"r = {r:g}" if r != 0.25 else "r = 1/4"
    return f"{name}, {rec['depth']} blocks" if rec.get("depth") else name


def _ms(entry: dict[str, Any]) -> float | None:
    return entry.get("median_ms") if "error" not in entry else None


Row = list[float | None]


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _row(rec: dict[str, Any], size: str) -> Row:
    return [_ms(rec["deploy"]["latency"].get(rt, {}).get(size, {"error": ""})) for rt in RUNTIMES]


def _cells(values: list[Row], teacher: Row | None) -> tuple[list[str], list[str]]:
    """Per runtime: 'median (min-max)' and the teacher's speed-up."""
    meds: list[float | None] = []
    cells = []
    for col in zip(*values, strict=True):
        ok = sorted(v for v in col if v is not None)
        if not ok:
            meds.append(None)
            cells.append("–")
            continue
        med = statistics.median(ok)
        meds.append(med)
        cells.append(f"{med:.1f}" if len(ok) == 1 else f"{med:.1f} ({_num(ok[0])}-{_num(ok[-1])})")
    best = min((m for m in meds if m is not None), default=None)
    cells = [f"**{c}**" if m is not None and m == best else c for c, m in zip(cells, meds, strict=True)]
    teacher = teacher or [None] * len(meds)
    speed = [f"{t / m:.1f}" if t and m else "–" for t, m in zip(teacher, meds, strict=True)]
    return cells, speed


def _size_order(item: tuple[str, list[dict[str, Any]]]) -> tuple[float, float]:
    rec = item[1][0]
    return rec["ratio"], rec["depth"] or float("inf")  # no depth: the teacher's, the deepest


def _gmacs(rec: dict[str, Any], size: str) -> float:
    """MACs at this input size: the record counts them at ``macs_input`` and convolutions scale
    with the pixel count."""
    return rec["macs"] / 1e9 * (int(size) / rec["macs_input"]) ** 2


def table(results: Path, suite: str, model: str) -> str:
    base = results / "runs" / suite / model
    teachers = [json.loads(p.read_text()) for p in sorted(base.glob("reference/*/teacher.json"))]
    teacher = next((t for t in teachers if t.get("deploy")), None)
    shapes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    skipped = 0
    for p in sorted(base.glob("r*/*/seed*/metrics.json")):
        rec = json.loads(p.read_text())
        if rec.get("status") != "done":
            continue
        if not rec.get("deploy"):
            skipped += 1
            continue
        shapes[_shape(rec)].append(rec)
    sizes = sorted({s for recs in shapes.values() for rec in recs for rt in rec["deploy"]["latency"].values()
                    for s in rt}, key=int)
    cols = ("network", "GMACs", "size", *HEADERS)
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for size in sizes:
        t_ms = None
        if teacher:
            t_ms = _row(teacher, size)
            cells, _ = _cells([t_ms], None)
            lines.append(f"| teacher | {_gmacs(teacher, size):.1f} | {size} | "
                         + " | ".join(cells) + " |")
        for name, recs in sorted(shapes.items(), key=_size_order):
            cells, speed = _cells([_row(r, size) for r in recs], t_ms)
            lines.append(f"| student {name} (n = {len(recs)}) | {_gmacs(recs[0], size):.2f} | {size} | "
                         + " | ".join(cells) + " |")
            if teacher:
                ratio = _gmacs(teacher, size) / _gmacs(recs[0], size)
                lines.append(f"| speed-up | {ratio:.1f} (MACs) | {size} | " + " | ".join(speed) + " |")
    hosts = {r["deploy"].get("cpu") for recs in shapes.values() for r in recs} | \
        ({teacher["deploy"].get("cpu")} if teacher else set())
    if len(hosts) > 1:
        lines.append(f"\nMeasured on {len(hosts)} hosts ({', '.join(sorted(map(str, hosts)))}): "
                     "speed-ups compare machines.")
    if skipped:
        lines.append(f"\n{skipped} finished run(s) without deployment numbers (run `gankd export`).")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(table(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
