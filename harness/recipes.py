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
from harness import methods
from harness.engines import CACHES
from harness.errors import HarnessError
from harness.registry import did_you_mean
from harness.taskspec import TaskSpec, _allowed_keys, _line_index, yaml_size_problem

RECIPES_DIR = Path(__file__).resolve().parent.parent / "backends" / "recipes"
# The sections every recipe may hold; a method adds its own (harness/methods: Section), e.g. redistill.
CORE_SECTIONS = ("description", "task", "eval", "cold_start", "sft", "rl")


# The keys of each core section: those the harness reads (eval, cold_start) and the training backends' (sft, rl:
# backends/defaults.py, plain data), so that a typo in any section stops the run before anything trains.
CORE_KEYS = {
    "eval": ("batch_size", "limit", "max_new_tokens", "dtype", "cache", "limem", "samples", "temperature"),
    "cold_start": ("teacher",),
    "sft": (*defaults.SFT, *sorted(defaults.ORCHESTRATOR_KEYS)),
    "rl": (*defaults.RL, *sorted(defaults.ORCHESTRATOR_KEYS)),
}


def sections() -> tuple[str, ...]:
    """Every section a recipe may hold: the core ones, then each registered method's own."""
    return (*CORE_SECTIONS, *methods.sections())


def known_keys() -> dict[str, tuple]:
    return {**CORE_KEYS, **{name: tuple(sec.defaults) for name, sec in methods.sections().items()}}


# The parts of a task a recipe may override (splits, generation, prompt); their keys are the task file's own.
TASK_OVERRIDES = ("splits", "generation", "prompt")


def _unknown_keys(data: dict) -> Iterable[tuple[tuple, str]]:
    """(key path, what to do) for each key no section knows, the task overrides included."""
    names = sections()
    for k in data:
        if k not in names:
            yield (k,), did_you_mean(str(k), list(names))
    for section, known in known_keys().items():
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
    cold_start, sft, rl and the methods' own): one error with where it came from (file:line, or the --set), its key path
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
        raise HarnessError(f"recipe {path} must be a mapping of sections ({', '.join(sections())})")
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


POS_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer (1, 2, ...)")
NONNEG_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")
POS = (lambda v: _num(v) and v > 0, "a number > 0")
NONNEG = (lambda v: _num(v) and v >= 0, "a number >= 0")
UNIT_OPEN = (lambda v: _num(v) and 0 <= v < 1, "a number in [0, 1)")
UNIT_CLOSED = (lambda v: _num(v) and 0 < v <= 1, "a number in (0, 1]")


def or_null(rule: tuple) -> tuple:
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


def one_of(choices: dict[str, str]) -> tuple:
    """A rule for a key that takes one of `choices` (value -> what it means); a miss also says "did you mean"."""
    must = " or ".join(f"{v} ({what})" for v, what in choices.items())
    return (lambda v: v in choices, must, lambda v: did_you_mean(str(v), list(choices)))


def optimizer_names() -> list[str]:
    """The optimizers transformers' TrainingArguments.optim takes (imported only to check a value)."""
    from transformers.training_args import OptimizerNames

    return [o.value for o in OptimizerNames]


# rl.optim: the default needs no check (and no transformers import); another name is checked before anything trains
OPTIM_RULE = (
    lambda v: v == "adamw_torch" or v in optimizer_names(),
    "an optimizer name transformers' TrainingArguments.optim takes (adamw_torch, sgd, adafactor, ...)",
    lambda v: did_you_mean(str(v), optimizer_names()),
)

# eval.cache / rl.cache: how the transformers engine (and TRL's generation in GRPO) keeps its KV cache
CACHE_RULE = one_of(CACHES)

# The numbers a recipe section may hold, checked when the recipe is resolved, before any model is loaded or any stage
# trains (a value out of range otherwise trains nothing and exits 0, or fails deep inside a trainer). A rule is
# (ok, what the value must be) or (ok, what, fix: value -> a hint); a method's section brings its own.
CORE_RULES: dict[str, dict[str, tuple]] = {
    "sft": {
        "learning_rate": POS,
        "epochs": POS_INT,
        "batch_size": POS_INT,
        "grad_accum": POS_INT,
        "global_batch": or_null(POS_INT),
        "warmup_ratio": UNIT_OPEN,
        "weight_decay": NONNEG,
        "max_length": POS_INT,
        "logging_steps": POS_INT,
        "save_steps": or_null(POS),
        "report_to": TRACKER_RULE,
        "max_steps": (lambda v: v == -1 or POS_INT[0](v), "-1 (from epochs) or a positive integer"),
        "min_steps": NONNEG_INT,
    },
    "rl": {
        "learning_rate": POS,
        "beta1": UNIT_OPEN,
        "beta2": UNIT_OPEN,
        "weight_decay": NONNEG,
        "warmup_steps": NONNEG,
        "num_generations": (
            lambda v: POS_INT[0](v) and v >= 2,
            "an integer >= 2 (GRPO compares the completions of a prompt)",
        ),
        "prompts_per_step": POS_INT,
        "micro_batch_size": or_null(POS_INT),
        "temperature": POS,
        "top_p": UNIT_CLOSED,
        "clip": POS,
        "kl": NONNEG,
        "max_completion_length": POS_INT,
        "max_prompt_length": or_null(POS_INT),
        "steps": or_null(POS_INT),
        "epochs": POS_INT,
        "num_iterations": POS_INT,
        "eval_every": NONNEG_INT,
        "logging_steps": POS_INT,
        "save_steps": or_null(POS),
        "val_limit": or_null(POS_INT),
        "report_to": TRACKER_RULE,
        "vllm_gpu_memory_utilization": UNIT_CLOSED,
        "vllm_max_model_length": or_null(POS_INT),
        "vllm_tensor_parallel_size": POS_INT,
        "optim": OPTIM_RULE,
        "cache": CACHE_RULE,
    },
    "eval": {
        "batch_size": POS_INT,
        "cache": CACHE_RULE,
        "limit": or_null(POS_INT),
        "max_new_tokens": or_null(POS_INT),
        "samples": NONNEG_INT,
        "temperature": POS,
    },
}


def value_rules() -> dict[str, dict[str, tuple]]:
    return {**CORE_RULES, **{name: dict(sec.rules) for name, sec in methods.sections().items()}}


def check_values(section: str, values: Optional[dict]) -> None:
    """A HarnessError naming the first value of a recipe section that is out of range, and how to set it."""
    for key, (ok, must, *fix) in value_rules().get(section, {}).items():
        if key not in (values or {}) or ok(values[key]):
            continue
        v = values[key]
        hint = f" ({fix[0](v)})" if fix else ""
        if isinstance(v, str) and not fix:
            try:
                float(v)
                hint = f" (YAML reads {v} as a string; write it with a dot, e.g. 1.0e-5)"
            except ValueError:
                pass
        raise HarnessError(
            f"{section} recipe: {key!r} must be {must}, got {v!r}{hint}; set it in the recipe or with "
            f"--set {section}.{key}=VALUE"
        )


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
    names = sections()
    for k in recipe:
        if k not in names:
            raise HarnessError(f"unknown recipe section '{k}': {did_you_mean(k, list(names))}")
    if not recipe:
        raise HarnessError(
            f"no recipe for task '{task}' at scale '{scale}'; pass one with --config recipe.yaml "
            f"(examples in {RECIPES_DIR})"
        )
    for section in value_rules():
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
    raise HarnessError(
        f"no recipe '{recipe}': {did_you_mean(recipe, names + scales)}; give a recipe file, one of "
        f"{', '.join(names)}, or a scale ({', '.join(scales)})"
    )


def apply_task_overrides(spec: TaskSpec, overrides: Optional[dict]) -> TaskSpec:
    if not overrides:
        return spec
    if not isinstance(overrides, dict):
        raise HarnessError(
            f"recipe section 'task' must be a mapping of splits, generation and prompt, got {overrides!r}"
        )
    data = spec.model_dump(by_alias=True)
    for k, v in overrides.items():
        if k not in TASK_OVERRIDES:
            raise HarnessError(
                f"recipe task override '{k}' is not allowed; a recipe may override splits, generation, prompt"
            )
        if not isinstance(v, dict):
            raise HarnessError(f"recipe task override '{k}' must be a mapping (as in a task file), got {v!r}")
        data[k] = dict(v) if k == "splits" else merge(data[k], v)
    try:
        return TaskSpec.model_validate(data)
    except Exception as e:
        raise HarnessError(f"the recipe's task overrides do not validate: {e}") from None
