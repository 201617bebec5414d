"""The paper suite: its settings, its data requirement, and a dry run on CPU that builds the
full-size networks and takes two training steps on tiny inputs, writing no results."""

from __future__ import annotations

from pathlib import Path

import pytest
import skimage.data
import torch
from PIL import Image

from gankd.assets import store
from gankd.bench import commands
from gankd.bench.dryrun import dry_run
from gankd.bench.suite import load_suite, resolve
from gankd.errors import ConfigError
from gankd.methods import benchmark_methods
from gankd.models import zoo


def _params(entry: zoo.ZooEntry) -> int:
    return sum(p.numel() for p in entry.build().parameters())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """train/ val/ test/ of 512 px photos: the smallest folder the paper suite's split accepts."""
    root = tmp_path_factory.mktemp("paperdata")
    layout = {"train": ["astronaut", "coffee", "chelsea"], "val": ["rocket"], "test": ["hubble_deep_field"]}
    for split, names in layout.items():
        (root / split).mkdir()
        for name in names:
            img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
            img.resize((512, 512), Image.LANCZOS).save(root / split / f"{name}.png")
    return root


def test_paper_suite_holds_the_papers_settings():
    s = load_suite("paper")
    assert s.ratios == (0.5, 0.25, 0.125) and s.seeds == (0, 1, 2)
    assert set(s.methods) == set(benchmark_methods()) >= {"scratch", "mse", "akdg", "dcd", "sdakd"}
    re, gc = s.models["realesrgan"], s.models["gcfsr"]
    assert (re.teacher, re.data.hr_crop, re.data.degrade_size) == ("realesrgan_x4plus", 256, 400)
    assert (re.train.steps, re.train.batch_size, re.recipe.lr_g, re.recipe.lr_d) == (400_000, 48, 1e-4, 1e-4)
    assert re.data.queue_size % re.train.batch_size == 0  # the pair queue takes whole batches
    assert (gc.teacher, gc.discriminator, gc.data.hr_crop) == ("gcfsr_512", "gcfsr_d_512", 512)
    assert gc.train.steps == 800_000 and gc.data.resize_short == 512
    assert gc.teacher_train is not None and gc.teacher_train.steps == 800_000
    for setup in (re, gc):
        assert setup.train.device == "cuda" and setup.train.bf16 and setup.data.pool_size == 0
    assert re.student_pretrain is not None and re.student_pretrain.train.device == "cuda"


def test_paper_suite_needs_a_data_folder_per_model(folder, tmp_path):
    s = load_suite("paper")
    with pytest.raises(ConfigError, match="suite paper needs DATA=<folder of images> for gcfsr"):
        commands.run_spec(s, "gcfsr", "sdakd", "0.25", 0, "builtin")
    with pytest.raises(ConfigError, match="does not exist"):
        commands.run_spec(s, "gcfsr", "sdakd", "0.25", 0, str(tmp_path / "missing"))
    spec = commands.run_spec(s, "gcfsr", "sdakd", "0.25", 0, f"realesrgan=builtin,gcfsr={folder}")
    assert spec.data == str(folder)
    with pytest.raises(ConfigError, match=r"needs DATA.*for realesrgan"):
        commands.data_for(s, f"realesrgan=builtin,gcfsr={folder}")
    with pytest.raises(ConfigError, match="names no folder for model realesrgan"):
        commands.data_for(s, f"gcfsr={folder}")
    with pytest.raises(ConfigError, match="unknown model in DATA"):
        commands.data_for(s, f"esrgan={folder}")
    assert commands.data_for(s, str(folder)) == {"realesrgan": str(folder), "gcfsr": str(folder)}
    # other suites keep DATA=builtin
    smoke = load_suite("smoke")
    assert commands.data_for(smoke, "builtin") == dict.fromkeys(smoke.models, "builtin")


@pytest.mark.slow
def test_dry_run_realesrgan_full_size_two_steps(folder):
    s = load_suite("paper")
    spec = commands.run_spec(s, "realesrgan", "dcd", "0.5", 0, str(folder))
    r = dry_run(resolve(s, spec))
    setup = s.models["realesrgan"]
    assert r["teacher"]["params"] == _params(zoo.get("realesrgan_x4plus")) > 16_690_000
    pretrained = store.verify(store.get("realesrgan_x4plus"))
    assert ("RANDOM INIT" in r["teacher"]["source"]) != pretrained
    assert r["student"]["params"] == _params(zoo.student("realesrgan_x4plus", 0.5, setup.student))
    assert r["discriminators"] == {"d": _params(zoo.get("realesrgan_unet_d"))}  # teacher-size D
    assert r["inputs"]["hr_crop"] == 32 and r["inputs"]["g_input"] == [[1, 3, 8, 8]]
    assert r["full_run"] == {"steps": 400_000, "global_batch": 48, "hr_crop": 256}
    assert len(r["steps"]) == 2
    for row in r["steps"]:
        assert set(row["terms"]) == {"g/l1", "g/percep", "g/gan", "g/dcd", "g/kd_style", "g/kd_feat",
                                     "d/d/real", "d/d/fake"}
        assert all(torch.isfinite(torch.tensor(v)) for v in row["terms"].values())
    assert 0 < r["peak_memory_mb"] < 8 * 1024
    assert any("1000000 supervised steps" in n for n in r["notes"])  # RealESRNet stage, said so


@pytest.mark.slow
def test_dry_run_gcfsr_cli_random_teacher_of_real_size_writes_nothing(folder, tmp_path, monkeypatch, capsys):
    from gankd.cli import main

    monkeypatch.delenv("GANKD_WEIGHTS_GCFSR_512", raising=False)
    results = tmp_path / "results"
    rc = main(["bench", "--suite", "paper", "--model", "gcfsr", "--method", "sdakd", "--student", "0.125",
               "--data", str(folder), "--results", str(results), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert not results.exists()
    flat = " ".join(out.split())
    assert f"gcfsr_512: {_params(zoo.get('gcfsr_512')) / 1e6:.2f} M params; RANDOM INIT" in flat
    assert "62.35 M params" in flat
    assert "generator input [[1, 3, 512, 512], [1, 1]]" in flat
    # SDAKD's schedule is compressed to the two steps: feature distillation, then adversarial
    assert "step 1 (features)" in flat and "step 2 (adversarial)" in flat and "d/d/r1=" in flat
