"""The method registry (harness/methods): the built-ins, what `run`, `compare`, `launch`, recipes and leaderboards
ask it, and a method from a plugin that takes part in all of them without a line of the harness changed."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import harness
from harness import methods, recipes
from harness.cli import app
from harness.errors import HarnessError
from harness.leaderboard import build_table
from harness.methods import METHODS, Method, Section, run_counts

CODE_ROOT = Path(harness.__file__).resolve().parent.parent
FAST = ["--set", "eval.limit=2", "--set", "eval.max_new_tokens=8", "--set", "eval.limem=false"]
ECHO = """
from harness.methods import Method, Section, register
from harness.recipes import POS_INT, one_of


def train(ctx, budget, init, teacher, teacher_model):
    return ctx.base_ref  # trains nothing: enough to show that a plugin's method runs end to end


register(Method(name="echo", summary="evaluates the base model, for tests", train=train, trains=False,
                starts_from=None, order=5,
                section=Section("echo", {"times": 1, "mode": "plain"},
                                rules={"times": POS_INT, "mode": one_of({"plain": "as it is", "loud": "louder"})},
                                variants=("mode",))))
"""


def cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CODE_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("HARNESS_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def echo(monkeypatch):
    """The plugin's method registered in this process, in a copy of the registry restored afterwards."""
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    namespace: dict = {}
    exec(compile(ECHO, "echo_plugin.py", "exec"), namespace)
    return METHODS.get("echo")


def test_the_builtins_in_leaderboard_order_and_what_they_declare():
    assert methods.names()[:4] == ["base", "sft", "rl", "redistill"]
    base, sft, rl, rd = (methods.get(n) for n in ("base", "sft", "rl", "redistill"))
    assert not base.trains and base.starts_from is None and sft.starts_from == "base" and rl.starts_from == "init"
    assert (sft.teacher_model, rl.teacher, rd.section.name) == (True, None, "redistill")
    assert [m for m in methods.demonstration_methods() if m in ("sft", "redistill", "rl")] == ["sft", "redistill"]
    assert recipes.sections()[:7] == ("description", "task", "eval", "cold_start", "sft", "rl", "redistill")
    assert [(w, methods.get(m).wave) for w, m in enumerate(("sft", "rl", "redistill"))] == [(0, 0), (1, 1), (2, 2)]


def test_an_unknown_method_names_the_near_miss_or_how_to_load_a_plugin(tmp_path):
    with pytest.raises(HarnessError, match="unknown method 'sfft': did you mean 'sft'"):
        methods.get("sfft")
    with pytest.raises(HarnessError, match="if a plugin defines it, load the plugin with --plugin"):
        methods.get("zzzz")
    r = CliRunner().invoke(
        app, ["compare", "--task", "kk", "--methods", "sft,rll", "--budgets", "8", "--runs-dir", str(tmp_path)]
    )
    assert r.exit_code == 2 and "unknown method 'rll' in --methods: did you mean 'rl'?" in r.output, r.output


def test_run_counts_are_the_sums_and_flops_the_records_always_had():
    stages = [
        {"counts": {"sequences_trained": 40, "tokens_trained": 9000, "optimizer_steps": 5}},
        {
            "counts": {
                "rollouts_generated": 64,
                "tokens_generated": 7000,
                "tokens_trained": 12000,
                "tokens_forward_only": 300,
                "optimizer_steps": 8,
            }
        },
    ]
    c = run_counts(methods.get("rl"), stages, eval_tokens=500, budget=8, n_params=1000)
    assert list(c) == [*methods.COUNT_KEYS, "training_examples", "flops_estimate", "model_parameters"]
    assert (c["tokens_generated"], c["tokens_trained"], c["optimizer_steps"]) == (7500, 21000, 13)
    assert c["flops_estimate"] == 6 * 1000 * 21000 + 2 * 1000 * (7500 + 300)  # the formula run.py had
    scorer = Method(name="scorer", summary="", train=lambda *a: "", count_keys=(*methods.COUNT_KEYS, "tokens_gradient"))
    c = run_counts(scorer, [*stages, {"counts": {"tokens_gradient": 100}}], eval_tokens=0, budget=8, n_params=1000)
    assert c["tokens_gradient"] == 100 and c["flops_estimate"] == 6 * 1000 * 21100 + 2 * 1000 * (7000 + 300)


def test_a_grid_gives_init_and_teacher_to_the_cells_that_take_them():
    assert methods.grid_args("rl", "sft@1k", "traces:long") == ("sft@1k", None)
    assert methods.grid_args("sft", "sft@1k", "traces:long") == (None, "traces:long")
    assert methods.grid_args("redistill", "sft@1k", "RUN") == (None, "RUN")
    assert methods.grid_args("base", "sft@1k", "traces:long") == (None, "traces:long")  # as grids always did


def test_a_section_must_give_every_key_it_rules_a_default():
    with pytest.raises(ValueError, match="without a default: \\['mode'\\]"):
        Section("x", {"times": 1}, rules={"mode": recipes.POS_INT})


def test_a_registered_method_has_its_own_recipe_section_checked_like_every_other(echo, tmp_path):
    assert "echo" in recipes.sections() and recipes.known_keys()["echo"] == ("times", "mode")
    _, recipe = recipes.resolve("kk", "tiny", None, ["echo.times=3", "echo.mode=loud"])
    assert recipe["echo"] == {"times": 3, "mode": "loud"}
    for setting, words in [
        ("echo.tims=2", "unknown key 'echo.tims': did you mean 'times'?"),
        ("echo.times=0", "'times' must be a positive integer"),
        (
            "echo.mode=lowd",
            "'mode' must be plain (as it is) or loud (louder), got 'lowd' (did you "
            "mean 'loud'?); set it in the recipe or with --set echo.mode=VALUE",
        ),
    ]:
        r = CliRunner().invoke(
            app, ["run", "--task", "kk", "--method", "echo", "--set", setting, "--runs-dir", str(tmp_path)]
        )
        assert r.exit_code == 2 and words in r.output.replace("\n", ""), r.output
        assert not any(tmp_path.iterdir())
    f = tmp_path / "r.yaml"
    f.write_text("echo:\n  times: 2\n  mood: loud\n")
    with pytest.raises(HarnessError, match=f"recipe {f}:3: unknown key 'echo.mood': did you mean 'mode'"):
        recipes.resolve("kk", "tiny", f)


def test_a_method_declares_its_place_and_variants_in_leaderboards(echo):
    from test_leaderboard import _outcomes, _paired_records, _rec

    def run(run_id, **section):
        rec = _rec(run_id, "echo", 0, _outcomes(200, set(range(30))))
        rec["config"]["recipe"] = {**rec["config"]["recipe"], "echo": section}
        return rec

    table = build_table(_paired_records() + [run("e-plain", mode="plain"), run("e-loud", mode="loud")])
    labels = [r["method"]["display"] for r in table["rows"]]
    assert labels[-2:] == ["echo", "echo (mode loud)"]  # after redistill (order 5), the variant its own row
    rows = {r["method"]["display"]: r for r in table["rows"]}
    assert rows["echo (mode loud)"]["recipe"]["value"] == rows["sft"]["recipe"]["value"]  # the same set-up
    assert rows["echo"]["start"]["display"] == "-"  # it trains nothing, so it has no start


def test_a_plugin_method_is_listed_run_and_recorded(tmp_path):
    (tmp_path / "echo_plugin.py").write_text(textwrap.dedent(ECHO))
    r = cli("methods", "--plugin", "echo_plugin.py", cwd=tmp_path)
    assert r.returncode == 0 and "echo" in r.stdout and "redistill" in r.stdout, r.stderr
    r = cli("run", "--task", "kk", "--method", "echo", "--runs-dir", "runs", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and "unknown method 'echo'" in r.stderr and "--plugin" in r.stderr, r.stderr
    r = cli(
        "run",
        "--task",
        "kk",
        "--method",
        "echo",
        "--plugin",
        "echo_plugin.py",
        "--runs-dir",
        "runs",
        "--set",
        "echo.mode=loud",
        *FAST,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if (p / "record.json").is_file()]
    rec = json.loads((folder / "record.json").read_text())
    assert rec["method"] == "echo" and rec["config"]["recipe"]["echo"] == {"mode": "loud"} and rec["stages"] == []
    assert rec["provenance"]["plugins"][0]["file"] == str(tmp_path / "echo_plugin.py")
    r = cli("leaderboard", "--runs-dir", "runs", "--out", "lb", "--plugin", "echo_plugin.py", cwd=tmp_path)
    assert r.returncode == 0 and "| echo (mode loud) |" in (tmp_path / "lb" / "kk" / "leaderboard.md").read_text()


def test_a_plugin_may_not_take_a_builtin_method_name(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from harness.methods import Method, register\n"
        "register(Method(name='sft', summary='', train=lambda *a: ''))\n"
    )
    r = cli("methods", "--plugin", "mine.py", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "registers method 'sft', which the harness (harness.methods.sft, a built-in) already registered" in r.stderr


def test_the_methods_command_imports_no_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from harness.cli import app;"
        "r = CliRunner().invoke(app, ['methods']); assert r.exit_code == 0 and 'redistill' in r.output, r.output;"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=CODE_ROOT)
