"""One progress bar per stage: a context manager yielding callback(done, total, text), or None without a bar.

The same callback shape serves evaluation, the training backends (TrainSpec.progress) and sampling.
"""

from __future__ import annotations

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
