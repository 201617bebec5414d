"""The committed tuned table (`benchmarks/tuned/cpu.yaml`) against the committed scores it was
chosen from (`reports/sample/results/tune/cpu`): scores are harvested from tuning clones across
sessions and machines, and a table that names a score no file holds, or one of an older epoch or
another seed, would send every bench run to weights nobody can trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from gankd.bench.tune import score_epoch
from gankd.hardware import device_family
from gankd.paths import benchmarks_dir
from gankd.results import epochs

SCORES = Path(__file__).resolve().parents[2] / "reports" / "sample" / "results" / "tune" / "cpu"


def disagreements(table: dict[str, Any], scores: Path) -> list[str]:
    """What in ``table`` the stored scores under ``scores`` do not bear out, one line each."""
    protocol = table["protocol"]
    grid = {f"x{f:g}" for f in protocol["factors"]}
    out = []
    for model, methods in table["models"].items():
        for method, entry in methods.items():
            where = f"{model} {method}"
            if set(entry["scores"]) != grid:  # issue 36: every method the same number of runs
                out.append(f"{where}: scored {sorted(entry['scores'])}, not the grid {sorted(grid)}")
            if entry["seed"] != protocol["seed"]:
                out.append(f"{where}: tuned at seed {entry['seed']}, not the protocol's {protocol['seed']}")
            if f"x{entry['factor']:g}" not in entry["scores"]:
                out.append(f"{where}: chose x{entry['factor']:g}, which it did not score")
            for name, value in entry["scores"].items():
                path = scores / model / method / name / "score.json"
                if not path.is_file():
                    out.append(f"{where} {name}: no {path.relative_to(scores)}")
                    continue
                stored = json.loads(path.read_text())
                epoch = score_epoch(stored)
                if round(stored["score"], 5) != value:
                    out.append(f"{where} {name}: the table says {value}, its score.json {stored['score']}")
                if epoch != epochs.CURRENT:
                    out.append(f"{where} {name}: scored in code epoch {epoch}, not {epochs.CURRENT}")
                if stored["config"]["seed"] != protocol["seed"]:
                    out.append(f"{where} {name}: score.json trained at seed {stored['config']['seed']}")
                recorded = device_family(stored["device"]) if stored.get("device") else "not recorded"
                if entry.get("machines", {}).get(name, recorded) != recorded:
                    out.append(f"{where} {name}: the table says machine {entry['machines'][name]}, "
                               f"its score.json {recorded}")
    return out


def test_the_committed_tuned_table_is_what_its_committed_scores_say():
    table = yaml.safe_load((benchmarks_dir() / "tuned" / "cpu.yaml").read_text())
    assert table["models"], "the cpu suite's tuned table is empty"
    assert disagreements(table, SCORES) == []


def test_a_table_the_scores_do_not_bear_out_is_named(tmp_path):
    table = yaml.safe_load((benchmarks_dir() / "tuned" / "cpu.yaml").read_text())
    model = next(iter(table["models"]))
    method, entry = next(iter(table["models"][model].items()))
    first = next(iter(entry["scores"]))
    entry["scores"][first] += 0.001
    entry["seed"] = 0
    found = disagreements(table, SCORES)
    assert any(f"{model} {method} {first}: the table says" in line for line in found)
    assert any(f"{model} {method}: tuned at seed 0" in line for line in found)
    del entry["scores"][first]
    assert any("not the grid" in line for line in disagreements(table, SCORES))
    assert any("no " in line for line in disagreements(table, tmp_path))
