"""`harness compare`: a grid of methods × budgets × seeds, each cell one `harness run`.

Cells whose record already exists (same task, model, method, budget, seed, resolved recipe, flags) are reused,
and every run reuses the cached stages beneath it, so re-running a grid after adding a budget trains only the new
cells, and a killed grid resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

from harness import models, recipes
from harness.budget import parse_budget
from harness.errors import HarnessError
from harness.pipeline import METHODS
from harness.records import config_hash, read_records, runs_dir as default_runs_dir
from harness.registry import did_you_mean
from harness.run import run
from harness.tasks import get_task


def _split_list(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise HarnessError(f"--{what} needs a comma-separated list")
    return items


def cell_key(task: str, model: str, method: str, budget: int, seed: int, recipe: dict, init: Optional[str],
             teacher: Optional[str]) -> str:
    return config_hash({"task": task, "model": model, "method": method, "budget": budget, "seed": seed,
                        "recipe": config_hash(recipe), "init": init, "teacher": teacher})


def record_key(rec: dict) -> Optional[str]:
    c = rec.get("config", {})
    if rec.get("kind") != "run":
        return None
    return cell_key(c.get("task"), c.get("model"), c.get("method"), c.get("budget"), c.get("seed"), c.get("recipe", {}),
                    c.get("init"), c.get("teacher"))


def compare(*, task: str, methods: str, budgets: str, seeds: str, model: str = "tiny", config: Optional[Path] = None,
            sets: Iterable[str] = (), init: Optional[str] = None, teacher: Optional[str] = None,
            runs_dir: Optional[Path] = None, tasks_dirs: Optional[Iterable[Path]] = None,
            progress_factory: Optional[Callable] = None, log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Run every missing cell; return the records of the whole grid."""
    method_list = _split_list(methods, "methods")
    for m in method_list:
        if m not in METHODS:
            raise HarnessError(f"unknown method '{m}' in --methods: {did_you_mean(m, list(METHODS))}")
    budget_list = [parse_budget(b) for b in _split_list(budgets, "budgets")]
    try:
        seed_list = [int(s) for s in _split_list(seeds, "seeds")]
    except ValueError:
        raise HarnessError(f"--seeds must be integers, e.g. 0,1,2 (got '{seeds}')") from None
    spec = get_task(task, tasks_dirs)
    scale = "tiny" if models.is_tiny(model) else "paper"
    _, recipe = recipes.resolve(spec.id, scale, config, list(sets))
    root = default_runs_dir(runs_dir)
    cells = [(m, b, s) for s in seed_list for m in method_list for b in (budget_list if m != "base" else [0])]
    done: dict[str, dict] = {}
    for r in read_records(root):  # run ids sort by time: the latest record of a cell wins
        k = record_key(r)
        if k is not None:
            done[k] = r
    out = []
    for i, (m, b, s) in enumerate(dict.fromkeys(cells)):
        key = cell_key(spec.id, model, m, b, s, recipe, init if m == "rl" else None, teacher if m != "rl" else None)
        existing = [done[key]] if key in done else []
        label = f"[{i + 1}/{len(cells)}] {m} budget={b or '-'} seed={s}"
        if existing:
            log(f"{label}: reusing {existing[-1]['run_id']}")
            out.append(existing[-1])
            continue
        log(f"{label}: running")
        _, rec = run(task=task, method=m, budget=str(b) if b else None, model=model, seed=s, config=config, sets=sets,
                     init=init if m == "rl" else None, teacher=teacher if m != "rl" else None, runs_dir=runs_dir,
                     tasks_dirs=tasks_dirs, progress_factory=progress_factory, log=log)
        out.append(rec)
    return out
