"""The results side: what a run leaves behind and what is made of it, importing nothing from
training (no gankd.bench, engine, methods, datasets or models module).

- ``record``: a run's record (``RunRecord``; ``RunStatus`` says what a run's end means for
  counting, skipping and showing it) and the columns every run reports;
- ``store``: the results folder, read and written atomically;
- ``leaderboard`` and ``tables``: records aggregated over seeds, printed plain;
- ``verdict``, ``judge`` and ``protocol``: each method against ``scratch`` by the suite's declared
  protocol;
- ``report``: the static HTML leaderboard and its CSV;
- ``suites``: what the results side is told about a suite (its protocol, its models' tasks,
  whether a record is current); the training side supplies it (``gankd.bench.suite.SuiteIndex``).

Metric columns come from the metric registry (``gankd.metrics``), whose classes import torch:
importing the results side loads torch, not training code. ``tests/results/test_boundary.py``
holds the line.
"""
