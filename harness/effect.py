"""`harness effect`: the sample effect e(x, y) = <grad l(x, y), g*> of training data (definition: PAPER.md).

l is the token-mean log-likelihood of the response (rendered as SFT training renders it); g* is the score-function
estimate of the gradient of the expected verifier reward on evaluation prompts,

    g* = 1/(P k) sum_prompts sum_j (r_j - mean_{i != j} r_i) grad log pi(y_j | x),

from k sampled responses per prompt (leave-one-out group baseline: the group mean without the response itself,
so the estimate stays unbiased). Each dataset's mean effect comes with a 95% interval; one record per measurement.
`--predict` correlates, across the runs of a grid that end with SFT on demonstrations (sft, redistill: each method
says so, harness/methods), the mean effect of each run's training data at its start model with the accuracy the run
gained. `measure_at` is the measurement alone, for a method that selects its data by their effect.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from harness import methods, models, recipes
from harness.data import load_split, read_rows, render_prompt
from harness.errors import HarnessError
from harness.progress import progress_bar
from harness.records import config_hash, new_run_id, provenance
from harness.stats import normal_interval
from harness.store import RunRecord, RunStore
from harness.tasks import get_task
from harness.taskspec import TaskSpec

SOURCE_FORMS = (
    "run:RUN_ID, redistill:RUN_ID, traces:STYLE (e.g. traces:compact) or a JSONL file of prompt/response pairs"
)


@dataclass(frozen=True)
class EffectSettings:
    task: str = "kk"
    model: str = "tiny"
    data: tuple[str, ...] = ()
    eval_split: str = "val"
    eval_count: int = 32
    k: int = 8
    temperature: float = 1.0
    max_new_tokens: Optional[int] = None  # default: the task's generation.max_new_tokens
    seed: int = 0
    params: str = "all"
    project: Optional[int] = None  # None: exact dot products; D: CountSketch to D dimensions
    max_samples: Optional[int] = None  # per dataset: a seeded random subset of this size
    batch_size: int = 8  # micro-batch for g*
    dtype: str = "float32"
    scale: Optional[str] = None  # which recipe's task overrides: tiny | paper (default: from the model)

    def check(self) -> None:
        for name, v, lo in (("eval-count", self.eval_count, 1), ("k", self.k, 2), ("batch-size", self.batch_size, 1)):
            if v < lo:
                raise HarnessError(f"--{name} must be at least {lo} (got {v})")
        if self.temperature <= 0:
            raise HarnessError("--temperature must be > 0: g* needs sampled responses (the score function of pi)")
        if self.project is not None and self.project < 1:
            raise HarnessError(f"--project must be a positive dimension, e.g. 4096 (got {self.project})")
        if self.max_samples is not None and self.max_samples < 1:
            raise HarnessError(f"--max-samples must be at least 1 (got {self.max_samples})")
        if self.scale not in (None, "tiny", "paper"):
            raise HarnessError(f"--scale must be tiny or paper (got {self.scale})")
        if self.dtype not in ("float32", "bfloat16", "float64"):
            raise HarnessError(f"--dtype must be float32, bfloat16 or float64 (got {self.dtype})")
        from harness.effect_grads import parse_params

        parse_params(self.params)


@dataclass
class Dataset:
    label: str  # the source as given
    rows: list[dict]  # id, prompt, completion
    data_hash: str  # config_hash of the rows as trained (the sft stage's data_hash)
    trained_runs: list[str] = field(default_factory=list)


def mean_ci(values: Sequence[float]) -> tuple[float, list[float]]:
    """Mean and normal 95% interval (unbounded: effects are any real number, unlike stats.mean_interval's scores)."""
    if not values:
        return 0.0, [0.0, 0.0]
    lo, hi = normal_interval(values)
    return sum(values) / len(values), [lo, hi]


def spearman(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """Spearman rank correlation (average ranks for ties); None when undefined (n < 2 or a constant side)."""

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for t in range(i, j + 1):
                r[order[t]] = (i + j) / 2 + 1
            i = j + 1
        return r

    if len(xs) < 2:
        return None
    a, b = ranks(xs), ranks(ys)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    if va == 0 or vb == 0:
        return None
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(va * vb)


def corrupt_answer(completion: str) -> Optional[str]:
    """The completion with its final \\boxed{...} replaced by a wrong one: for K&K every role is flipped; else the
    answer's first digit or letter is changed. None if there is no box."""
    i = completion.rfind("\\boxed{")
    j = completion.find("}", i)
    if i < 0 or j < 0:
        return None
    inner = completion[i + 7 : j]
    if "knight" in inner or "knave" in inner:
        wrong = inner.replace("knight", "\0").replace("knave", "knight").replace("\0", "knave")
    else:
        wrong = next(
            (
                inner[:k] + ("1" if c == "0" else "0" if c.isdigit() else "x" if c != "x" else "y") + inner[k + 1 :]
                for k, c in enumerate(inner)
                if c.isalnum()
            ),
            inner + "x",
        )
    return completion[: i + 7] + wrong + completion[j:]


# --- task, model and data resolution --------------------------------------------------------------------------


def _find_record(records: list[dict], run_id: str) -> Optional[dict]:
    return next((r for r in records if r.get("run_id") == run_id), None)


def _spec_for(task: str, tasks_dirs: Any, recipe: Optional[dict]) -> TaskSpec:
    spec = get_task(task, tasks_dirs)
    return recipes.apply_task_overrides(spec, (recipe or {}).get("task"))


def resolve_setup(
    s: EffectSettings,
    root: Path,
    tasks_dirs: Any = None,
    model_path: Optional[str] = None,
    records: Optional[list[dict]] = None,
) -> tuple[TaskSpec, dict, str, str]:
    """(task spec with the recipe's overrides, recipe, recipe name, model path). A run id as --model (or as the first
    run:/redistill: source) brings its own recipe, so the evaluation and trace splits match what it trained on.
    model_path, when given, is the model (nothing is resolved or built)."""
    from harness.pipeline import run_model_path

    records = RunStore(root).dicts() if records is None else records
    rec = own = _find_record(records, s.model)
    if rec is None:
        for d in s.data:
            kind, _, rid = d.partition(":")
            if kind in ("run", "redistill") and (rec := _find_record(records, rid)) is not None:
                break
    if s.scale is not None or rec is None or rec.get("kind") != "run":
        scale = s.scale or ("tiny" if models.is_tiny(s.model) else "paper")
        name, recipe = recipes.resolve(get_task(s.task, tasks_dirs).id, scale)
    else:
        name, recipe = rec["config"].get("recipe_name", "?"), rec["config"].get("recipe", {})
        if rec["config"]["task"] != get_task(s.task, tasks_dirs).id:
            raise HarnessError(
                f"run {rec['run_id']} is a '{rec['config']['task']}' run, not '{s.task}'; pass --task "
                f"{rec['config']['task']}"
            )
    spec = _spec_for(s.task, tasks_dirs, recipe)
    spec.split(s.eval_split)  # a wrong --eval-split fails before any model is built or loaded
    if model_path is not None:
        return spec, recipe, name, model_path
    if own is not None:
        return spec, recipe, name, run_model_path(RunRecord.from_dict(own))
    return spec, recipe, name, models.resolve(s.model, spec)


def _on_demonstrations(rec: dict) -> bool:
    """A run whose method ends with SFT on demonstrations (its data can be measured)."""
    m = methods.find(rec.get("method"))
    return m is not None and m.demonstrations


def _sft_stage(rec: dict, root: Path) -> Path:
    sft = [st for st in rec.get("stages", []) if st.get("stage") == "sft"]
    if not _on_demonstrations(rec) or not sft:
        raise HarnessError(
            f"run {rec['run_id']} (method {rec.get('method')}) was not trained by SFT on demonstrations; "
            f"run:RUN_ID needs a run of {' or '.join(methods.demonstration_methods())}"
        )
    return RunStore(root).stage_dir("sft", sft[-1]["key"])  # the last SFT stage trained the evaluated model


def load_source(
    source: str, spec: TaskSpec, recipe: dict, root: Path, seed: int = 0, records: Optional[list[dict]] = None
) -> Dataset:
    """One --data SOURCE as rows of id / prompt / completion, rendered exactly as `harness run` trains on them."""
    from harness.pipeline import Context, train_data_sft

    kind, _, arg = source.partition(":")
    if kind in ("run", "redistill") and arg and records is None:
        records = RunStore(root).dicts()
    if kind == "run" and arg:
        rec = _find_record(records, arg)
        if rec is None:
            raise HarnessError(f"--data {source}: no run '{arg}' in {root} (see `harness runs list`)")
        f = _sft_stage(rec, root) / "train_data.jsonl"
        if not f.is_file():
            raise HarnessError(
                f"--data {source}: its training data {f} is gone (stage folder removed); retrain the run"
            )
        rows = read_rows(f)
        return Dataset(source, rows, config_hash(rows))
    if kind == "redistill" and arg:
        rec = _find_record(records, arg)
        if rec is None:
            raise HarnessError(f"--data {source}: no run '{arg}' in {root} (see `harness runs list`)")
        f = Path(rec["path"]) / "redistill.jsonl"
        if not f.is_file():
            raise HarnessError(
                f"--data {source}: run {arg} (method {rec.get('method')}) has no re-distilled data "
                "(redistill.jsonl); pass a redistill run"
            )
        rows = read_rows(f)[: rec.get("budget") or None]
        return Dataset(source, rows, config_hash(rows))
    ctx = Context(task=spec, recipe_name="", recipe=recipe, base_model="", base_ref="", seed=seed, root=root)
    if kind == "traces" and arg:
        # The whole split (cheap to generate), so its hash matches the runs trained on it; --max-samples subsamples.
        rows, _ = train_data_sft(ctx, source, None)
        return Dataset(source, rows, config_hash(rows))
    path = Path(source)
    if kind in ("run", "redistill", "traces") or not path.is_file():
        raise HarnessError(f"--data '{source}' is not a data source; use {SOURCE_FORMS}")
    rows, _ = train_data_sft(ctx, str(path), None)
    if not rows:
        raise HarnessError(f"--data {source}: the file has no rows")
    return Dataset(source, rows, config_hash(rows))


def _sft_config(rec: dict, root: Path) -> Optional[dict]:
    """The config of the run's final SFT stage (None: not an SFT-trained run, or its stage folder is gone)."""
    if rec.get("kind") != "run" or not _on_demonstrations(rec):
        return None
    try:
        return json.loads((_sft_stage(rec, root) / "config.json").read_text())
    except (HarnessError, OSError, ValueError):
        return None


def trained_hashes(records: list[dict], root: Path) -> dict[str, str]:
    """Run id -> data hash of the rows its final SFT stage trained on, for every run trained on demonstrations."""
    out = {}
    for rec in records:
        cfg = _sft_config(rec, root)
        if cfg is not None and cfg.get("data_hash"):
            out[rec["run_id"]] = cfg["data_hash"]
    return out


def trained_runs(hashes: dict[str, str], data_hash: str) -> list[str]:
    """Run ids whose final SFT stage trained on exactly these rows (matched by the stage's data hash)."""
    return [rid for rid, h in hashes.items() if h == data_hash]


def subsample(rows: list[dict], n: Optional[int], seed: int) -> list[dict]:
    if n is None or n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


# --- measurement ----------------------------------------------------------------------------------------------


def load_model(path: str, dtype: str) -> tuple[Any, Any]:
    import torch

    model, tok = models.load(path, dtype="float32" if dtype == "float64" else dtype)
    if dtype == "float64":
        model = model.to(torch.float64)
    if torch.cuda.is_available():
        model.to("cuda")
    model.eval()
    return model, tok


def estimate_gstar(
    model: Any,
    tok: Any,
    params: list[Any],
    spec: TaskSpec,
    s: EffectSettings,
    progress_factory: Optional[Callable] = None,
) -> tuple[list[Any], dict]:
    """Sample k responses per evaluation prompt, score them with the task's verifier, and accumulate g*."""
    from harness.effect_grads import encode_sampled, weighted_grad
    from harness.engines import SamplingParams, make_engine

    spec.split(s.eval_split)
    rows = load_split(spec, s.eval_split, limit=s.eval_count)
    prompts = [render_prompt(spec, r) for r in rows]
    verifier = spec.build_verifier()
    params_ = SamplingParams(
        n=s.k,
        temperature=s.temperature,
        max_new_tokens=s.max_new_tokens or spec.generation.max_new_tokens,
        stop=tuple(spec.generation.stop),
        seed=s.seed,
    )
    done = [0]

    def tick(idx: list[int], _: Any) -> None:
        done[0] += len(idx)
        if cb:
            cb(done[0], len(rows), "")

    with progress_bar(progress_factory, f"sample {s.k} x {len(rows)} eval prompts") as cb:
        engine = make_engine("transformers", model=model, tokenizer=tok, batch_size=max(s.k, 32))
        gens = engine.generate(prompts, params_, on_batch=tick)
    seqs, weights, rewards, signal = [], [], [], 0
    for r, prompt, gs in zip(rows, prompts, gens):
        rs = [verifier(g.text, r["answer"], truncated=g.truncated).score for g in gs]
        rewards.extend(rs)
        signal += len(set(rs)) > 1
        for g, rew in zip(gs, rs):
            base = (sum(rs) - rew) / (len(rs) - 1)  # leave-one-out group mean
            seqs.append(encode_sampled(tok, prompt, g))  # the sampled ids themselves, special tokens included
            weights.append((rew - base) / (len(rows) * s.k))
    # what sampling and the gradient cost (measure_at returns it apart, so effect records keep their g_star)
    cost = {
        "rollouts_generated": len(rows) * s.k,
        "tokens_generated": sum(g.n_tokens for gs in gens for g in gs),
        "tokens_gradient": sum(len(q.ids) for q, w in zip(seqs, weights) if w != 0.0),
    }  # weighted_grad skips 0s
    info = {
        "n_prompts": len(rows),
        "k": s.k,
        "temperature": s.temperature,
        "mean_reward": sum(rewards) / len(rewards),
        "prompts_with_signal": signal,
        "baseline": "leave-one-out group mean",
        "max_new_tokens": params_.max_new_tokens,
        "eval_split": s.eval_split,
        "mean_response_tokens": sum(q.n_tokens for q in seqs) / len(seqs),
    }
    if signal == 0:
        raise HarnessError(
            f"g* is zero: all {s.k} responses to each of the {len(rows)} evaluation prompts got the same "
            f"reward (mean reward {info['mean_reward']:.3f}); use a model that solves some of them, or "
            "raise --k, --eval-count or --temperature"
        )
    with progress_bar(progress_factory, "g* (policy gradient)") as cb:
        g = weighted_grad(model, params, seqs, weights, s.batch_size, s.temperature, mean=False, progress=cb)
    from harness.effect_grads import dot

    info["norm"] = math.sqrt(dot(g, g))
    info["cost"] = cost
    return g, info


def measure(
    s: EffectSettings,
    root: Optional[Path] = None,
    tasks_dirs: Any = None,
    progress_factory: Optional[Callable] = None,
    model_path: Optional[str] = None,
    datasets: Optional[list[Dataset]] = None,
    records: Optional[list[dict]] = None,
) -> tuple[dict, list[dict], TaskSpec]:
    """(metrics, per-sample rows, task spec as measured: with the recipe's overrides) for every dataset of the
    settings, at one model and one g*."""
    s.check()
    store = RunStore(root)
    root = store.root
    records = store.dicts() if records is None else records
    spec, recipe, recipe_name, path = resolve_setup(s, root, tasks_dirs, model_path, records)
    if datasets is None:
        if not s.data:
            raise HarnessError(f"pass at least one --data SOURCE ({SOURCE_FORMS})")
        datasets = [load_source(d, spec, recipe, root, s.seed, records) for d in s.data]
    hashes = trained_hashes(records, root)
    for d in datasets:
        d.trained_runs = trained_runs(hashes, d.data_hash)
    metrics, all_rows, _ = measure_at(s, spec, recipe, path, datasets, progress_factory)
    metrics["spec"] = {"task": spec.id, "recipe_name": recipe_name, "model_path": path}
    return metrics, all_rows, spec


def measure_at(
    s: EffectSettings,
    spec: TaskSpec,
    recipe: dict,
    path: str,
    datasets: list[Dataset],
    progress_factory: Optional[Callable] = None,
) -> tuple[dict, list[dict], dict]:
    """The measurement at the model `path` on the task and recipe as given (nothing resolved): (metrics, per-sample
    rows in the datasets' order, cost: g*'s rollouts and tokens generated, and the tokens every gradient went
    through, g*'s and the samples')."""
    import torch

    from harness.effect_grads import encode_pair, sample_effects, select_params
    from harness.projection import CountSketch

    t0 = time.perf_counter()
    torch.manual_seed(s.seed)
    model, tok = load_model(path, s.dtype)
    model, _, params, pinfo = select_params(model, s.params, s.seed)
    max_len = int(recipe.get("sft", {}).get("max_length", 2048))
    gstar, ginfo = estimate_gstar(model, tok, params, spec, s, progress_factory)
    cost = ginfo.pop("cost")
    t_g = time.perf_counter() - t0
    sketches = []
    if s.project:
        sk = CountSketch(
            s.project,
            s.seed,
            [p.numel() for p in params],
            device=params[0].device,
            cache=pinfo["parameters"] <= 20_000_000,
        )
        sketches = [(sk, sk.project(gstar))]
        gstar = None  # projected mode keeps only D numbers of g* (its norm is in ginfo)
    metrics: dict[str, Any] = {"datasets": {}, "g_star": ginfo, "params": pinfo}
    all_rows = []
    for d in datasets:
        rows = subsample(d.rows, s.max_samples, s.seed)
        seqs = [encode_pair(tok, r["prompt"], r["completion"], max_len) for r in rows]
        cost["tokens_gradient"] += sum(len(q.ids) for q in seqs)
        with progress_bar(progress_factory, f"effect {d.label} ({len(rows)} samples)") as cb:
            res = sample_effects(model, params, seqs, gstar, sketches, progress=cb)
        vals, coss = [], []
        for r, x in zip(rows, res):
            e = x["effect"] if s.project is None else x[f"effect_d{s.project}"]
            cos = e / (x["grad_norm"] * ginfo["norm"]) if x["grad_norm"] > 0 and ginfo["norm"] > 0 else 0.0
            vals.append(e)
            coss.append(cos)
            all_rows.append(
                {
                    "id": r.get("id"),
                    "dataset": d.label,
                    "effect": e,
                    "cosine": cos,
                    "grad_norm": x["grad_norm"],
                    "loglik": x["loglik"],
                    "n_tokens": x["n_tokens"],
                }
            )
        m, ci = mean_ci(vals)
        mc, cci = mean_ci(coss)
        metrics["datasets"][d.label] = {
            "n": len(vals),
            "n_available": len(d.rows),
            "mean": m,
            "ci95": ci,
            "mean_cosine": mc,
            "cosine_ci95": cci,
            "mean_grad_norm": sum(x["grad_norm"] for x in res) / max(1, len(res)),
            "data_hash": d.data_hash,
            "trained_runs": d.trained_runs,
        }
    metrics["measurement"] = {
        "mode": "exact" if s.project is None else "projected",
        "projection": sketches[0][0].describe() if sketches else None,
        "subset_parameters": pinfo["parameters"],
        "dtype": s.dtype,
        "loss": "token-mean log-likelihood of the response (SFT rendering, completion-only)",
        "max_length": max_len,
        "seconds_g_star": t_g,
        "seconds_total": time.perf_counter() - t0,
        "device": str(params[0].device),
    }
    return metrics, all_rows, cost


def run_effect(
    s: EffectSettings,
    runs_dir: Optional[Path] = None,
    tasks_dirs: Any = None,
    progress_factory: Optional[Callable] = None,
) -> tuple[Path, dict]:
    store = RunStore(runs_dir)
    metrics, rows, spec = measure(s, store.root, tasks_dirs, progress_factory)
    record = RunRecord(
        kind="effect",
        method="effect",
        config={
            "command": "effect",
            "task": spec.id,
            "model": s.model,
            "model_path": metrics["spec"]["model_path"],
            "recipe_name": metrics["spec"]["recipe_name"],
            "settings": asdict(s),
        },
        provenance=provenance(s.seed, spec),
        metrics=metrics,
        wall_seconds={"total": metrics["measurement"]["seconds_total"]},
        run_id=new_run_id(spec.id, "effect"),
    )
    return store.write(record, rows), record.to_dict()


# --- does the effect predict the gain? ----------------------------------------------------------------------------


def start_model(rec: dict, root: Path) -> str:
    """The model a run's final SFT stage started from (its recorded `init`), as a path; the base model when the
    stage does not say or names the base model."""
    c = rec["config"]
    init = (_sft_config(rec, root) or {}).get("init")
    if not init or init.startswith("tiny:") or init == c.get("model"):
        return c["model_path"]
    if init.startswith("stage:"):
        d = RunStore(root).stages_root / init[len("stage:") :]
        try:
            return json.loads((d / "stage.json").read_text())["model_path"]
        except (OSError, ValueError, KeyError):
            return str(d / "final")
    return init


def _start_accuracy(runs: list[dict], rec: dict, start: str) -> Optional[tuple[float, str]]:
    """Accuracy of a run's start model: a base run of the same set-up (when it started from the base model), a run
    whose evaluated model it is, else an eval record of the same model on test."""
    c = rec["config"]
    for r in sorted(runs, key=lambda r: r["run_id"], reverse=True):
        rc = r.get("config", {})
        same_setup = (
            r.get("kind") == "run"
            and rc.get("task") == c["task"]
            and config_hash(rc.get("recipe", {})) == config_hash(c.get("recipe", {}))
        )
        if same_setup and r.get("method") == "base" and start == c["model_path"] and rc.get("model") == c["model"]:
            return r["metrics"]["accuracy"], r["run_id"]
        if same_setup and r.get("method") != "base" and r.get("model_path") == start:
            return r["metrics"]["accuracy"], r["run_id"]
        if (
            r.get("kind") == "eval"
            and rc.get("model_path") == start
            and rc.get("split") == "test"
            and rc.get("limit") is None
            and rc.get("task") == c["task"]
            and r.get("provenance", {}).get("splits") == rec.get("provenance", {}).get("splits")
        ):
            return r["metrics"]["accuracy"], r["run_id"]
    return None


def _measure_start_accuracy(
    task: str, rec: dict, start: str, tasks_dirs: Any, progress_factory: Optional[Callable]
) -> float:
    from harness.engines import engine_settings, make_engine
    from harness.evaluate import evaluate

    c = rec["config"]
    spec = _spec_for(task, tasks_dirs, c.get("recipe"))
    ev = c.get("recipe", {}).get("eval", {})
    engine = make_engine("transformers", start, **engine_settings(ev))
    with progress_bar(progress_factory, "eval start model") as cb:
        metrics, _ = evaluate(
            spec,
            engine,
            split="test",
            limit=ev.get("limit"),
            seed=c.get("seed", 0),
            max_new_tokens=ev.get("max_new_tokens"),
            progress=cb,
        )
    return metrics["accuracy"]


def predict(
    s: EffectSettings,
    runs_dir: Optional[Path] = None,
    tasks_dirs: Any = None,
    progress_factory: Optional[Callable] = None,
    log: Callable[[str], None] = lambda x: None,
) -> tuple[Path, dict]:
    """Spearman correlation, over the runs of a task trained on demonstrations (sft, redistill, ...), between the mean
    effect of each run's training data at its start model and the run's accuracy gain over that start model."""
    s.check()
    store = RunStore(runs_dir)
    root = store.root
    spec_id = get_task(s.task, tasks_dirs).id
    records = store.dicts()
    runs = [
        r
        for r in records
        if r.get("kind") == "run" and _on_demonstrations(r) and r.get("config", {}).get("task") == spec_id
    ]
    if len(runs) < 2:
        which = methods.demonstration_methods()
        raise HarnessError(
            f"--predict needs at least 2 {' / '.join(which)} runs of task '{spec_id}' in {root} (found "
            f"{len(runs)}); run `harness compare --task {spec_id} --methods {','.join(which)} ...` "
            "first"
        )
    # One measurement per start model (the SFT stage's own `init`): g* is estimated once and every dataset is
    # measured against it.
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(start_model(r, root), []).append(r)
    for r in runs:  # a wrong --eval-split fails before any data or model is loaded
        _spec_for(s.task, tasks_dirs, r["config"].get("recipe")).split(s.eval_split)
    points, start_acc, measured = [], {}, {}
    for start, grp in groups.items():
        first = grp[0]
        datasets: dict[str, Dataset] = {}
        run_hash = {}
        for r in grp:
            d = load_source(
                f"run:{r['run_id']}",
                _spec_for(s.task, tasks_dirs, r["config"].get("recipe")),
                r["config"].get("recipe", {}),
                root,
                records=records,
            )
            datasets.setdefault(d.data_hash, d)
            run_hash[r["run_id"]] = d.data_hash
        log(f"start model {start}: {len(grp)} runs, {len(datasets)} distinct datasets")
        sub = EffectSettings(**{**asdict(s), "model": first["config"]["model"], "data": (f"run:{first['run_id']}",)})
        metrics, _, _ = measure(
            sub, root, tasks_dirs, progress_factory, model_path=start, datasets=list(datasets.values()), records=records
        )
        by_hash = {v["data_hash"]: v for v in metrics["datasets"].values()}
        found = _start_accuracy(records, first, start)
        start_acc[start] = found or (
            _measure_start_accuracy(s.task, first, start, tasks_dirs, progress_factory),
            "measured",
        )
        for r in grp:
            h = run_hash[r["run_id"]]
            eff = by_hash[h]
            gain = r["metrics"]["accuracy"] - start_acc[start][0]
            points.append(
                {
                    "run_id": r["run_id"],
                    "method": r["method"],
                    "budget": r.get("budget"),
                    "seed": r["config"].get("seed"),
                    "accuracy": r["metrics"]["accuracy"],
                    "start_accuracy": start_acc[start][0],
                    "start_accuracy_from": start_acc[start][1],
                    "gain": gain,
                    "mean_effect": eff["mean"],
                    "effect_ci95": eff["ci95"],
                    "mean_cosine": eff["mean_cosine"],
                    "data_hash": h,
                    "n_samples": eff["n"],
                }
            )
        measured[start] = {k: metrics[k] for k in ("g_star", "params", "measurement")}
    rho = spearman([p["mean_effect"] for p in points], [p["gain"] for p in points])
    metrics = {
        "spearman": rho,
        "n_runs": len(points),
        "n_datasets": len({p["data_hash"] for p in points}),
        "points": points,
        "measurements": measured,
    }
    record = RunRecord(
        kind="effect",
        method="effect-predict",
        config={"command": "effect --predict", "task": spec_id, "settings": asdict(s)},
        provenance=provenance(s.seed),
        metrics=metrics,
        wall_seconds={},
        run_id=new_run_id(spec_id, "effect-predict"),
    )
    return store.write(record, points), record.to_dict()
