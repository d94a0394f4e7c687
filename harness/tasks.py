"""The task registry: built-in YAML files under tasks/, plus user folders (--tasks-dir, $HARNESS_TASKS_PATH).

A task's id is its path relative to its folder, without the extension. A user task may not reuse a built-in id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

from harness.errors import HarnessError
from harness.registry import did_you_mean
from harness.taskspec import TaskSpec, load_file

ENV_VAR = "HARNESS_TASKS_PATH"


def builtin_dir() -> Path:
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "tasks", here / "_builtin_tasks"):
        if cand.is_dir():
            return cand
    raise HarnessError("the built-in tasks folder is missing; reinstall the package")


def user_dirs(extra: Optional[Iterable[str | Path]] = None) -> list[Path]:
    dirs = [Path(d) for d in (extra or [])]
    dirs += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    for d in dirs:
        if not d.is_dir():
            raise HarnessError(f"tasks folder {d} does not exist; pass an existing folder to --tasks-dir or ${ENV_VAR}")
    return dirs


def _ids_in(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.rglob("*.y*ml")):
        if p.suffix in (".yaml", ".yml") and not any(
            part.startswith((".", "_")) for part in p.relative_to(folder).parts
        ):
            out[p.relative_to(folder).with_suffix("").as_posix()] = p
    return out


def discover(tasks_dirs: Optional[Iterable[str | Path]] = None) -> dict[str, Path]:
    """All task ids -> their YAML path. A user id that shadows a built-in (or another user folder) is an error."""
    found = _ids_in(builtin_dir())
    for d in user_dirs(tasks_dirs):
        for tid, p in _ids_in(d).items():
            if tid in found:
                raise HarnessError(
                    f"task id '{tid}' in {p} is already defined by {found[tid]}; rename the user task file"
                )
            found[tid] = p
    return found


def get_task(task: str, tasks_dirs: Optional[Iterable[str | Path]] = None) -> TaskSpec:
    """A task by id, or by the path of a YAML file."""
    p = Path(task)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise HarnessError(
                f"task file {p} does not exist; check the path or pass a task id (see `harness tasks list`)"
            )
        return load_file(p)
    found = discover(tasks_dirs)
    if task not in found:
        raise HarnessError(f"unknown task '{task}': {did_you_mean(task, list(found))} (see `harness tasks list`)")
    return load_file(found[task], task)
