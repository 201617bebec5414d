"""``gankd export``: deployment numbers for a finished run's record (its EMA student from the last
checkpoint, or the teacher of a teacher reference), measured by ``gankd.bench.deployment`` and
merged into the record. The command's edge: it loads the teacher and the evaluation set the
export is checked on, which a run's own deployment step is handed (so ``deployment`` imports
neither, and no circle runs through it)."""

from __future__ import annotations

from pathlib import Path

from gankd.bench.assemble import POOL_SEED, run_teacher
from gankd.bench.data import evaluation_set
from gankd.bench.deployment import deploy_network
from gankd.bench.suite import ModelSetup
from gankd.bench.teachers import load_teacher
from gankd.engine import checkpoint
from gankd.errors import GankdError
from gankd.models import zoo
from gankd.results.record import RunRecord


def deploy_record(record: RunRecord, results: Path, setup: ModelSetup, progress: bool = False,
                  runtimes: list[str] | None = None) -> RunRecord:
    """``record`` with its ``deploy`` section: the EMA student of its final checkpoint, or the
    teacher for a teacher reference (bicubic has no network). With ``runtimes``, only those are
    measured and merged into the section the record has (its host and other runtimes kept)."""
    if record.role == "teacher":
        entry = zoo.get(setup.teacher)
        net = load_teacher(setup, record.data or "builtin", POOL_SEED, progress=progress).net
    else:
        found = checkpoint.load_latest(results / record.run_dir / "checkpoints")
        if found is None:
            raise GankdError(f"{record.run_dir} keeps no checkpoint: its student cannot be exported")
        entry = zoo.get(record.student) if record.student in zoo.entries() else zoo.student(
            setup.teacher, float(record.ratio), setup.student, depth=record.depth)
        net = entry.build()
        net.load_state_dict(found[0]["ema"])
    data = record.data or "builtin"
    samples = evaluation_set(setup, data, record.suite, run_teacher(setup, data, progress=False)).samples
    new = deploy_network(net, entry, setup.eval.deploy, samples, progress, runtimes)
    if runtimes is None or not record.deploy:
        record.deploy = new
    else:
        record.deploy["latency"] = {**record.deploy.get("latency", {}), **new["latency"]}
        record.deploy["exports"] = {**new["exports"], **record.deploy.get("exports", {})}
    return record
