"""`harness eval --recipe`: a model is evaluated on the task exactly as a recipe trains and tests it."""

import json

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def _samples(record_dir):
    return [json.loads(x) for x in (record_dir / "samples.jsonl").read_text().splitlines()]


def test_eval_with_the_recipe_reproduces_the_runs_own_evaluation(tmp_path):
    runs = tmp_path / "runs"
    r = runner.invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "base",
            "--set",
            "eval.limit=4",
            "--set",
            "eval.max_new_tokens=24",
            "--set",
            "eval.limem=false",
            "--runs-dir",
            str(runs),
        ],
    )
    assert r.exit_code == 0, r.output
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_")]
    run = json.loads((run_dir / "record.json").read_text())
    e = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "kk",
            "--recipe",
            "kk-tiny",
            "--limit",
            "4",
            "--max-new-tokens",
            "24",
            "--runs-dir",
            str(tmp_path / "evals"),
        ],
    )
    assert e.exit_code == 0, e.output
    (eval_dir,) = list((tmp_path / "evals").iterdir())
    ev = json.loads((eval_dir / "record.json").read_text())
    assert (
        ev["config"]["recipe"] == "kk-tiny" and ev["config"]["dtype"] == "float32" and ev["config"]["batch_size"] == 64
    )
    assert ev["metrics"]["accuracy"] == run["metrics"]["accuracy"]
    mine, theirs = _samples(eval_dir), _samples(run_dir)
    assert [s["prompt"] for s in mine] == [s["prompt"] for s in theirs]
    assert [s["responses"] for s in mine] == [s["responses"] for s in theirs]
    # the recipe's terse one-line-per-person quiz, not the task's prose
    assert mine[0]["prompt"][0]["content"].startswith("A: ")


def test_an_unknown_recipe_is_one_clear_error(tmp_path):
    r = runner.invoke(
        app, ["eval", "--task", "kk", "--recipe", "kk-tinny", "--limit", "1", "--runs-dir", str(tmp_path)]
    )
    assert r.exit_code == 2 and "no recipe 'kk-tinny'" in r.output and "kk-tiny" in r.output, r.output
    assert not any(tmp_path.iterdir())


def test_eval_run_re_evaluates_a_trained_run_exactly(tmp_path):
    runs = tmp_path / "runs"
    r = runner.invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "sft",
            "--budget",
            "100",
            "--set",
            "sft.max_steps=2",
            "--set",
            "eval.limit=4",
            "--set",
            "eval.max_new_tokens=24",
            "--set",
            "eval.limem=false",
            "--runs-dir",
            str(runs),
        ],
    )
    assert r.exit_code == 0, r.output
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_")]
    run = json.loads((run_dir / "record.json").read_text())
    e = runner.invoke(app, ["eval", "--run", run["run_id"], "--limit", "4", "--runs-dir", str(runs)])
    assert e.exit_code == 0, e.output
    (eval_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_") and p != run_dir]
    ev = json.loads((eval_dir / "record.json").read_text())
    assert ev["config"]["run"] == run["run_id"] and ev["config"]["model"] == run["model_path"]
    assert ev["metrics"]["accuracy"] == run["metrics"]["accuracy"]
    assert [s["responses"] for s in _samples(eval_dir)] == [s["responses"] for s in _samples(run_dir)]
    bad = runner.invoke(app, ["eval", "--run", "no-such-run", "--runs-dir", str(runs)])
    assert bad.exit_code == 2 and "no training run 'no-such-run'" in bad.output


def test_a_run_can_also_report_sampled_pass_at_1(tmp_path):
    r = runner.invoke(
        app,
        [
            "run",
            "--task",
            "kk",
            "--method",
            "base",
            "--set",
            "eval.limit=3",
            "--set",
            "eval.max_new_tokens=8",
            "--set",
            "eval.limem=false",
            "--set",
            "eval.samples=2",
            "--set",
            "eval.temperature=0.7",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("_")]
    s = json.loads((run_dir / "record.json").read_text())["metrics"]["sampled"]
    assert s["samples"] == 2 and s["temperature"] == 0.7 and set(s["pass_at_k"]) == {"1", "2"}
    rows = _samples(run_dir)
    assert len(rows) == 3 and all(len(x["sampled_scores"]) == 2 for x in rows)
    assert s["pass_at_1"] == sum(sum(x["sampled_scores"]) / 2 for x in rows) / 3
