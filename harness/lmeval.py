"""lm-evaluation-harness integration: export a task as an lm-eval task folder, and run lm-eval tasks on a checkpoint.

`export_task` writes DIR/<name>.yaml, DIR/<name>_<split>.jsonl, DIR/utils.py and DIR/harness_export.json. The docs
hold the prompt exactly as the harness renders it (the user message; the system prompt as a `system` field that
lm-eval turns into the system message), so `lm_eval --include_path DIR --tasks <name> --apply_chat_template` sends
the model the same text as `harness eval` does (raw tasks: run without --apply_chat_template). utils.py loads the
docs relative to its own file (the folder can be moved) and scores with the harness's verifier object, built from
the task's verifier name and params; per sample it reports `acc` and the verdict `reason` and `extracted`.

`run_lm_eval` runs lm-eval tasks (standard ones, or local folders through include paths) in-process with
`lm_eval.simple_evaluate` and writes a harness run record with lm-eval's metrics, versions and per-sample logs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from harness.errors import HarnessError

SIDECAR = "harness_export.json"

UTILS = '''"""Written by `harness tasks export-lm-eval`; scores with r1-harness's own verifiers (see harness_export.json)."""

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SPECS = json.loads((_HERE / "harness_export.json").read_text())
_VERIFIERS = {}


def load_docs(harness_task=None, **_):
    """lm-eval `custom_dataset`: the exported docs, read relative to this file."""
    import datasets

    spec = _SPECS[harness_task]
    path = _HERE / spec["data"]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return datasets.DatasetDict({spec["split"]: datasets.Dataset.from_list(rows)})


def _verifier(task):
    if task not in _VERIFIERS:
        try:
            from harness.verifiers import get_verifier
        except ImportError as e:
            raise ImportError("this lm-eval task scores with r1-harness's verifiers: install r1-harness "
                              "(pip install -e <r1-harness checkout>) in the environment that runs lm_eval") from e
        if _SPECS[task].get("plugins"):  # a verifier from a plugin: loaded here as it was for the export
            from harness.plugins import load_plugins

            load_plugins(_SPECS[task]["plugins"])
        v = _SPECS[task]["verifier"]
        _VERIFIERS[task] = get_verifier(v["name"], v["params"])
    return _VERIFIERS[task]


def process_results(doc, results):
    response = results[0]
    # lm-eval does not say whether a generation hit max_gen_toks, so responses count as finished.
    verdict = _verifier(doc["harness_task"])(response, doc["answer"], truncated=False)
    out = {"acc": verdict.score, "reason": verdict.reason, "extracted": verdict.extracted}
    for key in _SPECS[doc["harness_task"]].get("graded", []):  # reasoning-gym's partial credit, boxed_math's lenient
        out[key] = getattr(verdict, key, None)
    return out


def most_common(items):
    """Aggregation for the per-sample text fields: the run's most common value (they are read per sample)."""
    items = [i for i in items if i is not None]
    return max(sorted(set(items)), key=items.count) if items else None
'''  # noqa: E501 -- the text of the generated utils.py: a line break here would change every exported task


def lm_eval_name(task_id: str) -> str:
    """The exported task's lm-eval name: `harness_` + the id, so it can never shadow one of lm-eval's own tasks
    (the harness's `gsm8k` exported as `gsm8k` would have replaced lm-eval's `gsm8k` in any run that includes it)."""
    return "harness_" + task_id.replace("/", "_").replace(".", "_")


def export_task(
    spec, out_dir: Path, split: str = "test", limit: Optional[int] = None, max_new_tokens: Optional[int] = None
) -> dict:
    """Write the lm-eval task folder; returns its sidecar entry (with `name`, `yaml`, `n`)."""
    import yaml

    from harness.data import load_split, render_prompt
    from harness.records import write_atomic

    name = lm_eval_name(spec.id)
    samples = load_split(spec, split, limit)
    docs = []
    for s in samples:
        prompt = render_prompt(spec, s)
        user = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        level = s.get("level")
        docs.append(
            {
                "id": s["id"],
                "harness_task": name,
                "prompt": user,
                "system": spec.prompt.system or "",
                "answer": s["answer"],
                "level": None if level is None else str(level),
            }
        )
    graded = list(getattr(spec.build_verifier(), "GRADED", ()))  # declared keys
    gen = spec.generation
    greedy = gen.temperature == 0
    gen_kwargs: dict = {
        "until": list(gen.stop),
        "max_gen_toks": max_new_tokens or gen.max_new_tokens,
        "do_sample": not greedy,
        "temperature": float(gen.temperature),
    }
    if not greedy:
        gen_kwargs.update(top_p=1.0, top_k=0)  # as the harness samples: no top-k cut
    data_file = f"{name}_{split}.jsonl"
    config: dict = {
        "task": name,
        "custom_dataset": "!function utils.load_docs",
        "dataset_kwargs": {"harness_task": name},
        "test_split": split,
        "output_type": "generate_until",
        "doc_to_text": "prompt",
        "doc_to_target": "answer",
        "target_delimiter": "",
        "generation_kwargs": gen_kwargs,
        "process_results": "!function utils.process_results",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "reason", "aggregation": "!function utils.most_common", "higher_is_better": True},
            {"metric": "extracted", "aggregation": "!function utils.most_common", "higher_is_better": True},
        ]
        + [{"metric": k, "aggregation": "mean", "higher_is_better": True} for k in graded],
        "metadata": {"version": 1.0, "harness_task_id": spec.id, "harness_task_sha256": spec.sha256},
    }
    if spec.prompt.chat and spec.prompt.system:
        config["description"] = "system"  # a doc field: lm-eval makes it the system message, verbatim
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
    text = text.replace("'!function utils.load_docs'", "!function utils.load_docs")
    text = text.replace("'!function utils.process_results'", "!function utils.process_results")
    text = text.replace("'!function utils.most_common'", "!function utils.most_common")
    head = (
        f"# Written by `harness tasks export-lm-eval {spec.id} --split {split}`: the harness's prompts and "
        "verifier.\n"
        f"# Run: lm_eval --model hf --model_args pretrained=MODEL --include_path {out_dir} --tasks {name}"
        f"{' --apply_chat_template' if spec.prompt.chat else ''}\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    sidecar = out_dir / SIDECAR
    try:
        entries = json.loads(sidecar.read_bytes()) if sidecar.is_file() else {}
    except (ValueError, RecursionError):
        entries = None
    if not isinstance(entries, dict):
        raise HarnessError(f"{sidecar} is not a harness export sidecar (corrupt); delete it, or pass another --out")
    entry = {
        "task": spec.id,
        "task_sha256": spec.sha256,
        "split": split,
        "n": len(docs),
        "data": data_file,
        "chat": spec.prompt.chat,
        "verifier": {"name": spec.verifier.name, "params": spec.verifier.params},
        "generation": gen_kwargs,
        "graded": graded,
    }
    from harness.plugins import child_specs, loaded

    plugins = child_specs(loaded())
    if plugins:  # only then: exports without plugins stay as they were
        entry["plugins"] = plugins
    entries[name] = entry
    write_atomic(out_dir / data_file, "".join(json.dumps(d) + "\n" for d in docs))
    write_atomic(out_dir / "utils.py", UTILS)
    write_atomic(sidecar, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    write_atomic(out_dir / f"{name}.yaml", head + text)
    return {**entry, "name": name, "yaml": str(out_dir / f"{name}.yaml")}


def chat_tasks(include_paths: Iterable[Path], names: Iterable[str]) -> bool:
    """True when the requested tasks include harness exports of chat tasks (lm-eval must apply the chat template)."""
    wanted, flags = set(names), {}
    for p in include_paths:
        for side in {Path(p) / SIDECAR, *Path(p).rglob(SIDECAR)}:
            if side.is_file():
                for name, entry in json.loads(side.read_text()).items():
                    if name in wanted:
                        flags[name] = bool(entry.get("chat"))
    if len(set(flags.values())) > 1:
        raw = ", ".join(sorted(n for n, c in flags.items() if not c))
        raise HarnessError(
            f"exported raw tasks ({raw}) and chat tasks cannot share one lm-eval run (the chat template "
            "is applied to all or none); evaluate them in separate runs"
        )
    return any(flags.values())


def _task_manager(names: list[str], include_paths: list[Path]):
    from lm_eval.tasks import TaskManager

    paths = [str(p) for p in include_paths]
    if paths:  # indexing lm-eval's own ~15k tasks takes ~20 s; skip it when the include paths have them all
        tm = TaskManager(include_path=paths, include_defaults=False)
        if all(n in tm.all_tasks for n in names):
            return tm
    return TaskManager(include_path=paths or None)


# what lm-eval's results say about how they were made, kept in the record
LM_EVAL_KEYS = (
    "versions",
    "n-shot",
    "higher_is_better",
    "n-samples",
    "configs",
    "config",
    "git_hash",
    "lm_eval_version",
    "transformers_version",
)


def _check_args(tasks: str, limit: Optional[int], dtype: str, include_paths: Iterable[Path]) -> tuple[list, list]:
    """(lm-eval task names, include folders), after the checks that need neither lm-eval's tasks nor a model."""
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        raise HarnessError("--lm-eval-tasks is empty; pass lm-eval task names, e.g. gsm8k,arc_easy")
    if limit is not None and limit < 1:
        raise HarnessError(f"--limit must be at least 1 (got {limit})")
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise HarnessError(f"unknown dtype '{dtype}'; use auto, float32, bfloat16 or float16")
    include = [Path(p) for p in include_paths]
    for p in include:
        if not p.is_dir():
            raise HarnessError(f"lm-eval include path {p} is not a folder; pass a folder of lm-eval task YAML files")
    return names, include


def _load_tasks(names: list[str], include: list[Path]) -> tuple[Any, list]:
    """(lm-eval's task manager, the tasks built with their datasets loaded), before any model is loaded; an unknown
    task or data lm-eval cannot load is one clear error."""
    from harness.registry import did_you_mean

    tm = _task_manager(names, include)
    unknown = [n for n in names if n not in tm.all_tasks]
    if unknown:
        raise HarnessError(
            f"unknown lm-eval task '{unknown[0]}': {did_you_mean(unknown[0], list(tm.all_tasks))}; "
            "for a local task pass its folder with --lm-eval-include-path"
        )
    try:
        loaded = tm.load(names)
    except (OSError, ConnectionError) as e:
        raise HarnessError(
            f"lm-eval could not load the data of {', '.join(names)}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Standard lm-eval tasks download their "
            "datasets from the Hugging Face hub; run where the hub is reachable (or with the datasets "
            "in the HF cache), or evaluate a local task folder with --lm-eval-include-path DIR (e.g. "
            "one written by `harness tasks export-lm-eval`)"
        ) from None
    return tm, [loaded["groups"].get(n) or loaded["tasks"].get(n) or n for n in names]


def run_lm_eval(
    *,
    tasks: str,
    model: str = "tiny",
    harness_task: str = "kk",
    include_paths: Iterable[Path] = (),
    limit: Optional[int] = None,
    batch_size: int = 32,
    dtype: str = "auto",
    seed: int = 0,
    num_fewshot: Optional[int] = None,
    chat_template: Optional[bool] = None,
    runs_dir: Optional[Path] = None,
    tasks_dirs: Optional[Iterable[Path]] = None,
) -> tuple[Path, dict]:
    """Evaluate a checkpoint on lm-eval tasks in-process; write a run record with lm-eval's metrics."""
    from harness import models
    from harness.records import new_run_id, provenance
    from harness.store import RunRecord, RunStore
    from harness.tasks import get_task

    try:
        import lm_eval
    except ImportError:
        raise HarnessError("--engine lm-eval needs lm-evaluation-harness: pip install -e '.[lmeval]'") from None
    names, include = _check_args(tasks, limit, dtype, include_paths)
    apply_chat = chat_tasks(include, names) if chat_template is None else chat_template
    ref = models.resolve(model, get_task(harness_task, tasks_dirs) if models.is_tiny(model) else None)
    tm, built = _load_tasks(names, include)
    from harness.engines import cuda_available

    model_args = {"pretrained": ref, "dtype": dtype}
    t0 = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=built,
        task_manager=tm,
        batch_size=batch_size,
        device="cuda" if cuda_available() else "cpu",
        limit=limit,
        num_fewshot=num_fewshot,
        apply_chat_template=apply_chat,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    wall = time.perf_counter() - t0
    clean = json.loads(json.dumps(results, default=str))  # lm-eval's configs hold functions
    per_task = {
        t: {k: v for k, v in m.items() if k not in ("alias", "name", "sample_len")} for t, m in clean["results"].items()
    }
    metrics = {
        "lm_eval": per_task,
        "n": {t: v.get("effective", v.get("original")) for t, v in clean.get("n-samples", {}).items()},
        "wall_seconds": wall,
    }
    config = {
        "command": "eval",
        "engine": "lm-eval",
        "task": "lm-eval:" + ",".join(names),
        "lm_eval_tasks": names,
        "include_paths": [str(p) for p in include],
        "model": model,
        "model_path": ref,
        "limit": limit,
        "batch_size": batch_size,
        "dtype": dtype,
        "seed": seed,
        "num_fewshot": num_fewshot,
        "apply_chat_template": apply_chat,
    }
    lm = {k: clean.get(k) for k in LM_EVAL_KEYS}
    record = RunRecord(
        kind="eval",
        method="base",
        config=config,
        provenance=provenance(seed),
        metrics=metrics,
        wall_seconds={"eval": wall},
        run_id=new_run_id("lm-eval", *names[:3]),
        other={"lm_eval": lm},
    )
    rows = [{"lm_eval_task": t, **s} for t, ss in clean.get("samples", {}).items() for s in ss]
    path = RunStore(runs_dir).write(record, rows)
    return path, metrics


def print_lm_eval(metrics: dict) -> str:
    """One line per task and metric (stderr where lm-eval has one)."""
    lines = []
    for task, ms in metrics["lm_eval"].items():
        for key, v in sorted(ms.items()):
            name, _, filt = key.partition(",")
            if name.endswith("_stderr") or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            se = ms.get(f"{name}_stderr,{filt}")
            lines.append(
                f"{task} {name}{f' ({filt})' if filt not in ('', 'none') else ''}: {v:.4f}"
                + (f" ± {se:.4f}" if isinstance(se, (int, float)) else "")
            )
    return "\n".join(lines) or "lm-eval returned no numeric metrics"
