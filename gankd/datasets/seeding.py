"""Seeds derived from names, and a scope that pins the global RNGs BasicSR draws from.

BasicSR's degradation functions take no generator: kernels come from ``numpy.random`` and
``random``, noise and JPEG qualities from torch's global generator of the tensor's device. So a
seeded degradation runs inside :func:`seeded`, which seeds all three and restores their previous
states on exit: the caller's own random streams are untouched, and the same seed gives the same
draws no matter what ran before. Where we sample ourselves, we use explicit generators.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (suite, image name, crop index, ...), stable across runs.

    sha256 of the parts joined by ``/``: unlike ``hash()`` it does not change between processes.
    """
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """An explicit torch generator on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed python ``random``, ``numpy.random`` and torch (CPU and ``device``); restore them after.

    Not thread-safe (global state): degradations run in the main process or in DataLoader worker
    processes, never from several threads at once.
    """
    device = torch.device(device)
    py_state = random.getstate()
    np_state = np.random.get_state()
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        try:
            random.seed(seed)
            np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
            torch.default_generator.manual_seed(seed)
            if cuda_devices:
                with torch.cuda.device(cuda_devices[0]):
                    torch.cuda.manual_seed(seed)
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
