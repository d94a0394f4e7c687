"""A grid's cells as separate `harness run` jobs: printed for any scheduler (`--emit-commands`), or submitted with
submitit (`--launcher slurm`, or `submitit-local` to run them as local processes the same way).

Cells go in waves (each method's `wave`, harness/methods), so that a stage several cells need is trained once, by the
first: base and sft cells first (an sft cell at the cold-start budget trains the cold start rl needs), then rl (a
redistill cell re-uses its seed's rl stage and the samples drawn from it), then redistill. Within a wave the cells
run at once; each job writes its own run record and the grid's records are read back from the runs folder when every
wave has finished.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from harness.errors import HarnessError
from harness.methods import METHODS, grid_args

LAUNCHERS = ("local", "slurm", "submitit-local")


def _absolute_if_path(value: str) -> str:
    """A task file or model folder given relative to where the grid was started, made absolute: a job may start
    elsewhere. Names (kk, tiny, org/model) stay as they are."""
    p = Path(value)
    return str(p.resolve()) if p.exists() and not p.is_absolute() else value


def cell_command(
    *,
    task: str,
    method: str,
    budget: int,
    seed: int,
    model: str,
    runs_dir: Path,
    config: Optional[Path] = None,
    sets: Sequence[str] = (),
    init: Optional[str] = None,
    teacher: Optional[str] = None,
    tasks_dirs: Sequence[Path] = (),
    plugins: Sequence[str] = (),
) -> list[str]:
    """The `harness run` command of one cell (the harness of this interpreter, so a job runs the same install), with
    the grid's plugins as --plugin values (files by absolute path): a job elsewhere loads them without the grid's
    environment."""
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--task",
        _absolute_if_path(task),
        "--method",
        method,
        "--model",
        _absolute_if_path(model),
        "--seed",
        str(seed),
        "--runs-dir",
        str(Path(runs_dir).resolve()),
    ]
    if budget:
        cmd += ["--budget", str(budget)]
    if config is not None:
        cmd += ["--config", str(Path(config).resolve())]
    for s in sets:
        cmd += ["--set", s]
    init, teacher = grid_args(method, init, teacher)
    if init:
        cmd += ["--init", init]
    if teacher:
        cmd += ["--teacher", teacher]
    for d in tasks_dirs:
        cmd += ["--tasks-dir", str(Path(d).resolve())]
    for p in plugins:
        cmd += ["--plugin", p]
    return cmd


def waves(cells: Sequence[tuple[str, list[str]]]) -> list[list[tuple[str, list[str]]]]:
    """(method, command) pairs grouped into their methods' waves, in wave order; empty waves dropped."""
    wave = {m: METHODS.get(m).wave for m, _ in cells}
    return [[c for c in cells if wave[c[0]] == w] for w in sorted(set(wave.values()))]


def emit(cells: Sequence[tuple[str, list[str]]]) -> str:
    lines = []
    for i, wave in enumerate(waves(cells), 1):
        lines.append(
            f"# wave {i} ({', '.join(sorted({m for m, _ in wave}))}): run these at once, after wave {i - 1}"
            if i > 1
            else f"# wave 1 ({', '.join(sorted({m for m, _ in wave}))}): run these at once"
        )
        lines += [shlex.join(["harness", *cmd[3:]]) for _, cmd in wave]
    return "\n".join(lines) + "\n"


def executor(launcher: str, folder: Path, slurm: dict[str, Any]) -> Any:
    try:
        import submitit
    except ImportError:
        raise HarnessError(
            f"--launcher {launcher} needs submitit; install it with "
            "`.venv/bin/pip install submitit` (or use --emit-commands for another scheduler)"
        ) from None
    if launcher == "submitit-local":
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=slurm.get("time", 60 * 24))
        return ex
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    params: dict[str, Any] = {
        "timeout_min": slurm.get("time", 60 * 24),
        "gpus_per_node": slurm.get("gpus", 1),
        "nodes": 1,
        "tasks_per_node": 1,
        "name": "harness-cell",
    }
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("extra"):
        params["slurm_additional_parameters"] = slurm["extra"]
    ex.update_parameters(**params)
    return ex


def submit(
    cells: Sequence[tuple[str, list[str]]], launcher: str, folder: Path, slurm: dict[str, Any], log=lambda s: None
) -> None:
    """Submit the cells wave by wave and wait for each wave; a failed cell is one error naming its log."""
    ex = executor(launcher, folder, slurm)  # first: it says how to install submitit when it is missing
    from submitit.helpers import CommandFunction

    for i, wave in enumerate(waves(cells), 1):
        jobs = [(cmd, ex.submit(CommandFunction(cmd, verbose=False))) for _, cmd in wave]
        log(f"wave {i}: {len(jobs)} job(s) submitted ({', '.join(j.job_id for _, j in jobs)})")
        for cmd, job in jobs:
            try:
                job.result()
            except Exception as e:  # submitit re-raises the job's failure with its output
                raise HarnessError(
                    f"grid cell failed: {shlex.join(['harness', *cmd[3:]])}\n{str(e)[-2000:]}\n"
                    f"its logs: {folder}; fix the cause and re-run the grid (finished cells are "
                    "reused)"
                ) from None
