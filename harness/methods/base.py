"""base: no training; the model is evaluated as it is (the reference every trained row is compared with)."""

from __future__ import annotations

from typing import Any, Optional

from harness.methods import Method, register


def train(ctx: Any, budget: int, init: Optional[str], teacher: Optional[str], teacher_model: Optional[str]) -> str:
    return ctx.base_ref


register(
    Method(
        name="base",
        summary="no training: evaluate the model as it is",
        train=train,
        trains=False,
        starts_from=None,
        order=0,
        wave=0,
    )
)
