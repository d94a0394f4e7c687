"""Grids as separate jobs: `--emit-commands` prints each missing cell's `harness run` in waves, and `--launcher`
submits them through submitit (its local executor here, Slurm on a cluster) and collects the records."""

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()
TINY = [
    "--set",
    "sft.max_steps=2",
    "--set",
    "rl.steps=1",
    "--set",
    "rl.num_generations=2",
    "--set",
    "rl.prompts_per_step=2",
    "--set",
    "rl.micro_batch_size=4",
    "--set",
    "rl.max_completion_length=8",
    "--set",
    "eval.limit=2",
    "--set",
    "eval.max_new_tokens=8",
    "--set",
    "eval.limem=false",
]


def test_emit_commands_prints_waves_and_runs_nothing(tmp_path):
    r = runner.invoke(
        app,
        [
            "compare",
            "--task",
            "kk",
            "--methods",
            "redistill,sft,rl",
            "--budgets",
            "100",
            "--seeds",
            "0,1",
            "--emit-commands",
            "--runs-dir",
            str(tmp_path),
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    waves = [i for i, x in enumerate(lines) if x.startswith("# wave")]
    assert len(waves) == 3 and len(lines) == 3 + 6
    assert all("--method sft" in x for x in lines[waves[0] + 1 : waves[1]])
    assert all("--method redistill" in x for x in lines[waves[2] + 1 :])
    assert lines[1].startswith("harness run --task kk --method sft --model tiny --seed 0 --runs-dir ")
    assert "--set sft.max_steps=2" in lines[1]
    assert not any(tmp_path.iterdir())


def test_unknown_launcher_is_one_clear_error(tmp_path):
    r = runner.invoke(
        app, ["compare", "--task", "kk", "--budgets", "100", "--launcher", "slrum", "--runs-dir", str(tmp_path)]
    )
    assert r.exit_code == 2 and "unknown launcher 'slrum'" in r.output and "slurm" in r.output


def test_submitit_grid_collects_records_and_trains_a_shared_cold_start_once(tmp_path):
    pytest.importorskip("submitit")
    runs = tmp_path / "runs"
    r = runner.invoke(
        app,
        [
            "compare",
            "--task",
            "kk",
            "--methods",
            "sft,rl",
            "--budgets",
            "100",
            "--seeds",
            "0",
            "--launcher",
            "submitit-local",
            "--init",
            "sft@100",
            "--runs-dir",
            str(runs),
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "wave 1: 1 job(s)" in r.output and "wave 2: 1 job(s)" in r.output
    recs = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in runs.glob("*/record.json")}
    assert set(recs) == {"sft", "rl"}
    sft_stage = recs["sft"]["stages"][-1]
    rl_first = recs["rl"]["stages"][0]
    assert rl_first["key"] == sft_stage["key"] and rl_first["cached"] and not sft_stage["cached"]
    assert len(list((runs / "_stages").glob("sft-*"))) == 1
    assert "| sft" in r.output and "| rl" in r.output  # the grid's table


def test_a_missing_submitit_is_one_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    r = runner.invoke(
        app,
        [
            "compare",
            "--task",
            "kk",
            "--methods",
            "sft",
            "--budgets",
            "100",
            "--launcher",
            "slurm",
            "--runs-dir",
            str(tmp_path),
            *TINY,
        ],
    )
    assert r.exit_code == 2 and "needs submitit" in r.output and "--emit-commands" in r.output, r.output


def test_a_cell_command_names_task_files_and_model_folders_absolutely(tmp_path, monkeypatch):
    from harness.launch import cell_command

    (tmp_path / "mine.yaml").write_text("x")
    (tmp_path / "model").mkdir()
    monkeypatch.chdir(tmp_path)
    cmd = cell_command(task="mine.yaml", method="sft", budget=10, seed=0, model="model", runs_dir=tmp_path / "r")
    assert cmd[cmd.index("--task") + 1] == str(tmp_path / "mine.yaml")
    assert cmd[cmd.index("--model") + 1] == str(tmp_path / "model")
    cmd = cell_command(task="kk", method="sft", budget=10, seed=0, model="tiny", runs_dir=tmp_path / "r")
    assert cmd[cmd.index("--task") + 1] == "kk" and cmd[cmd.index("--model") + 1] == "tiny"  # names stay names
