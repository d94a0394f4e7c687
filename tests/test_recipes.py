"""Every recipe section (the task overrides, eval, cold_start, sft, rl, redistill) rejects unknown keys, and a recipe
unknown sections, with where they came from and the nearest valid key, before anything runs."""

import pytest
from typer.testing import CliRunner

from harness import recipes
from harness.cli import app
from harness.errors import HarnessError


def test_a_typo_in_a_recipe_file_names_file_line_key_and_fix(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("description: mine\nredistill:\n  variant: B\n  temprature: 0.5\n")
    with pytest.raises(HarnessError) as e:
        recipes.resolve("kk", "tiny", f)
    msg = str(e.value)
    assert f"{f}:4" in msg and "redistill.temprature" in msg and "temperature" in msg


def test_a_typo_in_set_is_caught_before_anything_runs(tmp_path):
    r = CliRunner().invoke(
        app, ["run", "--task", "kk", "--method", "base", "--set", "eval.limt=3", "--runs-dir", str(tmp_path)]
    )
    assert r.exit_code == 2 and "--set eval.limt=3" in r.output and "eval.limt" in r.output and "limit" in r.output
    assert not any(tmp_path.iterdir())


def test_every_shipped_recipe_passes_and_has_no_dead_keys():
    for path in sorted(recipes.RECIPES_DIR.glob("*.yaml")):
        data = recipes._read(path)
        assert "budget" not in (data.get("cold_start") or {}), path  # read by nothing: rl.init names the start


@pytest.mark.parametrize(
    "text, line, path, fix",
    [
        ("rl:\n  init: sft@1k\n  beta_1: 0.5\n", 3, "rl.beta_1", "beta1"),
        ("sft:\n  learnig_rate: 1.0e-3\n", 2, "sft.learnig_rate", "learning_rate"),
        ("tsak:\n  prompt: {chat: true}\n", 1, "section 'tsak'", "task"),
        ("task:\n  splits:\n    sft: {sise: 10, seed: 1}\n", 3, "task.splits.sft.sise", "size"),
        ("task:\n  generation: {max_new_tokns: 5}\n", 2, "task.generation.max_new_tokns", "max_new_tokens"),
        ("task:\n  verifier: {name: x}\n", 2, "task.verifier", "splits, generation and prompt"),
    ],
)
def test_a_typo_in_any_section_is_one_error_with_file_line_and_fix(tmp_path, text, line, path, fix):
    f = tmp_path / "mine.yaml"
    f.write_text(text)
    with pytest.raises(HarnessError) as e:
        recipes.resolve("kk", "tiny", f)
    msg = str(e.value)
    assert f"{f}:{line}" in msg and path in msg and fix in msg, msg


def test_an_rl_typo_stops_the_run_before_the_cold_start_trains(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "rl",
            "--budget",
            "8",
            "--set",
            "rl.beta_1=0.5",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and "rl.beta_1" in r.output and "beta1" in r.output, r.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "text, words",
    [
        ("task:\n  splits: 5\n", "recipe task override 'splits' must be a mapping"),
        ("task: 5\n", "recipe section 'task' must be a mapping"),
    ],
)
def test_a_task_override_that_is_not_a_mapping_is_one_error(tmp_path, text, words):
    f = tmp_path / "mine.yaml"
    f.write_text(text)
    r = CliRunner().invoke(
        app, ["run", "--task", "kk", "--method", "base", "--config", str(f), "--runs-dir", str(tmp_path / "runs")]
    )
    assert r.exit_code == 2 and words in r.output, r.output


@pytest.mark.parametrize(
    "setting, words",
    [
        ("redistill.keep=longest", "'keep' must be random"),
        ("redistill.filter=lucky", "'filter' must be correct"),
        ("redistill.variant=C", "'variant' must be A"),
    ],
)
def test_a_bad_redistill_choice_stops_the_run_before_anything_trains(tmp_path, setting, words):
    r = CliRunner().invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "redistill",
            "--budget",
            "8",
            "--set",
            setting,
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and words in r.output, r.output
    assert not any(tmp_path.iterdir())


def test_an_unknown_optimizer_stops_the_run_before_anything_trains(tmp_path):
    args = ["run", "--task", "kk", "--method", "rl", "--budget", "8", "--runs-dir", str(tmp_path)]
    r = CliRunner().invoke(app, [*args, "--set", "rl.optim=sgdd"])
    assert r.exit_code == 2 and "'optim'" in r.output and "did you mean 'sgd'" in r.output, r.output
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    _, recipe = recipes.resolve("kk", "tiny", None, ["rl.optim=sgd", "rl.optim_args=momentum=0.9"])
    assert recipe["rl"]["optim"] == "sgd"


@pytest.mark.parametrize("setting", ["eval.cache=statc", "rl.cache=statc"])
def test_an_unknown_kv_cache_stops_the_run_before_anything_trains(tmp_path, setting):
    args = ["run", "--task", "kk", "--method", "rl", "--budget", "8", "--runs-dir", str(tmp_path)]
    r = CliRunner().invoke(app, [*args, "--set", setting])
    assert r.exit_code == 2 and "'cache'" in r.output and "did you mean 'static'" in r.output, r.output
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_the_kv_cache_is_neither_part_of_the_rl_stage_nor_of_the_set_up():
    """eval.cache / rl.cache change how fast generation runs, not what it generates (test_engines): runs that differ
    only there share stages and leaderboard rows."""
    from harness.leaderboard import setup_recipe_hash

    _, dyn = recipes.resolve("kk", "tiny", None, ["eval.cache=dynamic", "rl.cache=dynamic"])
    _, sta = recipes.resolve("kk", "tiny", None, ["eval.cache=static", "rl.cache=static"])
    assert dyn != sta and setup_recipe_hash(dyn) == setup_recipe_hash(sta)
