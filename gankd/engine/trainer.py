"""The loop every method shares.

Per step: the student's forward (with the method's taps), the teacher's outputs (cached or
online), the generator step (every discriminator frozen), the EMA update, then one step of each
active discriminator. Terms are logged by name, checked for NaN/Inf, averaged over ``log_every``
steps. Checkpoints hold every trainable network, the optimizers, the EMA, all RNG states, the
sampler and the history, so an interrupted run resumes exactly where its last checkpoint was.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from gankd.engine import checkpoint
from gankd.engine.config import TrainConfig
from gankd.engine.ema import EMA
from gankd.engine.method import Method, Step
from gankd.engine.seeding import rng_state, set_rng_state
from gankd.engine.taps import FeatureTaps
from gankd.engine.teacher import Teacher
from gankd.errors import GankdError

log = logging.getLogger(__name__)


class NonFiniteLoss(GankdError):
    def __init__(self, step: int, term: str, value: float) -> None:
        super().__init__(f"loss term {term!r} became {value} at step {step}; the run stops here "
                         "(lower the learning rate or the term's weight)")
        self.step, self.term, self.value = step, term, value


class Sampler(Protocol):
    def next(self) -> Any: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainResult:
    steps: int
    wall_time_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    val_history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None
    peak_memory_mb: float = 0.0
    step_time_s: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GankdError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(name)


def _set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class Trainer:
    def __init__(self, cfg: TrainConfig, student: nn.Module, method: Method, teacher: Teacher | None,
                 sampler: Sampler, run_dir: Path | None = None,
                 validate: Callable[[nn.Module], dict[str, float]] | None = None,
                 progress: bool = True, desc: str = "train") -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.cuda = self.device.type == "cuda"
        self.student = student.to(self.device)
        self.method = method.to(self.device)
        method.recipe.to(self.device)
        if self.cuda and cfg.channels_last:
            self.student.to(memory_format=torch.channels_last)
            self.method.to(memory_format=torch.channels_last)
        self.teacher = teacher
        self.sampler = sampler
        self.run_dir = run_dir
        self.validate = validate
        self.progress = progress
        self.desc = desc
        self.ema = EMA(self.student, method.recipe.cfg.ema_decay)
        self.forward_student: nn.Module = self.student
        if cfg.compile and self.cuda:
            self.forward_student = torch.compile(self.student)
        self.opt_g = method.recipe.generator_optimizer(
            list(self.student.parameters()) + list(method.generator_side()))
        self.opt_d = {name: method.recipe.discriminator_optimizer(list(d.parameters()))
                      for name, d in method.discriminators.items()}
        self.student_taps = FeatureTaps(self.student, method.student_taps, "student tap")
        self.step = 0
        self.d_steps = 0
        self.history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []
        self._acc: dict[str, float] = {}
        self._acc_n = 0
        self._elapsed = 0.0

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "d_steps": self.d_steps,
            "student": self.student.state_dict(),
            "ema": self.ema.state_dict(),
            "method": self.method.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": {k: o.state_dict() for k, o in self.opt_d.items()},
            "rng": rng_state(),
            "sampler": self.sampler.state_dict(),
            "history": self.history,
            "val_history": self.val_history,
            "acc": (self._acc, self._acc_n),
            "elapsed": self._elapsed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.d_steps = state["d_steps"]
        self.student.load_state_dict(state["student"])
        self.ema.load_state_dict(state["ema"])
        self.method.load_state_dict(state["method"])
        self.opt_g.load_state_dict(state["opt_g"])
        for k, o in self.opt_d.items():
            o.load_state_dict(state["opt_d"][k])
        set_rng_state(state["rng"])
        self.sampler.load_state_dict(state["sampler"])
        self.history = state["history"]
        self.val_history = state["val_history"]
        self._acc, self._acc_n = state["acc"]
        self._elapsed = state["elapsed"]

    @property
    def ckpt_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    def save_checkpoint(self) -> Path | None:
        if self.ckpt_dir is None:
            return None
        return checkpoint.save(self.ckpt_dir, self.step, self.state_dict(), keep=self.cfg.ckpt_keep)

    def try_resume(self) -> int | None:
        if self.ckpt_dir is None:
            return None
        found = checkpoint.load_latest(self.ckpt_dir)
        if found is None:
            return None
        state, path = found
        self.load_state_dict(state)
        log.info("resumed from %s (step %d)", path.name, self.step)
        return self.step

    # -- one step ------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cuda and self.cfg.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> dict[str, float]:
        step = self.step
        batch = self.sampler.next().to(self.device, non_blocking=self.cuda)
        if self.cuda and self.cfg.channels_last:
            batch.g_input = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
                                  for t in batch.g_input)
        teacher_out = None
        if self.method.uses_teacher and self.teacher is not None:
            teacher_out = self.teacher.outputs(batch)

        self.student.train()
        self.method.train()
        for d in self.method.discriminators.values():
            _set_trainable(d, False)
        with self._autocast():
            with self.student_taps:
                fake = self.forward_student(*batch.g_input)
                feats = self.student_taps.collect() if self.method.student_taps else []
            s = Step(step, batch, fake.float(), feats, teacher_out, self.d_steps)
            g_terms = self.method.generator_terms(s)
        logged = self._check("g", g_terms, step)
        self.opt_g.zero_grad(set_to_none=True)
        sum(g_terms.values()).backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.opt_g.param_groups[0]["params"], self.cfg.grad_clip)
        self.opt_g.step()
        self.ema.update(self.student)

        active = self.method.active_discriminators(step)
        if active:
            for name in active:
                _set_trainable(self.method.discriminators[name], True)
            with self._autocast():
                d_terms = self.method.discriminator_terms(s, active)
            logged.update(self._check("d", d_terms, step))
            for name in active:
                self.opt_d[name].zero_grad(set_to_none=True)
            sum(d_terms.values()).backward()
            for name in active:
                self.opt_d[name].step()
            self.d_steps += 1
        self.step += 1
        return logged

    @staticmethod
    def _check(side: str, terms: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        out = {}
        for name, value in terms.items():
            v = float(value.detach())
            if not torch.isfinite(value.detach()).all():
                raise NonFiniteLoss(step, f"{side}/{name}", v)
            out[f"{side}/{name}"] = v
        return out

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        resumed = self.try_resume()
        total = self.cfg.steps
        bar = tqdm(total=total, initial=self.step, desc=self.desc, disable=not self.progress,
                   dynamic_ncols=True, unit="step")
        t0 = time.perf_counter()
        start_step = self.step
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        while self.step < total:
            terms = self.train_step()
            self._accumulate(terms)
            # A log row never mixes stages: a stage boundary closes the current window.
            boundary = self.step < total and self.method.stage(self.step) != self.method.stage(self.step - 1)
            if self.step % self.cfg.log_every == 0 or self.step == total or boundary:
                row = self._flush()
                bar.set_postfix_str(_short(row), refresh=False)
            if self.validate and self.cfg.val_every and (self.step % self.cfg.val_every == 0
                                                         or self.step == total):
                self.val_history.append({"step": self.step, **self.validate(self.ema.model)})
            bar.update(1)
            if self.cfg.ckpt_every and self.step % self.cfg.ckpt_every == 0 and self.step < total:
                self._elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save_checkpoint()
        bar.close()
        self._elapsed += time.perf_counter() - t0
        steps_run = self.step - start_step
        self.save_checkpoint()
        return TrainResult(steps=self.step, wall_time_s=self._elapsed, history=self.history,
                           val_history=self.val_history, resumed_from=resumed,
                           peak_memory_mb=self.peak_memory_mb(),
                           step_time_s=self._elapsed / max(1, self.step) if steps_run else 0.0)

    def peak_memory_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    def _accumulate(self, terms: dict[str, float]) -> None:
        for k, v in terms.items():
            self._acc[k] = self._acc.get(k, 0.0) + v
        self._acc_n += 1

    def _flush(self) -> dict[str, float]:
        n = max(self._acc_n, 1)
        row = {"step": float(self.step), **{k: v / n for k, v in sorted(self._acc.items())}}
        stage = self.method.stage(self.step - 1)
        row["stage"] = stage  # type: ignore[assignment]
        self.history.append(row)
        self._acc, self._acc_n = {}, 0
        return row


def _short(row: dict[str, Any]) -> str:
    parts = [str(row.get("stage", ""))]
    parts += [f"{k.split('/', 1)[1] if k.startswith('g/') else k}={v:.3g}"
              for k, v in row.items() if k not in ("step", "stage")]
    return " ".join(p for p in parts if p)
