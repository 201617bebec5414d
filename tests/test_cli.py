"""The command line validates its arguments once, at the boundary: exit 2 with the valid choices."""

from __future__ import annotations

import pytest

from gankd.bench.suite import load_suite, suite_names
from gankd.cli import main
from gankd.datasets import DATASETS
from gankd.errors import ConfigError
from gankd.methods import benchmark_methods
from gankd.metrics import METRICS
from gankd.models import MODELS
from gankd.paths import family_names

SMOKE = load_suite("smoke")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def bench(*extra: str) -> list[str]:
    args = {"--method": "sdakd", "--model": "gcfsr", "--suite": "smoke", "--student": "0.25"}
    extra_keys = extra[0::2]
    flat = [x for k, v in args.items() if k not in extra_keys for x in (k, v)]
    return ["bench", *flat, *extra]


@pytest.mark.parametrize(("flag", "value", "expect"), [
    ("--model", "esrgan", "valid choices: " + ", ".join(sorted(SMOKE.models))),
    ("--method", "kd9000", "valid choices: " + ", ".join(sorted(SMOKE.methods))),
    ("--suite", "huge", "valid choices: cpu, "),
    ("--student", "2", "(0, 1]"),
    ("--student", "quarter", "must be a number"),
    ("--seed", "one", "must be an integer"),
    # a negative seed trained into seed-1/, a huge one failed inside torch after config.yaml
    ("--seed", "-1", "--seed must be an integer from 0 to 4294967295, got -1"),
    ("--seed", "99999999999999999999", "--seed must be an integer from 0 to 4294967295"),
    ("--data", "/no/such/folder", "does not exist"),
])
def test_bad_bench_arguments_exit_2_with_choices(capsys, tmp_path, flag, value, expect):
    code, _, err = run(capsys, *bench(flag, value, "--results", str(tmp_path)))
    assert code == 2
    assert expect in err
    assert not (tmp_path / "runs").exists()  # nothing started


def test_a_suite_refuses_seeds_out_of_range(tmp_path):
    import yaml

    from gankd.paths import benchmarks_dir

    raw = yaml.safe_load((benchmarks_dir() / "smoke.yaml").read_text())
    bad = (("seeds", [0, -1], "each of seeds must be"), ("tune", {**raw["tune"], "seed": 2**32}, "tune.seed"))
    for key, value, says in bad:
        path = tmp_path / f"bad-{key}.yaml"
        path.write_text(yaml.safe_dump({**raw, key: value}))
        with pytest.raises(ConfigError, match=rf"{says}.* an integer from 0 to 4294967295"):
            load_suite(str(path))


def test_list_names_everything(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for word in ("realesrgan", "gcfsr", "rrdbnet", "stylegan2_d", "sdakd", "builtin", "fid", "smoke"):
        assert word in out
    rows = {line[:18].strip(): line[18:].strip().split(", ") for line in out.splitlines()}
    assert rows["methods"] == benchmark_methods()
    assert rows["models (MODEL=)"] == family_names()
    assert rows["architectures"] == MODELS.names()
    assert rows["metrics"] == METRICS.names()
    assert rows["suites (SUITE=)"] == suite_names()
    assert set(DATASETS.names()) <= set(rows["datasets (DATA=)"])


def test_smoke_suite_runs_every_method_on_every_family():
    """The smoke suite is CI's regression of every method x model: it lists no methods, so a new
    method file is in it (and must be in its baseline) from the start; a new family adds its section."""
    assert set(SMOKE.methods) == set(benchmark_methods()) and SMOKE.methods[0] == "scratch"
    assert sorted(SMOKE.models) == family_names()


def test_unknown_key_in_a_suite_lists_valid_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nmethods: [mse]\nmodels:\n  gcfsr:\n    trian: {steps: 1}\n")
    with pytest.raises(ConfigError, match=r"trian.*valid choices:.*train"):
        load_suite(str(bad))


def test_unknown_method_option_is_an_error_when_the_suite_loads(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nmethods: [dcd]\nmodels:\n  gcfsr: {}\n"
                   "method_options:\n  dcd: {lamda_CD: 1.0}\n")
    with pytest.raises(ConfigError, match=r"lamda_CD.*valid choices:.*cd_weight"):
        load_suite(str(bad))


def test_non_finite_config_number_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nmethods: [mse]\n"
                   "models:\n  gcfsr:\n    recipe: {gan_weight: .nan}\n")
    with pytest.raises(ConfigError, match="gan_weight: expected a finite number"):
        load_suite(str(bad))


def test_piped_output_is_plain_and_complete(capsys):
    """Through a pipe (a CI log, grep) tables are plain text, one row per line, no cell cut."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "gankd.cli", "zoo"], capture_output=True, text=True, env=env,
                         check=True, timeout=600).stdout
    row = next(line for line in out.splitlines() if line.startswith("realesrgan_x4plus "))
    assert "16.70" in row and "73.4" in row and "teacher" in row
    assert "…" not in out and "┃" not in out

    from gankd.bench.regress import Diff, print_table

    print_table([Diff("realesrgan/r0.25/mse/seed0", "psnr", 23.4567, 22.0, 0.02, True)])  # not a TTY here
    text = capsys.readouterr().out
    assert "realesrgan/r0.25/mse/seed0  psnr" in text and "WORSE" in text
    assert "FAIL realesrgan/r0.25/mse/seed0 psnr: baseline 23.457, now 22, tolerance 0.02 (WORSE)" in text


def test_progress_in_a_log_is_one_plain_line_per_update(capsys):
    from gankd.engine.progress import PlainProgress, bar

    p = bar(250, 0, "mse realesrgan r0.25 s0")  # stderr is captured here: not a terminal
    assert isinstance(p, PlainProgress)
    p.update(10)
    p.set_postfix_str("l1=0.1 percep=18")
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 1
    assert "mse realesrgan r0.25 s0: 10/250 steps (4%)" in err and "left" in err and "percep=18" in err
