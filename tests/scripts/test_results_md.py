"""reports/sample/RESULTS.md is generated (scripts/results_md.py), never typed: the committed file
must be exactly what the script writes from the committed leaderboard.csv and records, and every
table says whether it is a pilot."""

from __future__ import annotations

import csv
import io
import re

import pytest
from conftest import load_script

from gankd.paths import REPO_ROOT

SAMPLE = REPO_ROOT / "reports" / "sample"


@pytest.fixture(scope="module")
def script():
    return load_script("results_md")


@pytest.fixture(scope="module")
def rendered(script) -> str:
    return script.render(SAMPLE / "leaderboard.csv", SAMPLE / "results")


def test_committed_results_md_is_what_the_script_writes(rendered) -> None:
    committed = (SAMPLE / "RESULTS.md").read_text()
    assert committed == rendered, "reports/sample/RESULTS.md is stale: run python scripts/results_md.py"


def test_every_table_states_its_status_and_every_verdict_comes_from_the_csv(rendered) -> None:
    tables = [t for t in re.split(r"^## ", rendered, flags=re.M)[1:] if not t.startswith("What to conclude")]
    assert tables
    for t in tables:
        status = t.splitlines()[2]
        assert status.startswith(("**Pilot**: ", "Decisive: ")), t.splitlines()[0]
    rows = list(csv.DictReader(io.StringIO((SAMPLE / "leaderboard.csv").read_text())))
    verdicts = [r["verdict"] for r in rows if r["kind"] == "student" and r["method"] != "scratch"
                and r["verdict"] and not (r["not_applicable"] and r["n"] == "0")]
    pattern = r"^- `[^`]+`(?: is \*\*(\w+)\*\*|: \*\*(undetermined)\*\*|: no verdict)"
    said = re.findall(pattern, rendered, re.M)
    assert sorted(a or b or "undetermined" for a, b in said) == sorted(verdicts)


def test_a_stale_leaderboard_is_refused(script, tmp_path) -> None:
    text = (SAMPLE / "leaderboard.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    hit = next(r for r in rows if r["kind"] == "student" and r["method"] != "scratch" and r["verdict"])
    hit["verdict"] = "better" if hit["verdict"] != "better" else "worse"
    stale = tmp_path / "leaderboard.csv"
    with stale.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(SystemExit, match="run `gankd report`"):
        script.render(stale, SAMPLE / "results")


def _table(model: str, pilot: bool, verdicts: dict[str, str], tost: dict[str, float] | None = None,
           shares: dict[str, float] | None = None):
    """A stand-in for a report section with a study (what conclusion and headline read); ``shares``:
    each method's own terms' share of the student's gradient (the leaderboard's kd_share)."""
    from types import SimpleNamespace as NS

    plan = NS(margin=0.005, correction="holm", alpha=0.05, power=0.8)
    study = NS(pilot=pilot, metric="lpips", plan=plan, seeds=8, photos=36, methods=len(verdicts),
               verdicts={m: NS(verdict=v, p_tost_adjusted=(tost or {}).get(m, 0.5))
                         for m, v in verdicts.items()})
    aggs = [{"method": m, "kd_share": (shares or {}).get(m)} for m in verdicts]
    return NS(model=model, title="student r=0.25", study=study, aggs=aggs)


def test_a_verdict_on_a_method_whose_own_terms_are_inert_says_so(script) -> None:
    """A verdict on a method whose defining terms carried under 1 % of the gradient does not test
    what those terms add, whatever it is: the conclusion, the headline and its sentence say so,
    with the share's spread and the factor tuning chose; a method whose terms act, or one without
    a recorded share, is not marked."""
    table = _table("realesrgan", False, {"akdg": "equivalent", "mse": "equivalent", "dcd": "equivalent",
                                         "omgd": "better", "sdakd": "worse"},
                   shares={"akdg": 5e-6, "mse": 0.0026, "dcd": 0.26, "omgd": 1.0, "sdakd": 0.004})
    text = script.conclusion("realesrgan", [table])
    assert "equivalent to it within ±0.005 LPIPS (`akdg`, `mse` with their own terms inert)" in text
    assert "`sdakd` worse (`sdakd` with its own terms inert)" in text  # better/worse too
    assert "`omgd` better than `scratch`;" in text and "does not test what those terms add" in text
    assert "not shown to be without effect" not in text  # no method here is undetermined
    assert "(`akdg`, `mse` with their own terms inert)" in script.headline([table])
    inert = script._inert(table)
    assert set(inert) == {"akdg", "mse", "sdakd"}
    assert "its own terms carried 0.0005 % of the student's gradient at its tuned weights" in inert["akdg"]
    table.aggs[0].update(kd_share_std=2e-6, weights="kd_weight=0.001 (tuned (x0.001 of the ours default))")
    assert ("carried 0.0005 % ± 0.0002 % of the student's gradient at its tuned weights (x0.001 of its "
            "defaults), under the 1 % the report flags as inert") in script._inert(table)["akdg"]
    row = {"verdict": "equivalent", "primary_delta": "0.00002", "primary_se": "0.0002",
           "verdict_p_tost_adj": "0.0001", "verdict_seeds": "8", "verdict_images": "36",
           "verdict_test": "seed x photo ANOVA"}
    said = script._sentence("akdg", row, "lpips", "LPIPS", 0.005, 0.05, 0.8, inert=inert["akdg"])
    assert said.endswith(f"seed x photo ANOVA); {inert['akdg']}.")
    acting = _table("realesrgan", False, {"dcd": "equivalent"}, shares={"dcd": 0.26})
    assert script._inert(acting) == {} and "inert" not in script.conclusion("realesrgan", [acting])
    assert "Holm over 1 method at" in script.conclusion("realesrgan", [acting])


def test_in_short_counts_decisive_and_pilot_comparisons_apart(script) -> None:
    from collections import Counter

    tally = Counter({("decisive", "better"): 1, ("decisive", "equivalent"): 5, ("pilot", "worse"): 1,
                     ("pilot", "not tested"): 1})
    decisive, pilot = script._tally(tally, "decisive", 1), script._tally(tally, "pilot", 4)
    assert decisive == "1 decisive table: 6 comparisons with `scratch` (1 better, 5 equivalent)"
    assert pilot == "4 pilot tables: 2 comparisons with `scratch` (1 worse, 1 not tested), no findings"


def test_the_conclusion_says_what_decisive_verdicts_say_and_nothing_of_pilots(script) -> None:
    decisive = _table("realesrgan", False, {"mse": "better", "dcd": "worse", "akdg": "equivalent",
                                            "omgd": "undetermined", "sdakd": "worse"}, tost={"sdakd": 0.001})
    text = script.conclusion("realesrgan", [decisive])
    assert "`mse` better than `scratch`;" in text  # its TOST failed: nothing said of the margin
    assert "`dcd`, `sdakd` worse (`sdakd` by less than the margin)" in text
    assert "`akdg` equivalent to it within ±0.005" in text and "`omgd` undetermined" in text
    assert "not shown to be without effect" in text  # undetermined is never read as "no effect"
    pilot = _table("gcfsr", True, {"mse": "better"})
    said = script.conclusion("gcfsr", [pilot])
    assert "nothing to conclude yet" in said and "`mse`" not in said
    head = script.headline([decisive, pilot])
    assert "realesrgan student r=0.25" in head and "`mse` better" in head and "gcfsr" not in head
    assert "no table is decisive yet (1 pilot table)" in script.headline([pilot])


def test_the_readme_headline_is_what_the_script_writes(script) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    line = script.headline(script.sections_for(SAMPLE / "results"))
    assert script.readme_with(readme, line) == readme, "README's headline is stale: run scripts/results_md.py"
    assert readme.index(script.HEADLINE_BEGIN) < readme.index("## What this is")  # on the first screen


def test_a_tables_method_diagnostics_are_stated_from_its_counted_runs(script) -> None:
    from types import SimpleNamespace as NS

    from gankd.results.record import RunStatus

    def run(drift: float, dirty: bool = False):
        return NS(method="omgd", status=RunStatus.DONE, dirty=dirty,
                  train={"method_diagnostics": {"online_teacher_drift": drift}})

    lines = script._diagnostics(NS(runs=[run(0.01), run(0.03), run(0.5, dirty=True)]))
    assert lines == ["`omgd`: its online teacher moved from the pretrained weights by 2% (median of 2 runs, "
                     "range 1-3%; relative L2 distance of all its weights, ||w - w0|| / ||w0||)."]



def test_the_photos_share_of_the_variance_says_when_seeds_cannot_help(script) -> None:
    """The photo term of a mean difference's variance does not shrink with seeds: where it alone
    keeps the power under the protocol's, RESULTS.md says only more photos would help."""
    from types import SimpleNamespace as NS

    from gankd.results.verdict import Components

    plan = NS(margin=0.005, alpha=0.05, power=0.8)
    wide, tight = Components(0.003**2, 0.015**2, 0.006**2), Components(1e-4**2, 1e-4**2, 1e-4**2)
    verdicts = {"omgd": NS(estimate=NS(components=wide)), "akdg": NS(estimate=NS(components=tight))}
    photo_bound = NS(components=wide, photos=36, seeds=5, methods=6, plan=plan, verdicts=verdicts)
    text = script._photo_floor(photo_bound)
    assert "of that pooled variance of a mean difference at 5 seeds x 36 photos" in text
    assert "no number of seeds reaches 80% power" in text and "settled only by more photos" in text
    # per method: the pooled figure is not read as if no method could be decided
    assert "the difference test's power at the margin under 80% for `omgd` whatever the seeds" in text
    assert "`akdg`" not in text
    tight_only = NS(components=wide, photos=36, seeds=5, methods=6, plan=plan,
                    verdicts={"akdg": verdicts["akdg"]})
    assert "every method with per-image values has 80% power at the margin within reach" \
        in script._photo_floor(tight_only)
    seed_bound = NS(components=Components(0.003**2, 0.001**2, 0.001**2), photos=36, seeds=5, methods=6,
                    plan=plan)
    said = script._photo_floor(seed_bound)
    assert said and "no number of seeds" not in said
    assert script._photo_floor(NS(components=Components(0.003**2), photos=None, seeds=5, methods=6,
                                  plan=plan)) == ""  # per-seed records: no photo term to speak of


def test_a_table_with_no_finished_run_of_its_config_says_so_and_nothing_else(script) -> None:
    """Every record of a table can be older (a changed config, an older code epoch) before the
    sweep runs it again: its section names that and the command, with no empty numbers."""
    from collections import Counter
    from types import SimpleNamespace as NS

    from gankd.results.record import RunStatus

    na = NS(status=RunStatus.NOT_APPLICABLE, method="lit", seed=0, eval={}, per_image={})
    section = NS(model="realesrgan", title="student r=0.5, 10 blocks", suite="cpu", tag="r0.5-d10",
                 runs=[na], study=NS(pilot=True, pilot_reasons=["no method shares two seeds"]))
    rows = [{"kind": "student", "method": "lit", "n": "0", "not_applicable": "LIT needs ..."},
            {"kind": "reference", "method": "teacher", "n": "1", "not_applicable": ""}]
    tally: Counter = Counter()
    text = "\n".join(script._table(section, rows, tally))
    assert "no run of this table's current config has finished yet" in text
    assert "`gankd sweep --model realesrgan --shape r0.5-d10`" in text
    assert "Not applicable here: `lit`." in text
    assert "Commits:" not in text and "– images" not in text and "| method |" not in text
    assert tally == Counter()
