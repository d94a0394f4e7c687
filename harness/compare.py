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
from harness.methods import METHODS, grid_args
from harness.records import config_hash
from harness.registry import did_you_mean
from harness.run import run
from harness.store import RunRecord, RunStore
from harness.tasks import get_task


def _split_list(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise HarnessError(f"--{what} needs a comma-separated list")
    return items


def cell_key(
    task: str,
    model: str,
    method: str,
    budget: int,
    seed: int,
    recipe: dict,
    init: Optional[str],
    teacher: Optional[str],
) -> str:
    return config_hash(
        {
            "task": task,
            "model": model,
            "method": method,
            "budget": budget,
            "seed": seed,
            "recipe": config_hash(recipe),
            "init": init,
            "teacher": teacher,
        }
    )


def record_key(rec: RunRecord) -> Optional[str]:
    c = rec.config
    if rec.kind != "run":
        return None
    return cell_key(
        c.get("task"),
        c.get("model"),
        c.get("method"),
        c.get("budget"),
        c.get("seed"),
        c.get("recipe", {}),
        c.get("init"),
        c.get("teacher"),
    )


def compare(
    *,
    task: str,
    methods: str,
    budgets: str,
    seeds: str,
    model: str = "tiny",
    config: Optional[Path] = None,
    sets: Iterable[str] = (),
    init: Optional[str] = None,
    teacher: Optional[str] = None,
    runs_dir: Optional[Path] = None,
    tasks_dirs: Optional[Iterable[Path]] = None,
    plugins: Iterable[str] = (),
    progress_factory: Optional[Callable] = None,
    log: Callable[[str], None] = lambda s: None,
    launcher: str = "local",
    emit_commands: bool = False,
    slurm: Optional[dict] = None,
    emit: Callable[[str], None] = print,
    dry_run: bool = False,
    assume_accuracy: float = 0.5,
    device: Optional[str] = None,
) -> list[dict]:
    """Run every missing cell (here, one after another, or as separate jobs: harness/launch.py); return the records
    of the whole grid. emit_commands: print the missing cells' commands and run nothing. dry_run: return the plans of
    the missing cells (harness/plan.py) and run nothing. plugins: the --plugin values each separate job loads (the
    plugins of this process, harness.plugins.child_specs), so that it knows the same verifiers and generators."""
    from harness import launch

    if launcher not in launch.LAUNCHERS:
        raise HarnessError(f"unknown launcher '{launcher}': {did_you_mean(launcher, list(launch.LAUNCHERS))}")
    method_list = _split_list(methods, "methods")
    for m in method_list:
        if m not in METHODS:
            raise HarnessError(f"unknown method '{m}' in --methods: {METHODS.fix(m)}")
    budget_list = [parse_budget(b) for b in _split_list(budgets, "budgets")]
    try:
        seed_list = [int(s) for s in _split_list(seeds, "seeds")]
    except ValueError:
        raise HarnessError(f"--seeds must be integers, e.g. 0,1,2 (got '{seeds}')") from None
    spec = get_task(task, tasks_dirs)
    scale = "tiny" if models.is_tiny(model) else "paper"
    _, recipe = recipes.resolve(spec.id, scale, config, list(sets))
    store = RunStore(runs_dir)
    root = store.root
    cells = list(
        dict.fromkeys(
            (m, b, s) for s in seed_list for m in method_list for b in (budget_list if METHODS.get(m).trains else [0])
        )
    )
    # run ids sort by time: the latest record of a cell wins
    done = {record_key(r): r.to_dict(with_path=True) for r in store.list("run")}

    def key_of(m: str, b: int, s: int) -> str:
        return cell_key(spec.id, model, m, b, s, recipe, *grid_args(m, init, teacher))

    def run_cell(m: str, b: int, s: int, **kw) -> tuple[Path, dict]:
        cell_init, cell_teacher = grid_args(m, init, teacher)
        return run(
            task=task,
            method=m,
            budget=str(b) if b else None,
            model=model,
            seed=s,
            config=config,
            sets=sets,
            init=cell_init,
            teacher=cell_teacher,
            runs_dir=runs_dir,
            tasks_dirs=tasks_dirs,
            **kw,
        )

    if dry_run:
        return [
            run_cell(m, b, s, dry_run=True, assume_accuracy=assume_accuracy, device=device)[1]
            for m, b, s in cells
            if key_of(m, b, s) not in done
        ]
    if launcher != "local" or emit_commands:
        missing = [
            (
                m,
                launch.cell_command(
                    task=task,
                    method=m,
                    budget=b,
                    seed=s,
                    model=model,
                    runs_dir=root,
                    config=config,
                    sets=list(sets),
                    init=init,
                    teacher=teacher,
                    tasks_dirs=list(tasks_dirs or []),
                    plugins=list(plugins),
                ),
            )
            for m, b, s in cells
            if key_of(m, b, s) not in done
        ]
        if emit_commands:
            emit(launch.emit(missing) if missing else "# every cell of this grid has a record already\n")
            return [done[key_of(*c)] for c in cells if key_of(*c) in done]
        if missing:
            launch.submit(missing, launcher, store.launch_dir, slurm or {}, log=log)
        found = {record_key(r): r.to_dict(with_path=True) for r in store.list("run")}
        lost = [c for c in cells if key_of(*c) not in found]
        if lost:
            raise HarnessError(
                f"{len(lost)} cell(s) finished without a run record ({lost[0]}, ...); their logs are "
                f"under {store.launch_dir}"
            )
        return [found[key_of(*c)] for c in cells]
    out = []
    for i, (m, b, s) in enumerate(cells):
        key = key_of(m, b, s)
        existing = [done[key]] if key in done else []
        label = f"[{i + 1}/{len(cells)}] {m} budget={b or '-'} seed={s}"
        if existing:
            log(f"{label}: reusing {existing[-1]['run_id']}")
            out.append(existing[-1])
            continue
        log(f"{label}: running")
        _, rec = run_cell(m, b, s, progress_factory=progress_factory, log=log)
        out.append(rec)
    return out
