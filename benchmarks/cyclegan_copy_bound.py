"""How close can a `cyclegan` student get to the teacher's mapping at all, on given photos?

The `cyclegan` family reports nothing while no student beats its floor, the input photo itself
judged against the teacher's output (docs/own-settings.md, "Known defect"). This script measures the most a
distillation method could hope for on a data and step budget: the student trained *supervised* on
the teacher's own outputs, L1(S(x), T(x)) on domain-A crops (the strongest pairing signal any
method has; no GAN term), evaluated every ``--eval-every`` steps on the cpu suite's evaluation set
(the builtin test photos' crops, as every bench run) with the floor's metric (LPIPS) and PSNR-Y,
beside the identity's. If this bound does not clear the floor, no method's number can mean
anything at that budget; if it does, a method may. An L1 copy is blurred where it is unsure,
which LPIPS punishes: ``--kd-feature`` / ``--kd-style`` add DCD's output-KD terms to T(x) (VGG16
relu2_2 feature L1, Gram L1 over relu1_2..relu4_3; the release weights them 1e4 and 10), the
sharpening signal the distillation methods do carry.

The training crops come from the training split of each ``--data`` source (``builtin``, or a
folder such as ``make data-extra``'s), with the cpu suite's crop size, a pool of ``--pool``
crops per source; a folder's photos are resized to a short side of ``--resize-short`` first (the
builtin photos' scale). Plain lines, one per evaluation:

    python benchmarks/cyclegan_copy_bound.py --data builtin --data data/extra --steps 3000

A bound worth measuring runs for hours on a CPU: ``--checkpoint DIR`` saves the student, the
optimiser and the sampler at every evaluation, as training runs do (``gankd.engine.checkpoint``:
atomic, a sha256 beside each, a corrupt newest one skipped), and resumes from DIR's newest,
refusing one written with other arguments; a resumed run prints the same lines it would have.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gankd.bench.assemble import run_teacher
from gankd.bench.data import evaluation_set
from gankd.bench.suite import ModelSetup, load_suite
from gankd.bench.teachers import load_teacher
from gankd.datasets import pool as pools
from gankd.engine import checkpoint
from gankd.methods.terms import style_and_feature, vgg16_features
from gankd.metrics.lpips_metric import LPIPSMetric
from gankd.metrics.psnr_ssim_metric import psnr_y
from gankd.models import zoo


def training_inputs(setup: ModelSetup, sources: list[str], pool: int, resize_short: int) -> torch.Tensor:
    crops = []
    for data in sources:
        cfg = dataclasses.replace(setup.data, pool_size=pool,
                                  resize_short=None if data == "builtin" else resize_short)
        p = pools.build_pool(cfg, data, seed=0)
        crops.append(p.batch(torch.arange(len(p))).g_input[0])
    return torch.cat(crops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append",
                    help="a training source; repeat to pool several (default builtin)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--ratio", type=float, default=0.25)
    ap.add_argument("--depth", type=int, default=None, help="residual blocks (default: the teacher's 9)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--pool", type=int, default=1024, help="crops drawn per source")
    ap.add_argument("--resize-short", type=int, default=384)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--kd-feature", type=float, default=0.0,
                    help="weight of the VGG16 relu2_2 feature L1 to T(x) (DCD's release: 1e4)")
    ap.add_argument("--kd-style", type=float, default=0.0,
                    help="weight of the VGG16 Gram L1 to T(x) (DCD's release: 10)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a folder: save there at every evaluation; resume from its newest checkpoint")
    args = ap.parse_args()
    sources = args.data or ["builtin"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    setup = load_suite("cpu").models["cyclegan"]
    teacher = load_teacher(setup, "builtin", progress=False).net.eval().requires_grad_(False)
    samples = evaluation_set(setup, "builtin", "cpu", run_teacher(setup, "builtin", progress=False)).samples
    x_eval = torch.stack([s.g_input[0] for s in samples])
    t_eval = torch.stack([s.hr for s in samples])
    lpips = LPIPSMetric(scale=1)

    def judge(out: torch.Tensor) -> tuple[float, float]:
        return (lpips.distances(out, t_eval).mean().item(), psnr_y(out, t_eval, 0).mean().item())

    floor = judge(x_eval)
    inputs = training_inputs(setup, sources, args.pool, args.resize_short)
    student = zoo.student(setup.teacher, args.ratio, setup.student, depth=args.depth).build().train()
    opt = torch.optim.Adam(student.parameters(), args.lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(args.seed)
    vgg = vgg16_features() if args.kd_feature or args.kd_style else None
    print(f"sources {' + '.join(sources)}: {len(inputs)} crops of {inputs.shape[-1]}px;"
          f" student r={args.ratio:g} depth={args.depth or 'teacher'};"
          f" loss L1 + {args.kd_feature:g} feature + {args.kd_style:g} style;"
          f" floor (identity): LPIPS {floor[0]:.4f}, PSNR-Y {floor[1]:.2f} dB", flush=True)
    # what the run's trajectory depends on (not --steps: a longer run resumes a shorter one's file)
    recipe = {k: v for k, v in vars(args).items()
              if k not in ("steps", "threads", "checkpoint", "eval_every")}
    start = 0
    found = checkpoint.load_latest(args.checkpoint) if args.checkpoint is not None else None
    if found is not None:
        state, path = found
        if state["recipe"] != recipe:
            ap.error(f"--checkpoint {path} was written with {state['recipe']}, not {recipe}")
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        start = state["step"]
        print(f"resumed from {path} at step {start}", flush=True)
    # T(x) of each (crop, flip) once drawn, kept: the teacher's forward was a third of a step and
    # each is drawn about six times in 6000 steps; the draws, hence the trajectory, are unchanged
    targets = torch.zeros(len(inputs), 2, *inputs.shape[1:])
    known = torch.zeros(len(inputs), 2, dtype=torch.bool)
    t0 = time.perf_counter()
    for step in range(start + 1, args.steps + 1):
        idx = torch.randint(len(inputs), (args.batch,), generator=gen)
        x = inputs[idx]
        flip = torch.rand(args.batch, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        f = flip.long()
        miss = ~known[idx, f]
        if miss.any():
            with torch.no_grad():
                targets[idx[miss], f[miss]] = teacher(x[miss])
            known[idx[miss], f[miss]] = True
        y = targets[idx, f]
        out = student(x)
        loss = F.l1_loss(out, y)
        if vgg is not None:
            style, feature = style_and_feature(vgg, out, y)
            loss = loss + args.kd_feature * feature + args.kd_style * style
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            with torch.no_grad():
                student.eval()
                lp, ps = judge(student(x_eval).clamp(0, 1))
                student.train()
            verdict = "above" if lp < floor[0] else "below"
            print(f"step {step}: loss {loss.item():.4f}  LPIPS {lp:.4f}  PSNR-Y {ps:.2f} dB"
                  f"  ({verdict} the floor)  {(time.perf_counter() - t0) / (step - start):.2f} s/step",
                  flush=True)
            if args.checkpoint is not None:
                checkpoint.save(args.checkpoint, step, {"recipe": recipe, "step": step,
                                                        "student": student.state_dict(),
                                                        "opt": opt.state_dict(), "gen": gen.get_state()})


if __name__ == "__main__":
    main()
