"""rl: GRPO (TRL) on `budget` prompts of the task's rl split, from a start model: `--init base | sft@BUDGET | RUN_ID |
PATH`, default the recipe's rl.init (sft@BUDGET trains that cold start first, as a cached stage).

    grpo(init, rl prompts[:budget]) -> eval
"""

from __future__ import annotations

from typing import Any, Optional

from harness.methods import Method, register
from harness.pipeline import resolve_init, stage_rl


def train(ctx: Any, budget: int, init: Optional[str], teacher: Optional[str], teacher_model: Optional[str]) -> str:
    start = resolve_init(ctx, init or ctx.recipe.get("rl", {}).get("init", "base"))
    return stage_rl(ctx, start, budget)["model_path"]


register(
    Method(
        name="rl",
        summary="GRPO on `budget` rl prompts from a start model (--init, default rl.init)",
        train=train,
        starts_from="init",
        init_key="rl.init",
        order=2,
        wave=1,
    )
)
