"""Recipe sections the harness reads itself (eval, cold_start, redistill) reject unknown keys with where they came
from and the nearest valid key, before anything runs."""

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
    r = CliRunner().invoke(app, ["run", "--task", "kk", "--method", "base", "--set", "eval.limt=3",
                                 "--runs-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--set eval.limt=3" in r.output and "eval.limt" in r.output and "limit" in r.output
    assert not any(tmp_path.iterdir())


def test_every_shipped_recipe_passes_and_has_no_dead_keys():
    for path in sorted(recipes.RECIPES_DIR.glob("*.yaml")):
        data = recipes._read(path)
        assert "budget" not in (data.get("cold_start") or {}), path  # read by nothing: rl.init names the start
