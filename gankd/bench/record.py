"""The run record: everything one benchmark run -- or one teacher / bicubic reference -- produced,
as one typed, versioned object, written as ``metrics.json`` and read back here and nowhere else.

Schema history (``schema``):

- 1: the untyped dict of gankd <= 0.1 (no ``schema`` key);
- 2: this dataclass. It adds ``references`` (the results-relative folder of the teacher and
  bicubic records of the run's evaluation set: a run names its references, nobody guesses them)
  and ``role``. Reading a schema-1 file fills ``references`` from its evaluation-set key; keys
  this version does not know are kept in ``extra`` and written back, so nothing is lost.

The numbers a leaderboard shows come from ``row()``: one flat dict keyed by ``columns()``, the
quality columns the metric registry declares (``gankd.metrics.Column``) and the cost columns below.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gankd.deploy import RUNTIMES
from gankd.metrics import Column, all_result_columns, quality_columns

SCHEMA = 2
STATUS_DONE = "done"
STATUS_FAILED = "failed"
#: the method cannot distil this teacher into this student (``Method.not_applicable``): no training
STATUS_NA = "not applicable"
REFERENCE_ROLES = ("teacher", "bicubic", "identity")
#: each task's references: the teacher and the no-network baseline a student must beat (bicubic
#: upsampling for SR, the input photo itself for translation; unconditional generation has none)
TASK_REFERENCES = {"sr": ("teacher", "bicubic"), "unconditional": ("teacher",),
                   "translation": ("teacher", "identity")}
#: the no-network baseline of each task (None: the task has none)
BASELINE_ROLE = {"sr": "bicubic", "unconditional": None, "translation": "identity"}

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
)


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
    status: str = STATUS_DONE
    role: str = "student"  # student | teacher | bicubic
    data: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
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
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    processes: int = 1
    total_time_s: float | None = None
    written_at: str = ""
    error: str = ""
    failed_step: int | None = None
    failed_term: str = ""
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other versions, kept as they were

    # -- reading and writing -------------------------------------------------------------------
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
        return self.role in REFERENCE_ROLES

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
        })
        values.update({c.key: deploy_latency(self.deploy, c.key[4:-3]) for c in DEPLOY_COLUMNS})
        weights = "; ".join(f"{k}={w['value']:.4g} ({w['source']})" for k, w in self.method_weights.items())
        return {"suite": self.suite, "model": self.model, "ratio": self.ratio, "depth": self.depth,
                "method": self.method, "seed": self.seed, "status": self.status, "error": self.error,
                "weights": weights, "machine": self.machine, **values}

    @property
    def machine(self) -> str:
        """What the run's times were measured on: the GPU's name, or the CPU family (a sample
        assembled over sessions mixes machines; its s/step is comparable only within one)."""
        d = self.device or {}
        if d.get("type") == "cuda":
            return str(d.get("name", "cuda"))
        if "cpu" not in d:
            return ""
        from gankd.hardware import cpu_family  # here: the report reads records without torch

        return cpu_family({"model": d["cpu"], "torch_capability": d.get("torch_cpu_capability", "unknown")})


_NULLABLE = {"ratio", "seed", "depth", "params", "macs", "macs_input", "speedup_vs_teacher",
             "comparable_with_papers", "total_time_s", "failed_step"}


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
