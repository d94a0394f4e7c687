"""`harness run` and `harness runs list`: set up the context, train by method, evaluate, write one record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from harness import dist, methods, models, recipes
from harness.budget import format_budget, parse_budget
from harness.errors import HarnessError
from harness.methods import run_counts, train_for_method
from harness.pipeline import Context
from harness.records import config_hash, new_run_id, provenance
from harness.store import RunRecord, RunStore, StageInfo
from harness.tasks import get_task


def run(
    *,
    task: str,
    method: str,
    budget: Optional[str] = None,
    model: str = "tiny",
    seed: int = 0,
    config: Optional[Path] = None,
    sets: Iterable[str] = (),
    init: Optional[str] = None,
    teacher: Optional[str] = None,
    teacher_model: Optional[str] = None,
    runs_dir: Optional[Path] = None,
    tasks_dirs: Optional[Iterable[Path]] = None,
    progress_factory: Optional[Callable] = None,
    log: Callable[[str], None] = lambda s: None,
    dry_run: bool = False,
    assume_accuracy: float = 0.5,
    device: Optional[str] = None,
) -> tuple[Path, dict]:
    """Train by method, evaluate, write one record; dry_run: return (runs folder, plan) instead (harness/plan.py),
    training, generating and writing nothing."""
    method_def = methods.get(method)
    _check_flags(method_def, budget, teacher_model)
    n = parse_budget(budget) if budget is not None else 0
    spec = get_task(task, tasks_dirs)
    scale = "tiny" if models.is_tiny(model) else "paper"
    recipe_name, recipe = recipes.resolve(spec.id, scale, config, list(sets))
    spec = recipes.apply_task_overrides(spec, recipe.get("task"))
    base_ref = models.resolve(model, spec)
    store = RunStore(runs_dir)
    root = store.root
    ctx = Context(
        task=spec,
        recipe_name=recipe_name,
        recipe=recipe,
        base_model=model,
        base_ref=base_ref,
        seed=seed,
        root=root,
        progress=progress_factory,
    )
    from harness.perturb import limem_config

    limem = limem_config(spec, recipe, trained=method_def.trains)  # eval.limem: checked before anything trains
    if dry_run:
        from harness.plan import Planner, summary

        ctx.plan = Planner(ctx, assume_accuracy, device)
        train_for_method(ctx, method, n, init, teacher, teacher_model)
        return root, {
            "method": method,
            "budget": n,
            "seed": seed,
            "recipe_name": recipe_name,
            **summary(ctx.plan, [st for st in ctx.stages if st.get("cached")], trained=method_def.trains),
        }
    t0 = time.perf_counter()
    final = train_for_method(ctx, method, n, init, teacher, teacher_model)
    if not dist.is_main():
        return root, {}  # rank 0 evaluates and writes the one record
    for st in ctx.stages:
        log(f"stage {st['stage']}-{st['key']}: {'reused' if st['cached'] else 'trained'} ({st['wall_seconds']:.0f}s)")
    metrics, rows, eval_info = _evaluate(ctx, final, limem)
    counts = run_counts(method_def, ctx.stages, eval_info["tokens"], n, eval_info["n_params"])
    wall = {f"{st['stage']}-{st['key']}": st["wall_seconds"] for st in ctx.stages}
    wall["eval"] = eval_info["wall"]
    config_out = {
        "command": "run",
        "task": spec.id,
        "method": method,
        "budget": n,
        "budget_label": format_budget(n) if n else None,
        "model": model,
        "model_path": base_ref,
        "seed": seed,
        "init": init,
        "teacher": teacher,
        "teacher_model": teacher_model,
        "recipe_name": recipe_name,
        "recipe": recipe,
        "sets": list(sets),
        "config_file": str(config) if config else None,
    }
    record = RunRecord(
        kind="run",
        method=method,
        budget=n,
        config=config_out,
        provenance={**provenance(seed, spec), "recipe_hash": config_hash(recipe), "engine": eval_info["engine"]},
        metrics=metrics,
        counts=counts,
        wall_seconds={**wall, "total": time.perf_counter() - t0},
        stages=[StageInfo.from_dict(st) for st in ctx.stages],
        model_path=final,
        run_id=new_run_id(spec.id, method, format_budget(n) if n else ""),
    )
    extra = {}
    for st in ctx.stages:
        if st["stage"] == "sample":
            extra["redistill.jsonl"] = Path(st["data_path"]).read_text()
    path = store.write(record, rows, extra)
    return path, record.to_dict()


def _check_flags(m: methods.Method, budget: Optional[str], teacher_model: Optional[str]) -> None:
    """--budget for a method that trains, none for one that does not; --teacher-model only where it is taken."""
    if m.trains and budget is None:
        raise HarnessError(f"--budget is required for method '{m.name}' (e.g. --budget 1k)")
    if not m.trains and budget is not None:
        raise HarnessError(f"--budget does not apply to method '{m.name}' (it trains nothing); drop --budget")
    if teacher_model and not m.teacher_model:
        takers = ", ".join(x.name for x in methods.all_methods() if x.teacher_model)
        its = f"; its teacher is {m.teacher}, given as --teacher" if m.teacher else ""
        raise HarnessError(f"--teacher-model applies to --method {takers}; method '{m.name}' does not take it{its}")


def _evaluate(ctx: Context, ref: str, limem: Optional[dict] = None) -> tuple[dict, list[dict], dict]:
    from harness.engines import engine_settings, make_engine
    from harness.evaluate import evaluate
    from harness.progress import progress_bar

    ev = ctx.recipe.get("eval", {})
    engine = make_engine("transformers", ref, **engine_settings(ev))
    n_params = sum(p.numel() for p in engine.model.parameters())
    t0 = time.perf_counter()
    with progress_bar(ctx.progress, f"eval {ctx.task.id}/test") as cb:
        metrics, rows = evaluate(
            ctx.task,
            engine,
            split="test",
            limit=ev.get("limit"),
            seed=ctx.seed,
            max_new_tokens=ev.get("max_new_tokens"),
            progress=cb,
        )
    info = {
        "n_params": n_params,
        "wall": time.perf_counter() - t0,
        "engine": engine.name,
        "tokens": metrics["tokens_generated"],
    }
    k = ev.get("samples") or 0
    if k:  # sampled pass@1 / pass@k beside greedy accuracy, on the same problems (paired in the leaderboard)
        temp = ev.get("temperature", 0.7)
        t1 = time.perf_counter()
        with progress_bar(ctx.progress, f"eval {ctx.task.id}/test sampled (k={k}, T={temp})") as cb:
            sm, srows = evaluate(
                ctx.task,
                engine,
                split="test",
                limit=ev.get("limit"),
                seed=ctx.seed,
                samples=k,
                temperature=temp,
                max_new_tokens=ev.get("max_new_tokens"),
                progress=cb,
            )
        metrics["sampled"] = {
            "samples": k,
            "temperature": temp,
            "pass_at_1": sm["accuracy"],
            "ci95": sm["ci95"],
            "pass_at_k": sm.get("pass_at_k", {"1": sm["accuracy"]}),
            **{m: sm[m] for m in ("faithful_accuracy", "lucky", "truncation_rate") if m in sm},
            "tokens_generated": sm.get("tokens_generated"),
            "wall_seconds": time.perf_counter() - t1,
        }  # a measurement's time, not the model's cost
        by_id = {r["id"]: r for r in srows}
        for r in rows:
            r["sampled_scores"] = by_id[r["id"]]["scores"]
    if limem:  # K&K: memorisation under perturbation on the model's own training puzzles (harness/perturb.py)
        from harness.perturb import run_limem, training_refs

        t1 = time.perf_counter()
        refs, source = training_refs(ctx.task, ctx.stages, ref, ctx.root)
        with progress_bar(ctx.progress, f"limem {limem['kind']} ({limem['n']} training puzzles)") as cb:
            found = run_limem(
                ctx.task, engine, refs, limem, max_new_tokens=ev.get("max_new_tokens"), seed=ctx.seed, progress=cb
            )
        # its time is a measurement's, not part of the wall time that produced the model (the leaderboard's cost)
        metrics.update(
            {**found, "limem_source": source, "limem_wall_seconds": time.perf_counter() - t1}
            if found
            else {"limem_unavailable": f"no K&K training puzzles to perturb ({source})"}
        )
    return metrics, rows, info


def list_runs(runs_dir: Optional[Path] = None) -> tuple[list[RunRecord], list[dict]]:
    """(run records, stages) found under the runs folder; a partial stage says which complete checkpoint it resumes
    from (`resumable_from`; None: it trains from the start)."""
    store = RunStore(runs_dir)
    return store.list(), store.stages()
