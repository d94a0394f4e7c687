"""`--dry-run` (harness/plan.py): the plan of a run without training: every stage resolved as a run resolves it,
cached ones reported as cached, the rest estimated; nothing written."""

import math

from typer.testing import CliRunner

from harness.cli import app
from harness.run import run

FAST = ["sft.max_steps=2", "sft.batch_size=4", "eval.limit=2", "eval.max_new_tokens=8", "eval.dtype=float32"]
RL = [
    "rl.steps=2",
    "rl.prompts_per_step=2",
    "rl.num_generations=2",
    "rl.micro_batch_size=2",
    "rl.max_completion_length=16",
    "redistill.max_new_tokens=16",
]


def test_dry_run_plans_every_stage_and_writes_nothing(tiny_kk, tmp_path):
    runs = tmp_path / "runs"
    _, plan = run(
        task="kk", method="redistill", budget="8", sets=FAST + RL, runs_dir=runs, dry_run=True, assume_accuracy=0.25
    )
    assert not runs.exists()  # no stage folder, no record
    stages = [(s["stage"], s["status"]) for s in plan["stages"]]
    assert stages == [("sft", "to run"), ("rl", "to run"), ("sample", "to run"), ("sft", "to run"), ("eval", "to run")]
    cold, rl, sample, redistill, ev = plan["stages"]
    assert cold["counts"]["sequences_trained"] == 2 * 4  # max_steps x batch
    assert rl["counts"]["rollouts_generated"] == 2 * 2 * 2 and rl["counts"]["tokens_generated"] <= 8 * 16
    assert sample["counts"]["rollouts_generated"] == math.ceil(8 / 0.25) and sample["assumed_accuracy"] == 0.25
    assert redistill["key"] == "?"  # its data comes from the sampling stage, which has not run
    assert all(s["flops"] > 0 and s["wall_seconds"] > 0 for s in plan["stages"])
    assert plan["to_run"]["rollouts_generated"] == 8 + 32 and plan["to_run"]["peak_memory_gb"] > 0
    assert plan["model_parameters"] > 100_000


def test_dry_run_reports_cached_stages_and_estimates_within_2x_of_a_real_run(tiny_kk, tmp_path):
    _, rec = run(task="kk", method="sft", budget="16", sets=FAST, runs_dir=tmp_path)
    _, fresh = run(task="kk", method="sft", budget="16", sets=FAST, runs_dir=tmp_path / "other", dry_run=True)
    real, est = rec["counts"], fresh["stages"][0]["counts"]
    assert est["sequences_trained"] == real["sequences_trained"]
    assert 0.5 <= est["tokens_trained"] / real["tokens_trained"] <= 2
    _, again = run(task="kk", method="sft", budget="16", sets=FAST, runs_dir=tmp_path, dry_run=True)
    assert [(s["stage"], s["status"]) for s in again["stages"]] == [("sft", "cached"), ("eval", "to run")]
    assert again["to_run"]["tokens_trained"] == 0


def test_cli_dry_run_prints_the_plan_for_run_and_compare(tiny_kk, tmp_path):
    sets = [x for s in FAST + RL for x in ("--set", s)]
    r = CliRunner().invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "rl",
            "--budget",
            "4",
            "--init",
            "base",
            "--runs-dir",
            str(tmp_path),
            "--dry-run",
            "--device",
            "gpu",
            *sets,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "rl" in r.output and "to run" in r.output and "assumed" in r.output and not (tmp_path / "_stages").exists()
    r = CliRunner().invoke(
        app,
        [
            "compare",
            "--task",
            "kk",
            "--methods",
            "sft,rl",
            "--budgets",
            "4,8",
            "--runs-dir",
            str(tmp_path),
            "--dry-run",
            *sets,
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("sft@4 seed 0") >= 1 and "rl@8 seed 0" in r.output
    r = CliRunner().invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "sft",
            "--budget",
            "4",
            "--runs-dir",
            str(tmp_path),
            "--dry-run",
            "--assume-accuracy",
            "0",
            *sets,
        ],
    )
    assert r.exit_code == 2 and "assume-accuracy" in r.output


def test_the_rl_stage_key_ignores_the_kv_cache(tiny_kk, tmp_path):
    """rl.cache changes how fast rollouts are generated, not which (tests/test_engines.py): a stage trained with one
    cache is the stage of the other; another rl setting is another stage."""

    def rl_key(*sets):
        _, plan = run(task="kk", method="rl", budget="8", sets=FAST + RL + list(sets), runs_dir=tmp_path, dry_run=True)
        return next(s["key"] for s in plan["stages"] if s["stage"] == "rl")

    assert rl_key("rl.cache=static") == rl_key("rl.cache=dynamic") != rl_key("rl.temperature=0.9")


def test_the_sft_stage_key_hashes_min_steps_as_what_trains(tiny_kk, tmp_path):
    """sft.min_steps leaves the key of a stage it does not bind as it was (committed stages stay valid), and makes a
    stage it binds the stage of the same explicit max_steps."""
    base = ["sft.batch_size=4", "sft.epochs=1", "eval.limit=2"]  # 16 demonstrations: 4 steps

    def sft_key(*sets):
        _, plan = run(task="kk", method="sft", budget="16", sets=base + list(sets), runs_dir=tmp_path, dry_run=True)
        (stage,) = [s for s in plan["stages"] if s["stage"] == "sft"]
        return stage["key"], stage["counts"]["sequences_trained"]

    off = sft_key("sft.min_steps=0")
    assert sft_key("sft.min_steps=4") == off == (off[0], 16)  # 4 steps of 4
    assert sft_key("sft.min_steps=9") == sft_key("sft.max_steps=9") and sft_key("sft.min_steps=9")[1] == 9 * 4
