"""docs/paper-suite.md: the paper suite's settings beside their sources cannot drift from the config.

Every table row of the page names a ``key`` into what ``load_suite("paper")`` resolves to and the
value gankd uses there: the value must be what the key resolves to; a row marked ``same`` must give
a source value equal to it (the source's literal, or its arithmetic such as ``12 * 4`` or
``0.99 ** (4/5)``); every recipe field, degradation field and method option of the suite must have
a row; and every unstated gap must be listed in the page's Gaps section. The page's sources are
read off the public repositories and cannot be checked offline: what the test pins is that the
gankd side of each claim is the code's."""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from gankd.bench.suite import PretrainConfig, SuiteConfig, load_suite, method_options
from gankd.config import to_dict
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.methods import METHODS
from gankd.models import zoo
from gankd.paths import REPO_ROOT

PAGE = REPO_ROOT / "docs" / "paper-suite.md"
HEADER = ["setting", "key", "gankd", "source value", "source", "verdict"]
VERDICTS = ("same", "equivalent", "ours", "not found", "gap: deliberate", "gap: unstated")
NO_KEY = "—"
_SPAN = re.compile(r"^`([^`]*)`$")


@dataclass(frozen=True)
class Row:
    setting: str
    key: str
    gankd: str
    source_value: str
    source: str
    verdict: str


def rows_of(text: str) -> list[Row]:
    """The rows of every table on the page whose header is ``HEADER``."""
    out: list[Row] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells == HEADER:
            in_table = True
        elif in_table and not all(set(c) <= {"-", " ", ":"} for c in cells):
            assert len(cells) == len(HEADER), f"a row of {len(cells)} cells, not {len(HEADER)}: {line}"
            key = _SPAN.match(cells[1])
            out.append(Row(cells[0], key.group(1) if key else cells[1], *cells[2:]))
    return out


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def arithmetic(text: str) -> float:
    """The value of an expression of numbers and + - * / ** (nothing else is evaluated)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"not arithmetic: {text!r}")

    return ev(ast.parse(text, mode="eval"))


def normalise(value: Any) -> Any:
    """YAML's reading of a cell, with numbers YAML leaves as strings (``1e-4``, ``12 * 4``) read."""
    if isinstance(value, str):
        for read in (float, arithmetic):
            try:
                return read(value)
            except (ValueError, SyntaxError):
                pass
        return value
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    return value


def cell_value(cell: str) -> Any:
    span = _SPAN.match(cell)
    if span is None:
        raise ValueError(f"not a single code span: {cell!r}")
    return normalise(yaml.safe_load(span.group(1)))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def walk(tree: Any, path: str, key: str) -> Any:
    node = tree
    for part in path.split(".") if path else []:
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{key}: no {part!r} at this point of the resolved paper suite")
        node = node[part]
    return node


def setup_tree(suite: SuiteConfig, family: str) -> dict[str, Any]:
    """A family's resolved setup, with its zoo entries and its supervised stage's resolved recipe."""
    setup = suite.models[family]
    tree = to_dict(setup)
    tree["teacher"] = to_dict(zoo.get(setup.teacher))
    tree["discriminator"] = to_dict(zoo.get(setup.discriminator))
    if setup.student_pretrain is not None:
        tree["pretrain"] = to_dict(setup.student_pretrain.recipe_for(setup.recipe))
    return tree


def resolve(suite: SuiteConfig, key: str) -> Any:
    root, sep, path = key.partition(":")
    assert sep, f"key {key!r} is not root:path"
    if root == "suite":
        tree = {"ratios": list(suite.ratios), "seeds": list(suite.seeds),
                "shapes": [to_dict(s) for s in suite.shapes]}
        return walk(tree, path, key)
    if root in suite.models:
        return walk(setup_tree(suite, root), path, key)
    assert root in suite.methods, f"key {key!r}: {root!r} is no family, method or 'suite' of the paper suite"
    # the defaults before tuning: what the page documents (and what bench runs while the paper
    # suite has no benchmarks/tuned/paper.yaml)
    values = [walk(to_dict(method_options(suite, fam, root, tuned=False)), path, key) for fam in suite.models]
    assert all(same(v, values[0]) for v in values), f"{key}: differs between families: {values}"
    return values[0]


@pytest.fixture(scope="module")
def suite() -> SuiteConfig:
    return load_suite("paper")


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return rows_of(PAGE.read_text())


def test_the_parser_reads_cells_as_the_page_writes_them() -> None:
    assert normalise(yaml.safe_load("1.0e-4")) == 1e-4  # YAML 1.1 reads this as a string
    assert cell_value("`12 * 4`") == 48
    assert same(cell_value("`[0 ** (4/5), 0.99 ** (4/5)]`"), [0.0, 0.99 ** 0.8])
    assert cell_value("`{conv4_3: 1}`") == {"conv4_3": 1}
    assert cell_value("`[iso, aniso]`") == ["iso", "aniso"]
    assert cell_value("`null`") is None and cell_value("`true`") is True
    assert not same(1, True) and not same(0.0, None) and not same([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        arithmetic("__import__('os')")
    table = ("| " + " | ".join(HEADER) + " |\n| --- |\n| a | `x:y` | `1` | `1` | f | same |\n"
             "\n| other |\n| z |\n")
    assert rows_of(table) == [Row("a", "x:y", "`1`", "`1`", "f", "same")]


def test_the_page_has_rows_and_every_verdict_is_one_of_the_vocabulary(rows: list[Row]) -> None:
    assert len(rows) > 100
    bad = [f"{r.setting}: {r.verdict}" for r in rows if not r.verdict.startswith(VERDICTS)]
    assert not bad, "verdicts outside " + ", ".join(VERDICTS) + ": " + "; ".join(bad)


def test_every_gankd_value_is_what_the_paper_suite_resolves(suite: SuiteConfig, rows: list[Row]) -> None:
    wrong = []
    for r in rows:
        if r.key == NO_KEY:
            continue
        try:
            actual = resolve(suite, r.key)
        except (KeyError, AssertionError) as exc:
            wrong.append(str(exc).strip('"'))
            continue
        if not same(cell_value(r.gankd), normalise(to_dict(actual))):
            wrong.append(f"{r.key}: the page says {r.gankd}, the paper suite resolves {actual!r}")
    assert not wrong, "\n".join(wrong)


def test_every_same_row_gives_the_source_value_gankd_uses(rows: list[Row]) -> None:
    wrong = [f"{r.key}: gankd {r.gankd}, source {r.source_value}" for r in rows
             if r.key != NO_KEY and r.verdict.startswith("same")
             and not same(cell_value(r.source_value), cell_value(r.gankd))]
    assert not wrong, "rows marked same whose source value differs:\n" + "\n".join(wrong)


def test_every_setting_of_the_paper_suite_has_a_row(suite: SuiteConfig, rows: list[Row]) -> None:
    keys = {r.key for r in rows}
    required = {"suite:ratios", "suite:seeds", "suite:shapes"}
    for fam, setup in suite.models.items():
        required |= {f"{fam}:recipe.{f.name}" for f in dataclasses.fields(RecipeConfig)}
        required |= {f"{fam}:data.degradation_args.{k}" for k in setup.data.degradation_args}
        required |= {f"{fam}:{k}" for k in ("train.steps", "train.batch_size", "train.bf16",
                                            "data.degradation", "data.hr_crop", "data.degrade_size",
                                            "data.queue_size", "data.hflip", "data.rot90")}
        required |= {f"{fam}:teacher.kwargs.{k}" for k in ("num_feat", "num_block", "out_size")
                     if k in zoo.get(setup.teacher).kwargs}
        if setup.student_pretrain is not None:
            required |= {f"{fam}:student_pretrain.train.steps", f"{fam}:student_pretrain.train.batch_size"}
            required |= {f"{fam}:pretrain.{k}" for k in setup.student_pretrain.recipe}
        if setup.teacher_train is not None:
            required |= {f"{fam}:teacher_train.steps", f"{fam}:teacher_train.batch_size"}
    for method in filter(METHODS.from_package, suite.methods):  # a plugin's settings: its own docs
        required |= {f"{method}:{f.name}" for f in dataclasses.fields(METHODS.get(method).Config)}
    assert not (missing := sorted(required - keys)), "settings without a row: " + ", ".join(missing)


def test_every_unstated_gap_is_listed_under_gaps(rows: list[Row]) -> None:
    gaps = PAGE.read_text().split("\n## Gaps\n", 1)[1].split("\n## ", 1)[0]
    unlisted = [r.key for r in rows if r.verdict.startswith("gap: unstated") and r.key != NO_KEY
                and f"`{r.key}`" not in gaps]
    assert not unlisted, "unstated gaps missing from the Gaps section: " + ", ".join(unlisted)


def test_no_config_field_schedules_the_learning_rate() -> None:
    """The page says gankd's lr is constant, as both releases' MultiStepLR (milestone after the last
    iteration) effectively is: no field of the recipe, schedule or supervised stage changes it."""
    names = [f.name for cls in (RecipeConfig, TrainConfig, PretrainConfig) for f in dataclasses.fields(cls)]
    assert not [n for n in names if re.search(r"sched|milestone|gamma|lr_decay|lr_step|warmup_iter", n)]


def test_the_page_is_linked_from_the_docs_index_and_the_readme() -> None:
    assert "(paper-suite.md)" in (REPO_ROOT / "docs" / "README.md").read_text()
    assert "(docs/paper-suite.md)" in (REPO_ROOT / "README.md").read_text()
