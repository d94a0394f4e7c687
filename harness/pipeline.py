"""The stages methods are built from (harness/methods/: each method's chain of them), cached by their config.

    sft      SFT of a start model on demonstrations (train_data_sft: reference traces or a JSONL file)
    rl       GRPO of a start model on the rl split's first `budget` prompts (resolve_init: base | sft@N | RUN | PATH)
    sample   verified-correct responses of a teacher, one per prompt (verified_rows)

A stage's output lives in <runs>/_stages/<stage>-<key>/, key = hash of its full resolved config (including the
key of the model it starts from). `stage.json` is written last, atomically: only then is the stage complete and
reused. A killed stage leaves Trainer checkpoints there and resumes from them on the next identical command.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from harness import dist, models
from harness.budget import format_budget, parse_budget
from harness.data import load_split, read_rows, render_prompt
from harness.errors import HarnessError
from harness.progress import progress_bar
from harness.records import config_hash, dumps, read_json_object, write_atomic
from harness.registry import did_you_mean
from harness.store import RunRecord, RunStore
from harness.taskspec import TaskSpec

# The sample stage's choices (redistill.variant / filter / keep): checked when a recipe resolves (the redistill
# method's recipe section, harness/methods/redistill.py) and again where the stage reads them.
REDISTILL_VARIANTS, REDISTILL_FILTERS, REDISTILL_KEEPS = ("A", "B"), ("correct", "faithful"), ("random", "shortest")


@dataclass
class Context:
    task: TaskSpec
    recipe_name: str
    recipe: dict
    base_model: str  # as the user gave it
    base_ref: str  # resolved (tiny is built)
    seed: int
    root: Path
    progress: Optional[Callable] = None
    stages: list[dict] = field(default_factory=list)
    plan: Optional[Any] = None  # harness.plan.Planner: --dry-run, stages not complete are estimated, never built

    def split_def(self, split: str) -> dict:
        return {
            "task": self.task.id,
            "task_sha256": self.task.sha256,
            "split": split,
            "def": self.task.split(split).model_dump(by_alias=True),
            "source": self.task.source.model_dump(by_alias=True),
        }


def model_key(ctx: Context, ref: str) -> str:
    """A stable name for a start model: stage outputs by their stage, others by what the user passed."""
    p = Path(ref)
    if p.parent.parent.name == "_stages" and p.name == "final":
        return f"stage:{p.parent.name}"
    if ref == ctx.base_ref:
        # The tiny model's folder name carries the hash of its build recipe and tokenizer corpus.
        return f"tiny:{p.name}" if models.is_tiny(ctx.base_model) else ctx.base_model
    return ref


# --- stages ---------------------------------------------------------------------------------------------------


def read_marker(marker: Path) -> dict:
    """A stage's stage.json; a damaged one is one clear error (its stage cannot be trusted), never a traceback."""
    info, problem = read_json_object(marker)
    if problem is not None:
        raise HarnessError(
            f"stage marker {marker} is damaged ({problem}); delete the folder {marker.parent} and run "
            "the command again to rebuild that stage"
        )
    return info


def cached_stage(
    ctx: Context,
    name: str,
    cfg: dict,
    build: Callable[[Path], dict],
    all_ranks: bool = False,
    hint: Optional[dict] = None,
) -> dict:
    """Reuse a complete stage or build it. Training stages run on every rank (all_ranks); others on rank 0 only.
    In a dry run (ctx.plan) a stage that is not complete is estimated from `hint` instead of built."""
    key = config_hash(cfg)
    d = RunStore(ctx.root).stage_dir(name, key)
    marker = d / "stage.json"
    if ctx.plan is not None and not marker.is_file():
        return ctx.plan.stage(name, cfg, d, hint or {})
    if not marker.is_file():
        main = dist.is_main()
        if main or all_ranks:
            d.mkdir(parents=True, exist_ok=True)
            from backends._common import resume_checkpoint

            resumed = resume_checkpoint(d)  # what the trainer will resume from (the newest complete checkpoint)
            t0 = time.perf_counter()
            out = build(d)
            out["resumed_from"] = Path(resumed).name if resumed else None
            if main:
                write_atomic(d / "config.json", dumps(cfg))
                write_atomic(
                    marker,
                    dumps(
                        {
                            "stage": name,
                            "key": key,
                            "dir": str(d),
                            "config": cfg,
                            **out,
                            "wall_seconds": time.perf_counter() - t0,
                            "world_size": dist.world_size(),
                        }
                    ),
                )
        dist.barrier()
        info = {**read_marker(marker), "cached": False}
    else:
        info = {**read_marker(marker), "cached": True}
    ctx.stages.append(info)
    return info


def train_data_sft(ctx: Context, teacher: str, budget: Optional[int]) -> tuple[list[dict], str]:
    """SFT demonstrations: the task's reference traces, or a JSONL file of prompt/response pairs (budget None: all)."""
    if teacher.startswith("traces:"):
        style = teacher.split(":", 1)[1]
        if style not in ctx.task.traces:
            raise HarnessError(
                f"task '{ctx.task.id}' has no '{style}' traces: {did_you_mean(style, list(ctx.task.traces))}"
            )
        split = "sft" if "sft" in ctx.task.splits else "train"
        available = ctx.task.split(split).size
        if available is not None and budget is not None and budget > available:
            raise HarnessError(
                f"budget {format_budget(budget)} is larger than the '{split}' split of '{ctx.task.id}' "
                f"({available} demonstrations available); lower --budget"
            )
        rows = load_split(ctx.task, split, limit=budget)
        data = [
            {
                "id": s["id"],
                "prompt": render_prompt(ctx.task, s),
                "completion": s["traces"][style],
                "answer": s["answer"],
            }
            for s in rows
            if style in s["traces"]
        ]
        if budget is not None and len(data) < budget:
            raise HarnessError(f"only {len(data)} '{style}' traces are available; lower --budget")
        return data, teacher
    path = Path(teacher)
    if not path.is_file():
        raise HarnessError(
            f"--teacher '{teacher}' is neither traces:STYLE nor an existing JSONL file "
            "(rows with prompt/messages and response/completion)"
        )
    text = path.read_text()
    data = []
    for i, r in enumerate(read_rows(path)):
        prompt = r.get("messages") or r.get("prompt")
        completion = r.get("completion", r.get("response"))
        if prompt is None or not isinstance(completion, str):
            raise HarnessError(f"{path}: row {i + 1} needs 'prompt' (or 'messages') and 'completion' (or 'response')")
        data.append({"id": str(r.get("id", i)), "prompt": prompt, "completion": completion, "answer": r.get("answer")})
    if budget is not None and len(data) < budget:
        raise HarnessError(f"{path} has {len(data)} demonstrations; budget {format_budget(budget)} needs more")
    return data[:budget], f"file:{config_hash(text)}"


def stage_sft(ctx: Context, init_ref: str, data: list[dict], data_id: str, tag: str = "sft") -> dict:
    from backends.defaults import sft_schedule

    # what trains on this many demonstrations (min_steps resolved), so the key says it and a floor that does not
    # bind leaves the key as it was
    sft_recipe = sft_schedule(ctx.recipe.get("sft", {}), len(data), dist.world_size())
    cfg = {
        "stage": "sft",
        "init": model_key(ctx, init_ref),
        "data": data_id,
        "n": len(data),
        "data_hash": config_hash(data),
        "recipe": sft_recipe,
        "seed": ctx.seed,
    }

    def build(d: Path) -> dict:
        from backends import TrainSpec
        from backends.sft import train

        write_atomic(d / "train_data.jsonl", "".join(json.dumps(r) + "\n" for r in data))
        with progress_bar(ctx.progress, f"{tag} ({len(data)} demos)") as cb:
            res = train(
                TrainSpec(init_model=init_ref, output_dir=d, data=data, recipe=sft_recipe, seed=ctx.seed, progress=cb)
            )
        write_atomic(d / "log.jsonl", "".join(json.dumps(x) + "\n" for x in res.log))
        return {"model_path": str(res.model_path), "counts": res.counts, "metrics": res.metrics}

    return cached_stage(
        ctx, "sft", cfg, build, all_ranks=True, hint={"data": data, "unknown_data": data_id.startswith("plan:")}
    )


def stage_rl(ctx: Context, init_ref: str, budget: int) -> dict:
    rl = {k: v for k, v in ctx.recipe.get("rl", {}).items() if k not in ("init", "budget")}
    available = ctx.task.split("rl").size
    if available is not None and budget > available:
        raise HarnessError(
            f"rl budget {format_budget(budget)} is larger than the 'rl' split of '{ctx.task.id}' "
            f"({available} prompts available); lower --budget"
        )
    cfg = {
        "stage": "rl",
        "init": model_key(ctx, init_ref),
        "data": ctx.split_def("rl"),
        "budget": budget,
        # rl.cache changes how generation keeps its KV cache, not what it generates (tests/test_engines.py): the stage
        # is the same stage with either
        "recipe": {k: v for k, v in rl.items() if k != "cache"},
        "verifier": ctx.task.verifier.model_dump(),
        "seed": ctx.seed,
    }

    def build(d: Path) -> dict:
        from backends import TrainSpec
        from backends.grpo import train

        rows = load_split(ctx.task, "rl", limit=budget)
        data = [{"id": s["id"], "prompt": render_prompt(ctx.task, s), "answer": s["answer"]} for s in rows]
        verifier = ctx.task.build_verifier()
        eval_fn = None
        if rl.get("eval_every") and "val" in ctx.task.splits:
            eval_fn = _val_eval(ctx, rl.get("val_limit"))
        with progress_bar(ctx.progress, f"rl ({budget} prompts)") as cb:
            res = train(
                TrainSpec(
                    init_model=init_ref,
                    output_dir=d,
                    data=data,
                    recipe=rl,
                    seed=ctx.seed,
                    verifier=verifier,
                    eval_fn=eval_fn,
                    progress=cb,
                )
            )
        write_atomic(d / "log.jsonl", "".join(json.dumps(x) + "\n" for x in res.log))
        return {"model_path": str(res.model_path), "counts": res.counts, "metrics": res.metrics}

    return cached_stage(ctx, "rl", cfg, build, all_ranks=True, hint={"budget": budget, "recipe": rl})


def _val_eval(ctx: Context, limit: Optional[int]) -> Callable:
    def fn(model: Any, tokenizer: Any) -> dict:
        from harness.engines import engine_settings, make_engine
        from harness.evaluate import evaluate

        was_training = model.training
        model.eval()
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            settings = engine_settings(ctx.recipe.get("eval"))
            engine = make_engine(
                "transformers",
                model=model,
                tokenizer=tokenizer,
                batch_size=settings["batch_size"],
                cache=settings["cache"],
            )
            metrics, _ = evaluate(ctx.task, engine, split="val", limit=limit, seed=ctx.seed)
        finally:
            tokenizer.padding_side = side
            model.train(was_training)
        return {k: metrics[k] for k in ("accuracy", "ci95", "n", "truncation_rate", "mean_response_tokens")}

    return fn


def stage_sample(ctx: Context, teacher_ref: str, target: int, variant: Optional[str] = None) -> dict:
    """Verified-correct responses of a teacher (the RL policy for redistill), one per prompt (seeded), shuffled.
    Variant A: greedy on the SFT prompts; B: sampled at temperature on the RL prompts. redistill.filter: `correct`
    (the paper's verified-correct filter) or `faithful` (K&K explicit traces whose every step is right as well,
    harness/faithful.py). redistill.keep: which of a prompt's kept responses is used, `random` (seeded, the paper's)
    or `shortest` (fewest tokens: re-distillation that also balances response length); it matters only with
    samples_per_prompt > 1."""
    rd = ctx.recipe.get("redistill", {})
    c = _sample_choices(ctx, variant)
    cfg = {
        "stage": "sample",
        "teacher": model_key(ctx, teacher_ref),
        "variant": c["variant"],
        "data": ctx.split_def(c["split"]),
        "temperature": c["temperature"],
        "n": c["n"],
        "max_new_tokens": c["max_new"],
        "target": target,
        "verifier": ctx.task.verifier.model_dump(),
        "seed": ctx.seed,
        "truncated": "dropped",
    }
    from harness.engines import engine_settings, make_engine, pick_engine

    # redistill.engine: auto (vLLM when installed and a GPU is present), transformers or vllm;
    # redistill.vllm: its settings.
    engine_name = pick_engine(str(rd.get("engine", "auto")), what="redistill.engine")
    if engine_name != "transformers":  # other engines sample differently; transformers keeps the keys of older caches
        cfg["engine"] = engine_name
    if c["filter"] != "correct":  # only when not the default, so the keys of older caches stay
        cfg["filter"] = c["filter"]
    if c["keep"] != "random":
        cfg["keep"] = c["keep"]

    def build(d: Path) -> dict:
        if c["filter"] == "faithful":
            from harness.faithful import reference_for_sample

            if reference_for_sample(load_split(ctx.task, c["split"], limit=1)[0]) is None:
                raise HarnessError(
                    f"redistill.filter=faithful needs K&K samples with statements in their metadata; "
                    f"task '{ctx.task.id}' has none (use redistill.filter=correct)"
                )
        ev = ctx.recipe.get("eval", {})
        engine = make_engine(
            engine_name,
            teacher_ref,
            **engine_settings(ev),
            seed=ctx.seed,
            vllm=rd.get("vllm"),
        )
        try:
            kept, tried, counts = _sample_verified(ctx, engine, c, target)
        finally:
            if hasattr(engine, "close"):
                engine.close()  # vLLM: give the GPU back before the SFT stage (or after a failure)
        random.Random(ctx.seed).shuffle(kept)
        write_atomic(d / "redistill.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        return {
            "data_path": str(d / "redistill.jsonl"),
            "kept": len(kept),
            "prompts_tried": tried,
            "engine": engine.name,
            "filter": c["filter"],
            "keep": c["keep"],
            "mean_kept_tokens": sum(r["n_tokens"] for r in kept) / max(1, len(kept)),
            "counts": counts,
        }

    hint = {"target": target, "n": c["n"], "max_new": c["max_new"], "split": c["split"]}
    info = cached_stage(ctx, "sample", cfg, build, hint=hint)
    info.setdefault("filter", c["filter"])  # stages cached before the option existed used the default
    info.setdefault("keep", "random")
    return info


def _sample_choices(ctx: Context, variant: Optional[str]) -> dict:
    """The sample stage's settings from the recipe's redistill section, each checked: variant (A or B) and what it
    implies (split, temperature, samples per prompt), filter, keep, max_new."""
    rd = ctx.recipe.get("redistill", {})
    filter_ = str(rd.get("filter", "correct"))
    if filter_ not in REDISTILL_FILTERS:
        raise HarnessError(
            f"redistill.filter must be correct (verified-correct answers) or faithful (right answer and "
            f"every step of a K&K explicit trace right), not {filter_}"
        )
    keep = str(rd.get("keep", "random"))
    if keep not in REDISTILL_KEEPS:
        raise HarnessError(
            f"redistill.keep must be random (one verified response per prompt, chosen with the seed) or "
            f"shortest (the one with the fewest tokens), not {keep}"
        )
    variant = str(variant or rd.get("variant", "B")).upper()
    if variant not in REDISTILL_VARIANTS:
        raise HarnessError(
            f"redistill.variant must be A (greedy on SFT prompts) or B (sampled on RL prompts), not {variant}"
        )
    # Variant B here samples the final policy afresh on the RL prompts; the paper's variant B instead reuses the
    # rollouts of its last ~11 RL steps (the replay buffer: slightly older policies, prompts seen in those steps).
    return {
        "filter": filter_,
        "keep": keep,
        "variant": variant,
        "split": "sft" if variant == "A" else "rl",
        "temperature": 0.0 if variant == "A" else float(rd.get("temperature", 0.7)),
        "n": 1 if variant == "A" else int(rd.get("samples_per_prompt", 1)),
        "max_new": int(rd.get("max_new_tokens", ctx.task.generation.max_new_tokens)),
    }


def _sample_verified(ctx: Context, engine: Any, c: dict, target: int) -> tuple[list[dict], int, dict]:
    """(one kept response per prompt, in prompt order, up to `target`; prompts tried; rollouts and tokens generated):
    the split's prompts in chunks until `target` are kept or the split runs out."""
    from harness.engines import SamplingParams

    split, filter_ = c["split"], c["filter"]
    if filter_ == "faithful":
        from harness.faithful import check, reference_for_sample
    verifier = ctx.task.build_verifier()
    size = ctx.task.split(split).size or len(load_split(ctx.task, split))
    rng = random.Random(ctx.seed)
    kept: list[dict] = []
    rollouts = tokens = 0
    start = 0
    chunk = max(64, target // 2)
    with progress_bar(ctx.progress, f"sample variant {c['variant']}") as cb:
        while len(kept) < target and start < size:
            rows = load_split(ctx.task, split, limit=min(size, start + chunk), offset=start)
            prompts = [render_prompt(ctx.task, s) for s in rows]
            params = SamplingParams(
                n=c["n"],
                temperature=c["temperature"],
                max_new_tokens=c["max_new"],
                stop=tuple(ctx.task.generation.stop),
                seed=ctx.seed * 7919 + start,
            )
            gens = engine.generate(prompts, params)
            for s, prompt, gs in zip(rows, prompts, gens):
                rollouts += len(gs)
                tokens += sum(g.n_tokens for g in gs)
                # A response cut off at the length limit is never kept, whatever the verifier's require_eos
                # (the paper's RL reward scores it 0, so its replay buffer never held one as correct).
                good = [
                    g
                    for g in gs
                    if not g.truncated and verifier(g.text, s["answer"], truncated=g.truncated).score == 1.0
                ]
                if filter_ == "faithful" and good:
                    ref = reference_for_sample(s)
                    good = [g for g in good if ref is not None and check(g.text, ref, True)["faithful"]]
                if good:
                    # One per prompt, so no prompt is over-represented: chosen with the seed, or the
                    # shortest (the first of the shortest, in sampling order).
                    g = rng.choice(good) if c["keep"] == "random" else min(good, key=lambda x: x.n_tokens)
                    kept.append(
                        {
                            "id": s["id"],
                            "prompt": prompt,
                            "completion": g.text,
                            "answer": s["answer"],
                            "level": s["level"],
                            "n_tokens": g.n_tokens,
                        }
                    )
            start += len(rows)
            if cb:
                cb(min(len(kept), target), target, f"kept {len(kept)} of {start} prompts")
    return kept, start, {"rollouts_generated": rollouts, "tokens_generated": tokens}


def cold_start_teacher(ctx: Context) -> str:
    """The demonstrations SFT uses when no --teacher is given: the recipe's cold_start.teacher."""
    return ctx.recipe.get("cold_start", {}).get("teacher", "traces:short")


# --- model references -----------------------------------------------------------------------------------------


def resolve_init(ctx: Context, init: str) -> str:
    """base | sft@BUDGET | RUN_ID | PATH -> a model reference, training the SFT start when needed."""
    if init == "base":
        return ctx.base_ref
    if init.startswith("sft@"):
        budget = parse_budget(init[4:])
        data, data_id = train_data_sft(ctx, cold_start_teacher(ctx), budget)
        return stage_sft(ctx, ctx.base_ref, data, data_id, tag="cold start sft")["model_path"]
    return resolve_run_or_path(ctx, init, "--init")


def run_model_path(rec: RunRecord) -> str:
    """The evaluated model of a run; an error if its stage folder was removed."""
    path = rec.model_path
    if not path or not Path(path).is_dir():
        raise HarnessError(f"run {rec.run_id} has no model on disk (its stage folder was removed); retrain it")
    return path


def resolve_run_or_path(ctx: Context, ref: str, flag: str) -> str:
    rec = RunStore(ctx.root).find(ref)
    if rec is not None:
        return run_model_path(rec)
    p = Path(ref)
    if p.is_dir():
        return models.resolve(ref)
    raise HarnessError(
        f"{flag} '{ref}' is not base, sft@BUDGET, a run id in {ctx.root} (see `harness runs list`) or a model folder"
    )


def inherit_stages(ctx: Context, run_id: str) -> None:
    """A run given by id (--teacher for redistill) brings the stages that made it into this run's stage list, marked
    `inherited_from`, so the record's counts include what they cost, as they do when the recipe trains them here.
    Nothing for a model folder (its cost is unknown)."""
    rec = RunStore(ctx.root).find(run_id)
    if rec is None:
        return
    seen = {(st.get("stage"), st.get("key")) for st in ctx.stages}
    for st in rec.stages or []:
        if (st.stage, st.key) not in seen:
            # the run it came from, or the one that run inherited it from in turn
            ctx.stages.append({**st.to_dict(), "inherited_from": st.inherited_from or run_id, "cached": True})
            seen.add((st.stage, st.key))


def verified_rows(
    ctx: Context, teacher_ref: str, budget: int, variant: Optional[str], who: str
) -> tuple[list[dict], str]:
    sample = stage_sample(ctx, teacher_ref, budget, variant)
    if sample.get("planned"):  # a dry run: the samples do not exist yet; reference traces stand in for them
        return ctx.plan.placeholder_rows(sample["split"], budget), f"plan:{sample['key']}"
    rows = [json.loads(x) for x in Path(sample["data_path"]).read_text().splitlines()]
    if len(rows) < budget:
        raise HarnessError(
            f"the {who} produced {len(rows)} verified-correct responses (one per prompt, from "
            f"{sample['prompts_tried']} prompts); budget {format_budget(budget)} needs more: lower "
            "--budget, or sample more per prompt (--set redistill.samples_per_prompt=8)"
        )
    return rows[:budget], f"sample:{sample['key']}"
