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

from gankd.engine import checkpoint
from gankd.errors import GankdError

ROOT = Path(__file__).resolve().parents[1]
# one thread, as the parent's tests (fixture below): a resumed run is compared bit for bit
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}



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
from gankd.errors import GankdError

def never(*a, **k):
    raise AssertionError("training started")

R.load_teacher = never  # the first step of a run after the preflight
s = suite("smoke")
spec = run_spec(s, "realesrgan", "mse", "0.25", 0, "builtin")
try:
    R.run(spec, s, Path(sys.argv[1]), progress=False)
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
