"""Recipes: YAML training settings per task and model scale, layered defaults < --config < --set.

A recipe may also override parts of the task (e.g. smaller puzzles for the tiny CPU model); the overridden
task is what every stage and the record see, so rows from different split definitions never mix.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Optional

import yaml

from harness.errors import HarnessError
from harness.registry import did_you_mean
from harness.taskspec import TaskSpec, yaml_size_problem

RECIPES_DIR = Path(__file__).resolve().parent.parent / "backends" / "recipes"
SECTIONS = ("description", "task", "eval", "cold_start", "sft", "rl", "redistill")


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
        problem = yaml_size_problem(yaml.compose(text, Loader=yaml.SafeLoader))
        if problem:
            raise HarnessError(f"recipe {path}:{problem}")
        data = yaml.safe_load(text) or {}
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
    if isinstance(value, str) and raw.strip().lower().replace(".", "", 1).replace("e-", "", 1).isdigit():
        value = float(raw)  # YAML 1.1 reads "1e-5" as a string
    out: dict = {}
    cur = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


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
        recipe = merge(recipe, parse_set(item))
    for k in recipe:
        if k not in SECTIONS:
            raise HarnessError(f"unknown recipe section '{k}': {did_you_mean(k, list(SECTIONS))}")
    if not recipe:
        raise HarnessError(f"no recipe for task '{task}' at scale '{scale}'; pass one with --config recipe.yaml "
                           f"(examples in {RECIPES_DIR})")
    return name, recipe


def apply_task_overrides(spec: TaskSpec, overrides: Optional[dict]) -> TaskSpec:
    if not overrides:
        return spec
    data = spec.model_dump(by_alias=True)
    for k, v in overrides.items():
        if k not in ("splits", "generation", "prompt"):
            raise HarnessError(f"recipe task override '{k}' is not allowed; a recipe may override splits, generation, prompt")
        data[k] = dict(v) if k == "splits" else merge(data[k], v)
    try:
        return TaskSpec.model_validate(data)
    except Exception as e:
        raise HarnessError(f"the recipe's task overrides do not validate: {e}") from None
