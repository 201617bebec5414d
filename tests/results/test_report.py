"""The report: leaderboard.csv and a static leaderboard.html built from a results tree, checked
as data (CSV rows, the page's tables, the grid's crops) and in a real headless Chromium
(renders without errors, sorts on a header click, every image loads)."""

from __future__ import annotations

import base64
import csv
import io
import math
import re
import shutil
import statistics
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_results import (
    CROPS,
    ERROR,
    NIQE_MISSING,
    PLAN,
    SUITE,
    TEACHER_PSNR,
    image,
    make_tree,
    sample_seed,
)

from gankd.bench import commands
from gankd.images import center_crop
from gankd.results.report import CSV_FIELDS, DASH, build


def _t_sf(t: float, df: int) -> float:
    """Student t's upper tail, from scipy.stats (not from the code under test)."""
    from scipy import stats

    return float(stats.t.sf(t, df))

REFS = ["teacher", "bicubic"]
SCREENSHOT = Path("/tmp/gankd-report.png")


def _methods(model: str, ratio: float) -> list[str]:
    """The table's order: the scratch baseline, then the other methods by name."""
    return sorted(PLAN[model][ratio], key=lambda m: (m != "scratch", m))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Path]:
    """One synthetic results tree and its report, shared by this module's tests."""
    root = tmp_path_factory.mktemp("report")
    make_tree(root / "results")
    assert commands.report(root / "results", root / "reports") == 0  # what `gankd report` runs
    return {"results": root / "results", "csv": root / "reports" / "leaderboard.csv",
            "html": root / "reports" / "leaderboard.html"}


# -- the page as data ---------------------------------------------------------------------------
class _Tables(HTMLParser):
    """Every <table> with its class/data attributes and rows of (tag, attrs, text, [img src])."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._stack: list[dict] = []
        self._cell: dict | None = None
        self._row: dict | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._stack.append({"attrs": a, "head": [], "rows": []})
        elif not self._stack:
            return
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = {"attrs": a, "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"tag": tag, "attrs": a, "text": "", "imgs": []}
        elif tag == "img" and self._cell is not None:
            self._cell["imgs"].append(a)

    def handle_endtag(self, tag):
        if not self._stack:
            return
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._cell["text"] = " ".join(self._cell["text"].split())
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "tr" and self._row is not None:
            self._stack[-1]["head" if self._in_head else "rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self.tables.append(self._stack.pop())

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def _tables(html_text: str, cls: str) -> list[dict]:
    p = _Tables()
    p.feed(html_text)
    return [t for t in p.tables if cls in t["attrs"].get("class", "").split()]


def _board(html_text: str, model: str, ratio: float) -> dict:
    (t,) = [t for t in _tables(html_text, "board")
            if (t["attrs"]["data-model"], t["attrs"]["data-ratio"]) == (model, f"{ratio:g}")]
    return t


def _row(table: dict, method: str) -> dict:
    (r,) = [r for r in table["rows"] if r["attrs"].get("data-method") == method]
    return r


def _col(table: dict, label: str) -> int:
    names = [c["text"] for c in table["head"][0]["cells"]]
    return next(i for i, n in enumerate(names) if n.startswith(label))


# -- CSV ----------------------------------------------------------------------------------------
def test_csv_columns_and_rows(report) -> None:
    rows = list(csv.DictReader(io.StringIO(report["csv"].read_text())))
    assert list(rows[0]) == CSV_FIELDS
    for col in ("psnr", "ssim", "lpips", "fid", "kid", "niqe", "params_m", "gmacs", "latency_ms", "speedup",
                "train_min"):
        assert col in CSV_FIELDS and col + "_std" in CSV_FIELDS
    blocks = {}
    for r in rows:
        blocks.setdefault((r["model"], float(r["ratio"])), []).append(r)
    assert set(blocks) == {(m, ratio) for m in PLAN for ratio in PLAN[m]}
    for (model, ratio), block in blocks.items():
        assert [r["method"] for r in block] == _methods(model, ratio) + REFS  # scratch first, refs last
        assert [r["kind"] for r in block].count("reference") == 2
        teacher = block[-2]
        assert float(teacher["psnr"]) == TEACHER_PSNR[model]  # every ratio's block has the teacher
    by = {(r["model"], float(r["ratio"]), r["method"]): r for r in rows}
    mse = by["realesrgan", 0.25, "mse"]
    psnrs = list(PLAN["realesrgan"][0.25]["mse"].values())
    assert float(mse["psnr"]) == pytest.approx(statistics.mean(psnrs))
    assert float(mse["psnr_std"]) == pytest.approx(statistics.stdev(psnrs))
    assert (mse["n"], mse["seeds"], mse["psnr_noise"]) == ("3", "0 1 2", "significant")
    dcd = by["realesrgan", 0.25, "dcd"]  # failed on every seed: counted, no numbers
    assert (dcd["n"], dcd["failed"], dcd["failed_seeds"]) == ("0", "3", "0 1 2")
    assert all(dcd[c] == "" for c in ("psnr", "psnr_std", "lpips", "params_m", "latency_ms", "train_min"))
    assert dcd["errors"].count(ERROR) == 3
    akdg = by["realesrgan", 0.25, "akdg"]
    assert (akdg["n"], akdg["failed"], akdg["failed_seeds"], akdg["paired_n"]) == ("2", "1", "0", "2")
    assert by["realesrgan", 0.25, "sdakd"]["niqe"] == ""  # not measured: empty, never 0
    assert by["gcfsr", 0.25, "sdakd"]["psnr_noise"] == "unknown (1 seed)"
    assert by["gcfsr", 0.25, "sdakd"]["psnr_std"] == ""  # one seed: no spread
    # the verdict columns, on the primary metric (LPIPS for SR), from the seeds-only test (these
    # records hold no per-image values): mse's -0.005 on each of three seeds (-0.005, -0.004,
    # -0.006) has p 0.0131 by the paired t (2 df), x3 by Holm in a table of three tested methods
    d = np.array([-0.005, -0.004, -0.006])
    p = 2 * _t_sf(abs(d.mean()) / (d.std(ddof=1) / math.sqrt(3)), 2)
    assert (mse["primary"], mse["verdict"], mse["verdict_test"]) == ("lpips", "better", "paired t over seeds")
    assert float(mse["primary_delta"]) == pytest.approx(-0.005)
    assert float(mse["verdict_p"]) == pytest.approx(p) and float(mse["verdict_p_adj"]) == pytest.approx(3 * p)
    assert (mse["verdict_seeds"], mse["verdict_images"], mse["verdict_margin"]) == ("3", "", "0.005")
    assert float(mse["verdict_mde"]) > 0 and float(mse["verdict_p_tost"]) > 0
    assert by["realesrgan", 0.25, "sdakd"]["verdict"] == "undetermined"
    assert (by["gcfsr", 0.25, "sdakd"]["verdict"], by["gcfsr", 0.25, "sdakd"]["verdict_test"]) == \
        ("undetermined", "1 shared seed")
    assert by["realesrgan", 0.25, "scratch"]["verdict"] == ""  # the baseline has none
    assert mse["commits"] == "0123456" and mse["left_out"] == "" and mse["timed_under_load"] == ""


# -- HTML ---------------------------------------------------------------------------------------
def test_one_table_per_model_and_ratio_with_references(report) -> None:
    page = report["html"].read_text()
    boards = _tables(page, "board")
    assert len(boards) == sum(len(r) for r in PLAN.values())
    for model, ratios in PLAN.items():
        for ratio in ratios:
            t = _board(page, model, ratio)
            assert [r["attrs"]["data-method"] for r in t["rows"]] == _methods(model, ratio) + REFS
            for ref in REFS:
                assert "ref" in _row(t, ref)["attrs"]["class"].split()
            head = [c["text"] for c in t["head"][0]["cells"]]
            for label in ("PSNR", "SSIM", "LPIPS", "FID", "KID", "NIQE", "Params", "GMACs", "Latency",
                          "Speed-up", "Train"):
                assert any(h.startswith(label) for h in head), label


def test_failed_runs_show_as_failed_without_numbers(report) -> None:
    t = _board(report["html"].read_text(), "realesrgan", 0.25)
    dcd = _row(t, "dcd")
    assert "failed" in dcd["attrs"]["class"].split()
    assert len(dcd["cells"]) == 2  # the method, then one cell with the error across the table
    assert dcd["cells"][1]["text"].startswith("failed") and ERROR in dcd["cells"][1]["text"]
    assert not any("data-v" in c["attrs"] for c in dcd["cells"])
    akdg = _row(t, "akdg")  # one seed failed: numbers from the others, and a visible failure badge
    assert "1 failed" in akdg["cells"][0]["text"] and "n=2" in akdg["cells"][0]["text"]
    assert akdg["cells"][_col(t, "PSNR")]["text"].startswith("24.45")


def test_missing_metrics_render_as_a_dash_with_the_reason(report) -> None:
    t = _board(report["html"].read_text(), "realesrgan", 0.25)
    cell = _row(t, "sdakd")["cells"][_col(t, "NIQE")]
    assert cell["text"] == DASH and "data-v" not in cell["attrs"]
    assert NIQE_MISSING["niqe"] in cell["attrs"]["title"]
    bicubic = _row(t, "bicubic")  # no network: no params, no GMACs
    assert bicubic["cells"][_col(t, "GMACs")]["text"] == DASH


def test_best_is_marked_on_a_corrected_verdict_only(report) -> None:
    t = _board(report["html"].read_text(), "realesrgan", 0.25)

    def best(label):
        i = _col(t, label)
        return {r["attrs"]["data-method"] for r in t["rows"]
                if i < len(r["cells"]) and "best" in r["cells"][i]["attrs"].get("class", "")}

    # mse has the best point estimate of every quality metric, but only its LPIPS (the primary
    # metric, better than scratch after Holm) is marked; no secondary metric, no cost
    assert best("LPIPS") == {"mse"}
    for label in ("PSNR", "SSIM", "FID", "KID", "NIQE", "Train", "Params", "GMACs", "Latency", "Speed-up"):
        assert best(label) == set(), label
    cell = _row(t, "mse")["cells"][_col(t, "LPIPS")]
    assert "★" in cell["text"]
    verdict = _col(t, "Verdict vs scratch")
    assert _row(t, "mse")["cells"][verdict]["text"] == "better"
    assert _row(t, "sdakd")["cells"][verdict]["text"] == "undetermined"
    assert _row(t, "scratch")["cells"][verdict]["text"] == "baseline"


def test_verdict_table_shows_p_values_and_pilot_status(report) -> None:
    page = report["html"].read_text()
    tables = _tables(page, "verdicts")
    assert len(tables) == sum(len(r) for r in PLAN.values())  # one per table
    head = [c["text"] for c in tables[1]["head"][0]["cells"]]
    assert head == ["Method", "Δ LPIPS", "seeds", "photos", "test", "df", "p", "p adj.", "p TOST",
                    "p TOST adj.", "detectable", "verdict"]
    (mse,) = [r for t in tables for r in t["rows"] if r["attrs"].get("data-method") == "mse"]
    assert mse["attrs"]["data-verdict"] == "better" and mse["cells"][1]["text"].startswith("-0.00500")
    assert "Pilot" in page and "no per-image values" in page  # these records hold none


def test_paired_comparison_shows_noise_as_noise(report) -> None:
    page = report["html"].read_text()
    paired = _tables(page, "paired")
    assert len(paired) == 3  # one per table with a finished scratch baseline
    verdicts = {}
    for t in paired:
        for r in t["rows"]:
            verdicts.setdefault(r["attrs"]["data-method"], []).append(r["cells"][2]["attrs"]["data-verdict"])
    assert verdicts["mse"] == ["significant"]
    # gcfsr (one seed), then realesrgan r0.25 and r0.5
    assert verdicts["sdakd"] == ["unknown (1 seed)", "within noise", "within noise"]
    assert verdicts["akdg"] == ["within noise"]
    assert "dcd" not in verdicts and "scratch" not in verdicts


def _png(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        return np.asarray(im.convert("RGB"))


def test_grid_has_the_same_crop_from_every_source(report) -> None:
    page = report["html"].read_text()
    grids = _tables(page, "grid")
    assert len(grids) == 3
    grid = grids[1]  # gcfsr r0.25, realesrgan r0.25, realesrgan r0.5
    head = [c["text"].split(" seed")[0] for c in grid["head"][0]["cells"]][1:]
    # dcd finished no run: no column; references around the students
    assert head == ["LR", "bicubic", "teacher", "scratch", "akdg", "mse", "sdakd", "HR"]
    assert [r["cells"][0]["text"] for r in grid["rows"]] == sorted(CROPS)
    for row in grid["rows"]:
        name = row["cells"][0]["text"]
        shown = dict(zip(head, (_png(c["imgs"][0]["src"]) for c in row["cells"][1:])))
        for method, seed in (("scratch", 0), ("akdg", 1), ("mse", 0)):  # akdg: its lowest *finished* seed
            want = center_crop(image(sample_seed("realesrgan", method, name, seed)), 96)
            np.testing.assert_array_equal(shown[method], want)
        hr = image(sample_seed("realesrgan", "hr", name))
        np.testing.assert_array_equal(shown["HR"], center_crop(hr, 96))
        assert shown["LR"].shape == (24, 24, 3)  # the same region at LR scale (x4)
        lr_full = np.asarray(Image.open(report["results"] / "runs" / SUITE / "realesrgan" / "reference"
                                        / "builtin-eval-abc123" / "lr" / f"{name}.png").convert("RGB"))
        np.testing.assert_array_equal(shown["LR"], lr_full[4:28, 4:28])


def test_page_is_self_contained(report) -> None:
    page = report["html"].read_text()
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script src" not in page
    p = _Tables()
    p.feed(page)
    srcs = [img["src"] for t in p.tables for r in t["rows"] for c in r["cells"] for img in c["imgs"]]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # a quality plot per model and x axis (realesrgan: GMACs, torch and onnxruntime latency;
    # gcfsr recorded no latency: GMACs alone), training curves per table
    assert page.count("class='plot'") == 3 + 1 + 3
    assert page.count("<div class='xswitch'") == 1


def test_empty_results_and_missing_references(tmp_path) -> None:
    paths = build(tmp_path / "none", tmp_path / "out")
    assert paths["csv"].read_text().strip() == ",".join(CSV_FIELDS)
    assert "No runs yet" in paths["html"].read_text()
    make_tree(tmp_path / "results", models=("gcfsr",))
    shutil.rmtree(tmp_path / "results" / "runs" / SUITE / "gcfsr" / "reference")
    page = build(tmp_path / "results", tmp_path / "out")["html"].read_text()
    t = _board(page, "gcfsr", 0.25)
    for ref in REFS:  # still a row, saying why there are no numbers
        assert "not evaluated yet" in _row(t, ref)["cells"][1]["text"]


def test_a_record_that_cannot_be_read_is_named_in_the_csv_and_on_the_page(tmp_path) -> None:
    """A truncated metrics.json (and a damaged reference) used to drop its rows with a warning
    on stderr alone (issue 38, item 8)."""
    tree = make_tree(tmp_path / "results", models=("gcfsr",))
    run_dir = tree.run_dirs[("gcfsr", 0.25, "sdakd", 0)]
    record = run_dir / "metrics.json"
    record.write_text(record.read_text()[:200])
    (teacher,) = (tmp_path / "results" / "runs").glob("*/gcfsr/reference/*/teacher.json")
    teacher.write_text("")
    paths = build(tmp_path / "results", tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    bad = [r for r in rows if r["kind"] == "unreadable"]
    rel = record.relative_to(tmp_path / "results").as_posix()
    assert [(r["suite"], r["model"], r["ratio"], r["method"], r["seeds"]) for r in bad] == [
        (SUITE, "gcfsr", "0.25", "sdakd", "0"), (SUITE, "gcfsr", "", "teacher", "")]
    assert bad[0]["errors"].startswith(f"{rel}: record cannot be read, so the run is in no table "
                                       "(JSONDecodeError")
    assert bad[1]["evalset"] == teacher.parent.name
    page = paths["html"].read_text()
    assert "2 records are in no table below" in page
    assert f"<li><code>{rel}</code>: cannot be read: JSONDecodeError" in page
    assert f"<code>{teacher.relative_to(tmp_path / 'results').as_posix()}</code>" in page


def test_a_run_of_an_older_config_is_named_where_a_reader_sees_it(tmp_path) -> None:
    """A run whose config the suite no longer gives (re-tuned weights) stays out of the tables,
    and the CSV and the page say which run and what changed, not a log line alone."""
    from gankd.paths import REPO_ROOT

    run = Path("runs", "cpu", "realesrgan", "r0.25", "akdg", "seed0")
    dst = tmp_path / "results" / run
    shutil.copytree(REPO_ROOT / "reports" / "sample" / "results" / run, dst)
    config = dst / "config.yaml"
    config.write_text(re.sub(r"kd_weight: [0-9.e-]+", "kd_weight: 123.0", config.read_text()))
    from gankd.bench.suite import SuiteIndex

    assert not [r for r in csv.DictReader(io.StringIO(build(tmp_path / "results", tmp_path / "plain")["csv"]
                                                        .read_text())) if r["kind"] == "older config"]
    paths = build(tmp_path / "results", tmp_path / "out", SuiteIndex())  # told of this checkout's suites
    rows = [r for r in csv.DictReader(io.StringIO(paths["csv"].read_text())) if r["kind"] == "older config"]
    assert [(r["model"], r["method"], r["seeds"]) for r in rows] == [("realesrgan", "akdg", "0")]
    assert "run with an older config (method.kd_weight" in rows[0]["errors"]
    page = paths["html"].read_text()
    assert "1 record is in no table below" in page and "runs/cpu/realesrgan/r0.25/akdg/seed0" in page


# -- a real browser -----------------------------------------------------------------------------
def test_report_renders_and_sorts_in_chromium(report, tmp_path) -> None:
    from browser import open_page

    with open_page(report["html"].as_uri()) as seen:
        page = seen.page
        assert page.title() == "gankd leaderboard"
        tables = page.eval_on_selector_all(
            "table.board", "ts => ts.map(t => [t.dataset.model, t.dataset.ratio, "
            "Array.from(t.tBodies[0].rows, r => r.dataset.method)])")
        want = [[m, f"{r:g}", _methods(m, r) + REFS] for m in sorted(PLAN) for r in sorted(PLAN[m])]
        assert tables == want

        board = "table.board[data-model='realesrgan'][data-ratio='0.25']"

        def order():
            return page.eval_on_selector(board, "t => Array.from(t.tBodies[0].rows, r => r.dataset.method)")

        def click(label):
            page.locator(f"{board} thead th", has_text=label).first.click()

        click("PSNR")  # first click: best first; the failed row (no value) last
        assert order() == ["teacher", "mse", "akdg", "sdakd", "scratch", "bicubic", "dcd"]
        click("PSNR")
        assert order() == ["bicubic", "scratch", "sdakd", "akdg", "mse", "teacher", "dcd"]
        click("LPIPS")  # lower is better: ascending first
        assert order() == ["teacher", "mse", "akdg", "sdakd", "scratch", "bicubic", "dcd"]
        click("NIQE")  # sdakd has no NIQE: sorted after every value
        assert order()[-2:] == ["sdakd", "dcd"]
        click("Method")
        assert order() == sorted(_methods("realesrgan", 0.25) + REFS)
        assert page.eval_on_selector(f"{board} thead th:first-child", "th => th.getAttribute('aria-sort')") \
            == "ascending"

        images = page.eval_on_selector_all(
            "img", "is => is.map(i => [i.className, i.complete, i.naturalWidth, i.clientWidth])")
        crops = [i for i in images if i[0] == "crop"]
        plots = [i for i in images if i[0] == "plot"]
        assert len(crops) == len(CROPS) * (4 + 4 + 4 + 2 + 4 + 2)  # refs + finished methods per grid
        assert len(plots) == 7
        shown = [i for i in images if i[3] > 0]
        assert len(shown) == len(images) - 2  # the quality plot's two other x axes wait, hidden
        assert all(done and natural > 0 for _, done, natural, _ in images)

        def visible_axis() -> list[str]:
            return page.eval_on_selector_all(".xview",
                                             "vs => vs.filter(v => !v.hidden).map(v => v.dataset.x)")

        assert visible_axis() == ["gmacs", "gmacs"]  # gcfsr's (no switch), realesrgan's
        page.locator(".xswitch button", has_text="onnxruntime latency").click()
        assert visible_axis() == ["gmacs", "lat_onnxruntime_ms"]
        alt = page.eval_on_selector_all(".xview:not([hidden]) img",
                                        "is => is.map(i => [i.alt, i.clientWidth])")
        assert [a[0] for a in alt] == ["gcfsr: quality vs GMACs",
                                       "realesrgan: quality vs onnxruntime latency"]
        assert all(a[1] > 0 for a in alt)
        pressed = page.eval_on_selector_all(".xswitch button[aria-pressed=true]",
                                            "bs => bs.map(b => b.textContent)")
        assert pressed == ["onnxruntime latency"]
        page.locator(".xswitch button", has_text="GMACs").click()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)  # for a person to look at
        page.locator(board).scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT.with_name("gankd-report-table.png")))
        assert seen.console_errors == [] and seen.page_errors == [] and seen.failed_requests == []
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_a_table_expects_the_references_of_its_task_even_with_no_run_yet() -> None:
    """A table whose runs are all older (or not applicable) still knows its task's references:
    an unconditional table waits for no bicubic row; an SR table waits for both."""
    from gankd.results.protocol import Protocol
    from gankd.results.report.sections import Section

    def empty(task: str) -> Section:
        return Section(suite="cpu", model="m", ratio=0.25, depth=None, runs=[], refs={}, aggs=[],
                       evalset=None, evalsets=[], task=task, protocol=Protocol(), declared_seeds=None)

    assert empty("unconditional").expected_refs == ("teacher",)
    assert empty("sr").expected_refs == ("teacher", "bicubic")
    assert empty("translation").expected_refs == ("teacher", "identity")
