"""The ``gankd`` command: parses, validates arguments once, hands over to gankd.bench.

Exit codes: 0 ok; 1 a run failed (message says why); 2 bad arguments or config (the message
lists the valid choices); 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gankd.errors import ConfigError, GankdError, unknown_choice

# OpenMP's wait policy is left at its default (spin briefly, then sleep). OMP_WAIT_POLICY=PASSIVE,
# set here until 2026-12-03, made a thin student's step 3.4x slower alone (Real-ESRGAN r = 1/4 L1
# step, 2-core Intel Xeon: 0.26 s default, 0.90 s passive) for 5 % when two 2-thread runs share
# two cores (1.15 s against 1.09 s each); benchmarks/perf_omp_wait.py measures both on any CPU.
# With three such runs on two cores passive wins (1.3 s against 2.1): whoever runs jobs side by
# side exports it (docs/measured-times.md). It changes no number, only time.


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gankd", description="Knowledge distillation of SR GANs: a benchmark.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def run_args(sp: argparse.ArgumentParser, method: bool = True) -> None:
        if method:
            sp.add_argument("--method", required=True, help="distillation method (gankd list)")
            sp.add_argument("--model", required=True, help="model family (gankd list)")
            sp.add_argument("--student", default="0.25", help="student width ratio r (default 0.25)")
            sp.add_argument("--blocks", default=None,
                            help="student depth in blocks, for architectures with a depth knob (RRDBNet); "
                                 "default: the teacher's")
            sp.add_argument("--seed", default="0", help="run seed (default 0)")
        sp.add_argument("--suite", default="cpu", help="suite name or YAML path (default cpu)")
        sp.add_argument("--data", default="",
                        help="default: each family's own (realesrgan: photos, gcfsr: faces, the others: "
                             "builtin); 'builtin', 'photos', 'faces', a folder of images, an LMDB database "
                             "as BasicSR writes it (<name>.lmdb), or per model: "
                             "realesrgan=DIR,gcfsr=DIR")
        sp.add_argument("--results", type=Path, default=None, help="results folder (default results/)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    def wandb_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--wandb", action="store_true",
                        help="also log the training curves to Weights & Biases (needs the wandb package; "
                             "WANDB_PROJECT set does the same). TensorBoard files are written either way")

    sp = sub.add_parser("bench", help="train, evaluate, append to the leaderboard, refresh the report")
    run_args(sp)
    wandb_arg(sp)
    sp.add_argument("--force", action="store_true", help="start the run over even if done or resumable")
    sp.add_argument("--no-report", action="store_true", help="skip refreshing reports/")
    sp.add_argument("--dry-run", action="store_true",
                    help="build the run at full size, take 2 training steps on tiny inputs, write nothing")

    sp = sub.add_parser("sweep", help="every method x model x ratio x seed of a suite; skips finished runs")
    run_args(sp, method=False)
    wandb_arg(sp)
    sp.add_argument("--shard", default="1/1", help="K/N: run only every N-th job starting at K (job arrays)")
    for flag, what in (("--model", "model family"), ("--method", "method"),
                       ("--shape", "student shape, e.g. r0.25")):
        sp.add_argument(flag, action="append", default=None,
                        help=f"only this {what} (repeatable; default: all)")
    sp.add_argument("--dry-list", action="store_true",
                    help="print the jobs, each with what the sweep will do with it (done, stale, resumes, "
                         "to run), and exit")
    sp.add_argument("--allow-dirty", action="store_true",
                    help="run from a tree with modified tracked files (refused otherwise; such runs are "
                         "recorded as -dirty and left out of the leaderboard's means)")
    g = sp.add_argument_group("executors", "where the jobs run (docs/commands.md#sweeps-on-a-cluster)")
    g.add_argument("--executor", default="local",
                   help="local (this process, the default), slurm (a Slurm job array through submitit), "
                        "submitit-local (submitit's local executor), debug (submitit, in this process)")
    g.add_argument("--gpus", type=int, default=None, help="GPUs per job (default: 1 on slurm, 0 otherwise)")
    g.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit of each job in minutes "
                                                                    "(default 1440)")
    g.add_argument("--partition", default=None, help="Slurm partition")
    g.add_argument("--array-parallelism", type=int, default=64,
                   help="jobs of the array running at once (default 64)")
    g.add_argument("--cpus", type=int, default=None, help="CPUs per job")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per job in GB")
    g.add_argument("--slurm-arg", action="append", default=None, metavar="KEY=VALUE",
                   help="another sbatch option, e.g. account=myproject or qos=high (repeatable)")
    g.add_argument("--submitit-folder", type=Path, default=None,
                   help="submitit's job logs and pickles (default <results>/submitit/<suite>)")
    g.add_argument("--no-wait", action="store_true",
                   help="return once submitted (default: wait for the jobs, then refresh the report)")

    sp = sub.add_parser("tune", help="calibrate each method's distillation weights on validation images")
    run_args(sp, method=False)
    sp.add_argument("--model", default=None, help="one model family (default: every model of the suite)")
    sp.add_argument("--method", action="append", default=None,
                    help="a method to tune (repeatable; default: every tunable method of the suite)")

    sp = sub.add_parser("export", help="export finished runs' students and teachers to ONNX Runtime and "
                                       "ncnn, check them against torch, time every runtime")
    run_args(sp, method=False)
    sp.add_argument("--model", default=None, help="one model family (default: every model of the suite)")
    sp.add_argument("--force", action="store_true", help="measure again runs that have deploy numbers")

    sp = sub.add_parser("teacher", help="train (or find) the teacher of a family without pretrained weights")
    sp.add_argument("--model", required=True)
    sp.add_argument("--suite", default="cpu")
    sp.add_argument("--data", default="", help="default: the family's own (gankd bench --help)")
    sp.add_argument("--quiet", action="store_true")

    sp = sub.add_parser("report", help="reports/leaderboard.{csv,html} from results/")
    sp.add_argument("--results", type=Path, default=None)
    sp.add_argument("--out", type=Path, default=None)

    sp = sub.add_parser("power", help="seeds each table needs for a verdict, from a pilot's records")
    sp.add_argument("--results", type=Path, default=None)
    sp.add_argument("--images", type=int, default=None,
                    help="photos the decisive sweep evaluates on (default: the pilot's own)")
    sp.add_argument("--include-dirty", action="store_true",
                    help="count runs from dirty trees towards the pilot's variance (planning only)")

    sp = sub.add_parser("regress", help="smoke suite vs results/baselines/smoke.json")
    sp.add_argument("--update", action="store_true", help="rewrite the baseline on purpose")
    sp.add_argument("--dump", type=Path, default=None,
                    help="write this run's metrics (baseline format) to a file, compare nothing")
    sp.add_argument("--reverse", action="store_true", help="run the suite's jobs in reverse order")
    sp.add_argument("--baseline", type=Path, default=None)
    sp.add_argument("--suite", default="smoke")
    sp.add_argument("--quiet", action="store_true")

    sub.add_parser("zoo", help="params and GMACs of every model config")
    sub.add_parser("list", help="registered methods, models, datasets, metrics, suites")
    sp = sub.add_parser("data", help="build the data sets made from Debian packages (photos, faces); "
                                     "bench builds them itself on first use")
    sp.add_argument("names", nargs="*", help="data sets (default: all)")
    sp.add_argument("--force", action="store_true", help="build again even if the cached set verifies")
    sp.add_argument("--record", action="store_true",
                    help="maintainers: rebuild and write package versions and sha256 sums into the manifest")
    sp = sub.add_parser("assets", help="fetch and convert the offline weights")
    sp.add_argument("--force", action="store_true",
                    help="convert again even if the cache verifies; a damaged kept archive is fetched again")
    return p


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"gankd: error: {exc}", file=sys.stderr)
        return 2
    except GankdError as exc:
        print(f"gankd: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ngankd: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from gankd.bench import commands
    from gankd.engine.livelog import LiveOptions

    if args.command == "bench":
        suite = commands.suite(args.suite)
        blocks = None if args.blocks in (None, "") else _int("--blocks", args.blocks)
        spec = commands.run_spec(suite, args.model, args.method, args.student, _int("--seed", args.seed),
                                 args.data, blocks)
        if args.dry_run:
            return commands.dry_run(spec, suite)
        return commands.bench(spec, suite, args.results, progress=not args.quiet, force=args.force,
                              report=not args.no_report, live=LiveOptions.from_request(args.wandb))
    if args.command == "sweep":
        from gankd.bench.executors import ClusterOptions, check_executor, parse_slurm_args

        check_executor(args.executor)
        for flag in ("gpus", "timeout_min", "array_parallelism", "cpus", "mem_gb"):
            value = getattr(args, flag)
            if value is not None and value < (0 if flag == "gpus" else 1):
                raise ConfigError(f"--{flag.replace('_', '-')} must be >= {0 if flag == 'gpus' else 1}, "
                                  f"got {value}")
        cluster = ClusterOptions(gpus=args.gpus, timeout_min=args.timeout_min, partition=args.partition,
                                 parallelism=args.array_parallelism, cpus=args.cpus, mem_gb=args.mem_gb,
                                 slurm_args=parse_slurm_args(args.slurm_arg), folder=args.submitit_folder,
                                 wait=not args.no_wait)
        return commands.sweep(commands.suite(args.suite), args.data, args.results, args.shard,
                              progress=not args.quiet, dry=args.dry_list,
                              only={"model": args.model, "method": args.method, "shape": args.shape},
                              allow_dirty=args.allow_dirty, executor=args.executor, cluster=cluster,
                              live=None if args.dry_list else LiveOptions.from_request(args.wandb))
    if args.command == "tune":
        return commands.tune(commands.suite(args.suite), args.model, args.method, args.data, args.results,
                             progress=not args.quiet)
    if args.command == "export":
        return commands.export(commands.suite(args.suite), args.model, args.results, force=args.force,
                               progress=not args.quiet)
    if args.command == "teacher":
        return commands.teacher(commands.suite(args.suite), args.model, args.data, progress=not args.quiet)
    if args.command == "report":
        return commands.report(args.results, args.out)
    if args.command == "power":
        return commands.power(args.results, args.images, args.include_dirty)
    if args.command == "regress":
        return commands.regress(args.suite, args.baseline, update=args.update, progress=not args.quiet,
                                dump=args.dump, reverse=args.reverse)
    if args.command == "zoo":
        return commands.zoo()
    if args.command == "list":
        return commands.listing()
    if args.command == "data":
        return commands.data(args.names, force=args.force, record=args.record)
    if args.command == "assets":
        return commands.assets(force=args.force)
    raise unknown_choice("command", args.command, [])


if __name__ == "__main__":
    sys.exit(main())
