"""Calibration of distillation strength: one protocol, applied identically to every method.

Without it the leaderboard would rank our choices of lambda, not the methods: at the first step the
distillation terms pull on the student with gradient norms three orders of magnitude apart
(measured, issue 11). The papers state their weights for their own base losses (DCD's release:
a student with no base loss at all), none for an SR recipe. So, per (suite, model, method):

- every method weighs each of its distillation losses by a config field (``Method.term_weights``;
  ``Method.tuned_weights`` lists the fields); one factor scales them together, keeping the ratios
  a paper fixes (OMGD's SSIM : style : feature : TV : CD);
- a method whose own term the release's ratios leave inert declares it balanced
  (``Method.balanced``: DCD's L_DCD against its output KD): a probe of ``tune.balance_steps``
  steps from the tuning start sets that weight so its term's gradient norm on the student equals
  its reference terms'; the factors then scale every weight together;
- each factor of the suite's ``tune.factors`` (a fixed log grid around 1: the defaults; the same
  number of scored runs for every method) is one run of ``tune.fraction`` of the model's training
  steps -- the same for every method, shorter than the suite's runs -- from the tuning seed's own
  starting student (``tune.seed``, a seed no reported run uses);
- its EMA student is scored by ``tune.metric`` (``tune.task_metrics`` for a family of another
  task) on the **validation** images (never the evaluation set); the best factor is written to
  ``benchmarks/tuned/<suite>.yaml``, which ``gankd bench`` reads (``suite.method_options``),
  and every run records its weights with their source (paper / ours / tuned / suite).

Runs are stored under ``results/tune/<suite>/<model>/<method>/x<factor>/`` and resumed or
skipped like bench runs, so an interrupted tuning finishes where it stopped. A stored score is
reused only for the same config *and* the same starting networks (the teacher's and the starting
student's sha256): the same config trained on another machine is another network, and one
method's factors scored from two students would compare starts, not factors (measured: SDAKD's
x0.1 / x1 / x10 moved by 0.0006-0.003 LPIPS between an AMD EPYC's and an Intel Xeon's student).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gankd import atomic
from gankd.bench import environment
from gankd.bench.assemble import POOL_SEED, assemble, not_applicable, starting_student
from gankd.bench.data import check_data, validation_set
from gankd.bench.evaluation import evaluate_generator
from gankd.bench.suite import (
    ModelSetup,
    StudentShape,
    SuiteConfig,
    TuneConfig,
    explicit_options,
    method_options,
    setup_identity,
    tuned_path,
)
from gankd.bench.teachers import load_teacher
from gankd.config import to_dict
from gankd.engine import checkpoint
from gankd.engine.trainer import resolve_device
from gankd.errors import ConfigError
from gankd.hardware import device_family
from gankd.locks import file_lock, holder
from gankd.methods import METHODS
from gankd.metrics import metric_of
from gankd.models import zoo
from gankd.paths import cache_dir
from gankd.results import epochs

log = logging.getLogger(__name__)


def tunable(method: str) -> tuple[str, ...]:
    return METHODS.get(method).tuned_weights()


def candidate(suite: SuiteConfig, model: str, method: str, factor: float,
              balanced: dict[str, float] | None = None) -> Any:
    """The method's config with its distillation weights at ``factor`` x their defaults (the
    ``balanced`` weights set first; weights the suite sets explicitly stay as set)."""
    cfg = method_options(suite, model, method, tuned=False, balanced=balanced)
    fixed = explicit_options(suite, model, method)
    scaled = {f: getattr(cfg, f) * factor for f in tunable(method) if f not in fixed}
    return dataclasses.replace(cfg, **scaled)


def balanced_of(method: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(weight, its term, the reference terms) a method balances before the grid, if any."""
    cls = METHODS.get(method)
    if cls.balanced is None:
        return None
    own, refs = cls.balanced
    return cls.term_weights[own], own, refs


def tuning_shape(suite: SuiteConfig, model: str, method: str) -> StudentShape | None:
    """The student shape a method is tuned on: the first of the model's shapes that runs it and
    that it applies to (LIT needs a shallow student of the teacher's width); None: none does."""
    for shape in suite.student_shapes(model):
        if shape.methods and method not in shape.methods:
            continue
        if not_applicable(suite.models[model], method, shape.ratio, shape.depth) is None:
            return shape
    return None


#: where a factor's score goes when its config changed and it is scored again
STALE_SCORE = "score.stale.json"


def score_run(suite: SuiteConfig, model: str, method: str, factor: float, data: str, results: Path,
              progress: bool = True, shape: StudentShape | None = None,
              balanced: dict[str, float] | None = None) -> dict[str, Any]:
    """One tuning run (or its stored result). A method without distillation weights (``scratch``,
    the PSNR guard's reference) is run once per student shape, under ``<method>/<shape>``."""
    shape = shape or tuning_shape(suite, model, method)
    assert shape is not None
    name = f"x{factor:g}" if tunable(method) else shape.tag
    folder = results / "tune" / suite.name / model / method / name
    with file_lock(folder.parent / f".{name}.lock", holder(), what=str(folder)):  # one writer, as a run
        return _score_run(suite, model, method, factor, data, folder, shape, progress, balanced)


def _score_run(suite: SuiteConfig, model: str, method: str, factor: float, data: str, folder: Path,
               shape: StudentShape, progress: bool, balanced: dict[str, float] | None) -> dict[str, Any]:
    name = folder.name
    done = folder / "score.json"
    setup, tune = suite.models[model], suite.tune
    steps = tune.steps(setup.train.steps)
    train = dataclasses.replace(setup.train, steps=steps, val_every=0, ckpt_every=min(50, steps),
                                log_every=min(setup.train.log_every, steps))
    cfg = candidate(suite, model, method, factor, balanced)
    # what the score depends on: a stored score of another config (an edited suite, a longer
    # supervised stage) is not reused -- scores kept in git outlive the config they were made with
    config = json.loads(json.dumps({"setup": setup_identity(setup, shape.ratio), "train": to_dict(train),
                                    "method": to_dict(cfg),
                                    "shape": shape.tag, "seed": tune.seed, "data": data,
                                    "start": starting_networks(setup, shape, tune.seed, data, progress)}))
    if done.is_file():
        stored = json.loads(done.read_text())  # JSON: YAML would read 1e-05 as a string
        # a score of an older code epoch (gankd/results/epochs.py): the same config, other numbers
        epoch = score_epoch(stored)
        older = epoch is not None and epoch < epochs.CURRENT
        if stored.get("config") == config and not older:
            return stored
        log.warning("%s was scored with another config%s; scoring it again (the old score is kept as %s)",
                    folder, f" (code epoch {epoch})" if older else "", STALE_SCORE)
        done.replace(folder / STALE_SCORE)
        checkpoint.prune(folder / "checkpoints", keep=0)
    started = folder / "config.json"
    if started.is_file() and json.loads(started.read_text()) != config:  # not this config's checkpoints
        checkpoint.prune(folder / "checkpoints", keep=0)
    atomic.write_json(started, config)
    t0 = time.perf_counter()
    built = assemble(setup, method, cfg, ratio=shape.ratio, depth=shape.depth, seed=tune.seed, data=data,
                     train=train,
                     progress=progress, run_dir=folder, desc=f"tune {method} {model} {name}")
    result = built.trainer.fit()
    valset = validation_set(setup, data, suite.name, lambda: built.loaded)
    key = tune.metric_for(setup.task)
    metric = metric_of(key)  # the registered metric that returns the key (kid: fid)
    device = resolve_device(train.device)
    ev = evaluate_generator(built.trainer.ema.model, valset, sorted({metric, "psnr"}), device, setup.eval)
    if key not in ev.metrics:
        raise ConfigError(f"tune metric {key!r} could not be computed on the validation images: "
                          f"{ev.missing.get(metric, 'not produced')}")
    record = {"suite": suite.name, "model": model, "method": method, "factor": factor,
              "weights": {f: getattr(cfg, f) for f in tunable(method)}, "score": ev.metrics[key],
              "metric": key, "higher_is_better": ev.higher_is_better[key],
              "validation": {"images": ev.num_images, **ev.metrics}, "steps": result.steps,
              "wall_time_s": time.perf_counter() - t0, "history": result.history,
              "device": environment.device_info(device),
              "git_sha": environment.git_sha(), "epoch": epochs.CURRENT, "config": config}
    atomic.write_json(done, record)
    checkpoint.prune(folder / "checkpoints", keep=0)
    return record


#: starting networks already identified in this process: a tuning of one method scores five or more
#: factors from the same start, and loading the teacher and hashing the student each time costs
#: 1-2 s per run (keyed by the cache and the GANKD_ settings that locate those files)
_STARTS: dict[str, dict[str, str]] = {}


def starting_networks(setup: ModelSetup, shape: StudentShape, seed: int, data: str,
                      progress: bool = True) -> dict[str, str]:
    """The teacher and the starting student a tuning run of this shape and seed uses, by sha256
    (each trained and cached here if missing, as the run itself would)."""
    where = {"cache": str(cache_dir()), **{k: v for k, v in os.environ.items() if k.startswith("GANKD_")}}
    key = json.dumps([to_dict(setup), shape.tag, seed, data, where], sort_keys=True, default=str)
    if key not in _STARTS:
        entry = zoo.student(setup.teacher, shape.ratio, setup.student, depth=shape.depth)
        _STARTS[key] = {"teacher": load_teacher(setup, data, POOL_SEED, progress=progress).identity,
                        "student": starting_student(setup, entry, seed, data, progress)[1]}
    return dict(_STARTS[key])


def psnr_of(run: dict[str, Any]) -> float:
    return run["validation"]["psnr"]


def best_run(runs: list[dict[str, Any]], floor: float | None, margin: float | None) -> dict[str, Any]:
    """The best-scoring run among the eligible ones: with a PSNR ``floor`` (``scratch``'s validation
    PSNR less the margin), those at or above it; when none is, those within ``margin`` of the
    best PSNR among ``runs``. Without a floor, every run."""
    eligible = runs
    if floor is not None:
        assert margin is not None
        eligible = [r for r in runs if psnr_of(r) >= floor]
        if not eligible:
            top = max(psnr_of(r) for r in runs)
            eligible = [r for r in runs if psnr_of(r) >= top - margin]
    better = max if runs[0]["higher_is_better"] else min
    return better(eligible, key=lambda r: r["score"])


def search(protocol: TuneConfig, score: Callable[[float], dict[str, Any]]) -> list[dict[str, Any]]:
    """Score every factor of the fixed grid; returns the scored runs in factor order."""
    return [score(f) for f in sorted(protocol.factors)]


def balance(suite: SuiteConfig, model: str, method: str, data: str, results: Path, shape: StudentShape,
            progress: bool = True) -> dict[str, Any] | None:
    """The method's balanced weight (``Method.balanced``) from a probe of ``tune.balance_steps``
    steps at its default weights from the tuning start (seed and student as the scored runs):
    the weight times the median ratio of the reference terms' gradient norm on the student
    (the sum of their norms) to its own term's. Stored and reused like a score; None when the
    method balances nothing or the suite sets that weight itself."""
    spec = balanced_of(method)
    if spec is None or spec[0] in explicit_options(suite, model, method):
        return None
    weight, own, refs = spec
    setup, tune = suite.models[model], suite.tune
    folder = results / "tune" / suite.name / model / method / "balance"
    train = dataclasses.replace(setup.train, steps=tune.balance_steps, val_every=0, ckpt_every=0, log_every=1)
    cfg = method_options(suite, model, method, tuned=False)
    config = json.loads(json.dumps({"setup": setup_identity(setup, shape.ratio), "train": to_dict(train),
                                    "method": to_dict(cfg), "shape": shape.tag, "seed": tune.seed,
                                    "data": data,
                                    "start": starting_networks(setup, shape, tune.seed, data, progress)}))
    done = folder / "probe.json"
    if done.is_file() and json.loads(done.read_text()).get("config") == config:
        return json.loads(done.read_text())["balanced"]
    built = assemble(setup, method, cfg, ratio=shape.ratio, depth=shape.depth, seed=tune.seed, data=data,
                     train=train, progress=progress, desc=f"balance {method} {model}")
    history = built.trainer.fit().history
    ratios = []
    for row in history:
        g_own = row.get(f"gradnorm/{own}", 0.0)
        g_ref = sum(row.get(f"gradnorm/{t}", 0.0) for t in refs)
        if g_own > 0 and g_ref > 0:
            ratios.append(g_ref / g_own)
    if not ratios:
        raise ConfigError(f"tune {model} {method}: the balance probe measured no gradient of {own!r} "
                          f"and {', '.join(refs)} on the student in {len(history)} steps")
    median = statistics.median(ratios)
    value = float(f"{getattr(cfg, weight) * median:.4g}")
    result = {"weights": {weight: value}, "term": own, "against": list(refs), "steps": len(history),
              "median_norm_ratio": median, "default": getattr(cfg, weight)}
    atomic.write_json(done, {"config": config, "balanced": result, "history": history,
                             "device": environment.device_info(resolve_device(train.device)),
                             "git_sha": environment.git_sha()})
    return result


def tune(suite: SuiteConfig, models: list[str], data: dict[str, str], results: Path,
         methods: list[str] | None = None, progress: bool = True) -> Path:
    """Run the protocol for ``models`` (x ``methods``, default: every tunable method of the suite)
    and write the chosen factors; returns the file written."""
    methods = [m for m in (methods or suite.methods) if tunable(m)]
    path = tuned_path(suite.name)
    protocol = {**dataclasses.asdict(suite.tune), "factors": list(suite.tune.factors),
                "scored_on": "validation images of each model (never the evaluation set)",
                "ratio": suite.ratios[0]}
    for model in models:  # every model's data is checked before any tuning run starts
        check_data(suite.models[model], data[model])
    for model in models:
        for method in methods:
            shape = tuning_shape(suite, model, method)
            if shape is None:
                log.info("%s %s: not applicable to any student shape of the suite; not tuned", model, method)
                continue
            margin, floor = suite.tune.psnr_margin, None
            if suite.tune.guards(suite.models[model].task):  # scratch at the same budget and shape
                ref = score_run(suite, model, "scratch", 1.0, data[model], results, progress, shape=shape)
                floor = psnr_of(ref) - margin
            balanced = balance(suite, model, method, data[model], results, shape, progress)
            runs = search(suite.tune, functools.partial(
                score_run, suite, model, method, data=data[model], results=results, progress=progress,
                shape=shape, balanced=(balanced or {}).get("weights")))
            best = best_run(runs, floor, margin)
            entry = {"factor": best["factor"], "weights": best["weights"], "shape": shape.tag,
                     "seed": suite.tune.seed,
                     "scores": {f"x{r['factor']:g}": round(r["score"], 5) for r in runs}}
            if balanced:
                entry["balanced"] = balanced
            if floor is not None:
                entry["psnr"] = {f"x{r['factor']:g}": round(psnr_of(r), 2) for r in runs}
                entry["psnr_floor"] = round(floor, 2)
                if all(psnr_of(r) < floor for r in runs):
                    entry["note"] = (f"no factor within {margin:g} dB of scratch's validation PSNR "
                                     f"({floor + margin:.2f}); chosen among those within {margin:g} dB "
                                     "of the method's own best")
            entry["metric"] = best["metric"]
            if machines := scored_on(runs):
                entry["machines"] = machines
            log.info("%s %s: factor x%g (%s %s)", model, method, best["factor"], best["metric"],
                     entry["scores"])
            _record(path, protocol, model, method, entry)
    return path


def scored_on(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Which machine scored each factor (``x<factor>``: its CPU family or GPU), where the scores
    record one: a grid scored over several sessions can mix machines, whose kernels differ in the
    last bits that a GAN run amplifies, and the table should say so. Empty where no score records
    its machine (those written before scores did), so that re-running the protocol over them
    leaves the entry, and the hash the runs record of it, as it was."""
    if not any(r.get("device") for r in runs):
        return {}
    return {f"x{r['factor']:g}": device_family(r["device"]) if r.get("device") else "not recorded"
            for r in runs}


def score_epoch(stored: dict[str, Any]) -> int | None:
    """The code epoch a stored score was made in (dated by its commit where it names none)."""
    return stored["epoch"] if "epoch" in stored else epochs.dated(stored.get("git_sha", ""))


def _record(path: Path, protocol: dict[str, Any], model: str, method: str, entry: dict[str, Any]) -> None:
    """One method's choice into the table, read afresh under a lock: tunings of other models may
    run beside this one (one process per model) and write the same file."""
    with file_lock(path.with_name(f".{path.name}.lock")):
        table = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
        table["protocol"] = protocol
        table.setdefault("models", {}).setdefault(model, {})[method] = entry
        _write(path, table)


def _write(path: Path, table: dict[str, Any]) -> None:
    header = ("# Written by `gankd tune` (gankd/bench/tune.py): the distillation-weight factor each method\n"
              "# uses in this suite, chosen on validation images by the protocol below. Regenerate, do not\n"
              "# edit by hand; `gankd bench` reads it.\n")
    atomic.write_text(path, header + yaml.safe_dump(table, sort_keys=False))
