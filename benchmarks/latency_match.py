"""Find a latency-matched student pair: for a reference student (width ratio, depth), the depth at
another width whose torch-eager inference latency is closest, measured interleaved in one process
(each round times every candidate once, so load on the machine falls on all alike).

This is how the cpu suite's shallow-wide student was chosen against its deep-thin default
(docs/methods.md, "Students"; measured in docs/deployment.md); the suite's own latency step
re-measures both, each runtime in its own process.
Run: ``python benchmarks/latency_match.py [--ref 0.25:23] [--ratio 0.5] [--depths 4,6,8,10,12]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gankd.bench.suite import load_suite
from gankd.models import zoo

CLOCK = time.perf_counter


def latency_table(shapes: list[tuple[float, int]], size: int,
                  rounds: int) -> dict[tuple[float, int], tuple[float, float]]:
    setup = load_suite("cpu").models["realesrgan"]
    nets, inputs = {}, {}
    for r, d in shapes:
        torch.manual_seed(0)
        net = zoo.student(setup.teacher, r, {**setup.student, "num_block": d}).build().eval()
        nets[(r, d)], inputs[(r, d)] = net, net.example_inputs(1, size)
    times: dict[tuple[float, int], list[float]] = {k: [] for k in nets}
    with torch.inference_mode():
        for k, net in nets.items():  # warm-up
            net(*inputs[k])
        for _ in range(rounds):
            for k, net in nets.items():
                t0 = CLOCK()
                net(*inputs[k])
                times[k].append(CLOCK() - t0)
    # the fastest round: on a loaded machine the one least disturbed (the median is printed too)
    return {k: (min(v) * 1000, statistics.median(v) * 1000) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="0.25:23", help="reference student, ratio:depth")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--depths", default="4,6,8,10,12")
    ap.add_argument("--size", type=int, default=64, help="LR side (the cpu suite's latency size)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--cpu-time", action="store_true",
                    help="one thread, timed by its CPU time: a ratio that holds on a loaded machine")
    args = ap.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.thread_time
    torch.set_num_threads(1 if args.cpu_time else 2)
    r0, d0 = args.ref.split(":")
    ref = (float(r0), int(d0))
    shapes = [ref] + [(args.ratio, int(d)) for d in args.depths.split(",")]
    table = latency_table(shapes, args.size, args.rounds)
    for (r, d), (ms, med) in table.items():
        macs_rel = (r * r * d) / (ref[0] ** 2 * ref[1])
        print(f"r{r:g}-d{d:<3d} fastest {ms:8.1f} ms (median {med:8.1f})   x{ms / table[ref][0]:.2f} of the "
              f"reference   trunk MACs x{macs_rel:.2f}")
    best = min(shapes[1:], key=lambda s: abs(table[s][0] - table[ref][0]))
    print(f"closest to r{ref[0]:g}-d{ref[1]}: r{best[0]:g}-d{best[1]}")


if __name__ == "__main__":
    main()
