"""Where a thin student's training time goes, and what cuts it: eager against channels_last,
a doubled batch (per image) and ``torch.compile``, for the cpu suite's students.

A Real-ESRGAN student at r = 1/4 is 23 RRDB blocks of 16-channel convolutions: ~350 small
convolutions whose fixed cost per call outweighs their arithmetic at 12x12 LR inputs. Each
variant's forward+backward is timed in interleaved rounds (one of each per round, so load on
the machine falls on all alike) and printed as time per image and as a ratio to eager.
Run: ``python benchmarks/perf_student.py [--rounds 5] [--no-compile]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from gankd.bench.suite import load_suite
from gankd.models import zoo


def _fwd_bwd(net: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    def run() -> None:
        net(*inputs).mean().backward()
    return run


def variants(model: str, batch: int, compile_: bool) -> dict[str, tuple[Callable[[], None], int]]:
    suite = load_suite("cpu")
    setup = suite.models[model]
    entry = zoo.student(setup.teacher, suite.ratios[0], setup.student)
    side = setup.data.hr_crop // 4 if model == "realesrgan" else setup.data.hr_crop
    torch.manual_seed(0)
    net = entry.build().train()
    if hasattr(net, "set_random_noise"):
        net.set_random_noise(False)
    x = net.example_inputs(batch, side)
    x2 = net.example_inputs(2 * batch, side)
    out = {"eager": (_fwd_bwd(net, x), batch),
           f"eager, batch {2 * batch}": (_fwd_bwd(net, x2), 2 * batch)}
    try:  # GCFSR's modulated convolutions hold 5-D weights: channels_last does not apply
        cl = entry.build().train().to(memory_format=torch.channels_last)
    except RuntimeError as err:
        print(f"{model}: channels_last not applicable ({err})")
    else:
        if hasattr(cl, "set_random_noise"):
            cl.set_random_noise(False)
        cl.load_state_dict(net.state_dict())
        x_cl = tuple(t.to(memory_format=torch.channels_last) if t.dim() == 4 else t for t in x)
        out["channels_last"] = (_fwd_bwd(cl, x_cl), batch)
    if compile_:
        out["torch.compile"] = (_fwd_bwd(torch.compile(net), x), batch)
    return out


def measure(model: str, batch: int, rounds: int, compile_: bool) -> dict[str, float]:
    vs = variants(model, batch, compile_)
    t_warm = {}
    for name, (fn, _) in vs.items():  # warm-up (compile happens here)
        t0 = time.perf_counter()
        fn()
        t_warm[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {k: [] for k in vs}
    for _ in range(rounds):
        for name, (fn, n) in vs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / n)
    per_image = {k: statistics.median(v) for k, v in times.items()}
    first = ", ".join(f"{k} {v:.1f} s" for k, v in t_warm.items())
    print(f"{model} student, batch {batch}: first call {first}")
    for k, v in per_image.items():
        print(f"  {k:16s} {v * 1000:8.1f} ms/image   x{v / per_image['eager']:.2f} of eager")
    return per_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", choices=["realesrgan", "gcfsr"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    for model in args.model or ["realesrgan", "gcfsr"]:
        measure(model, args.batch, args.rounds, not args.no_compile)


if __name__ == "__main__":
    main()
