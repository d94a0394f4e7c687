"""Recipes: YAML training settings per task and model scale, layered defaults < --config < --set.

A recipe may also override parts of the task (e.g. smaller puzzles for the tiny CPU model); the overridden
task is what every stage and the record see, so rows from different split definitions never mix.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from backends import defaults
from harness.errors import HarnessError
from harness.registry import did_you_mean
from harness.taskspec import TaskSpec, _allowed_keys, _line_index, yaml_size_problem

RECIPES_DIR = Path(__file__).resolve().parent.parent / "backends" / "recipes"
SECTIONS = ("description", "task", "eval", "cold_start", "sft", "rl", "redistill")


# The keys of each section: those the harness reads (eval, cold_start, redistill) and the training backends' (sft, rl:
# backends/defaults.py, plain data), so that a typo in any section stops the run before anything trains.
KNOWN_KEYS = {
    "eval": ("batch_size", "limit", "max_new_tokens", "dtype", "limem", "samples", "temperature"),
    "cold_start": ("teacher",),
    "redistill": ("variant", "temperature", "samples_per_prompt", "max_new_tokens", "filter", "keep", "engine", "vllm"),
    "sft": (*defaults.SFT, *sorted(defaults.ORCHESTRATOR_KEYS)),
    "rl": (*defaults.RL, *sorted(defaults.ORCHESTRATOR_KEYS)),
}


# The parts of a task a recipe may override (splits, generation, prompt); their keys are the task file's own.
TASK_OVERRIDES = ("splits", "generation", "prompt")


def _unknown_keys(data: dict) -> Iterable[tuple[tuple, str]]:
    """(key path, what to do) for each key no section knows, the task overrides included."""
    for k in data:
        if k not in SECTIONS:
            yield (k,), did_you_mean(str(k), list(SECTIONS))
    for section, known in KNOWN_KEYS.items():
        values = data.get(section)
        for key in values if isinstance(values, dict) else ():
            if key not in known:
                yield (section, key), did_you_mean(str(key), list(known))
    task = data.get("task")
    if not isinstance(task, dict):
        return
    allowed = _allowed_keys(task)  # what a task file accepts at each location
    for k, v in task.items():
        if k not in TASK_OVERRIDES:
            yield ("task", k), "a recipe may override splits, generation and prompt"
            continue
        if k == "splits":
            parts = [((k, str(name)), split) for name, split in v.items()] if isinstance(v, dict) else []
        else:
            parts = [((k,), v)]
        for where, values in parts:
            known = allowed[where]
            for key in values if isinstance(values, dict) else ():
                if key not in known:
                    yield ("task", *where, key), did_you_mean(str(key), known)


def check_keys(data: dict, origin: str, lines: Optional[dict] = None) -> None:
    """Unknown sections and unknown keys of every section (the task overrides' splits, generation and prompt, eval,
    cold_start, sft, rl and redistill): one error with where it came from (file:line, or the --set), its key path
    and the nearest valid key; a typo would otherwise be caught only when that stage starts, or never."""
    for path, fix in _unknown_keys(data):
        where = f"{origin}:{lines[path]}" if lines and path in lines else origin
        what = "section" if len(path) == 1 else "key"
        raise HarnessError(f"recipe {where}: unknown {what} '{'.'.join(str(p) for p in path)}': {fix}")


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        problem = yaml_size_problem(node)
        if problem:
            raise HarnessError(f"recipe {path}:{problem}")
        data = yaml.safe_load(text) or {}
        if isinstance(data, dict):
            check_keys(data, str(path), _line_index(node))
    except yaml.YAMLError as e:
        raise HarnessError(f"recipe {path} is not valid YAML: {e}") from None
    except RecursionError:
        raise HarnessError(f"recipe {path} is nested too deeply to read; fix its brackets") from None
    except UnicodeDecodeError:
        raise HarnessError(f"recipe {path} is not UTF-8 text; save it as UTF-8") from None
    except OSError:
        raise HarnessError(f"recipe file {path} does not exist; check --config") from None
    if not isinstance(data, dict):
        raise HarnessError(f"recipe {path} must be a mapping of sections ({', '.join(SECTIONS)})")
    return data


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def parse_set(item: str) -> dict:
    """`rl.learning_rate=1e-5` -> {"rl": {"learning_rate": 1e-5}}; values are parsed as YAML scalars."""
    if "=" not in item:
        raise HarnessError(f"--set '{item}' needs the form key.path=value, e.g. --set rl.learning_rate=1e-5")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", raw.strip()):
        value = float(raw)  # YAML 1.1 reads "1e-5" (and "-1e-5", "1e5") as a string
    out: dict = {}
    cur = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # not NaN


_POS_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer (1, 2, ...)")
_NONNEG_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")
_POS = (lambda v: _num(v) and v > 0, "a number > 0")
_NONNEG = (lambda v: _num(v) and v >= 0, "a number >= 0")
_UNIT_OPEN = (lambda v: _num(v) and 0 <= v < 1, "a number in [0, 1)")
_UNIT_CLOSED = (lambda v: _num(v) and 0 < v <= 1, "a number in (0, 1]")


def _or_null(rule: tuple) -> tuple:
    return (lambda v: v is None or rule[0](v), f"{rule[1]} or null")


TRACKERS = ("none", "tensorboard", "wandb", "trackio", "mlflow")  # `report_to` of the sft and rl sections (TRL's)


def trackers(value: Any) -> Optional[list[str]]:
    """`report_to`: none, or trackers joined by commas (`tensorboard,wandb`); None when it is not one."""
    if not isinstance(value, str):
        return None
    names = [x.strip() for x in value.split(",") if x.strip()]
    if not names or any(x not in TRACKERS for x in names) or ("none" in names and len(names) > 1):
        return None
    return [] if names == ["none"] else names


TRACKER_RULE = (lambda v: trackers(v) is not None, f"none or one or more of {', '.join(TRACKERS[1:])} joined by commas")

# The numbers a recipe section may hold, checked when the recipe is resolved, before any model is loaded or any stage
# trains (a value out of range otherwise trains nothing and exits 0, or fails deep inside a trainer).
# redistill's choices, checked here before anything trains and again where the sample stage reads them
REDISTILL_VARIANTS, REDISTILL_FILTERS, REDISTILL_KEEPS = ("A", "B"), ("correct", "faithful"), ("random", "shortest")

VALUE_RULES: dict[str, dict[str, tuple]] = {
    "sft": {"learning_rate": _POS, "epochs": _POS_INT, "batch_size": _POS_INT, "grad_accum": _POS_INT,
            "global_batch": _or_null(_POS_INT), "warmup_ratio": _UNIT_OPEN, "weight_decay": _NONNEG,
            "max_length": _POS_INT, "logging_steps": _POS_INT, "save_steps": _or_null(_POS), "report_to": TRACKER_RULE,
            "max_steps": (lambda v: v == -1 or _POS_INT[0](v), "-1 (from epochs) or a positive integer")},
    "rl": {"learning_rate": _POS, "beta1": _UNIT_OPEN, "beta2": _UNIT_OPEN, "weight_decay": _NONNEG,
           "warmup_steps": _NONNEG, "num_generations": (lambda v: _POS_INT[0](v) and v >= 2,
                                                        "an integer >= 2 (GRPO compares the completions of a prompt)"),
           "prompts_per_step": _POS_INT, "micro_batch_size": _or_null(_POS_INT), "temperature": _POS,
           "top_p": _UNIT_CLOSED, "clip": _POS, "kl": _NONNEG, "max_completion_length": _POS_INT,
           "max_prompt_length": _or_null(_POS_INT), "steps": _or_null(_POS_INT), "epochs": _POS_INT,
           "num_iterations": _POS_INT, "eval_every": _NONNEG_INT, "logging_steps": _POS_INT,
           "save_steps": _or_null(_POS), "val_limit": _or_null(_POS_INT), "report_to": TRACKER_RULE,
           "vllm_gpu_memory_utilization": _UNIT_CLOSED, "vllm_max_model_length": _or_null(_POS_INT),
           "vllm_tensor_parallel_size": _POS_INT},
    "eval": {"batch_size": _POS_INT, "limit": _or_null(_POS_INT), "max_new_tokens": _or_null(_POS_INT),
             "samples": _NONNEG_INT, "temperature": _POS},
    "redistill": {"temperature": _NONNEG, "samples_per_prompt": _POS_INT, "max_new_tokens": _POS_INT,
                  "variant": (lambda v: str(v).upper() in REDISTILL_VARIANTS, "A (greedy on the SFT prompts) or B "
                              "(sampled on the RL prompts)"),
                  "filter": (lambda v: v in REDISTILL_FILTERS, "correct (verified-correct answers) or faithful (right "
                             "answer and every step of a K&K trace right)"),
                  "keep": (lambda v: v in REDISTILL_KEEPS, "random (one verified response per prompt, chosen with the "
                           "seed) or shortest (the one with the fewest tokens)")},
}


def check_values(section: str, values: Optional[dict]) -> None:
    """A HarnessError naming the first number of a recipe section that is out of range, and how to set it."""
    for key, (ok, must) in VALUE_RULES.get(section, {}).items():
        if key not in (values or {}) or ok(values[key]):
            continue
        v = values[key]
        hint = ""
        if isinstance(v, str):
            try:
                float(v)
                hint = f" (YAML reads {v} as a string; write it with a dot, e.g. 1.0e-5)"
            except ValueError:
                pass
        raise HarnessError(f"{section} recipe: {key!r} must be {must}, got {v!r}{hint}; set it in the recipe or with "
                           f"--set {section}.{key}=VALUE")


def resolve(task: str, scale: str, config: Optional[Path] = None, sets: Iterable[str] = ()) -> tuple[str, dict]:
    """(recipe name, resolved recipe)."""
    name = f"{task.replace('/', '_')}-{scale}"
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        name, path = f"default-{scale}", RECIPES_DIR / f"default-{scale}.yaml"
    recipe = _read(path) if path.is_file() else {}
    if config is not None:
        recipe = merge(recipe, _read(Path(config)))
        name = f"{name}+{Path(config).stem}"
    for item in sets:
        layer = parse_set(item)
        check_keys(layer, f"--set {item}")
        recipe = merge(recipe, layer)
    for k in recipe:
        if k not in SECTIONS:
            raise HarnessError(f"unknown recipe section '{k}': {did_you_mean(k, list(SECTIONS))}")
    if not recipe:
        raise HarnessError(f"no recipe for task '{task}' at scale '{scale}'; pass one with --config recipe.yaml "
                           f"(examples in {RECIPES_DIR})")
    for section in VALUE_RULES:
        if recipe.get(section) is not None and not isinstance(recipe[section], dict):
            raise HarnessError(f"recipe section '{section}' must be a mapping of keys, got {recipe[section]!r}")
        check_values(section, recipe.get(section))
    return name, recipe


def for_eval(task: str, recipe: str) -> tuple[str, dict]:
    """`harness eval --recipe`: a recipe file, a recipe name under backends/recipes (`kk-tiny`), or a scale (`tiny`,
    resolved for the task as `harness run` resolves it)."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path.stem, _read(path)
    if (RECIPES_DIR / f"{recipe}.yaml").is_file():
        return recipe, _read(RECIPES_DIR / f"{recipe}.yaml")
    scales = sorted({p.stem.rsplit("-", 1)[-1] for p in RECIPES_DIR.glob("*.yaml")})
    if recipe in scales:
        return resolve(task, recipe)
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    raise HarnessError(f"no recipe '{recipe}': {did_you_mean(recipe, names + scales)}; give a recipe file, one of "
                       f"{', '.join(names)}, or a scale ({', '.join(scales)})")


def apply_task_overrides(spec: TaskSpec, overrides: Optional[dict]) -> TaskSpec:
    if not overrides:
        return spec
    if not isinstance(overrides, dict):
        raise HarnessError(f"recipe section 'task' must be a mapping of splits, generation and prompt, got {overrides!r}")
    data = spec.model_dump(by_alias=True)
    for k, v in overrides.items():
        if k not in TASK_OVERRIDES:
            raise HarnessError(f"recipe task override '{k}' is not allowed; a recipe may override splits, generation, prompt")
        if not isinstance(v, dict):
            raise HarnessError(f"recipe task override '{k}' must be a mapping (as in a task file), got {v!r}")
        data[k] = dict(v) if k == "splits" else merge(data[k], v)
    try:
        return TaskSpec.model_validate(data)
    except Exception as e:
        raise HarnessError(f"the recipe's task overrides do not validate: {e}") from None
