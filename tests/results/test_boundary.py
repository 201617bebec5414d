"""The results side imports nothing from training: building the report from the committed sample
loads no module of gankd.bench, engine, methods, datasets or models (issue 40, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

from gankd.registry import PLUGINS_ENV

TRAINING = ("gankd.bench", "gankd.engine", "gankd.methods", "gankd.datasets", "gankd.models")

SCRIPT = """
import sys, tempfile
from pathlib import Path
from gankd.results.report import build
from gankd.results import judge, leaderboard, protocol, record, store, suites, tables, verdict
paths = build(Path(sys.argv[1]), Path(tempfile.mkdtemp()))
assert paths["html"].stat().st_size > 0
print("\\n".join(sorted(m for m in sys.modules if m.startswith("gankd"))))
"""


def test_the_report_is_built_without_importing_training():
    # the tests' plugin method is training code: leave it out
    env = {k: v for k, v in os.environ.items() if k != PLUGINS_ENV}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "reports" / "sample" / "results")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = done.stdout.split()
    assert "gankd.results.report" in loaded
    assert not [m for m in loaded if m.startswith(TRAINING)]
