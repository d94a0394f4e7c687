"""redistill (Chen, Gao & Wu 2025): sample an RL policy (`--teacher RUN_ID|PATH`, or one the recipe trains: its rl.init
start, then GRPO on rl.budget prompts), keep verified-correct responses (one per prompt, seeded), SFT the *base* model
on `budget` of them. Variant A samples greedily on the SFT prompts, B at temperature on the RL prompts.

    sample(RL policy) -> keep verified, one per prompt -> sft(BASE, kept[:budget]) -> eval
"""

from __future__ import annotations

from typing import Any, Optional

from harness.budget import parse_budget
from harness.methods import Method, Section, register
from harness.pipeline import (
    REDISTILL_FILTERS,
    REDISTILL_KEEPS,
    REDISTILL_VARIANTS,
    inherit_stages,
    resolve_init,
    resolve_run_or_path,
    stage_rl,
    stage_sft,
    verified_rows,
)
from harness.recipes import NONNEG, POS_INT

SECTION = Section(
    "redistill",
    # max_new_tokens None: the task's generation.max_new_tokens; engine: auto (vLLM when installed and a GPU is
    # present), transformers or vllm; vllm: that engine's settings.
    defaults={
        "variant": "B",
        "temperature": 0.7,
        "samples_per_prompt": 1,
        "max_new_tokens": None,
        "filter": "correct",
        "keep": "random",
        "engine": "auto",
        "vllm": None,
    },
    rules={
        "temperature": NONNEG,
        "samples_per_prompt": POS_INT,
        "max_new_tokens": POS_INT,
        "variant": (
            lambda v: str(v).upper() in REDISTILL_VARIANTS,
            "A (greedy on the SFT prompts) or B (sampled on the RL prompts)",
        ),
        "filter": (
            lambda v: v in REDISTILL_FILTERS,
            "correct (verified-correct answers) or faithful (right answer and every step of a K&K trace right)",
        ),
        "keep": (
            lambda v: v in REDISTILL_KEEPS,
            "random (one verified response per prompt, chosen with the "
            "seed) or shortest (the one with the fewest tokens)",
        ),
    },
    variants=("variant", "temperature", "samples_per_prompt", "filter", "keep"),
)


def train(ctx: Any, budget: int, init: Optional[str], teacher: Optional[str], teacher_model: Optional[str]) -> str:
    if teacher:
        policy = resolve_run_or_path(ctx, teacher, "--teacher")
        inherit_stages(ctx, teacher)  # the RL chain's cost counts, as when the recipe trains it
    else:
        rl = ctx.recipe.get("rl", {})
        start = resolve_init(ctx, init or rl.get("init", "base"))
        policy = stage_rl(ctx, start, parse_budget(rl.get("budget", "1k")))["model_path"]
    rows, data_id = verified_rows(ctx, policy, budget, None, "RL policy")
    return stage_sft(ctx, ctx.base_ref, rows, data_id, tag="redistill sft")["model_path"]


register(
    Method(
        name="redistill",
        summary="SFT of the base model on `budget` verified responses of an RL policy",
        train=train,
        teacher="the RL policy: RUN_ID | PATH (default: trained by the recipe)",
        section=SECTION,
        demonstrations=True,
        order=3,
        wave=2,
    )
)
