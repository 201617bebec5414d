"""Latency of one forward at a stated input: median and spread of timed runs after warm-up.

Each timed run is one ``model(*inputs)`` under ``torch.inference_mode`` in eval mode with random
noise off. On CPU the thread count is fixed with ``torch.set_num_threads`` for the measurement (and
restored afterwards), because latency on 2 cores and on 16 are different numbers. On CUDA every
timed forward is bracketed by ``torch.cuda.synchronize`` so that the clock sees the kernels, not
just their launch. The median is reported because a shared machine adds one-sided outliers; the
interquartile range and the 10th/90th percentiles say how noisy the measurement was.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from gankd.metrics.evaluate import check_on_device, inference_ready

if TYPE_CHECKING:
    from gankd.models.zoo import ZooEntry


@dataclass(frozen=True)
class Latency:
    median_ms: float
    iqr_ms: float  # 75th minus 25th percentile
    p10: float  # ms
    p90: float  # ms
    repeats: int
    threads: int  # torch intra-op threads during the measurement
    device: str
    dtype: str
    input_shapes: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        return d


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor], warmup: int = 3,
            repeats: int = 10, threads: int | None = None,
            device: torch.device | str = "cpu") -> Latency:
    """Time ``model(*inputs)``: ``warmup`` untimed forwards, then ``repeats`` timed ones.

    ``model`` must already be on ``device``; ``inputs`` (batch 1 for a per-image latency) are moved
    there. ``threads=None`` keeps the current ``torch.get_num_threads()``; the value in force is
    recorded either way.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    device = torch.device(device)
    check_on_device(model, device)
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    args = tuple(a.to(device) for a in args)
    dtype = next((p.dtype for p in model.parameters()), args[0].dtype)

    saved_threads = torch.get_num_threads()
    times: list[float] = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
        with inference_ready(model), torch.inference_mode():
            for _ in range(warmup):
                model(*args)
            _sync(device)
            for _ in range(repeats):
                _sync(device)
                t0 = time.perf_counter()
                model(*args)
                _sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(saved_threads)

    p10, p25, p50, p75, p90 = np.percentile(times, [10, 25, 50, 75, 90])
    return Latency(median_ms=float(p50), iqr_ms=float(p75 - p25), p10=float(p10), p90=float(p90),
                   repeats=repeats, threads=used_threads, device=str(device),
                   dtype=str(dtype).removeprefix("torch."),
                   input_shapes=tuple(tuple(a.shape) for a in args))


def measure_entry(entry: ZooEntry, warmup: int = 3, repeats: int = 10, threads: int | None = None,
                  device: torch.device | str = "cpu", size: int | None = None) -> Latency:
    """Latency of a zoo entry (random weights: timing does not depend on them) at batch 1 and
    its standard input side ``entry.input`` (or ``size``)."""
    model = entry.build().to(device)
    return measure(model, model.example_inputs(1, entry.input if size is None else size),
                   warmup=warmup, repeats=repeats, threads=threads, device=device)
