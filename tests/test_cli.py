"""The CLI through Typer's test runner: commands, exit codes, and messages for bad input."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_and_tasks_commands_do_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from harness.cli import app; r = CliRunner();"
        "assert r.invoke(app, ['--help']).exit_code == 0;"
        "assert r.invoke(app, ['tasks', 'list']).exit_code == 0;"
        "assert r.invoke(app, ['tasks', 'show', 'kk']).exit_code == 0;"
        f"assert r.invoke(app, ['tasks', 'validate', {str(Path('tasks/kk.yaml').resolve())!r}]).exit_code == 0;"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_tasks_list_and_show():
    r = invoke("tasks", "list", "--tasks-dir", FIX / "user_tasks")
    assert r.exit_code == 0 and "kk" in r.output and "arith" in r.output
    r = invoke("tasks", "show", "kk")
    assert r.exit_code == 0 and '"kk_boxed"' in r.output


def test_validate_reports_all_errors_and_exits_2():
    r = invoke("tasks", "validate", FIX / "bad_tasks" / "typo_keys.yaml")
    assert r.exit_code == 2
    assert "did you mean 'size'" in r.output and "did you mean 'verifier'" in r.output


def test_bad_input_exits_2_with_one_message():
    for args, needle in [
        (["tasks", "show", "kkk"], "unknown task 'kkk': did you mean 'kk'?"),
        (["data", "export", "--task", "kk", "--split", "nope", "--out", "x.jsonl"], "has no split 'nope'"),
        (["score", "--task", "kk", "--input", "missing.jsonl"], "missing.jsonl does not exist"),
        (["eval", "--task", "kk", "--model", str(FIX), "--limit", "1"], "is not a model folder"),
        (["tasks", "list", "--tasks-dir", FIX / "shadow"], "already defined by"),
    ]:
        r = invoke(*args)
        assert r.exit_code == 2, (args, r.output)
        assert needle in r.output, (args, r.output)
        assert "Traceback" not in r.output


def test_export_kk_has_checkable_metadata(tmp_path):
    out = tmp_path / "test.jsonl"
    r = invoke("data", "export", "--task", "kk", "--split", "test", "--limit", "10", "--out", out)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 10
    from harness.generators.kk import solutions

    for row in rows:
        assert {"id", "prompt", "answer", "traces", "metadata"} <= set(row)
        md = row["metadata"]
        assert set(md) >= {"n_people", "names", "solution", "statements"}
        assert solutions(md["statements"], md["n_people"]) == [md["solution"]]
        parts = [f"{n} is a {'knight' if k else 'knave'}" for n, k in zip(md["names"], md["solution"])]
        assert row["answer"] == ", ".join(parts)
        assert row["traces"]["short"].endswith(f"\\boxed{{{row['answer']}}}.")


def test_score_rescoring_with_malformed_lines(tmp_path):
    ans = "Ann is a knight, Bob is a knave"
    lines = [
        json.dumps({"id": "a", "response": "so \\boxed{Bob is a knave, Ann is a knight}", "answer": ans}),
        "{not json",
        json.dumps({"id": "c", "response": "\\boxed{Ann is a knight}", "answer": ans}),
        json.dumps(
            {"id": "d", "response": "\\boxed{Ann is a knight, Bob is a knave}", "answer": ans, "truncated": True}
        ),
    ]
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    r = invoke("score", "--task", "kk", "--input", inp, "--output", outp)
    assert r.exit_code == 0, r.output
    assert "in.jsonl:2: malformed line" in r.output
    assert "accuracy 0.667" in r.output and "over 3 responses" in r.output
    got = [json.loads(x) for x in outp.read_text().splitlines()]
    assert [g["score"] for g in got] == [1.0, None, 0.0, 1.0]
    assert got[0]["extracted"] == "Bob is a knave, Ann is a knight"
    assert [g["id"] for g in got] == ["a", None, "c", "d"]


def test_compare_and_leaderboard_bad_input(tmp_path):
    r = invoke("compare", "--methods", "sft,foo", "--budgets", "8", "--runs-dir", tmp_path)
    assert r.exit_code == 2 and "unknown method 'foo'" in r.output
    r = invoke("leaderboard", "--runs-dir", tmp_path, "--out", tmp_path / "lb")
    assert r.exit_code == 2 and "no run records" in r.output


def test_leaderboard_command_writes_tables(tmp_path):
    runs = tmp_path / "runs"
    for p in (FIX / "records").glob("*.json"):
        rec = json.loads(p.read_text())
        (runs / rec["run_id"]).mkdir(parents=True)
        (runs / rec["run_id"] / "record.json").write_text(json.dumps(rec))
    r = invoke("leaderboard", "--task", "kk", "--runs-dir", runs, "--out", tmp_path / "lb")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "lb" / "kk" / "leaderboard.md").read_text()
    assert md.startswith("<!-- generated by the harness") and "| kk | tiny | rl | 1k | 1 | 0.600 |" in md


def test_eval_options_an_engine_cannot_use_are_one_clear_error(tmp_path):
    runner = CliRunner()
    base = ["eval", "--engine", "lm-eval", "--lm-eval-tasks", "x", "--runs-dir", str(tmp_path)]
    for extra, flag in (
        (["--split", "val"], "--split"),
        (["--samples", "4"], "--samples"),
        (["--temperature", "0.7"], "--temperature"),
        (["--max-new-tokens", "9"], "--max-new-tokens"),
        (["--vllm", "max_model_len=64"], "--vllm"),
    ):
        r = runner.invoke(app, base + extra)
        assert r.exit_code == 2 and f"{flag} do not apply to --engine lm-eval" in r.output, r.output
    r = runner.invoke(app, ["eval", "--engine", "transformers", "--num-fewshot", "2", "--runs-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--num-fewshot apply only to --engine lm-eval" in r.output, r.output
    assert not list(tmp_path.iterdir())


def test_leaderboard_reads_the_records_once(tmp_path, monkeypatch):
    import harness.store

    calls = []
    monkeypatch.setattr(harness.store.RunStore, "list", lambda self, kind=None: calls.append(self.root) or [])
    r = CliRunner().invoke(app, ["leaderboard", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "lb")])
    assert r.exit_code == 2 and "no run records" in r.output and len(calls) == 1, r.output
