"""The split and duplicate rules every source of named images shares (a folder, an LMDB
database): which copy of a photo is kept, which split each image falls in, and the near-duplicates
dropped across splits. The rules themselves are documented in ``folder_dataset``; a source
supplies only what is its own (how it finds sizes, contents and fingerprints).

Names are POSIX paths (``train/0001.png``); the *explicit layout* is the one whose names sit
under ``train/`` and ``test/`` (and maybe ``val/`` or ``valid/``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import numpy as np

from gankd.datasets import near_duplicates as near
from gankd.datasets.config import DataConfig
from gankd.datasets.images import ImageRef
from gankd.datasets.source import Splits, hash_order
from gankd.errors import ConfigError

log = logging.getLogger("gankd.datasets")

VAL_DIRS = ("val", "valid")
T = TypeVar("T")


def top(name: str) -> str:
    return name.split("/", 1)[0]


def priority(name: str, explicit: bool) -> tuple[int, str]:
    """Which of several copies of one photo is kept: test before val before train (explicit
    layout), then the first name."""
    if explicit:
        t = top(name)
        rank = 0 if t == "test" else 1 if t in VAL_DIRS else 2 if t == "train" else 3
        return rank, name
    return 0, name


def identical(groups: Sequence[Sequence[T]], size_of: Callable[[T], int], digest_of: Callable[[T], Hashable],
              rank: Callable[[T], tuple[int, str]]) -> tuple[list[T], list[tuple[T, T]]]:
    """One item per content. ``groups``: items already known to be one image (links to one file);
    the first of each group by ``rank`` stands for it. Contents are compared (``digest_of``) only
    among items of equal ``size_of``. Returns the kept items and the (dropped, kept) pairs."""
    by_size: dict[int, list[tuple[T, Sequence[T]]]] = {}
    for group in groups:
        first = min(group, key=rank)
        by_size.setdefault(size_of(first), []).append((first, group))
    kept: list[T] = []
    dropped: list[tuple[T, T]] = []
    for candidates in by_size.values():
        by_content: dict[Hashable, list[tuple[T, Sequence[T]]]] = {}
        for first, group in candidates:
            key = digest_of(first) if len(candidates) > 1 else ""
            by_content.setdefault(key, []).append((first, group))
        for same in by_content.values():
            keep = min((f for f, _ in same), key=rank)
            kept.append(keep)
            dropped += [(it, keep) for _, group in same for it in group if it is not keep]
    return kept, dropped


def log_identical(where: object, dropped: list[tuple[str, str]], what: str = "file") -> None:
    """Name the dropped copies (``(dropped, kept)`` names) in the log."""
    if not dropped:
        return
    dropped = sorted(dropped)
    shown = ", ".join(f"{a} = {b}" for a, b in dropped[:5]) + (" ..." if len(dropped) > 5 else "")
    log.warning("%s: %d duplicate image %s(s) dropped (links to, or byte-identical copies of, "
                "another image; each photo is used once): %s", where, len(dropped), what, shown)


def without_near_duplicates(train: list[ImageRef], val: list[ImageRef], test: list[ImageRef],
                            fingerprints: Callable[[list[ImageRef]], dict[str, np.ndarray | None]],
                            where: object) -> tuple[list[ImageRef], list[ImageRef]]:
    """``train`` and ``val`` without the copies of a held-out image (``near_duplicates``)."""
    groups = {"train": train, "val": val, "test": test}
    prints = fingerprints([r for rs in groups.values() for r in rs])
    copies = near.across_splits({k: [r.name for r in rs] for k, rs in groups.items()}, prints)
    if not copies:
        return train, val
    gone = {c.dropped for c in copies}
    shown = ", ".join(map(str, copies[:5])) + (" ..." if len(copies) > 5 else "")
    log.warning("%s: %d near-duplicate image(s) dropped (the same photo as a test or validation image, "
                "re-saved, re-encoded, resized or trimmed; the cosine of their fingerprints shown): %s",
                where, len(copies), shown)
    return [r for r in train if r.name not in gone], [r for r in val if r.name not in gone]


def split(refs: list[ImageRef], cfg: DataConfig, where: object, has_train: bool, has_test: bool,
          fingerprints: Callable[[list[ImageRef]], dict[str, np.ndarray | None]]) -> Splits:
    """The train / val / test images of ``refs`` (the rule in ``folder_dataset``'s doc).
    ``has_train`` / ``has_test``: the source has a ``train/`` / ``test/`` folder (one may exist
    with no image in it; an LMDB database's keys under ``train/`` are its folder)."""
    if has_test and not has_train:
        raise ConfigError(f"{where} has a test/ folder but no train/ folder: put the training images "
                          "under train/ (test/ images are never trained on)")
    if has_train and has_test:
        def under(*dirs: str) -> list[ImageRef]:
            return [r for r in refs if top(r.name) in dirs]

        train, test = under("train"), under("test")
        val = under(*VAL_DIRS)
        if not train or not test:
            raise ConfigError(f"{where}: train/ and test/ must both hold images "
                              f"(found {len(train)} and {len(test)})")
        rule = "explicit train/ and test/ sub-folders"
        if val:
            rule += ", val/ sub-folder"
        else:
            ordered = hash_order(train)
            val, train = ordered[:cfg.val_images], ordered[cfg.val_images:]
            rule += f", val = first {cfg.val_images} of train/ by sha256(name)"
        ignored = len(refs) - len(train) - len(test) - len(val)
        if ignored:
            log.info("%s: %d image(s) outside train/, test/ and val/ are not used", where, ignored)
    else:
        need = cfg.test_images + cfg.val_images + 1
        if len(refs) < need:
            raise ConfigError(
                f"{where} has {len(refs)} image(s); test_images={cfg.test_images} + "
                f"val_images={cfg.val_images} leave none for training (need at least {need})")
        ordered = hash_order(refs)
        n_test, n_val = cfg.test_images, cfg.val_images
        test, val, train = ordered[:n_test], ordered[n_test:n_test + n_val], ordered[n_test + n_val:]
        rule = (f"sha256(name) order: first {n_test} test, next {n_val} val, rest ({len(train)}) train")
    train, val = without_near_duplicates(train, val, test, fingerprints, where)
    if not train:
        raise ConfigError(f"{where}: no training images left after the split ({rule})")
    if not test:
        raise ConfigError(f"{where}: no test images (test_images=0?); evaluation needs at least one")

    def by_name(rs: list[ImageRef]) -> tuple[ImageRef, ...]:
        return tuple(sorted(rs, key=lambda r: r.name))

    return Splits(by_name(train), by_name(val), by_name(test), rule)
