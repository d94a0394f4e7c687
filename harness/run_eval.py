"""`harness eval`: resolve task and model, generate, score, and write one run record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from harness import models
from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.progress import progress_bar
from harness.records import new_run_id, provenance
from harness.store import RunRecord, RunStore
from harness.tasks import get_task


def _find_run(store: RunStore, run_id: str) -> RunRecord:
    root = store.root
    rec = store.find(run_id, kind="run")
    if rec is None:
        raise HarnessError(
            f"no training run '{run_id}' under {root}; list them with `harness runs list` (and pass "
            "--runs-dir if the run is elsewhere)"
        )
    path = rec.model_path
    if not path or not Path(path).is_dir():
        raise HarnessError(
            f"run {run_id} has no model folder to evaluate ({path or 'none recorded'}): a base run "
            "trains none, or its stage folder was deleted; evaluate its model with --model instead"
        )
    return rec


def run_eval(
    *,
    task: str,
    model: str = "tiny",
    split: str = "test",
    limit: Optional[int] = None,
    samples: int = 1,
    temperature: Optional[float] = None,
    max_new_tokens: Optional[int] = None,
    batch_size: Optional[int] = None,
    dtype: Optional[str] = None,
    seed: int = 0,
    runs_dir: Optional[Path] = None,
    tasks_dirs: Optional[Iterable[Path]] = None,
    progress_factory: Optional[Callable] = None,
    engine: str = "auto",
    vllm: Optional[dict] = None,
    perturb: Optional[str] = None,
    perturb_seed: int = 0,
    recipe: Optional[str] = None,
    run: Optional[str] = None,
) -> tuple[Path, dict]:
    from harness.engines import engine_settings, make_engine, pick_engine

    from_run, ev = None, {}
    if run is not None and recipe is not None:
        raise HarnessError("--run evaluates with the run's own recipe; drop --recipe (or drop --run and pass --model)")
    if run is not None:  # a run's trained model, on the task and recipe it was trained and tested with
        from_run = _find_run(RunStore(runs_dir), run)
        task, model = from_run.task, from_run.model_path
    spec = get_task(task, tasks_dirs)
    recipe_name = None
    if recipe is not None or from_run is not None:  # the task as a recipe trains and tests it; its eval defaults
        from harness import recipes

        recipe_name, rec = (
            (f"run:{run}", from_run.config["recipe"]) if from_run is not None else recipes.for_eval(spec.id, recipe)
        )
        spec = recipes.apply_task_overrides(spec, rec.get("task"))
        ev = rec.get("eval") or {}
        max_new_tokens = ev.get("max_new_tokens") if max_new_tokens is None else max_new_tokens
    settings = engine_settings(ev)  # the recipe's (or the defaults); a CLI value wins
    batch_size = settings["batch_size"] if batch_size is None else batch_size
    dtype = settings["dtype"] if dtype is None else dtype
    cache = settings["cache"]
    spec.split(split)  # fail on an unknown split before building or loading anything
    if samples > 1 and (spec.generation.temperature if temperature is None else temperature) == 0:
        raise HarnessError(
            f"--samples {samples} with task '{spec.id}''s temperature 0 (greedy) gives identical "
            "samples; pass --temperature > 0, e.g. 0.7, or --samples 1"
        )
    data, skipped = None, []
    if perturb is not None:  # K&K only: the split's puzzles perturbed (harness/perturb.py), ids `<id>~KIND`
        from harness.perturb import perturb_split

        data, skipped = perturb_split(spec, split, perturb, perturb_seed, limit)
    requested, engine = engine, pick_engine(engine)  # and on an engine that is not installed
    if vllm and requested == "transformers":
        raise HarnessError(
            "--vllm settings apply only to the vLLM engine, but this eval runs on 'transformers'; "
            "drop --vllm or pass --engine vllm (or auto)"
        )
    # With --engine auto the same command must run on a GPU machine and on a laptop: where auto falls back to
    # transformers the vLLM settings are unused, and the record says so.
    ignored = {"vllm_ignored": vllm} if vllm and engine != "vllm" else {}
    ref = models.resolve(model, spec)
    eng = make_engine(engine, ref, dtype=dtype, batch_size=batch_size, cache=cache, seed=seed, vllm=vllm)
    t0 = time.perf_counter()
    with progress_bar(progress_factory, f"eval {spec.id}/{split}" + (f" ({perturb})" if perturb else "")) as cb:
        metrics, rows = evaluate(
            spec,
            eng,
            split=split,
            limit=limit,
            samples=samples,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
            progress=cb,
            data=data,
        )
    if data is not None:
        metrics.update(
            {
                "perturbation": perturb,
                "perturb_seed": perturb_seed,
                "perturb_skipped": len(skipped),
                "perturb_skipped_ids": skipped,
            }
        )
    config = {
        "command": "eval",
        "task": spec.id,
        **({"recipe": recipe_name} if recipe_name else {}),
        **({"run": run} if run else {}),
        "model": model,
        "model_path": ref,
        "split": split,
        "limit": limit,
        "samples": samples,
        "temperature": metrics["temperature"],
        "max_new_tokens": metrics["max_new_tokens"],
        "batch_size": batch_size,
        "dtype": dtype,
        **({"cache": cache} if cache != "dynamic" else {}),
        "seed": seed,
        "engine": eng.name,
        "engine_requested": requested,
        **({"vllm": vllm} if vllm and eng.name == "vllm" else {}),
        **ignored,
        **({"perturb": perturb, "perturb_seed": perturb_seed} if perturb else {}),
    }
    record = RunRecord(
        kind="eval",
        method="base",
        config=config,
        provenance=provenance(seed, spec),
        metrics=metrics,
        wall_seconds={"eval": time.perf_counter() - t0},
        run_id=new_run_id(spec.id, "eval", f"perturb-{perturb}" if perturb else ""),
    )
    path = RunStore(runs_dir).write(record, rows)
    return path, metrics
