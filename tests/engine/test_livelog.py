"""Live curves (gankd.engine.livelog): TensorBoard event files in a run's folder with the loss
terms, gradient shares, discriminator outputs, validation metrics and images; W&B in its offline
mode; rank 0 only; a resumed run's curves shown once; and training unchanged by any of it."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gankd.cli import main
from gankd.engine import livelog
from gankd.engine.distributed import Dist
from gankd.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def steps_of(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def fixed_validation(model: torch.nn.Module) -> SimpleNamespace:
    """What ``evaluate_generator`` returns, without drawing a random number."""
    return SimpleNamespace(metrics={"psnr": 21.5}, outputs={"val_0": torch.full((3, 8, 8), 0.25)})


def test_tiny_run_logs_terms_shares_d_outputs_validation_and_images(make_trainer, tmp_path):
    run = tmp_path / "run"
    tr = make_trainer("akdg", steps=4, run_dir=run)  # two discriminators: d and d_kd
    tr.cfg = dataclasses.replace(tr.cfg, val_every=2)
    tr.validate = fixed_validation
    result = tr.fit()

    acc = events(run / livelog.TB_DIR)
    scalars = set(acc.Tags()["scalars"])
    logged = {k for row in result.history for k in row if k not in ("step", "stage")}
    assert logged <= scalars  # every number of the run record's history, by its own name
    terms = {k.split("/", 1)[1] for k in logged if k.startswith("gradnorm/")}
    assert terms >= {"l1", "percep", "gan", "kd_adv"}
    assert {f"grad_share/{t}" for t in terms} | {"kd_share", "time/step_s", "val/psnr"} <= scalars
    for disc in ("d", "d_kd"):
        assert {f"d/{disc}/real", f"d/{disc}/fake", f"d_out/{disc}/real", f"d_out/{disc}/fake"} <= scalars
    assert steps_of(acc, "g/l1") == [1, 2, 3, 4] and steps_of(acc, "val/psnr") == [2, 4]
    for row, ev in zip(result.history, acc.Scalars("g/l1")):
        assert ev.value == pytest.approx(row["g/l1"], rel=1e-6)  # stored as float32
    shares = [acc.Scalars(f"grad_share/{t}")[0].value for t in terms]
    assert sum(shares) == pytest.approx(1.0, rel=1e-5)
    kd = acc.Scalars("kd_share")[0].value
    assert kd == pytest.approx(acc.Scalars("grad_share/kd_adv")[0].value, rel=1e-6)  # akdg's one term
    assert all(e.value > 0 for e in acc.Scalars("time/step_s"))
    assert acc.Tags()["images"] == ["val_images/val_0"]
    img = acc.Images("val_images/val_0")
    assert [i.step for i in img] == [2, 4] and (img[0].width, img[0].height) == (8, 8)


def test_d_outputs_are_the_window_means_of_the_discriminator_logits(make_trainer, tmp_path):
    """``d_out`` is the mean of what D output in its own step, on real and on generated images:
    checked against D's outputs caught by a hook."""
    tr = make_trainer("scratch", steps=1, run_dir=tmp_path / "run")
    seen: list[torch.Tensor] = []
    d = tr.method.discriminators["d"]
    hook = d.register_forward_hook(lambda m, i, o: seen.append(o.detach().float().mean()))
    tr.fit()
    hook.remove()
    acc = events(tmp_path / "run" / livelog.TB_DIR)
    # the generator step's judgement comes first, then D's on real and on fake images
    real, fake = float(seen[-2]), float(seen[-1])
    assert acc.Scalars("d_out/d/real")[0].value == pytest.approx(real, rel=1e-5, abs=1e-7)
    assert acc.Scalars("d_out/d/fake")[0].value == pytest.approx(fake, rel=1e-5, abs=1e-7)


class RandomDrawingLog(livelog.NullLog):
    """A back end that draws from every global generator at each call, as a careless library
    might (an id, a retry's jitter)."""

    active = True

    def _draw(self) -> None:
        random.random(), np.random.rand(), torch.rand(1)

    def begin(self, step: int) -> None:
        self._draw()

    def scalars(self, step: int, values) -> None:
        self._draw()

    def images(self, step: int, images) -> None:
        self._draw()


@pytest.mark.parametrize("method,family", [("sdakd", "realesrgan"), ("scratch", "gcfsr")])
def test_logging_changes_nothing_the_run_computes(make_trainer, tmp_path, method, family):
    """GCFSR's generator draws noise from the global torch stream while it trains: a log that
    shifted that stream would change its weights."""
    overrides = {"stage_fractions": [0.25, 0.25, 0.5]} if method == "sdakd" else None
    plain = make_trainer(method, steps=4, method_overrides=overrides, family=family)  # no folder: no log
    assert not plain.live.active
    plain.fit()
    run = tmp_path / "run"
    live = livelog.FanOut([livelog.TensorBoardLog(run / livelog.TB_DIR), RandomDrawingLog()])
    logged = make_trainer(method, steps=4, method_overrides=overrides, run_dir=run, family=family)
    logged.live, logged._owns_live = live, False
    logged.method.recipe.track_d_outputs = True
    logged.fit()
    live.close()
    assert logged.history == plain.history
    for part in ("student", "ema", "method"):
        ours, theirs = getattr(logged, part).state_dict(), getattr(plain, part).state_dict()
        for k, v in theirs.items():
            assert torch.equal(v, ours[k]), (part, k)
    assert "d_out/d/real" in events(run / livelog.TB_DIR).Tags()["scalars"]


def test_failed_run_closes_its_log_and_the_resume_shows_each_step_once(make_trainer, tmp_path):
    run = tmp_path / "run"
    first = make_trainer("mse", steps=4, run_dir=run, ckpt_every=2)
    first.cfg = dataclasses.replace(first.cfg, val_every=3)

    def crash(model):
        raise RuntimeError("disk gone")

    first.validate = crash  # after step 3 was logged; the last checkpoint is step 2's
    with pytest.raises(RuntimeError, match="disk gone"):
        first.fit()
    assert steps_of(events(run / livelog.TB_DIR), "g/l1") == [1, 2, 3]  # flushed despite the crash

    second = make_trainer("mse", steps=4, run_dir=run, ckpt_every=2)
    assert second.fit().resumed_from == 2
    acc = events(run / livelog.TB_DIR)
    assert len(list((run / livelog.TB_DIR).glob("events.out.tfevents.*"))) == 2  # one per session
    assert steps_of(acc, "g/l1") == [1, 2, 3, 4]  # step 3 purged and logged again
    assert [e.value for e in acc.Scalars("g/l1")] == pytest.approx([r["g/l1"] for r in second.history],
                                                                   rel=1e-6)

    # started over from step 0: the old run's event files go
    third = make_trainer("mse", steps=1, run_dir=tmp_path / "run")
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.unlink()
    third.fit()
    assert len(list((run / livelog.TB_DIR).glob("events.out.tfevents.*"))) == 1
    assert steps_of(events(run / livelog.TB_DIR), "g/l1") == [1]


def test_only_rank_0_writes(tmp_path):
    assert isinstance(livelog.open_log(tmp_path / "r1", Dist(rank=1, world_size=2)), livelog.NullLog)
    assert isinstance(livelog.open_log(None, Dist()), livelog.NullLog)
    opts = livelog.LiveOptions(wandb=True)
    assert isinstance(livelog.open_log(tmp_path / "r1", Dist(rank=1, world_size=2), opts), livelog.NullLog)
    main_log = livelog.open_log(tmp_path / "r0", Dist(rank=0, world_size=2))
    main_log.begin(0)
    main_log.scalars(1, {"g/l1": 0.5})
    main_log.close()
    main_log.close()  # twice is fine
    assert not (tmp_path / "r1").exists()
    assert steps_of(events(tmp_path / "r0" / livelog.TB_DIR), "g/l1") == [1]


def test_tensorboard_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("GANKD_TENSORBOARD", "0")
    assert isinstance(livelog.open_log(tmp_path), livelog.NullLog)
    assert not livelog.LiveOptions.from_request(False).tensorboard


def test_wandb_asked_without_the_package_is_one_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    assert livelog.LiveOptions.from_request(False) == livelog.LiveOptions()  # not asked: fine
    with pytest.raises(ConfigError, match="--wandb was given but the wandb package is not installed"):
        livelog.LiveOptions.from_request(True)
    with pytest.raises(ConfigError, match="WANDB_PROJECT is set"):
        livelog.LiveOptions.from_request(False, env={"WANDB_PROJECT": "mine"})
    code = main(["bench", "--method", "scratch", "--model", "realesrgan", "--suite", "smoke", "--wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install wandb" in err[0]


def test_wandb_project_from_the_environment(monkeypatch):
    pytest.importorskip("wandb")  # requirements.txt installs it; the code runs without it
    opts = livelog.LiveOptions.from_request(False, env={"WANDB_PROJECT": "kd-runs"})
    assert opts.wandb and opts.project == "kd-runs"
    assert livelog.LiveOptions.from_request(True, env={}).project == livelog.DEFAULT_PROJECT


@pytest.mark.slow
def test_smoke_bench_writes_tensorboard_and_offline_wandb(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("GANKD_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    results = tmp_path / "results"
    assert main(["bench", "--method", "sdakd", "--model", "gcfsr", "--suite", "smoke", "--quiet",
                 "--results", str(results), "--no-report", "--wandb"]) == 0
    run_dir = results / "runs/smoke/gcfsr/r0.25/sdakd/seed0"
    rec = json.loads((run_dir / "metrics.json").read_text())

    acc = events(run_dir / livelog.TB_DIR)
    scalars, images = set(acc.Tags()["scalars"]), set(acc.Tags()["images"])
    history = {k for row in rec["history"] for k in row if k not in ("step", "stage")}
    evals = {f"eval/{m}" for m in rec["metrics"]}
    expected = history | evals | {"grad_share/l1", "kd_share", "d/d/real", "d/d/fake", "d_out/d/real",
                                  "d_out/d/fake", "eval/psnr", "eval/lpips", "time/step_s"}
    assert expected <= scalars, expected - scalars
    assert steps_of(acc, "eval/psnr") == [6]
    assert acc.Scalars("eval/psnr")[0].value == pytest.approx(rec["metrics"]["psnr"], rel=1e-6)
    samples = {p.stem for p in (run_dir / "samples").glob("*.png")}
    assert images == {f"eval_images/{s}" for s in samples} | {f"eval_hr/{s}" for s in samples}

    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    data = next(offline[0].glob("run-*.wandb")).read_bytes()
    for key in sorted(expected):
        assert key.encode() in data, key
    assert list((offline[0] / "files" / "media" / "images" / "eval_images").glob("*.png"))
    assert (run_dir / livelog.WANDB_ID_FILE).read_text() in offline[0].name
