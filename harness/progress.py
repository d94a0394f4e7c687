"""One progress bar per stage: a context manager yielding callback(done, total, text), or None without a bar.

The same callback shape serves evaluation, the training backends (TrainSpec.progress) and sampling. On a terminal
the bar is rich's; elsewhere (a log file, nohup, CI, Slurm, a notebook) `Lines` prints one plain line every
`HARNESS_PROGRESS_INTERVAL` seconds (default 30) and one when the stage ends, so a log shows signs of life.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

Callback = Callable[[int, int, str], None]


@contextmanager
def progress_bar(factory: Optional[Callable], label: str) -> Iterator[Optional[Callback]]:
    if factory is None:
        yield None
        return
    with factory(label) as bar:
        tid = bar.add_task(label, total=None, metric="")
        yield lambda done, total, text: bar.update(tid, completed=done, total=total, metric=text)


def interval() -> float:
    raw = os.environ.get("HARNESS_PROGRESS_INTERVAL", "30")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 30.0


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Lines:
    """The part of rich.progress.Progress that progress_bar uses, as plain lines:
    `[label] 40/128 steps  loss 0.31  elapsed 1:02  ETA 2:16`."""

    def __init__(
        self,
        label: str,
        write: Callable[[str], None],
        every: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.write, self.every, self.clock = label, write, interval() if every is None else every, clock
        self.done, self.total, self.metric = 0, None, ""
        self.start = self.last = 0.0

    def __enter__(self) -> "Lines":
        self.start = self.last = self.clock()
        return self

    def __exit__(self, *exc) -> None:
        self._line(final=True)

    def add_task(self, label: str, total=None, metric: str = "") -> int:
        self.total, self.metric = total, metric
        return 0

    def update(self, tid: int, completed: int = 0, total=None, metric: str = "") -> None:
        self.done, self.total, self.metric = completed, total, metric
        if self.clock() - self.last >= self.every:
            self._line()

    def _line(self, final: bool = False) -> None:
        now = self.clock()
        self.last = now
        elapsed = now - self.start
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        eta = ""
        if not final and self.total and 0 < self.done < self.total:
            eta = f"  ETA {_clock(elapsed * (self.total - self.done) / self.done)}"
        metric = f"  {self.metric}" if self.metric else ""
        self.write(f"[{self.label}] {count}{metric}  elapsed {_clock(elapsed)}{eta}{'  done' if final else ''}")
