"""`gankd tune`: the calibration protocol on the smoke suite, end to end through the CLI."""

from __future__ import annotations

import pytest
import yaml

from gankd.bench.suite import load_suite, method_options, method_weights
from gankd.cli import main


@pytest.mark.slow
def test_tune_scores_on_validation_images_and_bench_uses_the_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_TUNED_DIR", str(tmp_path / "tuned"))
    suite = load_suite("smoke")
    default = method_options(suite, "realesrgan", "mse").weight
    assert method_weights(suite, "realesrgan", "mse")["weight"]["source"] == "ours"
    code = main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")])
    assert code == 0
    table = yaml.safe_load((tmp_path / "tuned" / "smoke.yaml").read_text())
    chosen = table["models"]["realesrgan"]["mse"]
    assert set(chosen["scores"]) == {f"x{f:g}" for f in suite.tune.factors}
    best = min(chosen["scores"].items(), key=lambda kv: kv[1])[0]
    assert f"x{chosen['factor']:g}" == best  # LPIPS: lower is better
    runs = tmp_path / "results" / "tune" / "smoke" / "realesrgan" / "mse"
    for f in suite.tune.factors:
        rec = yaml.safe_load((runs / f"x{f:g}" / "score.json").read_text())
        assert rec["weights"]["weight"] == pytest.approx(default * f)
        assert rec["steps"] == suite.tune.steps(suite.models["realesrgan"].train.steps)
        assert rec["validation"]["images"] >= 1 and rec["metric"] == "lpips"
    # bench now runs mse with the chosen weight, and says where it came from
    assert method_options(suite, "realesrgan", "mse").weight == pytest.approx(default * chosen["factor"])
    w = method_weights(suite, "realesrgan", "mse")["weight"]
    assert w["source"].startswith("tuned") and w["value"] == pytest.approx(default * chosen["factor"])
    # a second call finds every run done and chooses the same
    assert main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")]) == 0
    assert yaml.safe_load((tmp_path / "tuned" / "smoke.yaml").read_text())["models"] == table["models"]


def test_tune_refuses_a_method_without_distillation_weights(capsys):
    assert main(["tune", "--suite", "smoke", "--method", "scratch"]) == 2
    assert "mse" in capsys.readouterr().err  # the message lists what can be tuned
