"""sft: SFT of the base model on `budget` teacher demonstrations: the task's reference traces (`--teacher
traces:STYLE`, default the recipe's cold_start.teacher), a JSONL file, or responses a teacher model generates
greedily on the SFT prompts, kept where the verifier accepts them (`--teacher-model RUN_ID|PATH`).

    sft(base, demos[:budget]) -> eval
"""

from __future__ import annotations

from typing import Any, Optional

from harness.methods import Method, register
from harness.pipeline import cold_start_teacher, resolve_run_or_path, stage_sft, train_data_sft, verified_rows


def train(ctx: Any, budget: int, init: Optional[str], teacher: Optional[str], teacher_model: Optional[str]) -> str:
    if teacher_model:
        policy = resolve_run_or_path(ctx, teacher_model, "--teacher-model")
        rows, data_id = verified_rows(ctx, policy, budget, "A", "teacher model")
        return stage_sft(ctx, ctx.base_ref, rows, data_id)["model_path"]
    data, data_id = train_data_sft(ctx, teacher or cold_start_teacher(ctx), budget)
    return stage_sft(ctx, ctx.base_ref, data, data_id)["model_path"]


register(
    Method(
        name="sft",
        summary="SFT of the base model on `budget` teacher demonstrations",
        train=train,
        teacher="demonstrations: traces:STYLE | FILE.jsonl (default: the recipe's cold_start.teacher)",
        teacher_model=True,
        demonstrations=True,
        order=1,
        wave=0,
    )
)
