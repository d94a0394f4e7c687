"""Several processes (`accelerate launch`): every rank trains (the Trainer runs DDP / DeepSpeed), rank 0 alone
samples, evaluates and writes records, and the others wait for it."""

from __future__ import annotations

import os
from typing import Any, Optional


def _state() -> Optional[Any]:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # Without cpu=True accelerate sees no GPU and no multi-CPU run, and this shared state would say "1 process".
    return PartialState(cpu=not torch.cuda.is_available())


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    s = _state()
    return s is None or s.is_main_process


def barrier() -> None:
    s = _state()
    if s is not None:
        s.wait_for_everyone()
