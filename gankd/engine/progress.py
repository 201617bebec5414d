"""Progress of long work: a tqdm bar on a terminal; plain, complete lines in a pipe or a log file
(a bar redrawn with carriage returns is unreadable there), one per update of the loss terms,
with the rate and the time left."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm


class PlainProgress:
    """The part of tqdm's interface the engine uses, writing one line per ``set_postfix_str``."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "step") -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self._start_n, self._t0 = initial, time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        done = self.n - self._start_n
        elapsed = time.perf_counter() - self._t0
        rate = elapsed / done if done else 0.0
        left = rate * (self.total - self.n)
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({100 * self.n / max(1, self.total):.0f}%), "
              f"{rate:.2f} s/{self.unit}, {_clock(elapsed)} elapsed, {_clock(left)} left  {text}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def bar(total: int, initial: int = 0, desc: str = "", enabled: bool = True, unit: str = "step") -> Any:
    """A tqdm bar on a terminal, ``PlainProgress`` otherwise; a disabled tqdm when not ``enabled``."""
    if enabled and not sys.stderr.isatty():
        return PlainProgress(total, initial, desc, unit)
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, unit=unit)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
