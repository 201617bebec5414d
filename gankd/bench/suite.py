"""Suites and runs: what a benchmark run is, resolved from YAML and the command line.

A suite (``benchmarks/<name>.yaml``) names models, student ratios and seeds (and methods, when it
runs a subset of the registered ones), and per model the settings that differ from the model
family's defaults (``benchmarks/models/<family>.yaml``: teacher, discriminator, data, recipe,
training, evaluation).
A run is one (suite, model, method, ratio, seed, data); its resolved config is written beside its
results and defines it completely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gankd.config import from_mapping, load_yaml, merge, to_dict
from gankd.datasets.config import DataConfig
from gankd.deploy import CPU_RUNTIMES
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.engine.cycle import CycleConfig
from gankd.errors import ConfigError, unknown_choice
from gankd.models import zoo
from gankd.paths import benchmarks_dir, family_file, family_names
from gankd.results import store
from gankd.results.protocol import Protocol
from gankd.results.record import RunRecord
from gankd.results.suites import Suites
from gankd.tasks import task as task_of
from gankd.tasks import task_names


@dataclass(frozen=True)
class LatencyConfig:
    size: int = 64  # input side (LR side for rrdbnet, output side for gcfsr)
    threads: int = 2
    warmup: int = 3
    repeats: int = 10


@dataclass(frozen=True)
class DeployConfig:
    """Deployment latency (``gankd export``, gankd/bench/deployment.py): the student and the
    teacher exported to ONNX Runtime and ncnn, checked against torch on ``check_images``
    evaluation inputs, and timed on every runtime at each input side of ``sizes``. Where torch
    sees a CUDA device the CUDA runtimes (``gankd.deploy.CUDA_RUNTIMES``) are timed as well,
    without being listed: a suite runs on either kind of machine unchanged."""

    runtimes: tuple[str, ...] = CPU_RUNTIMES
    sizes: tuple[int, ...] = (64,)  # input sides: LR for Real-ESRGAN, the output size for GCFSR
    threads: int = 2
    warmup: int = 2
    repeats: int = 7
    check_images: int = 2
    in_run: bool = False  # also a step of every bench run (else only `gankd export`)

    def __post_init__(self) -> None:
        from gankd.deploy import RUNTIMES

        for r in self.runtimes:
            if r not in RUNTIMES:
                raise ValueError(f"unknown runtime {r!r}; valid choices: {', '.join(RUNTIMES)}")
        if not self.sizes or min(self.sizes) < 1 or self.threads < 1 or self.repeats < 1:
            raise ValueError("deploy needs sizes >= 1, threads >= 1 and repeats >= 1")


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] = ("psnr", "ssim", "lpips", "fid", "niqe")
    batch_size: int = 4
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    grid_crops: int = 3  # evaluation images whose outputs are kept for the report's image grid
    deploy: DeployConfig = field(default_factory=DeployConfig)


@dataclass(frozen=True)
class PretrainConfig:
    """A supervised stage every student goes through before the method under test (the
    ``supervised`` method, no discriminator), cached per (student, seed) and shared by every
    method: Real-ESRGAN's GAN stage starts from RealESRNet, trained with L1 only."""

    train: TrainConfig
    recipe: dict[str, Any] = field(default_factory=dict)  # overrides of the family recipe
    #: the width ratio the recipe's ``lr_g`` is meant for; a student of ratio r trains at
    #: lr_g x lr_ratio / r (Adam's step per weight shrunk as the fan-in grows, as muP scales
    #: hidden layers), so that one short high-lr schedule suits thin and wide students alike.
    #: None: lr_g at every width.
    lr_ratio: float | None = None

    def __post_init__(self) -> None:
        from_mapping(RecipeConfig, self.recipe, "student_pretrain.recipe")  # keys and types, once
        if self.lr_ratio is not None and not 0 < self.lr_ratio <= 1:
            raise ValueError(f"lr_ratio must be a width ratio in (0, 1], got {self.lr_ratio}")

    def scales_lr(self, ratio: float) -> bool:
        """Whether a student of width ``ratio`` trains at another lr than the recipe's."""
        return self.lr_ratio is not None and ratio != self.lr_ratio

    def recipe_for(self, base: RecipeConfig, ratio: float = 1.0) -> RecipeConfig:
        """The stage's recipe for a student of width ``ratio``."""
        recipe = from_mapping(RecipeConfig, merge(to_dict(base), self.recipe), "student_pretrain.recipe")
        if not self.scales_lr(ratio):  # exactly the configured lr_g
            return recipe
        return dataclasses.replace(recipe, lr_g=recipe.lr_g * self.lr_ratio / ratio)



@dataclass(frozen=True)
class ModelSetup:
    """Everything about one model family in a suite."""

    family: str
    teacher: str  # zoo entry of the teacher generator
    discriminator: str  # zoo entry of the teacher-size discriminator
    data: DataConfig
    recipe: RecipeConfig
    train: TrainConfig
    eval: EvalConfig = field(default_factory=EvalConfig)
    student: dict[str, Any] = field(default_factory=dict)  # student arch overrides (e.g. num_block)
    #: None: the teacher's pretrained weights (its zoo entry names them); else how
    #: `gankd teacher` trains it (the family recipe, this schedule), cached by config hash.
    teacher_train: TrainConfig | None = None
    #: None: students start from their random init; else the cached supervised stage above
    student_pretrain: PretrainConfig | None = None
    #: per-method options for this model, over the suite-wide ones (e.g. fewer taps where the
    #: network has fewer decoder levels)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""
    #: the data its runs use when DATA is not given: a registered source (``builtin``, ``photos``,
    #: ``faces``; gankd list) or a folder. Not part of a run's config: the run records its data.
    dataset: str = "builtin"
    #: what the generator does, a registered task (gankd.tasks): sr (a degraded image in, its
    #: paired HR the target), unconditional (noise in, no target), translation (an image in, no
    #: paired target)
    task: str = "sr"
    #: CycleGAN's cycle and identity terms in the base recipe (gankd.engine.cycle): for an
    #: unpaired family, whose adversarial term alone ties no output to its input
    cycle: CycleConfig | None = None
    #: the seeds of this model's tables at the suite's ratios (empty: the suite's ``seeds``): a
    #: decisive table runs as many as the power calculation asks for, pilots fewer
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in task_names():
            raise unknown_choice("task", self.task, task_names())
        if self.cycle is not None and not task_of(self.task).takes_cycle:
            raise ValueError(f"cycle is CycleGAN's objective for unpaired translation, not for {self.task!r}")
        for seed in self.seeds:
            check_seed(seed, f"each of {self.family}'s seeds")


@dataclass(frozen=True)
class TuneConfig:
    """The calibration protocol of `gankd tune` (gankd/bench/tune.py), the same for every method:
    runs of ``fraction`` of the model's training steps with each method's distillation weights at
    ``factors`` x their defaults, seed ``seed``, scored by ``metric`` on the validation images.
    The grid is fixed: every tunable method of a model gets exactly ``len(factors)`` scored runs.
    (An earlier protocol grew the grid past an end while the best factor sat there; that gave
    methods 3 to 5 draws each, and with factor-to-factor differences of 0.0003-0.004 LPIPS, the
    extra draws favoured the methods that got them.)

    ``seed`` is the tuning's own: its starting student (the supervised stage of that seed) and
    its runs belong to no reported run, so no evaluation seed is selected on (``SuiteConfig``
    refuses a suite whose ``seeds`` contain it).

    ``balance_steps``: a method that declares a balanced weight (``Method.balanced``: DCD's
    lambda_CD, whose L_DCD pulled 1e-3 to 1e-4 as hard as its output KD at the release's weights)
    has that weight set, before the grid, so that its term's gradient norm on the student equals
    its reference terms' (median over a probe of that many steps from the tuning start, no
    evaluation); the grid then scales every weight together. The probe selects nothing on
    validation images, so the budget of scored runs stays equal.

    ``psnr_margin`` (dB) guards fidelity: a factor is eligible only when its validation PSNR is
    within that margin of ``scratch``'s at the same budget (the same student, steps and seed);
    when none is, only those within it of the method's own best PSNR. Without it the protocol
    ranks by ``metric`` alone, and a term that drifts the student's colours while LPIPS holds
    (DCD's feature L1 on Real-ESRGAN: 4 dB lost) can win. The guard applies where PSNR compares
    an output with a target for the same input (SR: the ground truth; translation: the teacher's
    output on the same photo); unconditional generation is not guarded: there PSNR compares a
    student's sample with the teacher's on the same noise, which a distribution-matching method
    (AKDG) has no reason to approach.

    ``task_metrics`` scores the families of a task by another result than ``metric`` (any key a
    registered metric returns, e.g. ``kid`` of ``fid``): a method is calibrated on its task's
    headline, and LPIPS against the teacher's sample on the same noise is no headline of
    unconditional generation."""

    fraction: float = 0.4
    factors: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
    metric: str = "lpips"
    seed: int = 100
    balance_steps: int = 20
    psnr_margin: float | None = None
    task_metrics: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if unknown := set(self.task_metrics) - set(task_names()):
            raise unknown_choice("task in tune.task_metrics", sorted(unknown)[0], task_names())
        if not 0 < self.fraction <= 1 or not self.factors or any(f <= 0 for f in self.factors):
            raise ValueError("tune needs a fraction in (0, 1] and positive factors")
        if self.balance_steps < 1:
            raise ValueError(f"tune.balance_steps must be >= 1, got {self.balance_steps}")
        if self.psnr_margin is not None and self.psnr_margin < 0:
            raise ValueError(f"tune.psnr_margin must be >= 0 (dB), got {self.psnr_margin}")
        check_seed(self.seed, "tune.seed")

    def steps(self, train_steps: int) -> int:
        return max(1, round(self.fraction * train_steps))

    def metric_for(self, task: str) -> str:
        """The result key the factors of a family of ``task`` are ranked by."""
        return self.task_metrics.get(task, self.metric)

    def guards(self, task_name: str) -> bool:
        """Whether the PSNR guard applies to a family of ``task`` (see the class docstring)."""
        return self.psnr_margin is not None and task_of(task_name).psnr_guard


def default_methods() -> tuple[str, ...]:
    """Every registered benchmark method (internal stages left out): ``scratch``, the reference
    the leaderboard compares every method with, first; the others by name. A new method file is
    then in every suite that does not list its methods."""
    from gankd.methods import benchmark_methods

    return tuple(sorted(benchmark_methods(), key=lambda m: (m != "scratch", m)))


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    description: str
    models: dict[str, ModelSetup]
    #: a subset of the registered methods, in the order a sweep runs them; default all of them
    methods: tuple[str, ...] = field(default_factory=default_methods)
    ratios: tuple[float, ...] = (0.25,)
    #: more student shapes beside ``ratios`` (width and depth, e.g. a shallow-wide student of the
    #: same latency as a deep-thin one); models without a depth knob skip shapes with a depth
    shapes: tuple[StudentShape, ...] = ()
    seeds: tuple[int, ...] = (0,)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    tune: TuneConfig = field(default_factory=TuneConfig)
    protocol: Protocol = field(default_factory=Protocol)
    path: str = ""

    def __post_init__(self) -> None:
        for seed in self.seeds:
            check_seed(seed, "each of seeds")
        for shape in self.shapes:
            for seed in shape.seeds:
                check_seed(seed, f"each of shapes ({shape.tag}) seeds")

    def seeds_for(self, model: str, shape: StudentShape) -> tuple[int, ...]:
        """The seeds one table runs: the shape's own, else its model's, else the suite's."""
        declared = next((s.seeds for s in self.shapes if s == shape and s.seeds), ())
        return declared or self.models[model].seeds or self.seeds

    def all_seeds(self) -> set[int]:
        return {*self.seeds, *(s for m in self.models.values() for s in m.seeds),
                *(s for sh in self.shapes for s in sh.seeds)}

    def student_shapes(self, model: str) -> list[StudentShape]:
        """Every student shape this suite runs on ``model``: each ratio at the teacher's depth, then
        the extra shapes the model's architecture can take."""
        arch = zoo.get(self.models[model].teacher).arch
        from gankd.models import MODELS

        deep = getattr(MODELS.get(arch), "depth_key", None) is not None
        return [StudentShape(r) for r in self.ratios] + [
            s for s in self.shapes if (s.depth is None or deep) and (not s.models or model in s.models)]


@dataclass(frozen=True)
class StudentShape:
    """A student by width ratio and, optionally, depth (RRDB blocks): deep-thin and shallow-wide
    students of equal latency are both shapes a device might want."""

    ratio: float
    depth: int | None = None
    #: the methods run on this shape (empty: every method of the suite), e.g. a baseline and a
    #: method made for it (LIT needs a shallow student of the teacher's width)
    methods: tuple[str, ...] = ()
    #: the model families that take this shape (empty: every family whose architecture has the
    #: knobs it needs), e.g. a shape latency-matched on one architecture only
    models: tuple[str, ...] = ()
    #: the seeds of this shape's tables (empty: the model's, else the suite's)
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"student ratio must be in (0, 1], got {self.ratio}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"student depth must be >= 1 block, got {self.depth}")

    def __eq__(self, other: object) -> bool:  # a shape is its width and depth, whatever runs on it
        return isinstance(other, StudentShape) and (self.ratio, self.depth) == (other.ratio, other.depth)

    def __hash__(self) -> int:
        return hash((self.ratio, self.depth))

    @property
    def tag(self) -> str:
        """``r0.25`` or ``r0.5-d6``: the shape's folder and table name."""
        return f"r{self.ratio:g}" + (f"-d{self.depth}" if self.depth else "")


@dataclass(frozen=True)
class RunSpec:
    suite: str
    model: str
    method: str
    ratio: float
    seed: int
    data: str
    depth: int | None = None  # student blocks (None: the teacher's depth)

    @property
    def shape(self) -> StudentShape:
        return StudentShape(self.ratio, self.depth)

    @property
    def rel_dir(self) -> Path:
        return Path(self.suite) / self.model / self.shape.tag / self.method / f"seed{self.seed}"


def suite_names() -> list[str]:
    return sorted(p.stem for p in benchmarks_dir().glob("*.yaml"))


def load_suite(name_or_path: str) -> SuiteConfig:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        if name_or_path not in suite_names():
            raise unknown_choice("suite", name_or_path, suite_names())
        path = benchmarks_dir() / f"{name_or_path}.yaml"
    raw = load_yaml(path)
    where = path.name
    models_raw = raw.pop("models", None)
    if not isinstance(models_raw, dict) or not models_raw:
        raise ConfigError(f"{where}: 'models' must map model names to their settings")
    models = {}
    for fam, over in models_raw.items():
        if fam not in family_names():
            raise unknown_choice(f"model in {where}:", fam, family_names())
        base = load_yaml(family_file(fam))
        setup = from_mapping(ModelSetup, merge(base, over or {}), f"{where}: models.{fam}")
        zoo.get(setup.teacher), zoo.get(setup.discriminator)  # names checked here, once
        models[fam] = setup
    suite = from_mapping(SuiteConfig, {**raw, "models": {}}, where)
    suite = dataclasses.replace(suite, models=models, path=str(path))
    from gankd.methods import METHODS, benchmark_methods

    for m in suite.methods:
        if METHODS.get(m).internal:
            raise unknown_choice(f"method in {where}: methods", m, benchmark_methods())
    for shape in suite.shapes:
        for m in shape.methods:
            if m not in suite.methods:
                raise unknown_choice(f"method in {where}: shapes ({shape.tag})", m, list(suite.methods))
        for fam in shape.models:
            if fam not in models:
                raise unknown_choice(f"model in {where}: shapes ({shape.tag})", fam, list(models))
    if suite.tune.seed in (run_seeds := sorted(suite.all_seeds())):
        raise ConfigError(f"{where}: tune.seed {suite.tune.seed} is also a run seed ({run_seeds}): "
                          "tuning would select on a seed the tables report; give tuning a seed of its own")
    from gankd.metrics import metric_of

    for key in (suite.tune.metric, *suite.tune.task_metrics.values()):
        metric_of(key)
    suite.protocol.check_metrics()
    # every task the suite's models have, and only those: a task registered later asks nothing
    # of the suites that do not use it
    if missing := sorted({s.task for s in models.values()} - set(suite.protocol.primary)):
        raise ConfigError(f"{where}: protocol.primary names no metric for task(s) {', '.join(missing)}; "
                          "every task of the suite's models needs one (declared before the runs)")
    for fam, setup in models.items():  # a primary metric the family's evaluation never computes
        primary = suite.protocol.primary[setup.task]
        if metric_of(primary) not in setup.eval.metrics:
            raise ConfigError(f"{where}: protocol.primary.{setup.task} is {primary!r}, but models.{fam} "
                              f"evaluates only {', '.join(setup.eval.metrics)}")
    for fam, setup in models.items():
        for m in (*suite.method_options, *setup.method_options):
            if m not in METHODS:
                raise unknown_choice(f"method in {where}: method_options", m, METHODS.names())
            method_options(suite, fam, m)  # option names and types, once
    return suite


#: seeds are what numpy's legacy seeding takes (torch takes more, and no suite needs more)
MAX_SEED = 2**32 - 1


def check_seed(value: int, what: str = "seed") -> int:
    """A run seed in [0, 2^32 - 1]: a negative one would make a run folder ``seed-1`` and seed
    generators differently in each library, a huge one fails deep inside torch."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{what} must be an integer from 0 to {MAX_SEED}, got {value!r}")
    return value


def check_ratio(value: str | float) -> float:
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"student ratio must be a number in (0, 1], e.g. 0.25; got {value!r}") from None
    if not 0 < r <= 1:
        paper = ", ".join(map(str, zoo.RATIOS))
        raise ConfigError(f"student ratio must be in (0, 1] (the paper ratios: {paper}); got {value!r}")
    return r


@dataclass(frozen=True)
class ResolvedRun:
    """One run with everything its suite decides about it, resolved once at the command's edge
    (``gankd bench``, each job of a sweep, a dry run, the report's stale check) and handed down:
    the method's config (defaults, the suite's options, the tuned factor: the tuned table is read
    once), where each distillation weight comes from, which tuning it used, and the config dict
    written to the run's folder and compared by the stale checks."""

    spec: RunSpec
    suite: SuiteConfig
    method_cfg: Any
    weights: dict[str, dict[str, Any]]
    tuning: dict[str, Any]
    config: dict[str, Any]

    @property
    def setup(self) -> ModelSetup:
        return self.suite.models[self.spec.model]


def resolve(suite: SuiteConfig, spec: RunSpec) -> ResolvedRun:
    """``spec`` of ``suite``, resolved (``ResolvedRun``)."""
    entry = tuned_entry(suite.name, spec.model, spec.method)
    mcfg = method_options(suite, spec.model, spec.method, entry=entry)
    config = {"run": to_dict(spec), "setup": setup_identity(suite.models[spec.model], spec.ratio),
              "method": to_dict(mcfg)}
    return ResolvedRun(spec=spec, suite=suite, method_cfg=mcfg,
                       weights=method_weights(suite, spec.model, spec.method, cfg=mcfg, entry=entry),
                       tuning=tuning_provenance(suite.name, spec.model, spec.method, spec.shape, entry=entry),
                       config=config)


def setup_identity(setup: ModelSetup, ratio: float) -> dict[str, Any]:
    """``setup`` as a run or tuning score of a student of width ``ratio`` records it. The L1
    stage's ``lr_ratio`` is left out where it changes nothing (None, or this very ratio), and
    ``cycle`` where it is None: runs and scores made before those knobs existed stay those of
    the same config."""
    out = to_dict(setup)
    del out["seeds"]  # which seeds a table runs changes no run of it
    pre = setup.student_pretrain
    if pre is not None and not pre.scales_lr(ratio):
        del out["student_pretrain"]["lr_ratio"]
    if setup.cycle is None:  # likewise: families without CycleGAN's objective keep their configs
        del out["cycle"]
    del out["dataset"]  # the default only: the data a run uses is its RunSpec's
    return out


def explicit_options(suite: SuiteConfig, model: str, method: str) -> dict[str, Any]:
    """What the suite's YAML sets for ``method`` on ``model`` (suite-wide, then per model)."""
    return merge(suite.method_options.get(method, {}), suite.models[model].method_options.get(method, {}))


#: "read the tuned table" (an ``entry`` argument not given; None is a table without the method)
_READ: Any = object()


def method_options(suite: SuiteConfig, model: str, method: str, tuned: bool = True,
                   balanced: dict[str, float] | None = None, entry: Any = _READ) -> Any:
    """The typed config of ``method`` for ``model`` in ``suite``: defaults, then the suite's
    options, then the model's; with ``tuned``, the weights `gankd tune` balanced are set and each
    distillation weight the suite does not set is scaled by the factor it chose
    (``benchmarks/tuned/<suite>.yaml``; ``entry``: its entry, already read). ``balanced``
    (untuned configs): weights to set first."""
    from gankd.methods import METHODS, method_config

    over = explicit_options(suite, model, method)
    where = f"{suite.name}: method_options.{method} ({model})"
    cfg = method_config(method, over, where)
    if not tuned:
        entry = None
    elif entry is _READ:
        entry = tuned_entry(suite.name, model, method)
    if entry is not None:
        balanced = entry.get("balanced", {}).get("weights")
    if balanced:
        cfg = dataclasses.replace(cfg, **{k: float(v) for k, v in balanced.items() if k not in over})
    if entry is None:
        return cfg
    factor = float(entry["factor"])
    scaled = {f: getattr(cfg, f) * factor for f in METHODS.get(method).tuned_weights() if f not in over}
    return dataclasses.replace(cfg, **scaled)


def tuned_path(suite: str) -> Path:
    """Where `gankd tune` writes, and bench reads, a suite's chosen factors: committed under
    ``benchmarks/tuned/``; ``$GANKD_TUNED_DIR`` points elsewhere (tests, private sweeps)."""
    folder = os.environ.get("GANKD_TUNED_DIR")
    return (Path(folder) if folder else benchmarks_dir() / "tuned") / f"{suite}.yaml"


def tuned_entry(suite: str, model: str, method: str) -> dict[str, Any] | None:
    """What `gankd tune` recorded for ``method`` on ``model`` in ``suite``, if it ran."""
    path = tuned_path(suite)
    if not path.is_file():
        return None
    return (load_yaml(path).get("models") or {}).get(model, {}).get(method) or None


def tuned_factor(suite: str, model: str, method: str) -> float | None:
    """The factor `gankd tune` chose for ``method`` on ``model`` in ``suite``, if it ran."""
    entry = tuned_entry(suite, model, method)
    return float(entry["factor"]) if entry else None


def tuning_provenance(suite: str, model: str, method: str, shape: StudentShape,
                      entry: Any = _READ) -> dict[str, Any]:
    """Which tuning a run's weights come from: the sha256 of its entry in the tuned table (a
    re-tune changes it), the shape and seed it was tuned on, and whether this run's shape
    borrows factors tuned on another one. Empty where the method was not tuned."""
    if entry is _READ:
        entry = tuned_entry(suite, model, method)
    if entry is None:
        return {}
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()
    tuned_on = str(entry.get("shape", ""))
    out: dict[str, Any] = {"sha256": digest, "shape": tuned_on, "seed": entry.get("seed"),
                           "runs": len(entry.get("scores", {}))}
    if tuned_on and tuned_on != shape.tag:
        out["borrowed"] = f"factors borrowed from {tuned_on}"
    return out


def method_weights(suite: SuiteConfig, model: str, method: str, cfg: Any = None,
                   entry: Any = _READ) -> dict[str, dict[str, Any]]:
    """Each distillation weight of ``method`` as used on ``model``, with where it comes from:
    ``paper`` / ``ours`` (the default), ``tuned`` (x factor of that default) or ``suite``
    (``cfg``, ``entry``: the run's method config and tuned entry, where already resolved)."""
    from gankd.config import provenance
    from gankd.methods import METHODS

    cls = METHODS.get(method).Config
    names = METHODS.get(method).tuned_weights()
    if not names:
        return {}
    if entry is _READ:
        entry = tuned_entry(suite.name, model, method)
    if cfg is None:
        cfg = method_options(suite, model, method, entry=entry)
    over = explicit_options(suite, model, method)
    factor = float(entry["factor"]) if entry else None
    balanced = (entry or {}).get("balanced", {}).get("weights", {})
    default_source = provenance(cls)
    out = {}
    for name in names:
        if name in over:
            source = "suite"
        elif name in balanced:
            source = f"tuned (balanced by gradient norm, then x{factor:g})"
        elif factor is not None:
            source = f"tuned (x{factor:g} of the {default_source.get(name, 'ours')} default)"
        else:
            source = default_source.get(name, "ours")
        out[name] = {"value": getattr(cfg, name), "source": source}
    return out


class SuiteIndex(Suites):
    """What the results side is told about this checkout's suites (``gankd.results.suites``):
    their protocols, their models' tasks, and each record's config against its suite's current
    one. Each suite is loaded once, when a record of it is first asked about; a suite this
    checkout does not have is answered for as the default does."""

    def __init__(self) -> None:
        self._loaded: dict[str, SuiteConfig | None] = {}

    def suite(self, name: str) -> SuiteConfig | None:
        if name not in self._loaded:
            self._loaded[name] = load_suite(name) if name in suite_names() else None
        return self._loaded[name]

    def protocol(self, suite: str) -> Protocol:
        found = self.suite(suite)
        return found.protocol if found is not None else Protocol()

    def task(self, suite: str, model: str) -> str | None:
        found = self.suite(suite)
        return str(found.models[model].task) if found is not None and model in found.models else None

    def declared_seeds(self, suite: str, model: str, ratio: float, depth: int | None) -> int | None:
        found = self.suite(suite)
        if found is None or model not in found.models:
            return None
        return len(found.seeds_for(model, StudentShape(ratio, depth)))

    def config_change(self, results: Path, record: RunRecord) -> list[str]:
        found = self.suite(record.suite)
        if found is None or record.model not in found.models:
            return []
        spec = RunSpec(record.suite, record.model, record.method, record.ratio, record.seed, record.data,
                       record.depth)
        try:
            return store.config_change(results / record.run_dir, resolve(found, spec).config, record)
        except ConfigError:  # a method the suite no longer knows: shown as it was recorded
            return []
