"""select: sample-effect-guided data selection. From a pool of candidate demonstrations, measure each one's sample
effect at the base model (harness/effect.py: e = <grad log-lik, g*>, g* the policy gradient of the verifier's reward
on eval prompts), then SFT the base model on the `budget` candidates with the highest effect (highest first).
`select.order: random` is the control: the same pool, a seeded random `budget` of it, nothing measured.

    effect(base, pool[:pool_size]) -> select top `budget` -> sft(base, selected) -> eval

The pool is what `sft` would train on (`--teacher`, else select.pool, else the recipe's cold_start.teacher: the
task's traces:STYLE or a JSONL file), or a run's data (redistill:RUN_ID, run:RUN_ID). Three cached stages: `effect`
(the measurement, reused by every budget and order that measures the same pool), `select` (the chosen ids) and `sft`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Optional

from harness.budget import format_budget
from harness.effect import Dataset, EffectSettings, load_source, measure_at
from harness.effect_grads import parse_params
from harness.errors import HarnessError
from harness.methods import COUNT_KEYS, GRADIENT_COUNT, Method, Section, register
from harness.pipeline import Context, cached_stage, cold_start_teacher, model_key, stage_sft
from harness.recipes import POS, POS_INT, one_of, or_null
from harness.records import config_hash, write_atomic


def _params_ok(v: Any) -> bool:
    try:
        return isinstance(v, str) and parse_params(v) is not None
    except HarnessError:
        return False


# pool None: --teacher, else cold_start.teacher; pool_size None: 4 x budget (at most the pool); eval_split None: val,
# else rl (never test); max_new_tokens None: the task's. The rest as `harness effect` takes them.
DEFAULTS = {
    "pool": None,
    "order": "effect",
    "pool_size": None,
    "eval_split": None,
    "eval_count": 32,
    "k": 8,
    "temperature": 1.0,
    "max_new_tokens": None,
    "params": "all",
    "project": None,
    "batch_size": 8,
    "dtype": "float32",
}
RULES = {
    "pool": (
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "a data source (traces:STYLE, run:RUN_ID, "
        "redistill:RUN_ID or a JSONL file) or null (--teacher, else cold_start.teacher)",
    ),
    "order": one_of(
        {
            "effect": "the highest measured sample effects first",
            "random": "a seeded random subset of the same pool, the control",
        }
    ),
    "pool_size": (
        lambda v: v is None or v == "all" or POS_INT[0](v),
        "a positive integer, all, or null (4 x the budget)",
    ),
    "eval_split": (
        lambda v: v is None or (isinstance(v, str) and v != "test"),
        "a split other than test (g* must not see the problems the run is scored on), or null",
    ),
    "eval_count": POS_INT,
    "k": (lambda v: POS_INT[0](v) and v >= 2, "an integer >= 2 (g* compares a prompt's responses)"),
    "temperature": POS,
    "max_new_tokens": or_null(POS_INT),
    "project": or_null(POS_INT),
    "batch_size": POS_INT,
    "params": (_params_ok, "all, last:N, lm_head or lora:R"),
    "dtype": one_of({"float32": "exact", "bfloat16": "half the memory", "float64": "for checks"}),
}
# Every key is a variant key: a run that sets one off its default is its own row (`select (order random)`) in the
# set-up of the rest, and a recipe gains this section without splitting the set-ups of the other methods' runs.
SECTION = Section("select", DEFAULTS, RULES, variants=tuple(DEFAULTS))


# --- the pool -----------------------------------------------------------------------------------------------------


def pool_rows(ctx: Context, sec: dict, teacher: Optional[str], budget: int) -> tuple[list[dict], str]:
    """(the first pool_size candidates of the pool, its source)."""
    source = teacher or sec["pool"] or cold_start_teacher(ctx)
    try:
        rows = load_source(source, ctx.task, ctx.recipe, ctx.root, ctx.seed).rows
    except HarnessError as e:
        given = "--teacher" if teacher else "select.pool" if sec["pool"] else "cold_start.teacher"
        raise HarnessError(f"select's pool ({given} {source}): {e}") from None
    n = pool_size(sec["pool_size"], budget, len(rows), source)
    return rows[:n], source


def pool_size(setting: Any, budget: int, available: int, source: str) -> int:
    if available < budget:
        raise HarnessError(
            f"the pool {source} has {available} demonstrations; budget {format_budget(budget)} needs "
            "more: lower --budget or choose a larger pool (select.pool, --teacher)"
        )
    if setting is None:
        return min(4 * budget, available)
    n = available if setting == "all" else int(setting)
    if n > available:
        raise HarnessError(
            f"select.pool_size {n} is larger than the pool {source} ({available} demonstrations); "
            "lower it, or set it to all"
        )
    if n < budget:
        raise HarnessError(
            f"select.pool_size {n} is smaller than the budget {budget}: there would be nothing to "
            "choose; raise select.pool_size or lower --budget"
        )
    return n


# --- stages -------------------------------------------------------------------------------------------------------


def settings(ctx: Context, sec: dict) -> EffectSettings:
    split = sec["eval_split"] or ("val" if "val" in ctx.task.splits else "rl")
    ctx.task.split(split)  # a split the task lacks fails here, before any model is loaded
    return EffectSettings(
        task=ctx.task.id,
        model=ctx.base_model,
        eval_split=split,
        eval_count=sec["eval_count"],
        k=sec["k"],
        temperature=float(sec["temperature"]),
        max_new_tokens=sec["max_new_tokens"],
        seed=ctx.seed,
        params=sec["params"],
        project=sec["project"],
        batch_size=sec["batch_size"],
        dtype=sec["dtype"],
    )


def stage_effect(ctx: Context, sec: dict, pool: list[dict], source: str) -> dict:
    """The sample effect of every candidate at the base model; effects.jsonl in pool order."""
    s = settings(ctx, sec)
    cfg = {
        "stage": "effect",
        "model": model_key(ctx, ctx.base_ref),
        "pool_hash": config_hash(pool),
        "n": len(pool),
        "g_star": {
            "data": ctx.split_def(s.eval_split),
            "count": s.eval_count,
            "k": s.k,
            "temperature": s.temperature,
            "max_new_tokens": s.max_new_tokens,
            "verifier": ctx.task.verifier.model_dump(),
        },
        "params": s.params,
        "project": s.project,
        "batch_size": s.batch_size,
        "dtype": s.dtype,
        "max_length": int(ctx.recipe.get("sft", {}).get("max_length", 2048)),
        "seed": ctx.seed,
    }

    def build(d: Path) -> dict:
        try:
            s.check()
            metrics, rows, cost = measure_at(
                s, ctx.task, ctx.recipe, ctx.base_ref, [Dataset(source, pool, cfg["pool_hash"])], ctx.progress
            )
        except HarnessError as e:
            raise HarnessError(
                f"select could not measure its pool: {e} (for select, set these in the recipe's "
                "select section, e.g. --set select.k=16)"
            ) from None
        write_atomic(d / "effects.jsonl", "".join(json.dumps({"index": i, **r}) + "\n" for i, r in enumerate(rows)))
        seconds = metrics["measurement"]["seconds_total"]
        return {
            "data_path": str(d / "effects.jsonl"),
            "counts": cost,
            "metrics": {
                "effect_wall_seconds": seconds,
                "pool_size": len(pool),
                "pool_mean_effect": metrics["datasets"][source]["mean"],
                **{k: metrics[k] for k in ("g_star", "params", "measurement")},
            },
        }

    return cached_stage(
        ctx,
        "effect",
        cfg,
        build,
        hint={"estimate": estimate_effect, "settings": s, "pool": pool, "max_length": cfg["max_length"]},
    )


def choose(effects: Optional[list[float]], n_pool: int, budget: int, order: str, seed: int) -> list[int]:
    """Pool indices to train on: the `budget` highest effects, highest first (ties: the earlier candidate), or a
    seeded random `budget` of the pool (order random)."""
    if order == "random":
        return random.Random(seed).sample(range(n_pool), budget)
    assert effects is not None and len(effects) == n_pool
    return sorted(range(n_pool), key=lambda i: (-effects[i], i))[:budget]


def stage_select(
    ctx: Context, order: str, budget: int, pool: list[dict], source: str, measured: Optional[dict]
) -> dict:
    """The chosen candidates (selected.jsonl: pool index, id, effect) and what the choice was made of."""
    cfg = {
        "stage": "select",
        "order": order,
        "budget": budget,
        "pool_hash": config_hash(pool),
        "n": len(pool),
        "effects": measured["key"] if measured else None,
        "seed": ctx.seed,
    }

    def build(d: Path) -> dict:
        effects = None
        if measured:
            effects = [json.loads(x)["effect"] for x in Path(measured["data_path"]).read_text().splitlines()]
        picked = choose(effects, len(pool), budget, order, ctx.seed)
        rows = [{"index": i, "id": pool[i].get("id"), "effect": effects[i] if effects else None} for i in picked]
        write_atomic(d / "selected.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        metrics = {
            "order": order,
            "pool": source,
            "pool_size": len(pool),
            "selected": len(picked),
            "selected_ids_hash": config_hash([r["id"] for r in rows]),
            "effect_wall_seconds": None,
            "mean_effect_selected": None,
            "mean_effect_pool": None,
        }
        if effects:
            metrics.update(
                effect_wall_seconds=measured["metrics"]["effect_wall_seconds"],
                mean_effect_selected=sum(r["effect"] for r in rows) / len(rows),
                mean_effect_pool=sum(effects) / len(effects),
            )
        return {"data_path": str(d / "selected.jsonl"), "counts": {}, "metrics": metrics}

    return cached_stage(ctx, "select", cfg, build, hint={"estimate": lambda planner, hint: {"memory": {"total_gb": 0}}})


def estimate_effect(planner: Any, hint: dict) -> dict:
    """--dry-run: g*'s rollouts at reference-trace length, and every sequence a gradient goes through."""
    s, pool = hint["settings"], hint["pool"]
    max_new = s.max_new_tokens or planner.ctx.task.generation.max_new_tokens
    prompts = [x["prompt"] for x in planner.placeholder_rows(s.eval_split, s.eval_count)]
    prompt = sum(planner.tokens(p)[0] for p in prompts) / max(1, len(prompts))
    completion = min(planner.reference_length(), max_new)
    rollouts = len(prompts) * s.k
    pool_tokens = sum(min(sum(planner.tokens(x["prompt"], x["completion"])), hint["max_length"]) for x in pool)
    memory = planner.memory(
        s.batch_size, round(prompt + max_new), s.dtype, False, gen_batch=max(s.k, 32), gen_len=round(prompt + max_new)
    )
    memory["gradients_gb"] = 2 * memory["weights_gb"]  # g* and one sample's gradient (params all: the most)
    memory["total_gb"] += memory["gradients_gb"]
    return {
        "rollouts_generated": rollouts,
        "tokens_generated": round(rollouts * completion),
        "tokens_gradient": round(rollouts * (prompt + completion)) + pool_tokens,
        "memory": memory,
    }


# --- the method ---------------------------------------------------------------------------------------------------


def train(ctx: Context, budget: int, init: Optional[str], teacher: Optional[str], teacher_model: Optional[str]) -> str:
    sec = SECTION.values(ctx.recipe)
    pool, source = pool_rows(ctx, sec, teacher, budget)
    measured = stage_effect(ctx, sec, pool, source) if sec["order"] == "effect" else None
    chosen = stage_select(ctx, sec["order"], budget, pool, source, measured)
    if chosen.get("planned"):  # a dry run: the choice is not made yet; the pool's first rows stand in for it
        data, data_id = pool[:budget], f"plan:{chosen['key']}"
    else:
        picked = [json.loads(x)["index"] for x in Path(chosen["data_path"]).read_text().splitlines()]
        data, data_id = [pool[i] for i in picked], f"select:{chosen['key']}"
    return stage_sft(ctx, ctx.base_ref, data, data_id, tag="select sft")["model_path"]


register(
    Method(
        name="select",
        summary="SFT of the base model on the `budget` demonstrations of a pool with the "
        "highest sample effect (select.order random: a random subset, the control)",
        train=train,
        teacher="the pool: traces:STYLE | FILE.jsonl | run:RUN_ID | redistill:RUN_ID (default: select.pool, "
        "else cold_start.teacher)",
        section=SECTION,
        count_keys=(*COUNT_KEYS, GRADIENT_COUNT),
        demonstrations=True,
        order=4,
        wave=0,
    )
)
