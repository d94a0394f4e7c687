"""Issue 13 (hardening): bad input gets one clear message and exit code 2, and nothing on disk is lost or half-written.
Every test here is fast: nothing trains and no model is loaded."""

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- 1. YAML aliases ---------------------------------------------------------------------------------------------

def billion_laughs(path: Path, levels: int = 9) -> Path:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    path.write_text("\n".join(lines) + f"\ndescription: *a{levels - 1}\n")
    return path


def test_billion_laughs_task_file_fails_fast_with_exit_2(tmp_path):
    f = billion_laughs(tmp_path / "laughs.yaml")
    t0 = time.perf_counter()
    r = invoke("tasks", "validate", f)
    assert time.perf_counter() - t0 < 1.0
    assert r.exit_code == 2 and "billion laughs" in r.output and "Traceback" not in r.output
    from harness.taskspec import load_file

    t0 = time.perf_counter()
    with pytest.raises(HarnessError, match="aliases"):
        load_file(f)  # what every command that loads a task goes through
    assert time.perf_counter() - t0 < 1.0


def test_recursive_alias_and_deep_nesting_are_one_error(tmp_path):
    from harness.taskspec import validate_file

    (tmp_path / "rec.yaml").write_text("a: &a [1, *a]\ndescription: x\n")
    assert "recursive anchor" in validate_file(tmp_path / "rec.yaml")[1][0]
    (tmp_path / "deep.yaml").write_text("description: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nested too deeply" in validate_file(tmp_path / "deep.yaml")[1][0]
    ok = tmp_path / "ok.yaml"  # a few aliases stay fine
    ok.write_text("x: &p {size: 3}\ndescription: *p\n")
    assert not any("billion laughs" in e or "recursive anchor" in e for e in validate_file(ok)[1])


def test_billion_laughs_recipe_is_one_error(tmp_path):
    from harness import recipes

    f = billion_laughs(tmp_path / "r.yaml")
    t0 = time.perf_counter()
    with pytest.raises(HarnessError, match="billion laughs"):
        recipes.resolve("kk", "tiny", f)
    assert time.perf_counter() - t0 < 1.0
