"""The verdict protocol each suite declares before its runs (``protocol:`` in benchmarks/*.yaml,
gankd.results.protocol.Protocol): present in every shipped suite, and checked when a suite loads."""

from __future__ import annotations

import pytest

from gankd.bench.suite import load_suite
from gankd.config import load_yaml
from gankd.errors import ConfigError
from gankd.paths import benchmarks_dir


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_every_shipped_suite_declares_its_protocol(name: str) -> None:
    raw = load_yaml(benchmarks_dir() / f"{name}.yaml")
    assert "protocol" in raw  # declared in the file, not left to the code's defaults
    p = load_suite(name).protocol
    assert p.primary == {"sr": "lpips", "translation": "lpips", "unconditional": "fid"}
    assert (p.alpha, p.correction, p.power) == (0.05, "holm", 0.8)
    assert p.margins["lpips"] == 0.005 and p.margins["fid"] > 0
    metric, plan = p.plan("unconditional")
    assert metric == "fid" and plan.margin == p.margins["fid"] and plan.higher_is_better is False


def _suite(tmp_path, protocol: str, models: str = "  gcfsr: {}\n"):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndescription: x\nmethods: [scratch, mse]\nmodels:\n{models}"
                    f"protocol: {protocol}\n")
    return load_suite(str(path))


@pytest.mark.parametrize(("protocol", "message"), [
    ("{primary: {sr: lpips, translation: lpips, unconditional: fid, inpainting: lpips}}",
     r"unknown task in protocol.primary 'inpainting'; valid choices: sr, translation, unconditional"),
    ("{correction: hochberg}", r"unknown protocol.correction 'hochberg'; valid choices: bonferroni, holm"),
    ("{alpha: 0.5}", r"alpha must be in \(0, 0.5\)"),
    ("{power: 1.2}", r"power must be in \[0.5, 1\)"),
    ("{decisive_seeds: 1}", r"protocol.decisive_seeds must be >= 2"),
    ("{margins: {lpips: 0.005}}", r"no equivalence margin for the primary metric 'fid'"),
    ("{margins: {lpips: 0.0, fid: 5}}", r"margins.lpips must be > 0"),
    ("{primary: {sr: lpip, translation: lpips, unconditional: fid}, margins: {lpip: 1, lpips: 1, fid: 1}}",
     r"unknown metric in protocol.primary 'lpip'; valid choices: .*lpips"),
    ("{primry: {}}", r"primry.*valid choices: alpha, correction, decisive_seeds, margins, power, primary"),
])
def test_a_bad_protocol_is_refused_with_the_valid_choices(tmp_path, protocol: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _suite(tmp_path, protocol)


def test_every_task_of_the_suites_models_needs_a_primary_metric_and_only_those(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no metric for task\(s\) translation, unconditional; every task "
                                          r"of the suite's models"):
        _suite(tmp_path, "{primary: {sr: lpips}}", models="  gcfsr: {}\n  dcgan: {}\n  cyclegan: {}\n")
    assert _suite(tmp_path, "{primary: {sr: lpips}}").protocol.primary == {"sr": "lpips"}


def test_a_primary_metric_the_family_does_not_compute_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"primary.sr is 'psnr', but models.gcfsr evaluates only lpips"):
        _suite(tmp_path, "{primary: {sr: psnr, translation: lpips, unconditional: fid}, "
                         "margins: {psnr: 0.1, lpips: 0.005, fid: 5}}",
               models="  gcfsr: {eval: {metrics: [lpips]}}\n")
