"""The run record: everything one benchmark run -- or one teacher / bicubic reference -- produced,
as one typed, versioned object, written as ``metrics.json`` and read back here and nowhere else.

Schema history (``schema``):

- 1: the untyped dict of gankd <= 0.1 (no ``schema`` key);
- 2: this dataclass. It adds ``references`` (the results-relative folder of the teacher and
  bicubic records of the run's evaluation set: a run names its references, nobody guesses them)
  and ``role``. Reading a schema-1 file fills ``references`` from its evaluation-set key; keys
  this version does not know are kept in ``extra`` and written back, so nothing is lost.
- 3: adds ``per_image`` (each per-image metric's value per evaluation image, by the image's
  name: the verdicts' uncertainty over photos), ``threading`` (torch threads and the OpenMP / MKL
  settings) and ``load`` (the machine's load average while the run trained). Older records read
  with these empty: their verdicts fall back to the seeds-only test, their load is unknown.

The numbers a leaderboard shows come from ``row()``: one flat dict keyed by ``columns()``, the
quality columns the metric registry declares (``gankd.metrics.Column``) and the cost columns below.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gankd.deploy import RUNTIMES
from gankd.metrics import Column, all_result_columns, quality_columns
from gankd.tasks import reference_roles

SCHEMA = 3


class RunStatus(enum.StrEnum):
    """What became of a run, as its record says (the value is what the JSON holds), and what that
    means wherever runs are counted, skipped or shown."""

    DONE = "done"
    FAILED = "failed"  # a NaN loss or a crash, with the step, term or error: a sweep runs it again
    #: the method cannot distil this teacher into this student (``Method.not_applicable``): no
    #: training; the leaderboard shows the cell with its reason
    NOT_APPLICABLE = "not applicable"
    #: what ``run`` returns on a torchrun rank > 0 (rank 0 writes the record): never stored
    WORKER = "worker"

    @property
    def finished(self) -> bool:
        """Nothing left to run: a sweep skips it (unless its config changed)."""
        return self in (RunStatus.DONE, RunStatus.NOT_APPLICABLE)

    @property
    def has_results(self) -> bool:
        """Metrics, crops and a place in the means (when its tree was clean)."""
        return self is RunStatus.DONE

    @property
    def failed(self) -> bool:
        """A seed the leaderboard counts as failed (its error shown): it ran and did not finish."""
        return not self.finished

    @property
    def css_class(self) -> str:
        """The report's class for a row none of whose runs has results, by why ("" for DONE)."""
        return {RunStatus.NOT_APPLICABLE: "na", RunStatus.DONE: ""}.get(self, "failed")

    def describe(self, detail: str) -> str:
        """How a table says that a row has no results, and why (``detail``: the recorded reason
        or errors)."""
        if self is RunStatus.NOT_APPLICABLE:
            return f"not applicable: {detail}"
        return f"{self.value}: {detail}"

    @classmethod
    def parse(cls, value: object) -> RunStatus:
        try:
            return cls(value)
        except ValueError:
            stored = [s.value for s in cls if s is not cls.WORKER]
            raise ValueError(f"unknown run status {value!r}; a record holds one of: "
                             f"{', '.join(stored)}") from None


#: the cost of a network and of its training, beside the quality columns of the metric registry
COST_COLUMNS = (
    Column("params_m", "Params", False, "generator parameters", unit="M", order=200),
    Column("gmacs", "GMACs", False, "multiply-accumulates per image at the model's standard input, billions",
           order=210),
    Column("latency_ms", "Latency", False, "median forward time of one image at the suite's latency input",
           unit="ms", order=220),
    Column("speedup", "Speed-up", True, "teacher latency / this latency, measured on the same machine",
           order=230),
    Column("train_min", "Train", False, "training wall time (excluding evaluation)", unit="min", order=240),
    Column("train_gmacs", "Train GMACs/step", False,
           "multiply-accumulates of one training step, forward and backward, generator and discriminator "
           "sides (gankd.engine.cost); cached teacher outputs cost nothing", order=250),
    Column("s_step", "s/step", False, "measured seconds per training step on the run's machine", order=260),
    Column("kd_share", "KD grad share", True,
           "share of the student's gradient norm carried by the method's own distillation terms over the "
           f"run (Method.defining_terms; mean over log windows); under {100 * 0.01:g} % the method is "
           "flagged inert", order=270),
)

#: below this share of the student's gradient a method's defining terms are flagged as inert
INERT_SHARE = 0.01


def gradient_shares(history: list[dict[str, Any]]) -> dict[str, float]:
    """Each generator term's median share of the student's gradient, over the log windows where
    the trainer measured it (``gradnorm/<term>``: the L2 norm of the term's gradient on the
    student's parameters): the norm over the sum of every term's norm in that window."""
    per_term: dict[str, list[float]] = {}
    for row in history:
        norms = {k.split("/", 1)[1]: float(v) for k, v in row.items() if k.startswith("gradnorm/")}
        total = sum(norms.values())
        if total <= 0:
            continue
        for term, n in norms.items():
            per_term.setdefault(term, []).append(n / total)
    return {t: _median(v) for t, v in sorted(per_term.items())}


def _windows(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Each log window's terms as shares of that window's summed gradient norm (windows without
    norms left out)."""
    out = []
    for row in history:
        norms = {k.split("/", 1)[1]: float(v) for k, v in row.items() if k.startswith("gradnorm/")}
        total = sum(norms.values())
        if total > 0:
            out.append({term: n / total for term, n in norms.items()})
    return out


def run_shares(history: list[dict[str, Any]]) -> dict[str, float]:
    """Each generator term's share of the student's gradient over the whole run: the mean over the
    log windows where norms were measured, a term absent from a window (another stage's, e.g.
    LIT's hint-only phase) counting 0 there, so the shares of a run add up to 1. Terms with no
    pull in any window (OMGD's online-teacher terms: they train the teacher) are left out."""
    windows = _windows(history)
    terms = {term for w in windows for term, v in w.items() if v > 0}
    return {term: sum(w.get(term, 0.0) for w in windows) / len(windows) for term in sorted(terms)}


def pct(share: float) -> str:
    """A share as a percentage that never rounds across the inert threshold (0.00996 -> 0.996 %)."""
    return f"{100 * share:.0f} %" if share >= 0.1 else f"{100 * share:.3g} %"


def shares_text(per_run: list[dict[str, float]]) -> str:
    """The mean over runs of each term's ``run_shares`` (a term absent from a run counts 0 there),
    largest first, adding up to 100 %: ``"percep 97 %, l1 2.1 %, kd_adv 0.000457 %"``."""
    if not per_run:
        return ""
    terms = {term for shares in per_run for term in shares}
    means = sorted(((sum(s.get(term, 0.0) for s in per_run) / len(per_run), term) for term in terms),
                   reverse=True)
    return ", ".join(f"{term} {pct(m)}" for m, term in means)


def defining_share(history: list[dict[str, Any]], terms: list[str] | tuple[str, ...]) -> float | None:
    """The summed share of ``terms`` over the whole run, as ``run_shares`` counts it (so the inert
    flag and the row's per-term shares agree); 0 when measured and silent, None when never measured."""
    windows = _windows(history)
    if not any(t in w for w in windows for t in terms):
        return None
    return sum(w.get(t, 0.0) for w in windows for t in terms) / len(windows)


def _median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


#: median latency per deployment runtime at the largest measured input (``deploy``); in the CSV
#: and the report's deployment table, not on the main board
DEPLOY_COLUMNS = tuple(Column(f"lat_{rt}_ms", f"{rt} latency", False,
                              f"median {rt} forward at the largest deployment input size", unit="ms",
                              order=300 + i, shown=False)
                       for i, rt in enumerate(RUNTIMES))


def columns() -> list[Column]:
    """Every leaderboard column: the metric registry's quality columns, the cost columns, the
    deployment latencies (not shown on the main board: ``Column.shown``)."""
    return [*quality_columns(), *COST_COLUMNS, *DEPLOY_COLUMNS]


def deploy_latency(deploy: dict[str, Any], runtime: str, size: str | None = None) -> float | None:
    """The median latency of ``runtime`` at input ``size`` (default: the largest measured)."""
    sizes = (deploy.get("latency") or {}).get(runtime) or {}
    if not sizes:
        return None
    size = size or max(sizes, key=int)
    return _number((sizes.get(size) or {}).get("median_ms"))


def column(key: str) -> Column:
    for c in (*all_result_columns().values(), *COST_COLUMNS, *DEPLOY_COLUMNS):
        if c.key == key:
            return c
    raise KeyError(key)


@dataclass
class RunRecord:
    suite: str
    model: str
    method: str  # the method, or "teacher" / "bicubic" for a reference
    ratio: float | None
    seed: int | None
    depth: int | None = None  # student blocks when the student is shallower than the teacher
    status: RunStatus = RunStatus.DONE
    role: str = "student"  # student | teacher | bicubic
    data: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    #: result key -> evaluation image name -> value, for the metrics with a value per image
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    missing_metrics: dict[str, str] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)  # images, evalset, manifest_sha256, wall_time_s
    references: str = ""  # results-relative folder of this evaluation set's teacher/bicubic records
    params: int | None = None
    macs: float | None = None
    macs_input: int | None = None
    latency: dict[str, Any] = field(default_factory=dict)
    speedup_vs_teacher: float | None = None
    train: dict[str, Any] = field(default_factory=dict)  # steps, wall/step time, memory, cost
    history: list[dict[str, Any]] = field(default_factory=list)
    val_history: list[dict[str, Any]] = field(default_factory=list)
    floors: dict[str, Any] = field(default_factory=dict)
    method_weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the tuning the weights come from (``suite.tuning_provenance``): its sha256, shape, seed, runs
    tuning: dict[str, Any] = field(default_factory=dict)
    #: the method's own distillation terms (``Method.defining_terms``), for the inert flag
    defining_terms: list[str] = field(default_factory=list)
    #: exports and latency per runtime and input size (gankd/bench/deployment.py), if measured
    deploy: dict[str, Any] = field(default_factory=dict)
    teacher: str = ""
    teacher_source: str = ""
    student: str = ""
    student_init: str = ""
    perceptual_network: str = ""
    comparable_with_papers: bool | None = None
    run_dir: str = ""  # results-relative folder of this record (samples/ for the image grid)
    evalset: str = ""  # references only: the evaluation set they were scored on
    samples_dir: str = ""  # references only: results-relative folder of their PNGs
    source: str = ""  # references only: the teacher's identity
    git_sha: str = ""
    #: the code epoch it ran in (gankd/results/epochs.py; None: older than the field, dated by commit)
    epoch: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    #: torch's threads and the OpenMP / MKL environment (gankd.bench.environment.threading_info)
    threading: dict[str, Any] = field(default_factory=dict)
    #: the 1-minute load average while training: before, after, max (environment.LoadMonitor)
    load: dict[str, Any] = field(default_factory=dict)
    processes: int = 1
    total_time_s: float | None = None
    written_at: str = ""
    error: str = ""
    failed_step: int | None = None
    failed_term: str = ""
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other versions, kept as they were

    # -- reading and writing -------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.status = RunStatus.parse(self.status)  # a record file's string, or a typo, named

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        doc = dict(data)
        schema = doc.pop("schema", 1)
        if schema == 1:  # gankd <= 0.1: references by evaluation set, role only on references
            evalset = (doc.get("eval") or {}).get("evalset") or doc.get("evalset")
            if evalset and not doc.get("references") and doc.get("suite") and doc.get("model"):
                doc["references"] = f"runs/{doc['suite']}/{doc['model']}/reference/{evalset}"
            doc.setdefault("role", doc.get("role") or "student")
        extra = {k: doc.pop(k) for k in list(doc) if k not in known}
        extra.update(doc.pop("extra", None) or {})
        rec = cls(**{k: v for k, v in doc.items() if v is not None or k in _NULLABLE})
        rec.extra, rec.schema = extra, SCHEMA
        return rec

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **out}

    # -- what a leaderboard shows ----------------------------------------------------------------
    @property
    def is_reference(self) -> bool:
        return self.role in reference_roles()  # each task's (gankd.tasks)

    def row(self) -> dict[str, Any]:
        """One flat leaderboard row: identity, status and every column (None: not measured)."""
        cost = (self.train.get("cost") or {}).get("gmacs_per_step") or {}
        values: dict[str, Any] = {c.key: _number(self.metrics.get(c.key)) for c in quality_columns()}
        values.update({
            "params_m": self.params / 1e6 if self.params else None,
            "gmacs": self.macs / 1e9 if self.macs else None,
            "latency_ms": _number(self.latency.get("median_ms")),
            "speedup": _number(self.speedup_vs_teacher),
            "train_min": self.train["wall_time_s"] / 60 if self.train.get("wall_time_s") else None,
            "train_gmacs": _number(cost.get("total")),
            "s_step": _number(self.train.get("step_time_s")) or None,
            "kd_share": defining_share(self.history, self.defining_terms) if self.defining_terms else None,
        })
        values["term_shares"] = run_shares(self.history)  # not a column: the leaderboard's text
        values.update({c.key: deploy_latency(self.deploy, c.key[4:-3]) for c in DEPLOY_COLUMNS})
        weights = "; ".join(f"{k}={w['value']:.4g} ({w['source']})" for k, w in self.method_weights.items())
        if self.tuning.get("borrowed"):
            weights += f"; {self.tuning['borrowed']}"
        return {"suite": self.suite, "model": self.model, "ratio": self.ratio, "depth": self.depth,
                "method": self.method, "seed": self.seed, "status": self.status, "error": self.error,
                "weights": weights, "machine": self.machine, "git_sha": self.git_sha,
                # a reference is evaluated once per evaluation set and shared: shown with its commit,
                # never dropped (its table would lose its teacher and baseline rows)
                "dirty": self.dirty and not self.is_reference,
                "under_load": self.under_load, **values}

    # -- provenance --------------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        """Run from a tree with modified tracked files: its code is not the commit it names, so
        the leaderboard shows it but leaves it out of its means and verdicts."""
        return self.git_sha.endswith("-dirty")

    @property
    def under_load(self) -> bool | None:
        """Trained while the load average exceeded the cores it used (``environment.under_load``):
        its s/step measured contention, and stays out of the means. None: not recorded."""
        flag = (self.load or {}).get("under_load")
        return None if flag is None else bool(flag)

    @property
    def machine(self) -> str:
        """What the run's times were measured on: the GPU's name, or the CPU family (a sample
        assembled over sessions mixes machines; its s/step is comparable only within one)."""
        from gankd.hardware import device_family  # here: the report reads records without torch

        return device_family(self.device or {})


_NULLABLE = {"ratio", "seed", "depth", "params", "macs", "macs_input", "speedup_vs_teacher",
             "comparable_with_papers", "total_time_s", "failed_step", "epoch"}


def _number(v: Any) -> float | None:
    """A finite float, or None (a NaN metric is as unusable as a missing one)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def reference_dir(suite: str, model: str, evalset: str) -> Path:
    """Results-relative folder of the teacher and bicubic records of one evaluation set."""
    return Path("runs") / suite / model / "reference" / evalset
