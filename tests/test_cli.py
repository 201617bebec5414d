"""The command line validates its arguments once, at the boundary: exit 2 with the valid choices."""

from __future__ import annotations

import pytest

from gankd.bench.suite import load_suite
from gankd.cli import main
from gankd.errors import ConfigError


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
    ("--model", "esrgan", "valid choices: gcfsr, realesrgan"),
    ("--method", "kd9000", "valid choices: akdg, dcd, mse, scratch, sdakd"),
    ("--suite", "huge", "valid choices: cpu, "),
    ("--student", "2", "(0, 1]"),
    ("--student", "quarter", "must be a number"),
    ("--seed", "one", "must be an integer"),
    ("--data", "/no/such/folder", "does not exist"),
])
def test_bad_bench_arguments_exit_2_with_choices(capsys, tmp_path, flag, value, expect):
    code, _, err = run(capsys, *bench(flag, value, "--results", str(tmp_path)))
    assert code == 2
    assert expect in err
    assert not (tmp_path / "runs").exists()  # nothing started


def test_list_names_everything(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for word in ("realesrgan", "gcfsr", "rrdbnet", "stylegan2_d", "sdakd", "builtin", "fid", "smoke"):
        assert word in out


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
