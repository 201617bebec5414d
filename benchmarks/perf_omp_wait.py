"""OpenMP's wait policy against a thin student's training step: why gankd leaves it at default.

A Real-ESRGAN student at r = 1/4 runs ~350 small convolutions per pass, each an OpenMP parallel
region; between regions a worker either spins (the default, for a while) or sleeps in the kernel
(``OMP_WAIT_POLICY=PASSIVE``) and must be woken for the next one. Each policy is timed in fresh
processes (the policy is read when OpenMP loads), alone and as two runs side by side, and the
ratio to the default is printed. Measured on a 2-core Intel Xeon (AVX-512), 2026-12-03: alone
0.26 s/step default, 0.90 passive (3.4x); two side by side 1.15 against 1.09 each; beside a
third training run 2.1 against 1.3 (oversubscribed, passive wins).
Run: ``python benchmarks/perf_omp_wait.py [--steps 20] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

POLICIES = {"default": None, "passive": "PASSIVE", "active": "ACTIVE"}


def child(steps: int, threads: int) -> float:
    import time

    import torch

    from gankd.bench.suite import load_suite
    from gankd.models import zoo

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    setup = load_suite("cpu").models["realesrgan"]
    torch.manual_seed(0)
    net = zoo.student(setup.teacher, 0.25, setup.student).build().train()
    x = net.example_inputs(setup.train.batch_size, setup.data.hr_crop // 4)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad()
        net(*x).abs().mean().backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def timed(policy: str | None, copies: int, steps: int, threads: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, __file__, "--child", "--steps", str(steps), "--threads", str(threads)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(child(args.steps, args.threads))
        return
    for copies in (1, 2):
        base = None
        for name, policy in POLICIES.items():
            times = timed(policy, copies, args.steps, args.threads)
            mean = sum(times) / len(times)
            base = base or mean
            print(f"{copies} run(s) at a time, {name:8s}: {mean:.3f} s/step "
                  f"({', '.join(f'{t:.3f}' for t in times)}), {mean / base:.2f}x default", flush=True)


if __name__ == "__main__":
    main()
