"""Evaluation of a run: the EMA student, and once per evaluation set the teacher and bicubic
references, all on the same images with the same metrics; plus complexity and latency."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankd.bench import environment
from gankd.bench.deployment import deploy_network
from gankd.bench.suite import EvalConfig, ModelSetup, RunSpec
from gankd.datasets.batch import EvalSample
from gankd.engine.teacher import Teacher
from gankd.images import save_png
from gankd.locks import file_lock
from gankd.metrics import evaluate as ev
from gankd.metrics.complexity import count
from gankd.metrics.latency import measure
from gankd.models import zoo
from gankd.results import epochs, store
from gankd.results.record import RunRecord, reference_dir
from gankd.tasks import task

#: why a translation teacher has no quality numbers: every student is judged against its outputs
TEACHER_IS_REFERENCE = "the teacher's outputs are this task's reference images"

log = logging.getLogger(__name__)


def evaluate_generator(generator: nn.Module | Any, samples: Sequence[EvalSample], metrics: Sequence[str],
                       device: torch.device, cfg: EvalConfig,
                       keep_outputs: Sequence[str] = ()) -> ev.EvalResult:
    return ev.evaluate(generator, samples, metrics, device, batch_size=cfg.batch_size,
                       metric_options={k: v for k, v in cfg.metric_options.items() if k in metrics},
                       keep_outputs=keep_outputs)


def complexity_and_latency(model: nn.Module, entry: zoo.ZooEntry, cfg: EvalConfig,
                           device: torch.device) -> dict[str, Any]:
    """Params and MACs at the entry's standard input; latency at the suite's latency input."""
    c = count(model, model.example_inputs(1, entry.input))
    lat = measure(model, model.example_inputs(1, cfg.latency.size), warmup=cfg.latency.warmup,
                  repeats=cfg.latency.repeats, threads=cfg.latency.threads, device=device)
    return {"params": c.params, "macs": c.macs, "macs_input": entry.input, "latency": lat.to_dict()}


def reference_records(results: Path, spec: RunSpec, setup: ModelSetup, teacher: Teacher, evalset: Any,
                      device: torch.device, keep: Sequence[str]) -> dict[str, RunRecord]:
    """The task's references on this evaluation set (the teacher and, for SR, bicubic; for
    translation, the input itself), computed by the first run that needs them and shared by every
    method (a lock keeps parallel jobs from computing them twice)."""
    rel = reference_dir(spec.suite, spec.model, evalset.key)
    folder = results / rel
    out: dict[str, RunRecord] = {}
    kind = task(setup.task)
    with file_lock(folder / ".lock"):
        for role in kind.references:
            path = folder / f"{role}.json"
            found = store.read_record(path) if path.is_file() else None
            if found is not None and role == "teacher" and found.source != teacher.identity:
                # another teacher's row (one of the same config trained on another machine, kept
                # with a sample): this evaluation set's teacher row must be this run's teacher
                log.warning("%s holds teacher %s, not %s: evaluated again", path, found.source,
                            teacher.identity)
                found = None
            if found is not None and (epochs.epoch_of(found) or 0) < epochs.CURRENT:
                # made by code of an older epoch (gankd/results/epochs.py); an undated one too: a
                # reference is cheap to make again and every run of its table is ranked against it
                log.warning("%s was evaluated by code of an older or undated epoch: evaluated again", path)
                found = None
            if found is not None:
                out[role] = found
                continue
            samples = evalset.samples
            if role == "teacher":
                gen: Any = teacher.net
                entry = zoo.get(setup.teacher)
                samples = kind.teacher_samples(samples, spec.suite)
            else:  # the no-network baseline: bicubic upsampling; at scale 1 the input passed through
                gen = ev.bicubic_generator(evalset.samples[0].scale, evalset.samples)
                entry = None
            if role == "teacher" and kind.teacher_is_reference:
                missing = {m: TEACHER_IS_REFERENCE for m in setup.eval.metrics}
                result = ev.EvalResult(metrics={}, higher_is_better={}, missing=missing,
                                       num_images=len(samples), wall_s=0.0, generator_s=0.0, metric_s={},
                                       outputs={s.name: s.hr for s in samples if s.name in keep})
            else:
                result = evaluate_generator(gen, samples, setup.eval.metrics, device, setup.eval, keep)
            for name, img in result.outputs.items():
                save_png(folder / role / f"{name}.png", img)
            record = RunRecord(suite=spec.suite, model=spec.model, method=role, role=role, ratio=None,
                               seed=None, data=spec.data, evalset=evalset.key, references=rel.as_posix(),
                               git_sha=environment.git_sha(), epoch=epochs.CURRENT,
                               threading=environment.threading_info(), metrics=result.metrics,
                               missing_metrics=result.missing,
                               per_image=result.per_image, samples_dir=rel.as_posix(),
                               source=teacher.identity if role == "teacher" else "")
            if entry is not None:
                cx = complexity_and_latency(teacher.net, entry, setup.eval, device)
                record.params, record.macs, record.macs_input = cx["params"], cx["macs"], cx["macs_input"]
                record.latency, record.speedup_vs_teacher = cx["latency"], 1.0
                if setup.eval.deploy.in_run:
                    record.deploy = deploy_network(teacher.net, entry, setup.eval.deploy, evalset.samples)
            else:
                lat = setup.eval.latency
                record.latency = measure(gen, teacher.net.example_inputs(1, lat.size), warmup=lat.warmup,
                                         repeats=lat.repeats, threads=lat.threads, device=device).to_dict()
            for s in evalset.samples:
                if s.name in keep and not (folder / "hr" / f"{s.name}.png").is_file():
                    save_png(folder / "hr" / f"{s.name}.png", s.hr)
                    save_png(folder / "lr" / f"{s.name}.png", s.lr)
            store.write_metrics_to(path, record)
            out[role] = record
    return out
