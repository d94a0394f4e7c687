"""The `harness` command line. Heavy packages (torch, transformers, trl) load only inside the commands that need
them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError


class _Group(typer.core.TyperGroup):
    """Bad input anywhere below gets one message and exit code 2, also under Typer's test runner."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HarnessError as e:
            console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    help="Benchmark, train and compare R1-style reasoning methods (`harness methods` lists them) per sample budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tasks_app = typer.Typer(help="List, show and validate tasks (YAML files).", no_args_is_help=True)
data_app = typer.Typer(help="Export task data.", no_args_is_help=True)
runs_app = typer.Typer(help="Run records and cached stages.", no_args_is_help=True)
tiny_app = typer.Typer(help="The embedded pretrained tiny model (K&K tasks).", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(tiny_app, name="tiny")
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

TasksDir = typer.Option(
    None, "--tasks-dir", help="Extra folder of task YAML files (repeatable; also $HARNESS_TASKS_PATH)."
)
Perturb = typer.Option(
    None, "--perturb", help="K&K only: perturbed puzzles (leaf, role, reorder, rename; harness/perturb.py)."
)
PerturbSeed = typer.Option(0, "--perturb-seed", help="Seed of the perturbations (--perturb).")
Plugins = typer.Option(
    None,
    "--plugin",
    metavar="MODULE_OR_FILE",
    help="Python module or .py file that registers verifiers, generators or methods (repeatable; "
    "also $HARNESS_PLUGINS and entry points 'harness.plugins'; see examples/plugins).",
)


def _load_plugins(specs: Optional[List[str]]) -> list:
    """Before any task is read: --plugin values, $HARNESS_PLUGINS and installed entry points (harness/plugins.py)."""
    from harness.plugins import load_plugins

    return load_plugins(specs or [])


_NUMBER_FIXES = {
    "samples": "1 for greedy pass@1, or K > 1 (with --temperature > 0) for pass@k",
    "max_new_tokens": "a positive token budget, e.g. 1024, or leave it out for the task's",
    "batch_size": "a positive batch size, e.g. 32",
    "limit": "a positive number of problems, or leave it out for the whole split",
    "num_fewshot": "0 or more examples, or leave it out for each task's",
}


def _check_numbers(minimum: int, **flags: Optional[int]) -> None:
    """Integer flags that must be at least `minimum` (None: not given), checked before anything loads."""
    for name, v in flags.items():
        if v is not None and v < minimum:
            flag = "--" + name.replace("_", "-")
            fix = _NUMBER_FIXES.get(name, "a larger value")
            raise HarnessError(f"{flag} must be at least {minimum} (got {v}); pass {fix}")


def _check_temperature(temperature: Optional[float], samples: int) -> None:
    import math

    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise HarnessError(
            f"--temperature must be 0 (greedy) or more (got {temperature}); e.g. --temperature 0.7 "
            "for sampling, or leave it out for the task's"
        )
    if samples > 1 and temperature == 0:
        raise HarnessError(
            f"--samples {samples} with --temperature 0 gives identical samples; pass --temperature > 0, "
            "e.g. 0.7, or --samples 1"
        )


def _check_output(path: Path, flag: str, folder: bool) -> None:
    """An output path that can be written: a file path for files, a folder path for folders; checked before any work."""
    kind = "folder" if folder else "file"
    if folder and path.exists() and not path.is_dir():
        raise HarnessError(f"{flag} {path} is a file, not a folder; give a folder path (it is created if missing)")
    if not folder and path.is_dir():
        raise HarnessError(f"{flag} {path} is a folder; give a file path, e.g. {path / 'out.jsonl'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise HarnessError(
                    f"{flag} {path}: {parent} is a file, so it cannot hold the output {kind}; choose another path"
                )
            break


def _write_error(path: Path, e: OSError) -> HarnessError:
    return HarnessError(
        f"could not write {path} ({e.strerror or e}); check that the path is writable and the disk "
        "has space (nothing half-written was left there)"
    )


def _progress(description: str):
    if not console.is_terminal:  # a log file: plain lines every HARNESS_PROGRESS_INTERVAL seconds
        from harness.progress import Lines

        return Lines(description, lambda line: console.print(line, markup=False, highlight=False))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metric]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@tasks_app.command("list")
def tasks_list(tasks_dir: Optional[List[Path]] = TasksDir, plugin: Optional[List[str]] = Plugins) -> None:
    """List every task: built-in and from user folders."""
    _load_plugins(plugin)
    from harness.tasks import builtin_dir, discover
    from harness.taskspec import validate_file

    table = Table("id", "splits", "verifier", "description", "file")
    for tid, path in discover(tasks_dir).items():
        spec, errors = validate_file(path, tid)
        if spec is None:
            table.add_row(
                tid, "-", "-", f"[red]invalid ({len(errors)} errors): harness tasks validate {path}", str(path)
            )
            continue
        splits = ", ".join(f"{k}:{v.size if v.size is not None else '*'}" for k, v in spec.splits.items())
        origin = "built-in" if path.is_relative_to(builtin_dir()) else str(path)
        table.add_row(tid, splits, spec.verifier.name, spec.description.split(". ")[0][:70], origin)
    out.print(table)


@tasks_app.command("show")
def tasks_show(task: str, tasks_dir: Optional[List[Path]] = TasksDir, plugin: Optional[List[str]] = Plugins) -> None:
    """Show a task's resolved definition (as JSON)."""
    _load_plugins(plugin)
    from harness.tasks import get_task

    spec = get_task(task, tasks_dir)
    out.print_json(json.dumps(spec.model_dump(by_alias=True, exclude_none=True)))


@tasks_app.command("validate")
def tasks_validate(paths: List[Path], plugin: Optional[List[str]] = Plugins) -> None:
    """Check task files; report every error in each file at once (file:line: key.path: problem; fix)."""
    _load_plugins(plugin)
    from harness.taskspec import validate_file

    bad = 0
    for p in paths:
        files = sorted(x for x in p.rglob("*.y*ml")) if p.is_dir() else [p]
        for f in files:
            _, errors = validate_file(f)
            if errors:
                bad += 1
                for e in errors:
                    console.print(e, markup=False, highlight=False, soft_wrap=True)
            else:
                out.print(f"{f}: ok", markup=False, highlight=False)
    if bad:
        raise typer.Exit(2)


@tasks_app.command("export-lm-eval")
def tasks_export_lm_eval(
    task: str,
    out_dir: Path = typer.Option(..., "--out", help="Folder for TASK.yaml, utils.py and the data."),
    split: str = typer.Option("test"),
    limit: Optional[int] = typer.Option(None, help="Only the first N samples."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Default: the task's."),
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
) -> None:
    """Write an lm-evaluation-harness task folder: the harness's prompts, generation settings and verifier."""
    _load_plugins(plugin)
    from harness.lmeval import export_task
    from harness.tasks import get_task

    _check_numbers(1, limit=limit, max_new_tokens=max_new_tokens)
    _check_output(out_dir, "--out", folder=True)
    try:
        e = export_task(get_task(task, tasks_dir), out_dir, split=split, limit=limit, max_new_tokens=max_new_tokens)
    except OSError as err:
        raise _write_error(out_dir, err) from None
    out.print(
        f"wrote {e['yaml']} ({e['n']} samples of {e['task']}/{split}); run it with:\n"
        f"lm_eval --model hf --model_args pretrained=MODEL --include_path {out_dir} --tasks {e['name']}"
        + (" --apply_chat_template" if e["chat"] else ""),
        markup=False,
        highlight=False,
    )
    if e["verifier"]["params"].get("require_eos"):
        console.print(
            "note: lm-eval does not report whether a generation hit max_gen_toks, so require_eos cannot "
            "score truncated responses 0 there; `harness eval` does",
            markup=False,
        )


@data_app.command("export")
def data_export(
    task: str = typer.Option(..., help="Task id or YAML path."),
    split: str = typer.Option("test"),
    out_path: Path = typer.Option(..., "--out", help="Output JSONL file."),
    limit: Optional[int] = typer.Option(None, help="Only the first N samples."),
    perturb: Optional[str] = Perturb,
    perturb_seed: int = PerturbSeed,
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
) -> None:
    """Write a split as JSONL: id, prompt, answer, traces, metadata (and the task's own fields)."""
    _load_plugins(plugin)
    from harness.data import load_split, render_prompt
    from harness.records import write_atomic
    from harness.tasks import get_task

    spec = get_task(task, tasks_dir)
    _check_output(out_path, "--out", folder=False)
    lines = []
    skipped: list = []
    if perturb is not None:
        from harness.perturb import perturb_split

        samples, skipped = perturb_split(spec, split, perturb, perturb_seed, limit)
    else:
        samples = load_split(spec, split, limit)
    for s in samples:
        prompt = render_prompt(spec, s)
        row = {
            "id": s["id"],
            "prompt": prompt if isinstance(prompt, str) else prompt[-1]["content"],
            "messages": None if isinstance(prompt, str) else prompt,
            **{k: v for k, v in s.items() if k not in ("id",)},
        }
        lines.append(json.dumps(row, sort_keys=False))
    try:
        write_atomic(out_path, "\n".join(lines) + "\n")
    except OSError as e:
        raise _write_error(out_path, e) from None
    console.print(
        f"wrote {len(lines)} samples of {spec.id}/{split}"
        + (f" ({perturb})" if perturb else "")
        + f" to {out_path}"
        + (f"; {len(skipped)} admit no {perturb} perturbation and were left out" if skipped else "")
    )


@app.command()
def score(
    task: str = typer.Option(..., help="Task id or YAML path."),
    input: Path = typer.Option(..., help="JSONL with `response` and `answer` (optional `id`, `truncated`)."),
    output: Optional[Path] = typer.Option(None, help="JSONL of verdicts, one per input line."),
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
) -> None:
    """Re-score stored responses (e.g. from API models) with the task's verifier."""
    _load_plugins(plugin)
    from harness.records import write_atomic
    from harness.stats import wilson
    from harness.tasks import get_task

    spec = get_task(task, tasks_dir)
    verifier = spec.build_verifier()
    if not input.is_file():
        raise HarnessError(f"input file {input} does not exist; pass a JSONL file of responses")
    if output:
        _check_output(output, "--output", folder=False)
    results, bad = [], 0
    for n, raw in enumerate(input.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("not UTF-8 text") from None
            try:
                row = json.loads(line)
            except RecursionError:
                raise ValueError("JSON nested too deeply") from None
            if not isinstance(row, dict) or not isinstance(row.get("response"), str) or "answer" not in row:
                raise ValueError("needs a string 'response' and an 'answer'")
            if row.get("truncated") is not None and not isinstance(row["truncated"], bool):
                raise ValueError(f"'truncated' must be true or false, not {row['truncated']!r}")
        except ValueError as e:
            bad += 1
            console.print(f"{input}:{n}: malformed line ({e}); skipped", markup=False)
            results.append({"line": n, "id": None, "score": None, "extracted": None, "reason": f"malformed: {e}"})
            continue
        v = verifier(row["response"], str(row["answer"]), truncated=bool(row.get("truncated")))
        results.append({"line": n, "id": row.get("id"), **v.to_dict()})
    scored = [r["score"] for r in results if r["score"] is not None]
    if not scored:
        why = f"all {bad} lines are malformed" if bad else "it is empty"
        raise HarnessError(
            f"{input} holds no response to score ({why}); give a JSONL file with one object per line: "
            "a string 'response' and an 'answer'"
        )
    if output:
        try:
            write_atomic(output, "".join(json.dumps(r) + "\n" for r in results))
        except OSError as e:
            raise _write_error(output, e) from None
    acc = sum(scored) / len(scored) if scored else 0.0
    lo, hi = wilson(sum(scored), len(scored))
    out.print(
        f"{spec.id}: accuracy {acc:.3f} (95% CI {lo:.3f}-{hi:.3f}) over {len(scored)} responses"
        + (f"; {bad} malformed lines skipped" if bad else "")
    )


@app.command("eval")
def eval_cmd(
    task: str = typer.Option("kk", help="Task id or YAML path."),
    model: str = typer.Option("tiny", help="'tiny' (embedded, built locally), a model folder, or a hub id."),
    split: str = typer.Option("test"),
    limit: Optional[int] = typer.Option(None, help="First N problems only."),
    samples: int = typer.Option(1, help="Samples per problem (k); > 1 reports unbiased pass@k."),
    temperature: Optional[float] = typer.Option(None, help="Default: the task's (greedy for kk)."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Default: the task's."),
    batch_size: Optional[int] = typer.Option(None, help="Default: the recipe's, else 32."),
    dtype: Optional[str] = typer.Option(None, help="Default: the recipe's, else auto."),
    seed: int = typer.Option(0),
    runs_dir: Optional[Path] = typer.Option(None, help="Default: ./runs or $HARNESS_RUNS_DIR."),
    recipe: Optional[str] = typer.Option(
        None,
        help="Evaluate on the task as this recipe trains and tests it "
        "(its splits, prompt, generation and eval settings): a recipe name "
        "(kk-tiny), a scale (tiny, paper) or a recipe file.",
    ),
    run: Optional[str] = typer.Option(
        None,
        "--run",
        help="Re-evaluate a training run's model (RUN_ID) on the "
        "task and recipe it was trained with; replaces --task, --model and "
        "--recipe.",
    ),
    engine: str = typer.Option(
        "auto",
        help="auto (vllm if installed and a GPU is present, else "
        "transformers), transformers or vllm; lm-eval runs --lm-eval-tasks instead "
        "of --task.",
    ),
    vllm_opt: Optional[List[str]] = typer.Option(
        None,
        "--vllm",
        help="vLLM setting KEY=VALUE (repeatable): "
        "gpu_memory_utilization, max_model_len, "
        "tensor_parallel_size, ...",
    ),
    lm_eval_tasks: Optional[str] = typer.Option(
        None, help="--engine lm-eval: comma-separated lm-eval tasks, e.g. gsm8k,arc_easy."
    ),
    lm_eval_include_path: Optional[List[Path]] = typer.Option(
        None,
        help="--engine lm-eval: folder of lm-eval "
        "task YAML files (repeatable), e.g. from "
        "`harness tasks export-lm-eval`.",
    ),
    lm_eval_chat_template: Optional[bool] = typer.Option(
        None,
        "--lm-eval-chat-template/--no-lm-eval-chat-template",
        help="--engine lm-eval: apply the model's chat template (default: only for exported chat tasks).",
    ),
    num_fewshot: Optional[int] = typer.Option(None, help="--engine lm-eval: few-shot examples (default: each task's)."),
    perturb: Optional[str] = Perturb,
    perturb_seed: int = PerturbSeed,
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
) -> None:
    """Evaluate a model on a task split and write a run record."""
    _load_plugins(plugin)
    from harness.engines import parse_vllm_options
    from harness.run_eval import run_eval

    _check_numbers(1, samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size, limit=limit)
    _check_numbers(0, num_fewshot=num_fewshot)
    _check_temperature(temperature, samples)
    if engine == "lm-eval" or lm_eval_tasks:
        from harness.lmeval import print_lm_eval, run_lm_eval

        if engine != "lm-eval" or not lm_eval_tasks:
            raise HarnessError("lm-eval tasks need both --engine lm-eval and --lm-eval-tasks TASK[,TASK...]")
        unused = [
            flag
            for flag, given in (
                ("--split", split != "test"),
                ("--samples", samples != 1),
                ("--temperature", temperature is not None),
                ("--max-new-tokens", max_new_tokens is not None),
                ("--vllm", bool(vllm_opt)),
                ("--perturb", perturb is not None),
                ("--recipe", recipe is not None),
                ("--run", run is not None),
            )
            if given
        ]
        if unused:
            raise HarnessError(
                f"{', '.join(unused)} do not apply to --engine lm-eval (its tasks set their own split "
                "and generation settings); drop them, or evaluate a harness task with --engine "
                "auto / transformers / vllm"
            )
        record_dir, metrics = run_lm_eval(
            tasks=lm_eval_tasks,
            model=model,
            harness_task=task,
            include_paths=lm_eval_include_path or [],
            limit=limit,
            batch_size=batch_size or 32,
            dtype=dtype or "auto",
            seed=seed,
            num_fewshot=num_fewshot,
            chat_template=lm_eval_chat_template,
            runs_dir=runs_dir,
            tasks_dirs=tasks_dir,
        )
        out.print(print_lm_eval(metrics), markup=False, highlight=False)
        out.print(f"run record: {record_dir}")
        return

    lm_only = [
        flag
        for flag, given in (
            ("--lm-eval-include-path", bool(lm_eval_include_path)),
            ("--lm-eval-chat-template", lm_eval_chat_template is not None),
            ("--num-fewshot", num_fewshot is not None),
        )
        if given
    ]
    if lm_only:
        raise HarnessError(f"{', '.join(lm_only)} apply only to --engine lm-eval with --lm-eval-tasks; drop them")
    record_dir, metrics = run_eval(
        task=task,
        model=model,
        split=split,
        limit=limit,
        samples=samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        dtype=dtype,
        seed=seed,
        runs_dir=runs_dir,
        tasks_dirs=tasks_dir,
        progress_factory=_progress,
        engine=engine,
        vllm=parse_vllm_options(vllm_opt),
        perturb=perturb,
        perturb_seed=perturb_seed,
        recipe=recipe,
        run=run,
    )
    print_metrics(metrics)
    if perturb:
        out.print(
            f"perturbation {perturb} (seed {perturb_seed}): ids <id>~{perturb}"
            + (
                f"; {metrics['perturb_skipped']} puzzles admit none and were left out"
                if metrics["perturb_skipped"]
                else ""
            )
        )
    out.print(f"run record: {record_dir}")


DryRun = typer.Option(
    False,
    "--dry-run",
    help="Print the plan (stages cached / resumable / to run, counts, FLOPs, "
    "memory per device, estimated wall time) and run nothing.",
)
AssumeAccuracy = typer.Option(
    0.5,
    help="--dry-run: accuracy assumed for a policy not trained yet (how many prompts "
    "re-distillation samples to keep its budget of verified responses).",
)
PlanDevice = typer.Option(
    None, help="--dry-run: the throughput to estimate wall time with: cpu or gpu (default: this machine's)."
)


def _print_plans(plans: list[dict]) -> None:
    """The plan of one run or a grid: every stage once (a stage shared by cells, like one cold start, is counted
    once)."""
    from harness.budget import format_budget
    from harness.plan import totals

    seen: dict[tuple, dict] = {}
    for p in plans:
        for st in p["stages"]:
            k = (st["stage"], st["key"]) if st["key"] != "?" and st["stage"] != "eval" else (id(st),)
            seen.setdefault(
                k,
                {
                    **st,
                    "cell": f"{p['method']}@{format_budget(p['budget']) if p['budget'] else '-'} seed {p['seed']}",
                },
            )
    first = plans[0]
    t = Table(title=f"plan: {first['model_parameters']:,} parameters, wall time at {first['throughput']['source']}")
    for col in (
        "cell",
        "stage",
        "key",
        "status",
        "rollouts",
        "seqs trained",
        "tokens gen",
        "tokens trained",
        "FLOPs",
        "memory GB",
        "wall",
    ):
        t.add_column(col)
    for st in seen.values():
        c = st["counts"]
        todo = st["status"] != "cached"
        t.add_row(
            st["cell"],
            st["stage"],
            st["key"],
            st["status"] + (f" (assumes accuracy {st['assumed_accuracy']})" if "assumed_accuracy" in st else ""),
            f"{c.get('rollouts_generated', 0):,}",
            f"{c.get('sequences_trained', 0):,}",
            f"{c.get('tokens_generated', 0):,}",
            f"{c.get('tokens_trained', 0):,}",
            f"{st['flops']:.3g}" if todo else "-",
            f"{st['memory_gb']:.2f}" if st.get("memory_gb") else "-",
            f"{st['wall_seconds'] or 0:.0f} s" + ("" if todo else " (ran)"),
        )
    total = totals(list(seen.values()))
    t.add_row(
        "to run",
        "",
        "",
        "",
        f"{total['rollouts_generated']:,}",
        f"{total['sequences_trained']:,}",
        f"{total['tokens_generated']:,}",
        f"{total['tokens_trained']:,}",
        f"{total['flops']:.3g}",
        f"{total['peak_memory_gb']:.2f} peak",
        f"{total['wall_seconds'] / 3600:.2f} h" if total["wall_seconds"] > 5400 else f"{total['wall_seconds']:.0f} s",
    )
    Console(soft_wrap=True, width=max(out.width, 180)).print(t)  # a log file or pipe gets the whole table


@app.command("run")
def run_cmd(
    task: str = typer.Option("kk", help="Task id or YAML path."),
    method: str = typer.Option(..., help="A registered method; `harness methods` lists them."),
    budget: Optional[str] = typer.Option(None, help="Distinct training examples: 100, 500, 1k, 2.5k, 10k, 1m."),
    model: str = typer.Option("tiny", help="'tiny' (embedded, built locally), a model folder, or a hub id."),
    seed: int = typer.Option(0),
    config: Optional[Path] = typer.Option(None, help="Recipe YAML layered over the task's default recipe."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Recipe override key.path=value (repeatable)."),
    init: Optional[str] = typer.Option(
        None, help="Start model of a method that takes one: base | sft@BUDGET | RUN_ID | PATH."
    ),
    teacher: Optional[str] = typer.Option(
        None,
        help="What the method learns from (`harness methods` says what "
        "each takes), e.g. traces:short | FILE.jsonl, or an RL policy "
        "RUN_ID | PATH.",
    ),
    teacher_model: Optional[str] = typer.Option(
        None,
        help="Methods that take it (`harness methods`): generate "
        "demonstrations with this model (RUN_ID | PATH), keep the "
        "verified ones.",
    ),
    resume: bool = typer.Option(True, help="Reuse finished stages and resume killed ones from their checkpoints."),
    runs_dir: Optional[Path] = typer.Option(None, help="Default: ./runs or $HARNESS_RUNS_DIR."),
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
    dry_run: bool = DryRun,
    assume_accuracy: float = AssumeAccuracy,
    device: Optional[str] = PlanDevice,
) -> None:
    """Train one method at one sample budget (unless it trains nothing), evaluate on the test split, write one run
    record."""
    _load_plugins(plugin)
    from harness.run import run

    cell = dict(
        task=task,
        method=method,
        budget=budget,
        model=model,
        seed=seed,
        config=config,
        sets=set_ or [],
        init=init,
        teacher=teacher,
        teacher_model=teacher_model,
        runs_dir=runs_dir,
        tasks_dirs=tasks_dir,
    )
    if dry_run:
        _, plan = run(**cell, dry_run=True, assume_accuracy=assume_accuracy, device=device)
        _print_plans([plan])
        return
    if not resume:
        raise HarnessError(
            "--no-resume is not supported: stages are keyed by their full config, so a changed config "
            "trains anew; delete a stage folder under runs/_stages to retrain it"
        )
    path, record = run(**cell, progress_factory=_progress, log=lambda s: console.print(s, markup=False))
    if not record:
        return  # not rank 0 of a multi-process run
    print_metrics(record["metrics"])
    c = record["counts"]
    out.print(
        f"cost: {c['training_examples']} training examples, {c['rollouts_generated']} rollouts, "
        f"{c['sequences_trained']} sequences trained, {c['tokens_trained']} tokens trained, "
        f"{c['tokens_generated']} tokens generated, {c['flops_estimate']:.3g} FLOPs (est.)"
    )
    out.print(f"run record: {path}")


@app.command("compare")
def compare_cmd(
    task: str = typer.Option("kk", help="Task id or YAML path."),
    methods: str = typer.Option("sft,rl,redistill", help="Comma-separated methods."),
    budgets: str = typer.Option(..., help="Comma-separated budgets, e.g. 100,300,1k."),
    seeds: str = typer.Option("0", help="Comma-separated seeds, e.g. 0,1,2."),
    model: str = typer.Option("tiny"),
    config: Optional[Path] = typer.Option(None),
    set_: Optional[List[str]] = typer.Option(None, "--set"),
    init: Optional[str] = typer.Option(None, help="Start model of the methods that take one (as in `harness run`)."),
    teacher: Optional[str] = typer.Option(None, help="Teacher of the methods that take one (as in `harness run`)."),
    runs_dir: Optional[Path] = typer.Option(None),
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
    launcher: str = typer.Option(
        "local",
        help="local (one cell after another here), slurm (one job per "
        "cell through submitit), or submitit-local (the same jobs as local "
        "processes).",
    ),
    emit_commands: bool = typer.Option(
        False,
        "--emit-commands",
        help="Print the missing cells' `harness run` commands, in waves, for any scheduler; run nothing.",
    ),
    slurm_partition: Optional[str] = typer.Option(None, help="--launcher slurm: partition."),
    slurm_gpus: int = typer.Option(1, help="--launcher slurm: GPUs per cell."),
    slurm_time: int = typer.Option(24 * 60, help="--launcher slurm / submitit-local: time limit per cell, minutes."),
    slurm_opt: Optional[List[str]] = typer.Option(
        None,
        "--slurm-opt",
        help="--launcher slurm: extra sbatch setting KEY=VALUE (repeatable), e.g. account=myproj.",
    ),
    dry_run: bool = DryRun,
    assume_accuracy: float = AssumeAccuracy,
    device: Optional[str] = PlanDevice,
) -> None:
    """Run a grid of methods × budgets × seeds (reusing every finished cell and stage), then print the table."""
    plugins = _load_plugins(plugin)
    from harness.compare import compare
    from harness.leaderboard import build_table, load_outcomes, render_markdown
    from harness.plugins import child_specs
    from harness.records import runs_dir as default_runs_dir

    extra = {}
    for item in slurm_opt or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise HarnessError(f"--slurm-opt {item!r} must be KEY=VALUE, e.g. --slurm-opt account=myproj")
        extra[k] = v
    _check_numbers(1, slurm_gpus=slurm_gpus, slurm_time=slurm_time)
    records = compare(
        task=task,
        methods=methods,
        budgets=budgets,
        seeds=seeds,
        model=model,
        config=config,
        sets=set_ or [],
        init=init,
        teacher=teacher,
        runs_dir=runs_dir,
        tasks_dirs=tasks_dir,
        plugins=child_specs(plugins),
        progress_factory=_progress,
        log=lambda s: console.print(s, markup=False),
        launcher=launcher,
        emit_commands=emit_commands,
        slurm={"partition": slurm_partition, "gpus": slurm_gpus, "time": slurm_time, "extra": extra},
        emit=lambda text: out.print(text, end="", markup=False, highlight=False, soft_wrap=True),
        dry_run=dry_run,
        assume_accuracy=assume_accuracy,
        device=device,
    )
    if dry_run:
        if records:
            _print_plans(records)
        else:
            out.print("every cell of this grid has a record already: nothing to run")
        return
    if emit_commands:
        return
    out.print(
        render_markdown(build_table(load_outcomes(records, default_runs_dir(runs_dir)))), markup=False, highlight=False
    )


@app.command("effect")
def effect_cmd(
    task: str = typer.Option("kk", help="Task id or YAML path."),
    model: str = typer.Option("tiny", help="'tiny', a model folder, or a RUN_ID (its trained model)."),
    data: Optional[List[str]] = typer.Option(
        None, "--data", help="run:RUN_ID | redistill:RUN_ID | traces:STYLE | FILE.jsonl (repeatable)."
    ),
    eval_split: str = typer.Option("val", help="Split whose prompts define g*."),
    eval_count: int = typer.Option(32, help="Evaluation prompts (the split's first N)."),
    k: int = typer.Option(8, help="Sampled responses per evaluation prompt."),
    temperature: float = typer.Option(1.0),
    max_new_tokens: Optional[int] = typer.Option(None, help="Default: the task's."),
    seed: int = typer.Option(0),
    params: str = typer.Option("all", help="Parameter subset: all | last:N | lm_head | lora:R."),
    project: Optional[int] = typer.Option(None, help="CountSketch to D dimensions instead of exact dot products."),
    max_samples: Optional[int] = typer.Option(None, help="Per dataset: a seeded random subset of N samples."),
    batch_size: int = typer.Option(8, help="Micro-batch for g*."),
    dtype: str = typer.Option("float32"),
    scale: Optional[str] = typer.Option(
        None, help="Recipe whose task overrides apply: tiny | paper (default: from the model)."
    ),
    predict: bool = typer.Option(
        False,
        "--predict",
        help="Correlate each run's data effect with its "
        "accuracy gain (runs of methods that train on demonstrations).",
    ),
    runs_dir: Optional[Path] = typer.Option(None, help="Default: ./runs or $HARNESS_RUNS_DIR."),
    tasks_dir: Optional[List[Path]] = TasksDir,
    plugin: Optional[List[str]] = Plugins,
) -> None:
    """Sample effect <grad log-lik(x, y), g*> of training data, per sample and per dataset; writes a record."""
    _load_plugins(plugin)
    from harness.effect import EffectSettings, predict as predict_fn, run_effect

    s = EffectSettings(
        task=task,
        model=model,
        data=tuple(data or ()),
        eval_split=eval_split,
        eval_count=eval_count,
        k=k,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        params=params,
        project=project,
        max_samples=max_samples,
        batch_size=batch_size,
        dtype=dtype,
        scale=scale,
    )
    if predict:
        path, rec = predict_fn(s, runs_dir, tasks_dir, _progress, log=lambda x: console.print(x, markup=False))
        m = rec["metrics"]
        rho = "undefined" if m["spearman"] is None else f"{m['spearman']:.3f}"
        out.print(f"Spearman(mean effect, accuracy gain) = {rho} over {m['n_runs']} runs ({m['n_datasets']} datasets)")
    else:
        path, rec = run_effect(s, runs_dir, tasks_dir, _progress)
        t = Table("data", "n", "mean effect", "95% CI", "mean cosine", "trained runs")
        for label, d in rec["metrics"]["datasets"].items():
            t.add_row(
                label,
                str(d["n"]),
                f"{d['mean']:.4g}",
                f"{d['ci95'][0]:.4g} to {d['ci95'][1]:.4g}",
                f"{d['mean_cosine']:.4f}",
                " ".join(d["trained_runs"]) or "-",
            )
        out.print(t)
    out.print(f"record: {path}")


@app.command("leaderboard")
def leaderboard_cmd(
    task: Optional[str] = typer.Option(None, help="Only this task (default: every task found)."),
    runs_dir: Optional[Path] = typer.Option(None, help="Records to read (default ./runs or $HARNESS_RUNS_DIR)."),
    out_dir: Path = typer.Option(Path("leaderboards"), "--out", help="Tables go to OUT/<task>/."),
    plugin: Optional[List[str]] = Plugins,
) -> None:
    """Build leaderboard tables (Markdown, CSV, JSON), a plot and an HTML page from run records only."""
    _load_plugins(plugin)  # a plugin's method says where its rows go and which of its keys make variants
    from harness.leaderboard import build_table, load_outcomes, write_leaderboard
    from harness.store import RunStore

    store = RunStore(runs_dir)
    root = store.root
    _check_output(out_dir, "--out", folder=True)
    every = store.list()
    records = [r.to_dict(with_path=True) for r in every if r.kind == "run"]
    effects = [r.to_dict(with_path=True) for r in every if r.kind == "effect"]  # shown beside the rows (harness effect)
    tasks = sorted({r["config"]["task"] for r in records if task in (None, r["config"]["task"])})
    if not tasks:
        raise HarnessError(
            f"no run records{f' for task {task}' if task else ''} under {root}; "
            "run `harness run` or `harness compare` first, or pass --runs-dir"
        )
    for t in tasks:
        command = f"harness leaderboard --task {t} --runs-dir {runs_dir or root} --out {out_dir}"
        table = build_table(load_outcomes([r for r in records + effects if r["config"]["task"] == t]))
        _check_output(out_dir / t, "--out", folder=True)
        try:
            written = write_leaderboard(table, out_dir / t, command)
        except OSError as e:
            raise _write_error(out_dir / t, e) from None
        for f in written:
            out.print(f"wrote {f}", markup=False, highlight=False)


@app.command("methods")
def methods_cmd(plugin: Optional[List[str]] = Plugins) -> None:
    """List the training methods (built-in and from plugins): what each trains, from what, and its teacher."""
    _load_plugins(plugin)
    from harness import methods

    t = Table("method", "budget", "starts from", "--teacher", "recipe section", "what it does")
    for m in methods.all_methods():
        start = {None: "-", "init": f"--init (default {m.init_key})"}.get(m.starts_from, m.starts_from)
        t.add_row(
            m.name, "yes" if m.trains else "-", start, m.teacher or "-", m.section.name if m.section else "-", m.summary
        )
    out.print(t)


@runs_app.command("list")
def runs_list(runs_dir: Optional[Path] = typer.Option(None, help="Default: ./runs or $HARNESS_RUNS_DIR.")) -> None:
    """Show run records and cached stages (complete or resumable)."""
    from harness.run import list_runs

    records, stages = list_runs(runs_dir)
    t = Table("run id", "task", "method", "budget", "accuracy", "95% CI")
    for r in records:
        m = r.metrics or {}
        ci = m.get("ci95", [0, 0])
        acc = (f"{m['accuracy']:.3f}", f"{ci[0]:.3f}-{ci[1]:.3f}") if "accuracy" in m else ("-", "-")  # lm-eval records
        t.add_row(r.run_id or "?", r.task or "?", r.method or "?", "" if r.budget is None else str(r.budget), *acc)
    out.print(t)
    s = Table("stage", "status", "seconds", "checkpoints")
    for st in stages:
        status = (
            "complete"
            if st["complete"]
            else f"partial (resumable from {st['resumable_from']})"
            if st.get("resumable_from")
            else "partial (no complete checkpoint; trains from the start)"
        )
        s.add_row(
            st["name"],
            status,
            f"{st['wall_seconds']:.0f}" if st["wall_seconds"] else "-",
            ", ".join(st["checkpoints"]) or "-",
        )
    out.print(s)


@runs_app.command("restore")
def runs_restore(
    path: Path = typer.Argument(..., help="A harness-unwritten-*.json (or .unwritten-*.json) file."),
    runs_dir: Optional[Path] = typer.Option(None, help="Default: ./runs or $HARNESS_RUNS_DIR."),
) -> None:
    """Write a run record that could not be written (disk full) from the file its results were kept in."""
    from harness.store import RunStore

    out.print(f"run record: {RunStore(runs_dir).restore(path)}", markup=False, highlight=False)


@tiny_app.command("build")
def tiny_build(
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: the committed folder under harness/assets."),
    force: bool = typer.Option(False, help="Rebuild even if the folder exists."),
) -> None:
    """Pretrain the embedded tiny base from its corpus (deterministic; about 20 minutes on 2 CPU cores) and write its model card."""  # noqa: E501 -- CLI help: typer would show a line break in `harness tiny --help`
    from harness import tiny

    target = out_dir or tiny.folder()
    if (target / "model.safetensors").is_file() and not force:
        raise HarnessError(f"{target} already holds a model; pass --force to rebuild it, or --out DIR")
    tiny.build(target, log=lambda s: out.print(s, markup=False, highlight=False))
    out.print(f"wrote {target}", markup=False, highlight=False)


def print_metrics(m: dict) -> None:
    lo, hi = m["ci95"]
    out.print(
        f"accuracy {m['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {m['n']} problems; "
        f"truncated {m['truncation_rate']:.1%}; mean response {m['mean_response_tokens']:.0f} tokens"
    )
    if "lenient_accuracy" in m:
        out.print(f"lenient accuracy {m['lenient_accuracy']:.3f} (the verifier's lenient variant; accuracy is strict)")
    if "faithful_accuracy" in m:
        out.print(
            f"faithful accuracy {m['faithful_accuracy']:.3f} (right answer, every step right); "
            f"lucky {m['lucky']:.3f}"
        )
    if "limem" in m:
        cr = "-" if m["limem_consistency"] is None else f"{m['limem_consistency']:.3f}"
        out.print(
            f"LiMem ({m['limem_kind']}, {m['limem_n']} training puzzles) {m['limem']:.3f} = accuracy "
            f"{m['limem_accuracy']:.3f} x (1 - consistency {cr})"
        )
    if "pass_at_k" in m:
        out.print("pass@k: " + ", ".join(f"@{k} {v:.3f}" for k, v in m["pass_at_k"].items()))
    if "per_level" in m:
        t = Table("level", "n", "accuracy", "95% CI")
        for lv, b in m["per_level"].items():
            t.add_row(lv, str(b["n"]), f"{b['accuracy']:.3f}", f"{b['ci95'][0]:.3f}-{b['ci95'][1]:.3f}")
        out.print(t)


def main() -> None:
    import warnings

    # transformers 5 deprecation notices triggered inside TRL's own calls; nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; nothing half-written was kept. Re-run the same command to resume.")
        sys.exit(130)


if __name__ == "__main__":
    main()
