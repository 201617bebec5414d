"""Live training curves: TensorBoard event files in every run folder, Weights & Biases on request.

The trainer talks to one :class:`LiveLog`; :func:`open_log` picks what stands behind it: the
TensorBoard writer (on by default, ``GANKD_TENSORBOARD=0`` turns it off), a W&B run when asked
(``gankd bench|sweep --wandb`` or ``WANDB_PROJECT`` set), both, or :class:`NullLog` -- always on
ranks > 0 of a torchrun job and for runs without a folder.

Tags, one namespace for both back ends:

- at each log row (``TrainConfig.log_every``), the numbers of the run record's history: the loss
  terms as window means (``g/<term>``, ``d/<disc>/<term>``) and each generator term's gradient norm
  on the student (``gradnorm/<term>``); beside them each term's share of those norms'
  sum (``grad_share/<term>``), the method's defining terms together (``kd_share``, the
  leaderboard's column), each discriminator's mean raw output on real and on generated images over
  the window (``d_out/<disc>/real``, ``d_out/<disc>/fake``: logits, or LSGAN's scores; under
  torchrun rank 0's share of the batch, where the loss terms are averaged over ranks) and the
  seconds per step over the window (``time/step_s``);
- at each validation: ``val/<metric>`` and the EMA student's outputs of the first validation
  images, ``val_images/<name>``;
- at the end of a bench run: ``eval/<metric>`` and ``eval_images/<name>`` (the report grid's crops).

Nothing here changes what a run computes: images are the ones validation and evaluation computed
anyway (no extra forward pass) and every back-end call runs with the process's Python, NumPy and
torch CPU random states saved and restored around it, so a library that draws a random number
(an id, a retry's jitter) cannot shift the training stream. Scalars go out only at log rows and
images only at validation and evaluation: a log row of 20 tags costs about 1.3 ms (measured on
the 2-core machine, the random states' save and restore included), a 256-pixel image about 55 ms
(PNG encoding), and the event file is written by TensorBoard's own background thread.

Resume: TensorBoard gets a new event file whose first event purges everything after the resumed
step (``SummaryWriter(purge_step=step + 1)``), so the steps an interrupted run logged after its
last checkpoint are shown once, as the resumed run logs them again. A run that starts at step 0
(new, ``--force``, or a changed config) deletes the folder's old event files first. W&B resumes
the same run (its id is kept in the run folder) and ignores the steps it already has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from gankd import atomic
from gankd.engine.distributed import Dist
from gankd.errors import ConfigError, GankdError

log = logging.getLogger(__name__)

#: the TensorBoard folder inside a run folder (``tensorboard --logdir results/runs`` finds it)
TB_DIR = "tb"
#: where a run folder keeps its W&B run id, so a resumed run continues the same W&B run
WANDB_ID_FILE = "wandb-run-id"
DEFAULT_PROJECT = "gankd"
#: seconds between the TensorBoard writer's flushes: how stale a live curve can be
FLUSH_S = 15


class LiveLog(Protocol):
    """What the trainer (and a bench run, for its evaluation) calls; ``active`` is False when
    nothing is written, so the caller can skip gathering numbers only this log would use."""

    active: bool

    def begin(self, step: int) -> None:
        """Open with ``step`` training steps done (0, or a resumed run's checkpoint step): every
        later call logs at a step above it."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def images(self, step: int, images: Mapping[str, torch.Tensor]) -> None:
        """``images``: (3, H, W) floats in [0, 1], by tag."""

    def flush(self) -> None: ...

    def close(self) -> None:
        """Flush and release; safe to call twice, or without ``begin``."""


class NullLog:
    """Logging off: every call does nothing."""

    active = False

    def begin(self, step: int) -> None:
        pass

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def images(self, step: int, images: Mapping[str, torch.Tensor]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def keep_rng() -> Iterator[None]:
    """The global Python, NumPy and torch CPU random states as they were before the block (the
    back ends never touch a CUDA generator)."""
    py, npy, pt = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(pt)


class TensorBoardLog:
    """Event files in ``folder`` through ``torch.utils.tensorboard.SummaryWriter``."""

    active = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: Any = None

    def begin(self, step: int) -> None:
        if self._writer is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        if step == 0:  # a run started over: the old curves belong to a discarded run
            for old in self.folder.glob("events.out.tfevents.*"):
                old.unlink()
        # Everything of ``step`` itself was logged before its checkpoint was written: drop what
        # the interrupted session logged after it.
        self._writer = SummaryWriter(str(self.folder), purge_step=step + 1, flush_secs=FLUSH_S)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)

    def images(self, step: int, images: Mapping[str, torch.Tensor]) -> None:
        for tag, img in images.items():
            self._writer.add_image(tag, img.detach().float().clamp(0, 1).cpu(), step, dataformats="CHW")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WandbLog:
    """One W&B run per gankd run; its files go under the run folder (``wandb/``)."""

    active = True

    def __init__(self, run_dir: Path, project: str, name: str, config: Mapping[str, Any] | None) -> None:
        self.run_dir, self.project, self.name = run_dir, project, name
        self.config = dict(config or {})
        self._run: Any = None

    def begin(self, step: int) -> None:
        if self._run is not None:
            return
        wandb = require_wandb("W&B logging was asked for")
        id_file = self.run_dir / WANDB_ID_FILE
        # a resumed run continues its W&B run; a run started over gets a new one
        resume_id = id_file.read_text().strip() if step > 0 and id_file.is_file() else None
        try:
            self._run = wandb.init(project=self.project, name=self.name, id=resume_id,
                                   resume="allow" if resume_id else None, dir=str(self.run_dir),
                                   config=self.config)
        except Exception as exc:  # wandb raises its own types (no login, bad project, ...)
            why = " ".join(str(exc).split())  # one line, whatever wandb's message looks like
            raise GankdError(f"W&B could not start a run in project {self.project!r}: {why} (run "
                             "`wandb login`, or set WANDB_MODE=offline)") from None
        atomic.write_text(id_file, self._run.id)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._run.log(dict(values), step=step)

    def images(self, step: int, images: Mapping[str, torch.Tensor]) -> None:
        import wandb

        self._run.log({tag: wandb.Image(_hwc_uint8(img)) for tag, img in images.items()}, step=step)

    def flush(self) -> None:
        pass  # the W&B service writes as it receives

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


class FanOut:
    """Several back ends as one; each call runs with the random states kept (module doc)."""

    active = True

    def __init__(self, logs: Sequence[LiveLog]) -> None:
        self.logs = list(logs)

    def _each(self, call: str, *args: Any) -> None:
        with keep_rng():
            for lg in self.logs:
                getattr(lg, call)(*args)

    def begin(self, step: int) -> None:
        self._each("begin", step)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._each("scalars", step, values)

    def images(self, step: int, images: Mapping[str, torch.Tensor]) -> None:
        if images:
            self._each("images", step, images)

    def flush(self) -> None:
        self._each("flush")

    def close(self) -> None:
        """Every back end is closed even when one fails (the first failure is raised after)."""
        errors = []
        with keep_rng():
            for lg in self.logs:
                try:
                    lg.close()
                except Exception as exc:  # the others still need their files flushed
                    errors.append(exc)
        if errors:
            raise errors[0]


@dataclass(frozen=True)
class LiveOptions:
    """Which back ends a run writes to (``from_request`` reads the CLI flag and the environment)."""

    tensorboard: bool = True
    wandb: bool = False
    project: str = DEFAULT_PROJECT

    @classmethod
    def from_request(cls, wandb: bool = False, env: Mapping[str, str] | None = None) -> LiveOptions:
        """``wandb``: the ``--wandb`` flag; ``WANDB_PROJECT`` in ``env`` asks for W&B too (and names
        the project). Fails now, before any training, when W&B is asked for but not installed."""
        env = os.environ if env is None else env
        project = env.get("WANDB_PROJECT", "").strip()
        if wandb or project:
            require_wandb("--wandb was given" if wandb else f"WANDB_PROJECT is set ({project!r})")
        return cls(tensorboard=tensorboard_enabled(env), wandb=bool(wandb or project),
                   project=project or DEFAULT_PROJECT)


def tensorboard_enabled(env: Mapping[str, str] | None = None) -> bool:
    """TensorBoard is on unless ``GANKD_TENSORBOARD=0``."""
    env = os.environ if env is None else env
    return env.get("GANKD_TENSORBOARD", "1").strip() != "0"


def require_wandb(why: str) -> Any:
    """The ``wandb`` module, or one line saying how to get it."""
    try:
        import wandb
    except ImportError:
        raise ConfigError(f"{why} but the wandb package is not installed: pip install wandb "
                          "(or drop --wandb / unset WANDB_PROJECT)") from None
    return wandb


def open_log(run_dir: Path | None, dist: Dist | None = None, options: LiveOptions | None = None,
             name: str = "", config: Mapping[str, Any] | None = None) -> LiveLog:
    """The live log of a run writing into ``run_dir``: rank 0 only, nothing without a folder.
    Default ``options``: TensorBoard alone (W&B is for the runs a user asked it for, not for the
    cached trainings they set off). ``name`` and ``config`` name and describe the W&B run."""
    options = options or LiveOptions(tensorboard=tensorboard_enabled())
    if run_dir is None or not (dist or Dist()).is_main:
        return NullLog()
    logs: list[LiveLog] = []
    if options.tensorboard:
        logs.append(TensorBoardLog(run_dir / TB_DIR))
    if options.wandb:
        logs.append(WandbLog(run_dir, options.project, name or run_dir.name, config))
    return FanOut(logs) if logs else NullLog()


def gradient_shares(row: Mapping[str, Any], defining: Sequence[str] = ()) -> dict[str, float]:
    """Each generator term's share of the summed gradient norms of one log row (``gradnorm/*``),
    and ``kd_share``, the ``defining`` terms' together; empty where the row has no norms."""
    norms = {k.split("/", 1)[1]: float(v) for k, v in row.items() if k.startswith("gradnorm/")}
    total = sum(norms.values())
    if total <= 0:
        return {}
    out = {f"grad_share/{t}": n / total for t, n in norms.items()}
    if defining and any(t in norms for t in defining):
        out["kd_share"] = sum(norms.get(t, 0.0) for t in defining) / total
    return out


def _hwc_uint8(img: torch.Tensor) -> np.ndarray:
    return img.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
