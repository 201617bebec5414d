"""The check of a folder (or named source) of photos every image-reading task makes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gankd.datasets.source import open_data, usable
from gankd.errors import ConfigError
from gankd.tasks.base import DataCheck

if TYPE_CHECKING:
    from gankd.bench.suite import ModelSetup

log = logging.getLogger("gankd.bench.data")  # the logger these lines have always come from


def check_images(setup: ModelSetup, data: str) -> DataCheck:
    """Every image the run will read -- the sources of its training pairs, its evaluation and its
    validation images -- found (links and duplicates resolved: gankd/datasets/folder_dataset.py),
    big enough for its crops and decoded, before the run writes or trains anything. A problem is
    a ``ConfigError`` naming the file: the user fixes the data, the run has left nothing behind."""
    cfg = setup.data
    source = open_data(data)
    splits = source.splits(cfg)
    train = usable(splits.train, cfg.degrade_side, cfg, "training crop")
    if not train:
        raise ConfigError(f"no training image of {data} is at least {cfg.degrade_side}px on each side")
    test = usable(splits.test, cfg.eval_hr, cfg, "evaluation crop")
    if not test:
        raise ConfigError(f"no test image of {data} is at least {cfg.eval_hr}px on each side")
    val = usable(splits.val, cfg.val_side, cfg, "validation crop")
    source.verified([*train, *test, *val])
    log.info("data %s: %d training, %d validation, %d test image(s), all decoded (%s)", data, len(train),
             len(val), len(test), splits.rule)
    return DataCheck(len(train), len(val), len(test), splits.rule)
