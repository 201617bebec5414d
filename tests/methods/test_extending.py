"""The README's recipe for a new method ("one new file, then its regenerated data"), followed for
a throwaway one: ``tests/plugins/mse_copy.py``, a copy of ``mse`` under the name ``mse-copy``,
registered from outside the package through ``GANKD_PLUGINS`` (``conftest`` sets it for this
session and the processes it starts). Its loss values were regenerated into ``tests/data`` as
the recipe says; from then on every test that enumerates the registry runs it (one step on every
family, provenance, stored loss values, the CLI, the bf16 step, the DDP test). Here: that it is
found where the recipe puts it, that it trains and evaluates exactly as the method it copies,
and that a plugin which is not there is named in the error."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import PLUGIN, ROOT, THROWAWAY, tiny_student

from gankd.cli import main
from gankd.errors import ConfigError
from gankd.methods import METHODS, benchmark_methods
from gankd.registry import PLUGINS_ENV, import_plugins, plugin_module_name


def test_the_throwaway_is_registered_from_outside_the_package():
    cls = METHODS.get(THROWAWAY)
    assert cls.__module__ == plugin_module_name(str(PLUGIN)) == "gankd_plugin_mse_copy"
    assert not any((ROOT / "gankd" / "methods").glob("*copy*"))
    assert THROWAWAY in benchmark_methods()
    # and therefore in the DDP test's list (its torchrun workers import it through the same variable)
    assert not isinstance(tiny_student(THROWAWAY, "realesrgan"), str)


@pytest.mark.parametrize("family", ["realesrgan", "gcfsr"])
def test_the_throwaway_trains_exactly_as_the_method_it_copies(make_trainer, one_thread, family):
    runs = {}
    for method in ("mse", THROWAWAY):
        tr = make_trainer(method, steps=3, family=family)
        tr.fit()
        runs[method] = tr
    mse, copy = runs["mse"], runs[THROWAWAY]
    assert copy.history == mse.history and "g/kd_mse" in copy.history[0]
    for (name, a), b in zip(mse.student.state_dict().items(), copy.student.state_dict().values()):
        assert torch.equal(a, b), name
    start = make_trainer("mse", steps=1, family=family).student  # not trained
    assert any(not torch.equal(a, b) for a, b in zip(mse.student.parameters(), start.parameters()))


@pytest.mark.slow
def test_the_throwaway_runs_in_the_smoke_suite_with_the_numbers_of_mse(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_REPORTS", str(tmp_path / "reports"))
    results = tmp_path / "results"
    records = {}
    for method in ("mse", THROWAWAY):
        assert main(["bench", "--method", method, "--model", "realesrgan", "--suite", "smoke", "--quiet",
                     "--results", str(results)]) == 0
        records[method] = json.loads(
            (results / f"runs/smoke/realesrgan/r0.25/{method}/seed0/metrics.json").read_text())
    mse, copy = records["mse"], records[THROWAWAY]
    assert copy["status"] == "done" and copy["method"] == THROWAWAY
    for key in ("psnr", "ssim", "lpips"):
        assert copy["metrics"][key] == mse["metrics"][key], key


def test_a_plugin_that_is_not_there_is_named_in_the_error(monkeypatch, tmp_path):
    missing = tmp_path / "no_such_method.py"
    monkeypatch.setenv(PLUGINS_ENV, str(missing))
    with pytest.raises(ConfigError, match=f"{PLUGINS_ENV}: no file '{missing}'"):
        import_plugins()
    monkeypatch.setenv(PLUGINS_ENV, "no_such_package.method")
    with pytest.raises(ConfigError, match=f"{PLUGINS_ENV}: no module 'no_such_package.method'"):
        import_plugins()
