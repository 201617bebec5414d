"""How hard each term pulls on the student, as a run's record and the report show it: a method
whose own terms carry under 1 % of the gradient is flagged, since its row measures the base
recipe (issue 36: DCD's L_DCD carried 1e-4 of its output KD's pull)."""

from __future__ import annotations

import pytest

from gankd.results.record import INERT_SHARE, RunRecord, defining_share, gradient_shares, run_shares

HISTORY = [
    {"step": 10.0, "g/l1": 0.1, "gradnorm/l1": 3.0, "gradnorm/gan": 1.0, "gradnorm/dcd": 0.001},
    {"step": 20.0, "g/l1": 0.1, "gradnorm/l1": 1.0, "gradnorm/gan": 1.0, "gradnorm/dcd": 0.02},
    {"step": 30.0, "g/l1": 0.1},  # a window without norms (not measured there) counts for nothing
    {"step": 40.0, "gradnorm/l1": 2.0, "gradnorm/gan": 0.0, "gradnorm/dcd": 2.0},
]


def test_each_terms_share_is_its_median_over_the_measured_windows() -> None:
    shares = gradient_shares(HISTORY)
    assert set(shares) == {"l1", "gan", "dcd"}
    assert shares["dcd"] == pytest.approx(0.02 / 2.02)  # median of 0.001/4.001, 0.02/2.02, 0.5
    assert shares["gan"] == pytest.approx(1.0 / 4.001)  # median of 0.25, 0.495, 0.0
    # the inert flag's share counts as the row's per-term shares do: the mean over the windows
    assert defining_share(HISTORY, ("dcd",)) == pytest.approx(run_shares(HISTORY)["dcd"])
    assert defining_share(HISTORY, ("dcd",)) == pytest.approx((0.001 / 4.001 + 0.02 / 2.02 + 0.5) / 3)
    assert defining_share(HISTORY, ("kd_mse",)) is None  # a term never measured: no share
    assert defining_share([], ("dcd",)) is None
    assert defining_share([{"gradnorm/l1": 1.0, "gradnorm/kd": 0.0}], ("kd",)) == 0.0  # measured, silent


def test_a_record_shows_its_defining_share_and_a_method_without_terms_shows_none() -> None:
    quiet = HISTORY[:3]  # dcd small in every window
    rec = RunRecord(suite="cpu", model="realesrgan", method="dcd", ratio=0.25, seed=0,
                    history=quiet, defining_terms=["dcd"])
    assert rec.row()["kd_share"] == pytest.approx((0.001 / 4.001 + 0.02 / 2.02) / 2)
    assert rec.row()["kd_share"] < INERT_SHARE
    scratch = RunRecord(suite="cpu", model="realesrgan", method="scratch", ratio=0.25, seed=0,
                        history=HISTORY)
    assert scratch.row()["kd_share"] is None


def test_the_report_flags_an_inert_method_and_not_an_active_one(tmp_path) -> None:
    from synthetic_results import make_tree

    from gankd.results import store
    from gankd.results.report import build

    tree = make_tree(tmp_path / "results", models=("gcfsr",))
    for (_, _, method, _), run_dir in tree.run_dirs.items():
        if method == "scratch":
            continue
        rec = store.read_metrics(run_dir)
        rec.defining_terms = ["kd"]
        own = 1e-4 if method == "sdakd" else 0.5
        rec.history = [{"step": 1.0, "gradnorm/kd": own, "gradnorm/l1": 1.0}]
        store.write_metrics(run_dir, rec)
    page = build(tmp_path / "results", tmp_path / "out")["html"].read_text()
    assert page.count("inert: own terms") == 1 and "inert: own terms 0.01 % of the gradient" in page


def test_a_runs_term_shares_weigh_its_stages_by_length_and_add_up_to_one() -> None:
    """A phased method (LIT: a hint-only stage, then fine-tuning without the hint) shows each
    term's share of the whole run, a term absent from a stage counting 0 there; a term that never
    pulls on the student (OMGD's online-teacher terms) is left out."""
    from gankd.results.record import pct, run_shares

    phased = [{"gradnorm/kd_hint": 2.0}, {"gradnorm/kd_hint": 5.0},  # LIT stage: the hint alone
              {"gradnorm/percep": 3.0, "gradnorm/l1": 1.0, "gradnorm/teacher_l1": 0.0},
              {"gradnorm/percep": 3.0, "gradnorm/l1": 1.0, "gradnorm/teacher_l1": 0.0}]
    shares = run_shares(phased)
    assert shares == pytest.approx({"kd_hint": 0.5, "percep": 0.375, "l1": 0.125})
    assert sum(shares.values()) == pytest.approx(1.0) and "teacher_l1" not in shares
    assert run_shares([]) == {} and run_shares([{"step": 1.0}]) == {}
    assert pct(0.00996) == "0.996 %" and pct(0.5) == "50 %"  # never rounded across the 1 % flag


def test_every_terms_share_reaches_the_csv_and_the_row_mean_over_seeds_largest_first(tmp_path) -> None:
    """Issue 36: each row shows every term's share of the student's gradient, not only the sum of
    the method's own: a reader sees which term pulls and which is along for the ride."""
    import pandas as pd
    from synthetic_results import make_tree

    from gankd.results import store
    from gankd.results.record import shares_text
    from gankd.results.report import build

    assert shares_text([{"l1": 0.9, "kd": 0.1}, {"l1": 0.6, "kd": 0.4}]) == "l1 75 %, kd 25 %"
    assert shares_text([{"l1": 1.0}, {"l1": 0.8, "kd": 0.2}]) == "l1 90 %, kd 10 %"  # absent: 0
    assert shares_text([{"gan": 0.9877, "kd": 0.0123}]) == "gan 99 %, kd 1.23 %"
    assert shares_text([]) == ""
    tree = make_tree(tmp_path / "results", models=("gcfsr",))
    for (_, _, method, seed), run_dir in tree.run_dirs.items():
        if method != "sdakd":
            continue
        rec = store.read_metrics(run_dir)
        rec.defining_terms = ["kd"]
        rec.history = [{"step": 1.0, "gradnorm/kd": 1.0 + int(seed), "gradnorm/l1": 3.0 - int(seed)}]
        store.write_metrics(run_dir, rec)
    out = build(tmp_path / "results", tmp_path / "out")
    frame = pd.read_csv(out["csv"])
    row = frame[(frame["method"] == "sdakd") & (frame["kind"] == "student")].iloc[0]
    seeds = sorted(int(float(s)) for s in str(row["seeds"]).split())
    expected = shares_text([{"kd": (1 + s) / 4, "l1": (3 - s) / 4} for s in seeds])
    assert row["term_shares"] == expected and "kd" in expected and "l1" in expected
    assert frame[frame["method"] == "scratch"]["term_shares"].isna().all()  # these have no history
    assert f"<div class='terms'>{expected}</div>" in out["html"].read_text()
