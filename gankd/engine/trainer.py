"""The loop every method shares.

Per step: the student's forward (with the method's taps), the teacher's outputs (cached or
online), the generator step (every discriminator frozen), the EMA update, then one step of each
active discriminator. Terms are logged by name, checked for NaN/Inf, averaged over ``log_every``
steps. Checkpoints hold every trainable network, the optimizers, the EMA, all RNG states, the
sampler and the history, so an interrupted run resumes exactly where its last checkpoint was.

The student's forward plus the generator terms, and the discriminator terms, each run inside one
small module (``_GeneratorLoss``, ``_DiscriminatorLoss``) so that DistributedDataParallel can wrap
exactly what trains (see ``gankd.engine.distributed``); in a single process they are called as is.

Memory: ``TrainResult.peak_memory_mb`` is the largest per-step peak. Each step starts by resetting
the high-water mark: on CUDA ``max_memory_allocated`` (tensors only, not the allocator's cache),
on CPU the process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``),
which counts everything resident -- weights, the cached pool, the interpreter. Where the reset is
not allowed the CPU figure is the process's lifetime ``ru_maxrss``, which also counts setup.
"""

from __future__ import annotations

import contextlib
import logging
import math
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from gankd.datasets.batch import Batch
from gankd.datasets.seeding import derive_seed
from gankd.engine import checkpoint, livelog, progress
from gankd.engine.config import TrainConfig
from gankd.engine.distributed import Dist, fp32_head, to_channels_last
from gankd.engine.ema import EMA
from gankd.engine.method import Method, Step
from gankd.engine.seeding import seed_everything
from gankd.engine.taps import FeatureTaps
from gankd.engine.teacher import Teacher, TeacherOutput
from gankd.errors import GankdError

log = logging.getLogger(__name__)


class NonFiniteLoss(GankdError):
    def __init__(self, step: int, term: str, value: float) -> None:
        super().__init__(f"loss term {term!r} became {value} at step {step}; the run stops here "
                         "(lower the learning rate or the term's weight)")
        self.step, self.term, self.value = step, term, value


class Validation(Protocol):
    """What a ``validate`` callback may return instead of a plain metrics mapping: the metrics and
    some of the outputs it computed (shown as images in the live log), e.g. ``EvalResult``."""

    metrics: dict[str, float]
    outputs: dict[str, torch.Tensor]


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
    peak_memory_mb: float = 0.0  # the largest per-step peak (module doc)
    step_time_s: float = 0.0
    memory_source: str = ""  # what peak_memory_mb measures


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GankdError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(name)


def _set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class StepMemory:
    """The largest per-step peak memory of this process (module doc)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.peak_mb = 0.0
        self._resettable = self.cuda or _reset_cpu_peak()
        if self.cuda:
            self.source = "cuda max_memory_allocated, per step"
        elif self._resettable:
            self.source = "cpu peak resident set (VmHWM), per step"
        else:
            self.source = "cpu peak resident set of the process since it started"

    def start(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._resettable:
            _reset_cpu_peak()

    def stop(self) -> None:
        self.peak_mb = max(self.peak_mb, self.current_peak_mb())

    def current_peak_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024  # KiB
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _reset_cpu_peak() -> bool:
    """Reset the process's peak-RSS mark (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _GeneratorLoss(nn.Module):
    """The student's forward and the method's generator terms. Its parameters are exactly what
    the generator optimizer trains (the student and the method's generator side), so DDP can
    wrap it; discriminators are reached through the method, unregistered: in this step they are
    frozen and DDP must not wait for their gradients."""

    def __init__(self, student: nn.Module, method: Method, taps: FeatureTaps,
                 forward_student: Callable[..., torch.Tensor], persistent_taps: bool) -> None:
        super().__init__()
        self.student = student
        self.side = nn.ParameterList(method.generator_side())
        self.__dict__["_method"] = method
        self.__dict__["_forward_student"] = forward_student  # the student, or its compiled form
        self._taps = taps
        self._persistent_taps = persistent_taps

    def forward(self, batch: Batch, teacher: TeacherOutput | None, step: int,
                d_steps: int) -> tuple[dict[str, torch.Tensor], Step]:
        method: Method = self.__dict__["_method"]
        if self._persistent_taps:  # hooks registered once (compiled student): reuse their dict
            self._taps.features.clear()
            taps: contextlib.AbstractContextManager = contextlib.nullcontext()
        else:
            taps = self._taps
        with taps:
            fake = self.__dict__["_forward_student"](*batch.g_input)
            feats = self._taps.collect() if method.student_taps else []
        s = Step(step, batch, fake.float(), feats, teacher, d_steps,
                 generator=self.__dict__["_forward_student"])
        # The step goes back opaque: DDP looks for unused parameters from the tensors it finds in
        # the outputs (lists, dicts, dataclasses), and ``s.fake`` reaches every student parameter
        # even in a stage whose terms leave some out (LIT's hint phase).
        return method.generator_terms(s), _Opaque(s)


class _Opaque:
    """A value DDP does not search for tensors."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _DiscriminatorLoss(nn.Module):
    """The method's discriminator terms; its parameters are the discriminators (for DDP)."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.discriminators = method.discriminators
        self.__dict__["_method"] = method

    def forward(self, s: Step, active: list[str]) -> dict[str, torch.Tensor]:
        return self.__dict__["_method"].discriminator_terms(s, active)


class Trainer:
    """Trains ``student`` with ``method``. ``dist``: this process's place in a torchrun job
    (default: a single process); ``run_dir`` must be the same path on every rank, only rank 0
    touches it. ``live``: where curves go (``gankd.engine.livelog``), owned and closed by the
    caller; by default the trainer opens TensorBoard in ``run_dir`` itself and closes it when
    ``fit`` ends, finished or failed."""

    def __init__(self, cfg: TrainConfig, student: nn.Module, method: Method, teacher: Teacher | None,
                 sampler: Sampler, run_dir: Path | None = None,
                 validate: Callable[[nn.Module], Mapping[str, float] | Validation] | None = None,
                 progress: bool = True, desc: str = "train", dist: Dist | None = None, seed: int = 0,
                 live: livelog.LiveLog | None = None) -> None:
        self.cfg = cfg
        self.dist = dist or Dist()
        self.device = resolve_device(cfg.device)
        self.cuda = self.device.type == "cuda"
        self.channels_last = self.cuda and cfg.channels_last
        self.amp = self.cuda and cfg.bf16  # bf16 autocast is the CUDA path; CPU runs in fp32
        if not self.cuda:
            # Training drives some weights and activations into subnormal floats, which x86 CPUs
            # compute 10-20x slower (measured: RRDB student steps of 0.26 s turning into 4.6 s).
            # Flushing them to zero changes nothing a metric can see. Process-wide, like threads.
            torch.set_flush_denormal(True)
        self.student = student.to(self.device)
        self.method = method.to(self.device)
        method.recipe.to(self.device)
        self.teacher = teacher
        if self.cuda:
            self._place_on_gpu()
        self.sampler = sampler
        for cache in method.row_caches():
            cache.budget = int(cfg.feature_cache_mb * 2**20)
        self.run_dir = run_dir
        self.validate = validate
        self._owns_live = live is None
        self.live: livelog.LiveLog = live if live is not None else livelog.open_log(run_dir, self.dist)
        # the discriminators' outputs are summed only for a log that shows them
        method.recipe.track_d_outputs = self.live.active
        self.progress = progress and self.dist.is_main
        self.desc = desc
        self.ema = EMA(self.student, method.recipe.cfg.ema_decay, method.recipe.cfg.ema_warmup)
        self.student_taps = FeatureTaps(self.student, method.student_taps, "student tap")
        forward_student: Callable[..., torch.Tensor] = self.student
        if cfg.compile:
            # The taps stay registered for the whole run, so dynamo traces them once: torch
            # versions differ in whether they guard on hooks added after compiling (2.4 skips
            # those guards, so a hook registered later may never run in the compiled graph).
            self.student_taps.__enter__()
            forward_student = torch.compile(self.student)
        self.opt_g = method.recipe.generator_optimizer(
            list(self.student.parameters()) + list(method.generator_side()))
        self.opt_d = {name: method.recipe.discriminator_optimizer(list(d.parameters()))
                      for name, d in method.discriminators.items()}
        self.g_loss = self.dist.wrap(
            _GeneratorLoss(self.student, method, self.student_taps, forward_student, cfg.compile),
            find_unused=bool(method.generator_side()) or method.partial_student_graph)
        self.d_loss = self.dist.wrap(_DiscriminatorLoss(method), find_unused=len(method.discriminators) > 1)
        # The training stream (noise injection, ...) from (seed, "train") alone, whatever ran in
        # this process before (e.g. a cached teacher trained on first use); a resumed run
        # replaces it with the checkpoint's states.
        seed_everything(derive_seed(seed, "train"))
        self.dist.diverge_rng()
        self.memory = StepMemory(self.device)
        #: set by gankd.engine.cost while it counts a step's MACs
        self.cost_counter: Any = None
        self.step = 0
        self.d_steps = 0
        self.history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []
        self._acc: dict[str, float] = {}
        self._acc_n = 0
        #: log each generator term's gradient norm on the student once per log window
        self.log_grad_norms = True
        self._grad_norms: dict[str, float] = {}
        self._elapsed = 0.0
        self._window_s = 0.0  # seconds in train_step over the current log window (live log)
        self._window_steps = 0

    def _place_on_gpu(self) -> None:
        """channels_last for every network, fp32 discriminator heads under bf16, SyncBatchNorm
        across ranks. Before the EMA copy and the optimizers: they see the placed networks."""
        if self.channels_last:
            nets = [self.student, self.method, self.method.recipe.vgg,
                    self.teacher.net if self.teacher is not None else None]
            for net in nets:
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        if self.amp:
            for d in self.method.discriminators.values():
                fp32_head(d)
        if self.dist.enabled:  # same Parameter objects: the optimizers are unaffected
            nn.SyncBatchNorm.convert_sync_batchnorm(self.student)
            nn.SyncBatchNorm.convert_sync_batchnorm(self.method)

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint; a collective when distributed (every rank's RNG state is gathered)."""
        return {
            "step": self.step,
            "d_steps": self.d_steps,
            "student": self.student.state_dict(),
            "ema": self.ema.state_dict(),
            "ema_updates": self.ema.updates,
            "method": self.method.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": {k: o.state_dict() for k, o in self.opt_d.items()},
            "rng": self.dist.rng_state(),
            "sampler": self.sampler.state_dict(),
            # each rank's own: a rank caches the rows of its share of the batches
            "row_caches": self.dist.gather([cache.fills for cache in self.method.row_caches()]),
            "history": self.history,
            "val_history": self.val_history,
            "acc": (self._acc, self._acc_n),
            "elapsed": self._elapsed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # first: the replay runs the teacher and the loss networks, and all RNG states come after
        per_rank = state.get("row_caches", [])  # absent from older checkpoints
        if len(per_rank) == self.dist.world_size:  # else the ranks' shares of a batch changed
            self._refill_row_caches(per_rank[self.dist.rank])
        self.step = state["step"]
        self.d_steps = state["d_steps"]
        self.student.load_state_dict(state["student"])
        self.ema.load_state_dict(state["ema"], state["ema_updates"])
        self.method.load_state_dict(state["method"])
        self.opt_g.load_state_dict(state["opt_g"])
        for k, o in self.opt_d.items():
            o.load_state_dict(state["opt_d"][k])
        self.dist.set_rng_state(state["rng"])
        self.sampler.load_state_dict(state["sampler"])
        self.history = state["history"]
        self.val_history = state["val_history"]
        self._acc, self._acc_n = state["acc"]
        self._elapsed = state["elapsed"]

    def _refill_row_caches(self, fills: list[list[list[int]]]) -> None:
        """Make each row cache's recorded calls again, in order (``gankd.engine.rowcache``): the
        cache then holds what the uninterrupted run's held, computed in the same batches, so a
        resume that crosses a reshuffle of the pool repeats it bit for bit."""
        rows_of = getattr(self.sampler, "rows", None)
        for cache, calls in zip(self.method.row_caches(), fills):
            if not calls:
                continue
            if cache.refill is None or rows_of is None:
                log.warning("a row cache cannot be refilled on resume; its rows are computed anew")
                continue
            for rows in calls:
                batch = rows_of(torch.tensor(rows, dtype=torch.long)).to(self.device, non_blocking=self.cuda)
                if self.channels_last:
                    batch = to_channels_last(batch)
                with self._autocast():  # as the training step computed them
                    cache.refill(batch, self._teacher_outputs(batch))

    @property
    def ckpt_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    def save_checkpoint(self) -> Path | None:
        if self.ckpt_dir is None:
            return None
        state = self.state_dict()  # on every rank (a collective), written by rank 0 alone
        if not self.dist.is_main:
            return None
        return checkpoint.save(self.ckpt_dir, self.step, state, keep=self.cfg.ckpt_keep)

    def try_resume(self) -> int | None:
        if self.ckpt_dir is None:
            return None
        # Rank 0 reads and broadcasts: the other ranks (other nodes) need no shared disk.
        found = self.dist.broadcast(checkpoint.load_latest(self.ckpt_dir) if self.dist.is_main else None)
        if found is None:
            return None
        state, path = found
        self.load_state_dict(state)
        log.info("resumed from %s (step %d)", path.name, self.step)
        return self.step

    # -- one step ------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _phase(self, side: str) -> contextlib.AbstractContextManager:
        return self.cost_counter.phase(side) if self.cost_counter is not None else contextlib.nullcontext()

    def _teacher_outputs(self, batch: Batch) -> TeacherOutput | None:
        if not self.method.uses_teacher or self.teacher is None:
            return None
        with self._autocast(), self._phase("teacher"):
            out = self.teacher.outputs(batch)
        if self.amp:  # what the losses compare against stays fp32
            out = TeacherOutput(out.image.float(), [f.float() for f in out.features])
        return out

    def generator_forward(self, batch: Batch, teacher_out: TeacherOutput | None,
                          step: int) -> tuple[dict[str, torch.Tensor], Step]:
        """The student's forward and the method's generator terms (through DDP when distributed)."""
        terms, s = self.g_loss(batch, teacher_out, step, self.d_steps)
        return terms, s.value

    def train_step(self) -> dict[str, float]:
        step = self.step
        batch = self.sampler.next().to(self.device, non_blocking=self.cuda)
        if self.channels_last:
            batch = to_channels_last(batch)
        teacher_out = self._teacher_outputs(batch)

        self.student.train()
        self.method.train()
        active = self.method.active_discriminators(step)
        d_first = self.method.recipe.cfg.step_order == "d_then_g"
        d_logged: dict[str, float] = {}
        if active and d_first:
            # GCFSR's order: D judges a fresh, no-grad output; G then takes a new forward.
            with self._phase("d"):
                with torch.no_grad(), self._autocast():
                    fake = self.student(*batch.g_input)
                fresh = Step(step, batch, fake.float(), [], teacher_out, self.d_steps)
                d_logged = self._discriminator_step(fresh, active, step)
        for d in self.method.discriminators.values():
            _set_trainable(d, False)
        with self._phase("g"):
            with self._autocast():
                g_terms, s = self.generator_forward(batch, teacher_out, step)
            logged = self._check("g", g_terms, step)
            if self._grad_norms_due(step):
                self._grad_norms = self._term_grad_norms(g_terms)
            self.opt_g.zero_grad(set_to_none=True)
            sum(g_terms.values()).backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.opt_g.param_groups[0]["params"], self.cfg.grad_clip)
            self.opt_g.step()
        self.ema.update(self.student)
        if active and not d_first:
            with self._phase("d"):
                d_logged = self._discriminator_step(s, active, step)
        logged.update(d_logged)
        self.step += 1
        return logged

    def _grad_norms_due(self, step: int) -> bool:
        # The last step of each log window; not under DDP (autograd.grad between a DDP forward
        # and its backward is outside what DDP's reducer expects) nor while counting MACs.
        return (self.log_grad_norms and not self.dist.enabled and self.cost_counter is None
                and (step + 1) % self.cfg.log_every == 0)

    def _term_grad_norms(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """The L2 norm of each weighted term's gradient on the student's parameters: how hard each
        term pulls, so a distillation weight can be judged against the base losses. Read-only:
        ``autograd.grad`` leaves every ``.grad`` untouched, so training is unchanged."""
        params = [p for p in self.student.parameters() if p.requires_grad]
        out = {}
        for name, term in terms.items():
            if not term.requires_grad:
                out[name] = 0.0
                continue
            grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
            out[name] = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))
        return out

    def _discriminator_step(self, s: Step, active: list[str], step: int) -> dict[str, float]:
        for name in active:
            _set_trainable(self.method.discriminators[name], True)
        with self._autocast():
            d_terms = self.d_loss(s, active)
        logged = self._check("d", d_terms, step)
        for name in active:
            self.opt_d[name].zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        for name in active:
            self.opt_d[name].step()
        self.d_steps += 1
        return logged

    def _check(self, side: str, terms: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """Each term as a float, averaged over ranks (so every rank stops at the same step when
        one of them sees NaN/Inf)."""
        if not terms:
            return {}
        floats = torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one GPU sync
        values = self.dist.mean({f"{side}/{name}": v for name, v in zip(terms, floats)})
        for name, v in values.items():
            if not math.isfinite(v):
                raise NonFiniteLoss(step, name, v)
        return values

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        resumed = self.try_resume()
        try:
            self.live.begin(self.step)
            self._loop()
        finally:  # the event files are complete up to the failure, too
            if self._owns_live:
                self.live.close()
            else:
                self.live.flush()
        return TrainResult(steps=self.step, wall_time_s=self._elapsed, history=self.history,
                           val_history=self.val_history, resumed_from=resumed,
                           peak_memory_mb=self.peak_memory_mb(),
                           # from the checkpointed elapsed time: a run killed after its last
                           # checkpoint and finished by a resume still has its real s/step
                           step_time_s=self._elapsed / self.step if self.step else 0.0,
                           memory_source=self.memory.source)

    def _loop(self) -> None:
        total = self.cfg.steps
        bar = progress.bar(total, self.step, self.desc, enabled=self.progress)
        t0 = time.perf_counter()
        while self.step < total:
            t_step = time.perf_counter()
            self.memory.start()
            terms = self.train_step()
            self.memory.stop()
            self._window_s += time.perf_counter() - t_step
            self._window_steps += 1
            self._accumulate(terms)
            bar.update(1)
            # A log row never mixes stages: a stage boundary closes the current window.
            boundary = self.step < total and self.method.stage(self.step) != self.method.stage(self.step - 1)
            if self.step % self.cfg.log_every == 0 or self.step == total or boundary:
                row = self._flush()
                bar.set_postfix_str(_short(row), refresh=False)
                self._log_live(row)
            if (self.validate and self.dist.is_main and self.cfg.val_every
                    and (self.step % self.cfg.val_every == 0 or self.step == total)):
                self._validate()
            if self.cfg.ckpt_every and self.step % self.cfg.ckpt_every == 0 and self.step < total:
                self._elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save_checkpoint()
        bar.close()
        self._elapsed += time.perf_counter() - t0
        self.save_checkpoint()

    def _validate(self) -> None:
        assert self.validate is not None
        out = self.validate(self.ema.model)
        metrics = dict(out) if isinstance(out, Mapping) else dict(out.metrics)
        self.val_history.append({"step": self.step, **metrics})
        self.live.scalars(self.step, {f"val/{k}": v for k, v in metrics.items()})
        if not isinstance(out, Mapping):
            self.live.images(self.step, {f"val_images/{k}": v for k, v in out.outputs.items()})
        self.live.flush()

    def _log_live(self, row: dict[str, Any]) -> None:
        """A log row to the live log, with what only the live log shows (module doc of
        ``gankd.engine.livelog``); nothing here feeds back into training."""
        window_s, steps = self._window_s, self._window_steps
        self._window_s, self._window_steps = 0.0, 0
        if not self.live.active:
            return
        values = {k: float(v) for k, v in row.items() if k not in ("step", "stage")}
        values.update(livelog.gradient_shares(row, self.method.defining_terms))
        taken = self.method.recipe.take_d_outputs()
        for name, d in self.method.discriminators.items():
            if id(d) in taken:
                values[f"d_out/{name}/real"], values[f"d_out/{name}/fake"] = taken[id(d)]
        if steps:
            values["time/step_s"] = window_s / steps
        self.live.scalars(self.step, values)

    def peak_memory_mb(self) -> float:
        """The largest per-step peak so far (the process's current mark if no step ran yet)."""
        return self.memory.peak_mb or self.memory.current_peak_mb()

    def _accumulate(self, terms: dict[str, float]) -> None:
        for k, v in terms.items():
            self._acc[k] = self._acc.get(k, 0.0) + v
        self._acc_n += 1

    def _flush(self) -> dict[str, float]:
        n = max(self._acc_n, 1)
        row = {"step": float(self.step), **{k: v / n for k, v in sorted(self._acc.items())},
               **{f"gradnorm/{k}": v for k, v in sorted(self._grad_norms.items())}}
        self._grad_norms = {}
        stage = self.method.stage(self.step - 1)
        row["stage"] = stage  # type: ignore[assignment]
        self.history.append(row)
        self._acc, self._acc_n = {}, 0
        return row


def _short(row: dict[str, Any]) -> str:
    parts = [str(row.get("stage", ""))]
    parts += [f"{k.split('/', 1)[1] if k.startswith('g/') else k}={v:.3g}"
              for k, v in row.items() if k not in ("step", "stage") and not k.startswith("gradnorm/")]
    return " ".join(p for p in parts if p)
