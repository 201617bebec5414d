"""Faults: a checkpoint write killed with SIGKILL, a corrupt checkpoint, a read-only or full
results folder.

Read-only and full disks are real here, not simulated: the check runs in a child process inside
a private user + mount namespace (``unshare -rm``), where a folder is bind-mounted read-only or a
1 MiB tmpfs is mounted. Permission bits alone prove nothing when tests run as root (root writes
through ``chmod 555``), which is why a mount is used. Where namespaces are not allowed, a
non-root user falls back to ``chmod``; as root without namespaces the real check cannot be made
and those tests say so by skipping (the message check then runs on a patched ``disk_usage``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TESTS

from gankd.engine import checkpoint
from gankd.errors import GankdError

# one thread, as the parent's tests (fixture below): a resumed run is compared bit for bit; the
# children import this module (its folder on the path) and conftest
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (ROOT, TESTS, Path(__file__).resolve().parent))),
       "OMP_NUM_THREADS": "1"}



pytestmark = pytest.mark.usefixtures("one_thread")


def build(steps: int, run_dir: Path | None = None, ckpt_every: int = 0):
    """A tiny Real-ESRGAN-shaped mse run (also imported by the child processes below)."""
    from conftest import TINY_D, TINY_TEACHER, SyntheticPool

    from gankd.bench.compose import TeacherNet, build_trainer, seeded_build
    from gankd.engine.config import RecipeConfig, TrainConfig
    from gankd.engine.sampler import PoolSampler
    from gankd.methods import method_config
    from gankd.models import zoo

    train = TrainConfig(steps=steps, batch_size=2, log_every=1, ckpt_every=ckpt_every, device="cpu")
    return build_trainer(
        student=seeded_build(zoo.student(TINY_TEACHER, 0.5, {"num_block": 2}), 0),
        teacher=TeacherNet(seeded_build(TINY_TEACHER, 123), "tiny"), d_entry=TINY_D,
        recipe=RecipeConfig(perceptual_layers={"conv1_2": 0.1}, lr_g=1e-3, lr_d=1e-3), method="mse",
        method_cfg=method_config("mse"), train=train, sampler=PoolSampler(SyntheticPool(), 2, 0), ratio=0.5,
        seed=0, run_dir=run_dir, progress=False)


def _same_student(a, b) -> None:
    for k, v in a.student.state_dict().items():
        assert torch.equal(v, b.student.state_dict()[k]), k
    for k, v in a.ema.state_dict().items():
        assert torch.equal(v, b.ema.state_dict()[k]), k


# -- kill -9 during a checkpoint write -----------------------------------------------------
CHILD = '''
import sys
from pathlib import Path

import torch

from gankd.engine import checkpoint
from test_faults import build

run = Path(sys.argv[1])
save = checkpoint.save

def save_with_ballast(folder, step, state, keep=2):
    if step == 4:  # the final checkpoint is large: 1 GiB, so the kill lands mid-write
        state = {**state, "ballast": torch.ones(2**28)}
        print("WRITING", flush=True)
    return save(folder, step, state, keep)

checkpoint.save = save_with_ballast
build(4, run, ckpt_every=2).fit()
print("FINISHED", flush=True)
'''


@pytest.mark.slow
def test_kill9_mid_checkpoint_write_keeps_the_previous_one_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(run)], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "WRITING", child.stderr.read()
        deadline = time.monotonic() + 60
        partial = None
        while time.monotonic() < deadline and partial is None:
            partial = next((p for p in ckpts.glob(".step_0000004.pt.*.tmp") if p.stat().st_size > 1 << 20),
                           None)
            time.sleep(0.005)
        assert partial is not None, "the large checkpoint write never started"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert "FINISHED" not in child.stdout.read()
    # what the kill left: a partial temp file, no step-4 checkpoint, the step-2 pair intact
    assert partial.exists() and partial.stat().st_size < (1 << 30)
    assert not (ckpts / "step_0000004.pt").exists()
    assert checkpoint.is_valid(ckpts / "step_0000002.pt")

    resumed = build(4, run, ckpt_every=2)
    result = resumed.fit()
    assert result.resumed_from == 2
    assert not partial.exists()  # the orphaned temp file is cleaned up
    assert checkpoint.is_valid(ckpts / "step_0000004.pt")
    full = build(4)
    full.fit()
    _same_student(full, resumed)


# -- corrupt checkpoints -------------------------------------------------------------------
def _train_with_checkpoints(run: Path) -> None:
    build(3, run, ckpt_every=1).fit()  # keeps step 2 and step 3 (ckpt_keep 2)
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == ["step_0000002.pt",
                                                                               "step_0000003.pt"]


def test_flipped_bytes_in_the_newest_checkpoint_fall_back_to_the_previous(tmp_path):
    run = tmp_path / "run"
    _train_with_checkpoints(run)
    newest = run / "checkpoints" / "step_0000003.pt"
    data = bytearray(newest.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    newest.write_bytes(bytes(data))
    assert not checkpoint.is_valid(newest)

    resumed = build(4, run, ckpt_every=1)
    assert resumed.fit().resumed_from == 2
    assert (run / "checkpoints" / "step_0000003.pt.corrupt").read_bytes() == bytes(data)  # kept aside
    assert (run / "checkpoints" / "step_0000003.sha256.corrupt").is_file()
    assert checkpoint.is_valid(run / "checkpoints" / "step_0000004.pt")
    full = build(4)
    full.fit()
    _same_student(full, resumed)


def test_checkpoint_without_its_checksum_is_skipped_and_all_corrupt_starts_over(tmp_path):
    run = tmp_path / "run"
    _train_with_checkpoints(run)
    folder = run / "checkpoints"
    (folder / "step_0000003.sha256").unlink()  # killed between the rename and the checksum
    state, path = checkpoint.load_latest(folder)
    assert path.name == "step_0000002.pt" and state["step"] == 2
    (folder / "step_0000002.sha256").write_text("0" * 64 + "\n")
    assert checkpoint.load_latest(folder) is None
    assert build(3, run).fit().resumed_from is None


def test_overwriting_a_step_removes_its_old_checksum_first(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    checkpoint.save(folder, 5, {"a": torch.zeros(3)})
    from gankd import atomic

    def killed(path, obj):  # the process dies inside the write of the new file
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "torch_save", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(folder, 5, {"a": torch.ones(3)})
    # the old file is still there, but no checksum vouches for it any more: never half-trusted
    assert (folder / "step_0000005.pt").is_file() and not (folder / "step_0000005.sha256").exists()
    assert checkpoint.load_latest(folder) is None


# -- read-only and full results folders ----------------------------------------------------
def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


NAMESPACES = _namespaces_work()

PREFLIGHT = '''
import sys
from pathlib import Path
from gankd.bench import run as R
from gankd.bench.commands import run_spec, suite
from gankd.bench.suite import resolve
from gankd.errors import GankdError

def never(*a, **k):
    raise AssertionError("training started")

R.load_teacher = never  # the first step of a run after the preflight
s = suite("smoke")
spec = run_spec(s, "realesrgan", "mse", "0.25", 0, "builtin")
try:
    R.run(resolve(s, spec), Path(sys.argv[1]), progress=False)
except GankdError as exc:
    print("GANKD_ERROR:", exc)
'''


def _run_in_namespace(mount: str, results: Path) -> str:
    python = f"{shlex.quote(sys.executable)} -c {shlex.quote(PREFLIGHT)} {shlex.quote(str(results))}"
    inner = f"{mount} && exec {python}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", inner], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_read_only_results_folder_fails_before_training(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    if NAMESPACES:
        d = shlex.quote(str(results))
        out = _run_in_namespace(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}", results)
    elif os.geteuid() != 0:
        results.chmod(0o555)
        proc = subprocess.run([sys.executable, "-c", PREFLIGHT, str(results)], env=ENV, capture_output=True,
                              text=True, timeout=300)
        out = proc.stdout
    else:
        pytest.skip("running as root without user namespaces: no way to make a folder read-only for root")
    assert "GANKD_ERROR: cannot write results to" in out
    assert "Read-only file system" in out or "Permission denied" in out
    assert not any(results.iterdir())


@pytest.mark.slow
def test_full_results_disk_fails_before_training(tmp_path):
    if not NAMESPACES:
        pytest.skip("needs a user + mount namespace to mount a 1 MiB tmpfs")
    results = tmp_path / "results"
    results.mkdir()
    out = _run_in_namespace(f"mount -t tmpfs -o size=1m gankd-full {shlex.quote(str(results))}", results)
    assert "GANKD_ERROR: only 1 MiB free under" in out and "a run needs about 200 MiB" in out


def test_preflight_messages(tmp_path, monkeypatch):
    from gankd.bench import run as R

    R.preflight(tmp_path / "runs" / "x", cache=tmp_path / "cache")  # writable: no error, no leftovers
    assert not list((tmp_path / "runs" / "x").iterdir()) and not list((tmp_path / "cache").iterdir())
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GankdError, match=r"cannot write the cache to .*file/cache"):
        R.preflight(tmp_path / "ok", cache=blocker / "cache")  # a path through a file: ENOTDIR

    class Usage:
        free = 50 * 2**20

    monkeypatch.setattr(R.shutil, "disk_usage", lambda p: Usage)
    with pytest.raises(GankdError, match=r"only 50 MiB free under .* needs about 200 MiB for results"):
        R.preflight(tmp_path / "runs" / "y")


# -- a disk that fills mid-run (issue 38, item 4) --------------------------------------------
def test_a_full_disk_is_one_error_naming_the_folder_and_the_space_needed(tmp_path, monkeypatch):
    import errno

    from gankd import atomic
    from gankd.errors import DiskFullError

    class Usage:
        free = 3 * 2**20

    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: Usage)

    def failing(exc):
        def write(fh):
            fh.write(b"x" * (5 * 2**20))
            if not isinstance(fh, atomic._Counter):  # the size is counted by writing again
                raise exc
        return write

    # ENOSPC, a quota, and torch.save's own report of a short write (a RuntimeError)
    for exc in (OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "Quota exceeded"),
                RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 243392 vs 243312")):
        with pytest.raises(DiskFullError, match=rf"^disk full under {tmp_path}: ckpt.pt needs 5.0 MiB, "
                                                r"3.0 MiB free there; free some space and run the same "
                                                r"command again$"):
            atomic._write_via_temp(tmp_path / "ckpt.pt", failing(exc))
        assert not list(tmp_path.iterdir())  # the partial temp file is gone
    Usage.free = 2**30  # with room to spare, other errors are what they are
    for exc in (OSError(errno.EACCES, "Permission denied"), RuntimeError("not a disk problem")):
        with pytest.raises(type(exc), match=str(exc.args[-1])):
            atomic._write_via_temp(tmp_path / "ckpt.pt", failing(exc))


FILL_MID_RUN = '''
import os, shutil, sys
from pathlib import Path
from gankd.bench import run as R
from gankd.cli import main

results = Path(sys.argv[1])
check = R.preflight

def preflight_then_fill(run_dir, need_mb=200, cache=None):
    check(run_dir, need_mb, cache)  # passes; then the disk fills before the checkpoint is written
    free = shutil.disk_usage(results).free
    with open(results / "ballast", "wb") as fh:
        fh.truncate(0)
        fh.write(b"\\0" * (free - 256 * 1024))

R.preflight = preflight_then_fill
argv = ["bench", "--suite", "smoke", "--model", "realesrgan", "--method", "scratch", "--results",
        str(results), "--quiet", "--no-report"]
print("RC1", main(argv), flush=True)
print("LEFT", sorted(p.name for p in results.rglob("*") if p.is_file()), flush=True)
(results / "ballast").unlink()
R.preflight = check
print("RC2", main(argv), flush=True)
'''


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_gives_one_line_and_the_rerun_finishes(tmp_path):
    """A real full disk (a tmpfs in a private mount namespace) at the run's checkpoint write:
    one line on stderr, exit 1, no failure record; space freed, the same command finishes."""
    if not NAMESPACES:
        pytest.skip("needs a user + mount namespace to mount a tmpfs")
    results = tmp_path / "results"
    results.mkdir()
    d = shlex.quote(str(results))
    python = f"{shlex.quote(sys.executable)} -c {shlex.quote(FILL_MID_RUN)} {d}"
    mount = f"mount -t tmpfs -o size=300m full {d}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", f"{mount} && exec {python}"],
                          env=ENV, capture_output=True, text=True, timeout=900)
    assert "RC1 1" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gankd:")]
    folder = results / "runs/smoke/realesrgan/r0.25/scratch/seed0/checkpoints"
    assert errors[0].startswith(f"gankd: failed: disk full under {folder}: step_0000006.pt needs ")
    assert "Traceback" not in proc.stderr
    left = proc.stdout.split("LEFT ", 1)[1].splitlines()[0]
    assert "metrics.json" not in left and ".tmp" not in left  # no failure record, no partial file
    assert "RC2 0" in proc.stdout, proc.stdout + proc.stderr[-3000:]


# -- two writers of one run folder (issue 38, item 5) -----------------------------------------
def test_a_second_command_for_a_run_waits_for_the_first_and_names_it(tmp_path, monkeypatch, caplog):
    import threading

    from gankd.bench import run as R
    from gankd.bench.commands import run_spec, suite
    from gankd.bench.suite import resolve
    from gankd.errors import ConfigError
    from gankd.locks import LockHeld, file_lock

    s = suite("smoke")
    spec = run_spec(s, "realesrgan", "mse", "0.25", 0, "builtin")
    reached = threading.Event()

    def check_data(*args, **kwargs):  # the first step of a run that holds its folder
        reached.set()
        raise ConfigError("stopped here")

    monkeypatch.setattr(R, "check_data", check_data)

    def bench() -> None:
        with pytest.raises(ConfigError):
            R.run(resolve(s, spec), tmp_path, progress=False)

    second = threading.Thread(target=bench)
    with file_lock(R.run_lock(tmp_path, spec), "pid 4242 on elsewhere since 09:00"):
        second.start()
        assert not reached.wait(2.0), "the second command went ahead while the first held the run"
        assert f"{R.run_dir_of(tmp_path, spec)} is in use by pid 4242 on elsewhere since 09:00; waiting" \
            in caplog.text
        with pytest.raises(LockHeld, match=r"is in use by pid 4242 on elsewhere since 09:00; wait for it to "
                                           r"finish, or stop it"):
            with file_lock(R.run_lock(tmp_path, spec), wait=False):  # torchrun's rank 0 cannot wait
                pass
    second.join(60)
    assert reached.is_set()  # the first left: the second goes on
    assert not R.run_dir_of(tmp_path, spec).exists()  # the lock lives outside the run folder


# -- a resume that crosses a reshuffle of the pool (issue 38, item 7) -------------------------
def _batch_dependent(net: torch.nn.Module) -> None:
    """Each row's features move with the other rows of its batch, by far more than a last bit:
    what a convolution kernel chosen by batch size does on some CPUs, made visible anywhere."""
    forward = net.forward

    def shifted(x):
        return {k: v + 1e-3 * x.mean() for k, v in forward(x).items()}

    net.forward = shifted


def test_a_resume_across_reshuffles_repeats_the_uninterrupted_run(tmp_path, make_trainer):
    """DCD caches two no-grad features by pool row (the targets' VGG, the teacher images' VGG).
    A pool of four rows in batches of two reshuffles every two steps; the run is stopped after
    its first step (two rows cached) and resumed for seven more."""
    from conftest import SyntheticPool

    def trainer(steps: int, run_dir=None):
        tr = make_trainer("dcd", steps=steps, run_dir=run_dir, pool=SyntheticPool(n=4))
        _batch_dependent(tr.method.recipe.vgg)
        _batch_dependent(tr.method.output_kd.vgg)
        return tr

    full = trainer(8)
    full.fit()
    assert [len(c) for c in full.method.row_caches()] == [4, 4]
    trainer(1, tmp_path / "run").fit()
    resumed = trainer(8, tmp_path / "run")
    assert resumed.fit().resumed_from == 1
    _same_student(full, resumed)
    assert resumed.history == full.history
