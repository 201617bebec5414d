"""How a run spreads over processes and devices: ``torchrun`` + DistributedDataParallel, and the
CUDA path (bf16 autocast, channels_last, fp32 discriminator heads).

Launch::

    torchrun --nproc_per_node 4 -m gankd.cli bench --suite paper --model realesrgan ...
    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 --rdzv_endpoint HOST:PORT -m gankd.cli ...

:func:`from_env` reads torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (``MASTER_ADDR`` /
``MASTER_PORT`` through ``env://``) and joins the process group: NCCL on CUDA, gloo on CPU.
Without those variables a run is a single process and nothing here changes what it does.

What each rank does:

- **batch**: ``TrainConfig.batch_size`` is the *global* batch. In pool mode every rank draws the
  same seeded permutation and takes its contiguous share of each global batch, so the ranks'
  batches laid end to end are exactly the single-process batch; the resolved config defines a run
  whatever the number of GPUs. In online mode each rank streams ``batch_size / world_size`` crops
  from its shard of every epoch (``online_batches(..., rank, world_size)``), degraded on its GPU
  with a per-rank seed; the pair queue (``queue_size``) is global too and split the same way.
  ``batch_size`` (and ``queue_size``) must divide by the world size.
- **networks**: only what trains is wrapped in DDP: one wrapper holds the student and the
  method's generator side (adapters, connectors), one the discriminators. The frozen teacher is
  replicated on each rank without DDP. DDP averages gradients, so the update equals the
  single-process update on the global batch (losses are batch means); logged loss terms are
  averaged over ranks, so curves show the global batch too. BatchNorm (DCD's connectors) becomes
  SyncBatchNorm on CUDA; on CPU it normalises each rank's share alone (gloo has no SyncBatchNorm),
  the one place a CPU multi-process run differs from the single-process one.
- **I/O**: rank 0 alone writes checkpoints, results and reports, and evaluates (the evaluation
  is not sharded: the other ranks finish when training does). A checkpoint holds the RNG state
  of every rank; rank 0 reads it on resume and broadcasts it, so nodes need no shared disk.

Nondeterminism on GPU (a CPU run is bitwise reproducible; a CUDA run is not, even on one GPU):
cuDNN's convolution algorithms are chosen per shape and several backward kernels (and the
bilinear/bicubic resizes' backward) accumulate with atomic adds, so gradients vary in the last
bits from run to run; ``torch.use_deterministic_algorithms`` is not set (it costs speed and some
ops have no deterministic kernel). bf16 autocast then amplifies those differences; NCCL's
all-reduce order depends on the topology; ``torch.compile`` may fuse differently across torch
versions. The online degradation is seeded per (seed, rank, step) but runs on the GPU with the
same kernel caveats. The discriminators' spectral-norm vectors are updated on each rank without
syncing (see ``Dist.wrap``): on GPU they may drift apart by rounding, which is harmless for a
power-iteration estimate. Runs with one seed agree to within noise, not bit for bit: compare
methods over seeds.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import types
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from gankd.datasets.batch import Batch
from gankd.datasets.config import DataConfig
from gankd.datasets.online import online_batches
from gankd.datasets.seeding import derive_seed
from gankd.engine.sampler import PoolSampler, StreamSampler
from gankd.engine.seeding import rng_state, seed_everything, set_rng_state
from gankd.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; ``Dist()`` is a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, batch_size: int) -> int:
        """This rank's share of the global batch."""
        if batch_size % self.world_size:
            raise ConfigError(f"batch_size {batch_size} (the global batch) must be divisible by the "
                              f"number of processes {self.world_size}")
        return batch_size // self.world_size

    # -- collectives (no-ops in a single process) ---------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Averages of ``values`` over ranks (every rank passes the same keys, in the same order)."""
        if not self.enabled or not values:
            return values
        device = torch.device("cuda", torch.cuda.current_device()) if _nccl() else torch.device("cpu")
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        torch_dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist()))

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    # -- networks ------------------------------------------------------------------------
    def wrap(self, module: nn.Module, find_unused: bool = False) -> nn.Module:
        """``module`` in DDP when running distributed and it has anything to train; else itself.

        Buffers are made equal once, at construction, and not re-broadcast before each forward:
        every buffer here is a deterministic function of weights that DDP already keeps equal
        (spectral-norm power iterations, fixed noise), and an in-place broadcast would invalidate
        the spectral-norm vectors saved for backward.
        ``find_unused``: some parameters may get no gradient in a step (SDAKD's adapters in
        stage 1, a discriminator a method leaves out).
        """
        if not self.enabled or not any(p.requires_grad for p in module.parameters()):
            return module
        # device_ids=None: the module sits on one device and DDP leaves the inputs alone (our
        # inputs are dataclasses whose pool indices stay on the CPU).
        return nn.parallel.DistributedDataParallel(
            module, device_ids=None, find_unused_parameters=find_unused, **{_NO_FORWARD_BUFFER_SYNC: False})

    # -- RNG -----------------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any] | list[dict[str, Any]]:
        """The RNG state to checkpoint: this process's, or every rank's when distributed."""
        return self.gather(rng_state()) if self.enabled else rng_state()

    def set_rng_state(self, state: dict[str, Any] | list[dict[str, Any]]) -> None:
        if isinstance(state, dict):  # written by a single process
            if self.enabled:
                log.warning("checkpoint was written by one process; %d ranks continue with derived "
                            "random streams", self.world_size)
                set_rng_state(state)
                self.diverge_rng()
                return
            set_rng_state(state)
            return
        if len(state) != self.world_size:
            log.warning("checkpoint was written by %d processes, this run has %d: the random streams "
                        "differ from an uninterrupted run", len(state), self.world_size)
            set_rng_state(state[0])
            self.diverge_rng()
            return
        set_rng_state(state[self.rank])

    def diverge_rng(self) -> None:
        """Give each rank its own global random stream (noise injection, per-sample draws);
        the networks were already made equal by DDP's broadcast of rank 0's weights."""
        if self.enabled:
            seed_everything(derive_seed("rank", torch.initial_seed(), self.rank))


# recent torch renamed broadcast_buffers (the per-forward sync) to forward_sync_buffers
_NO_FORWARD_BUFFER_SYNC = ("forward_sync_buffers" if "forward_sync_buffers" in
                           inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
                           else "broadcast_buffers")


def _nccl() -> bool:
    return torch_dist.is_initialized() and torch_dist.get_backend() == "nccl"


def from_env(device: str = "auto") -> Dist:
    """This process's :class:`Dist` from torchrun's environment; joins the process group once.

    ``device``: the run's configured device (``auto``/``cpu``/``cuda``); CUDA ranks use NCCL and
    GPU ``LOCAL_RANK``, CPU ranks gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise ConfigError("WORLD_SIZE > 1 but RANK is missing or not an integer: launch with "
                          "torchrun") from None
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not torch_dist.is_initialized():
        if cuda:
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} "
                                  "GPU(s): use --nproc_per_node <= the GPU count")
            torch.cuda.set_device(local_rank)
        torch_dist.init_process_group("nccl" if cuda else "gloo", init_method="env://",
                                      rank=rank, world_size=world)
    log.info("rank %d of %d (local rank %d, %s)", rank, world, local_rank, torch_dist.get_backend())
    return Dist(rank, world, local_rank)


def shutdown() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


# -- sampling ------------------------------------------------------------------------------
class RankShare:
    """A pool seen by one rank: each global batch of indices is cut into ``world_size``
    contiguous shares and this rank loads its own. Wrapped by ``PoolSampler``, whose permutation
    and state are then the same on every rank."""

    def __init__(self, pool: Any, dist: Dist) -> None:
        self.pool, self.dist = pool, dist
        self.key = pool.key

    def __len__(self) -> int:
        return len(self.pool)

    def batch(self, index: torch.Tensor) -> Batch:
        share = self.dist.local_batch(len(index))
        return self.pool.batch(index[self.dist.rank * share:(self.dist.rank + 1) * share])

    def own_rows(self, index: torch.Tensor) -> Batch:
        """Rows already cut to this rank's share (``PoolSampler.rows``)."""
        return self.pool.batch(index)


def training_sampler(data_cfg: DataConfig, data: str, batch_size: int, seed: int, pool: Any,
                     device: torch.device | str = "cpu", dist: Dist | None = None
                     ) -> PoolSampler | StreamSampler:
    """The training batches of this process (the only sampler factory): from the cached ``pool``
    when there is one, else the online stream of ``data``. Under torchrun (module doc) each rank
    takes its share of every global pool batch, or its shard of the stream with ``batch_size``
    and the pair queue split over ranks; a single process is the one-rank case."""
    dist = dist or Dist()
    if pool is not None:
        dist.local_batch(batch_size)  # fail now, not at the first batch
        return PoolSampler(RankShare(pool, dist), batch_size, seed)
    if data_cfg.queue_size % dist.world_size:
        raise ConfigError(f"queue_size {data_cfg.queue_size} (global) must be divisible by the number of "
                          f"processes {dist.world_size}")
    cfg = dataclasses.replace(data_cfg, queue_size=data_cfg.queue_size // dist.world_size)
    return StreamSampler(online_batches(cfg, data, dist.local_batch(batch_size), seed, device,
                                        rank=dist.rank, world_size=dist.world_size))


# -- the CUDA path -------------------------------------------------------------------------
def fp32_head(disc: nn.Module) -> nn.Module:
    """Run ``disc``'s final layer (the module named by ``penultimate``, whose input is the last
    hidden activation) outside autocast, in fp32: the logits feed BCE / softplus losses and the
    R1 penalty, where bf16's 8-bit mantissa costs more than the layer's tiny compute saves.
    The layer keeps its name and parameters, so state dicts and taps are unchanged."""
    head = disc.get_submodule(disc.penultimate)
    if getattr(head, "_gankd_fp32", False):
        return disc
    cls_forward = type(head).forward

    def forward(self: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return cls_forward(self, x.float(), *args, **kwargs)

    head.forward = types.MethodType(forward, head)
    head._gankd_fp32 = True
    return disc


def to_channels_last(batch: Batch) -> Batch:
    def cl(t: torch.Tensor | None) -> torch.Tensor | None:
        return t.contiguous(memory_format=torch.channels_last) if t is not None and t.dim() == 4 else t

    return Batch(tuple(cl(t) for t in batch.g_input), cl(batch.real), cl(batch.target), batch.index)
