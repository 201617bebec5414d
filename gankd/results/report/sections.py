"""Records grouped into the report's tables: one per (suite, model, student ratio), its students
aggregated over seeds and the teacher and bicubic references the runs name; and the CSV."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from gankd.deploy import RUNTIMES
from gankd.results import store
from gankd.results.judge import Study, has_per_image, judge_table
from gankd.results.leaderboard import (
    BASELINE,
    GROUP,
    add_ratios,
    aggregate,
    column_keys,
    mark_floors,
    quality_keys,
)
from gankd.results.protocol import Protocol
from gankd.results.record import RunRecord
from gankd.results.suites import Suites
from gankd.tasks import reference_roles, task


@dataclass
class Section:
    """One (suite, model, student ratio): its runs, the references on the same evaluation set and
    their aggregates (students first, then teacher and bicubic)."""

    suite: str
    model: str
    ratio: float
    depth: int | None
    runs: list[RunRecord]
    refs: dict[str, RunRecord]  # role -> reference record
    aggs: list[dict]
    evalset: str | None
    evalsets: list[str]  # every evaluation set the section's finished runs used
    task: str  # its model's task (gankd.tasks): primary metric, image columns
    protocol: Protocol  # its suite's verdict protocol
    declared_seeds: int | None  # the seeds its suite declares for it (None: suite not known here)
    study: Study | None = None  # the verdicts of its methods against scratch (gankd/results/judge.py)

    @property
    def commits(self) -> dict[str, int]:
        """Each commit its finished runs ran on (short sha, ``-dirty`` kept) -> how many."""
        return dict(Counter(_short(r.git_sha) for r in self.runs if r.status.has_results))

    @property
    def left_out(self) -> list[RunRecord]:
        """Finished runs kept out of means and verdicts: from a dirty tree."""
        return [r for r in self.runs if r.status.has_results and r.dirty]

    @property
    def under_load(self) -> list[RunRecord]:
        """Counted runs whose s/step stays out of the mean: timed under load."""
        return [r for r in self.runs if r.status.has_results and not r.dirty and r.under_load]

    @property
    def tag(self) -> str:
        return f"r{self.ratio:g}" + (f"-d{self.depth}" if self.depth else "")

    @property
    def title(self) -> str:
        """"student r=0.25", or "student r=0.5, 6 blocks" for a shallower one."""
        return f"student r={self.ratio:g}" + (f", {self.depth} blocks" if self.depth else "")

    @property
    def anchor(self) -> str:
        return slug(f"{self.suite}-{self.model}-{self.tag}")

    @property
    def baseline(self) -> str | None:
        """Its task's no-network baseline: known from the task even before any run names it (a
        table whose runs are all of an older config has no unconditional 'bicubic' row to wait for)."""
        return task(self.task).baseline

    @property
    def expected_refs(self) -> tuple[str, ...]:
        """The references this section's task has: the teacher and its baseline, if any."""
        return ("teacher",) + ((self.baseline,) if self.baseline else ())

    @property
    def students(self) -> list[dict]:
        return [a for a in self.aggs if a["method"] not in reference_roles()]


def baseline_of(runs: Sequence[RunRecord]) -> str | None:
    """The task's no-network baseline the runs' floors name: bicubic for SR and for records older
    than the other tasks, the input itself ("identity") for translation, None for unconditional
    generation."""
    named = {r.floors["baseline"] for r in runs if r.floors and "baseline" in r.floors}
    return named.pop() if len(named) == 1 else ("bicubic" if not named else None)


def _short(sha: str) -> str:
    return (sha[:7] + ("-dirty" if sha.endswith("-dirty") else "")) if sha else "unknown"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def _num(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.inf


def sections_of(runs: list[RunRecord], refs: list[RunRecord], suites: Suites | None = None) -> list[Section]:
    """Group runs by (suite, model, ratio); attach the teacher and bicubic records each run names
    (``RunRecord.references``). Where a table's runs name several, the one most of them name is
    shown, and the table says so. ``suites``: what is known of the runs' suites (their protocol
    and tasks; ``gankd.bench.suite.SuiteIndex`` for this checkout's)."""
    suites = suites or Suites()
    by_key: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_key[(r.suite, r.model, r.ratio, r.depth)].append(r)
    ref_by_folder: dict[str, dict[str, RunRecord]] = defaultdict(dict)
    for x in refs:
        ref_by_folder[x.samples_dir][x.role or x.method] = x
    student_aggs = aggregate(r.row() for r in runs)
    sections = []
    for key in sorted(by_key, key=lambda k: (str(k[0]), str(k[1]), _num(k[2]), _num(k[3] or 0))):
        suite, model, ratio, depth = key
        group = by_key[key]
        named = Counter(r.references for r in group if r.status.has_results and r.references)
        evalsets = sorted({r.eval.get("evalset") for r in group if r.status.has_results}
                          - {None})
        if named:
            folder = named.most_common(1)[0][0]
        else:  # nothing finished: show the references if they are unambiguous
            mine = sorted(f for f, rs in ref_by_folder.items()
                          if any((x.suite, x.model) == (suite, model) for x in rs.values()))
            folder = mine[0] if len(mine) == 1 else ""
        chosen = ref_by_folder.get(folder, {})
        evalset = next((x.evalset for x in chosen.values() if x.evalset), None)
        ref_aggs = aggregate({**chosen[role].row(), "ratio": ratio, "depth": depth}
                             for role in reference_roles() if role in chosen)
        aggs = [a for a in student_aggs if tuple(a[k] for k in GROUP) == key]
        aggs.sort(key=lambda a: (a["method"] != BASELINE, str(a["method"])))
        aggs += sorted(ref_aggs, key=lambda a: reference_roles().index(a["method"]))
        section = Section(suite, model, ratio, depth, group, chosen, aggs, evalset, evalsets,
                          task=suites.task_for(suite, model, baseline_of(group)),
                          protocol=suites.protocol(suite),
                          declared_seeds=suites.declared_seeds(suite, model, ratio, depth))
        section.study = study_of(section)
        add_verdicts(aggs, section.study)
        mark_floors(aggs)
        add_ratios(aggs)
        sections.append(section)
    return sections


def study_of(s: Section) -> Study:
    """The section's verdicts by its suite's protocol on its task's primary metric."""
    metric, plan = s.protocol.plan(s.task)
    return judge_table(s.runs, metric, plan, per_image=has_per_image(metric),
                       declared_seeds=s.declared_seeds, decisive_seeds=s.protocol.decisive_seeds)


#: the verdict columns of a student's row (CSV and report), from its ``verdict.Verdict``
VERDICT_FIELDS = ("primary", "primary_delta", "primary_se", "primary_df", "verdict", "verdict_p",
                  "verdict_p_adj", "verdict_p_tost", "verdict_p_tost_adj", "verdict_mde", "verdict_margin",
                  "verdict_seeds", "verdict_images", "verdict_test")


def add_verdicts(aggs: list[dict], study: Study) -> None:
    for a in aggs:
        if a["method"] in reference_roles() or a["method"] == BASELINE:
            continue
        x = study.verdicts.get(a["method"])
        a["primary"], a["verdict_margin"] = study.metric, study.plan.margin
        if x is None:  # no finished run: no verdict to give
            continue
        e = x.estimate
        a.update({"verdict": x.verdict, "verdict_p": x.p, "verdict_p_adj": x.p_adjusted,
                  "verdict_p_tost": x.p_tost, "verdict_p_tost_adj": x.p_tost_adjusted, "verdict_mde": x.mde,
                  "primary_delta": e.mean if e else None, "primary_se": e.se if e else None,
                  "primary_df": e.df if e else None, "verdict_seeds": e.seeds if e else None,
                  "verdict_images": e.images if e else None, "verdict_test": e.test if e else x.why})


# -- CSV ------------------------------------------------------------------------------------
def csv_fields() -> list[str]:
    return [*GROUP, "kind", "method", "n", "seeds", "failed", "failed_seeds", "floor",
            *(f for col in column_keys() for f in (col, col + "_std")), "weights", "term_shares",
            "not_applicable", "mac_ratio", *(f"speedup_{rt}" for rt in RUNTIMES),
            "paired_n", *(col + s for col in quality_keys() for s in ("_delta", "_ci", "_noise")),
            "evalset", "errors", *VERDICT_FIELDS, "commits", "left_out", "timed_under_load"]


CSV_FIELDS = csv_fields()


#: what a record that cannot be read makes its row say
UNREADABLE = "record cannot be read, so the run is in no table"


def unreadable_row(u: store.Unreadable) -> dict:
    """A CSV row naming a record that cannot be read: what its path says of the run (suite, model,
    shape, method, seed; or the reference's role and evaluation set) and why it was not read."""
    parts = u.path.split("/")  # runs/<suite>/<model>/<shape>/<method>/seed<k>/metrics.json
    why = UNREADABLE if u.kind == "unreadable" else "in no table"
    row: dict = {"kind": u.kind, "n": 0, "errors": f"{u.path}: {why} ({u.reason})"}
    if len(parts) == 6 and parts[3] == "reference":
        return {**row, "suite": parts[1], "model": parts[2], "method": parts[5].removesuffix(".json"),
                "evalset": parts[4]}
    if len(parts) == 7:
        shape = re.fullmatch(r"r([0-9.]+)(?:-d(\d+))?", parts[3])
        return {**row, "suite": parts[1], "model": parts[2], "method": parts[4],
                "seeds": parts[5].removeprefix("seed"), "ratio": float(shape[1]) if shape else None,
                "depth": int(shape[2]) if shape and shape[2] else None}
    return row


def to_csv(sections: list[Section], unreadable: Sequence[store.Unreadable] = ()) -> str:
    """One row per (suite, model, ratio, method), teacher and bicubic repeated in every ratio's
    block so each block reads on its own, then one row per record that cannot be read. Empty
    cells: no value (missing metric, failed run). ``pandas.read_csv`` loads it back."""
    rows = []
    for sec in sections:
        for a in sec.aggs:
            paired_n = max((a.get(c + "_paired_n") or 0 for c in quality_keys()), default=0)
            has_pairs = any(a.get(c + "_delta") is not None for c in quality_keys())
            rows.append({
                **a, "kind": "reference" if a["method"] in reference_roles() else "student",
                "seeds": " ".join(map(str, a["seeds"])),
                "failed_seeds": " ".join(map(str, a["failed_seeds"])),
                "paired_n": paired_n if has_pairs else None, "evalset": sec.evalset or "",
            })
    rows += [unreadable_row(u) for u in unreadable]
    frame = pd.DataFrame(rows, columns=CSV_FIELDS)
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")
