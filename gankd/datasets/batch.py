"""The batch every method receives, free of SR-only assumptions (SPEC section 10).

A method asks for the generator input, the real images a discriminator sees and, when the task
has one, the paired target. Unconditional generation (noise in) or unpaired translation fit the
same record: ``target`` is None there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    g_input: tuple[torch.Tensor, ...]  # positional inputs of the generator, batch-first
    real: torch.Tensor  # real images for discriminators, (N, C, H, W) in [0, 1]
    target: torch.Tensor | None = None  # paired target of pixel/perceptual losses, if any
    index: torch.Tensor | None = None  # rows of a cached pool (teacher outputs are looked up by it)

    def __len__(self) -> int:
        return self.real.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Batch(tuple(t.to(device, non_blocking=non_blocking) for t in self.g_input),
                     mv(self.real), mv(self.target), self.index)


@dataclass
class EvalSample:
    """One image of a deterministic evaluation set (tensors without a batch dimension)."""

    name: str
    g_input: tuple[torch.Tensor, ...]  # generator inputs, e.g. (lr,) or (lr_up, cond)
    hr: torch.Tensor  # (3, H, W) float in [0, 1]
    lr: torch.Tensor  # (3, h, w) float in [0, 1], for display and the bicubic baseline
    scale: int  # SR factor of this sample (PSNR/SSIM border crop)
