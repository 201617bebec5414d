"""Each method's loss terms on its first step, against values stored in ``tests/data``.

In the manner of torchdistill's loss regression tests: the gradient tests in ``test_methods``
say *where* each loss acts; these say a refactor left *what* it computes unchanged. The first
step's terms depend only on the seeded initial weights and the synthetic batch. The stored file
is written by the code, never typed in: ``GANKD_UPDATE_LOSS_VALUES=1 pytest
tests/methods/test_loss_values.py`` rewrites it on purpose (and review the diff).
"""

from __future__ import annotations

import json
import math
import os

import pytest
from conftest import FAMILIES, TEST_DATA, tiny_student

from gankd.methods import METHODS as REGISTRY
from gankd.methods import benchmark_methods

STORED = TEST_DATA / "loss_values.json"
METHODS = benchmark_methods()
#: relative tolerance: thread count and CPU vector width change the summation order, not more
RTOL = 1e-4


def first_step_terms(make_trainer, method: str, family: str) -> dict[str, float]:
    # every one of the method's terms on the first step (sdakd's stage 3, lit's LIT phase)
    overrides = dict(REGISTRY.get(method).every_term_options)
    tr = make_trainer(method, steps=1, method_overrides=overrides, family=family)
    tr.log_grad_norms = False
    return tr.train_step()


@pytest.fixture(scope="module")
def stored() -> dict[str, dict[str, float]]:
    if os.environ.get("GANKD_UPDATE_LOSS_VALUES"):
        return {}
    if not STORED.is_file():
        pytest.fail(f"{STORED} is missing: write it with GANKD_UPDATE_LOSS_VALUES=1 pytest {__file__}",
                    pytrace=False)
    return json.loads(STORED.read_text())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
def test_first_step_loss_terms_match_stored_values(make_trainer, one_thread, stored, method, family):
    if isinstance(reason := tiny_student(method, family), str):  # e.g. LIT on GCFSR: no loss to store
        assert f"{family}/{method}" not in stored and reason
        return
    terms = first_step_terms(make_trainer, method, family)
    key = f"{family}/{method}"
    if os.environ.get("GANKD_UPDATE_LOSS_VALUES"):
        table = json.loads(STORED.read_text()) if STORED.is_file() else {}
        table[key] = {k: terms[k] for k in sorted(terms)}
        STORED.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        return
    if key not in stored:
        pytest.fail(f"no stored loss values for {key}: write them with GANKD_UPDATE_LOSS_VALUES=1",
                    pytrace=False)
    want = stored[key]
    assert set(terms) == set(want), f"{method}: terms {sorted(terms)} != stored {sorted(want)}"
    off = {k: (terms[k], want[k]) for k in want
           if not math.isclose(terms[k], want[k], rel_tol=RTOL, abs_tol=1e-7)}
    assert not off, f"{method}: loss terms changed (now, stored): {off}"
