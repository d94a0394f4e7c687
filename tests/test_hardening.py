"""Issue 13 (hardening): bad input gets one clear message and exit code 2, and nothing on disk is lost or half-written.
Every test here is fast: nothing trains and no model is loaded."""

import json
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


@pytest.fixture
def constructed(monkeypatch):
    """How many YAML values PyYAML builds: a rejected file must be rejected from its node graph, before any value
    of it is built (expanding 9^9 laughs would take minutes and gigabytes; this counts instead of timing)."""
    import yaml.constructor

    calls = []
    real = yaml.constructor.BaseConstructor.construct_object

    def counting(self, node, deep=False):
        calls.append(node)
        if len(calls) > 10_000:  # a few hundred build any real task or recipe
            raise AssertionError("PyYAML is expanding the aliases")
        return real(self, node, deep)

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_object", counting)
    return calls


def test_billion_laughs_task_file_fails_fast_with_exit_2(tmp_path, constructed):
    f = billion_laughs(tmp_path / "laughs.yaml")
    r = invoke("tasks", "validate", f)
    assert r.exit_code == 2 and "billion laughs" in r.output and "Traceback" not in r.output
    from harness.taskspec import load_file

    with pytest.raises(HarnessError, match="aliases"):
        load_file(f)  # what every command that loads a task goes through
    assert constructed == []


def test_recursive_alias_and_deep_nesting_are_one_error(tmp_path):
    from harness.taskspec import validate_file

    (tmp_path / "rec.yaml").write_text("a: &a [1, *a]\ndescription: x\n")
    assert "recursive anchor" in validate_file(tmp_path / "rec.yaml")[1][0]
    (tmp_path / "deep.yaml").write_text("description: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nested too deeply" in validate_file(tmp_path / "deep.yaml")[1][0]
    ok = tmp_path / "ok.yaml"  # a few aliases stay fine
    ok.write_text("x: &p {size: 3}\ndescription: *p\n")
    assert not any("billion laughs" in e or "recursive anchor" in e for e in validate_file(ok)[1])


def test_billion_laughs_recipe_is_one_error(tmp_path, constructed):
    from harness import recipes

    recipes.resolve("kk", "tiny")
    built_in = len(constructed)  # the values of the built-in recipe and task
    constructed.clear()
    f = billion_laughs(tmp_path / "r.yaml")
    with pytest.raises(HarnessError, match="billion laughs"):
        recipes.resolve("kk", "tiny", f)
    assert len(constructed) <= built_in  # none of the file's 9^9


# --- 2. corrupt run records --------------------------------------------------------------------------------------

FIX = Path(__file__).parent / "fixtures"
CORRUPT = {
    "truncated": b'{"kind": "run", "config": {"ta',
    "list": b"[1, 2, 3]",
    "latin1": b'{"kind": "caf\xe9"}',
    "deep": b"[" * 100_000,
}


def runs_with_corrupt_records(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for p in sorted((FIX / "records").glob("*.json")):
        rec = json.loads(p.read_text())
        (runs / rec["run_id"]).mkdir(parents=True)
        (runs / rec["run_id"] / "record.json").write_text(json.dumps(rec))
    for name, raw in CORRUPT.items():
        (runs / f"zz-{name}").mkdir()
        (runs / f"zz-{name}" / "record.json").write_bytes(raw)
        (runs / "_stages" / f"sft-{name}").mkdir(parents=True)
        (runs / "_stages" / f"sft-{name}" / "stage.json").write_bytes(raw)
    (runs / "_stages" / "sft-good").mkdir()
    (runs / "_stages" / "sft-good" / "stage.json").write_text('{"wall_seconds": 3}')
    return runs


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_read_records_skips_each_corrupt_kind_with_one_warning(tmp_path, capsys, kind):
    from harness.store import RunStore

    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "record.json").write_text('{"kind": "run", "run_id": "good"}')
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "record.json").write_bytes(CORRUPT[kind])
    assert [r["run_id"] for r in RunStore(tmp_path).dicts()] == ["good"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "bad" / "record.json") in err[0] and err[0].startswith("warning: skipped")


def test_runs_list_leaderboard_and_compare_keep_going_past_corrupt_files(tmp_path, monkeypatch):
    runs = runs_with_corrupt_records(tmp_path)
    r = invoke("runs", "list", "--runs-dir", runs)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "sft-good" in r.output and r.output.count("warning: skipped") == 2 * len(CORRUPT)
    for name in CORRUPT:
        assert f"zz-{name}" in r.output and f"sft-{name}" in r.output
    r = invoke("leaderboard", "--task", "kk", "--runs-dir", runs, "--out", tmp_path / "lb")
    assert r.exit_code == 0 and (tmp_path / "lb" / "kk" / "leaderboard.md").is_file(), r.output
    assert r.output.count("warning: skipped") == len(CORRUPT)

    import harness.compare

    cells = []
    monkeypatch.setattr(harness.compare, "run", lambda **kw: cells.append(kw) or (None, {}))
    records = harness.compare.compare(task="kk", methods="base", budgets="1", seeds="7", runs_dir=runs)
    assert len(cells) == 1 and records == [{}]


# --- 3. numeric verdicts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response, answer, score",
    [
        ("42000001", "42000000", 0.0),  # an integer reference is matched exactly, whatever the magnitude
        ("42000000.5", "42000000", 0.0),
        ("#### 42,000,000", "42000000", 1.0),
        ("1e400", "2e400", 0.0),  # no overflow to inf
        ("2e400", "2e400", 1.0),
        ("1e-12", "0", 0.0),
        ("0", "1e-12", 0.0),
        ("0.0", "1e-12", 0.0),
        ("0.50000001", "1/2", 0.0),
        ("0.50000001", "\\frac{1}{2}", 0.0),
        ("0.5", "\\frac{1}{2}", 1.0),
        ("0.30000000000000004", "0.3", 1.0),  # float noise in a decimal passes
        ("0.3333333333", "1/3", 1.0),
        ("0.333333", "1/3", 0.0),
        ("1e999999999999999999", "1e999999999999999999", 1.0),
    ],
)
def test_numeric_compares_exact_values(response, answer, score):
    from harness.verifiers import get_verifier

    assert get_verifier("numeric")(response, answer).score == score


def test_numeric_tolerances_apply_to_decimals_only_when_set():
    from harness.verifiers import get_verifier

    loose = get_verifier("numeric", {"rel_tol": 1e-3, "abs_tol": 1e-9})
    assert loose("0.3334", "1/3").score == 1.0 and loose("1e-12", "0.0").score == 1.0
    assert loose("42000001", "42000000").score == 0.0  # integers stay exact
    assert get_verifier("numeric", {"abs_tol": 0})("1e-400", "2e-400").score == 0.0  # no underflow to 0
    assert get_verifier("numeric").params["rel_tol"] == 1e-9
    # a number past Python's int-to-str limit (4,300 digits) is compared exactly, not rounded or refused; its speed
    # is bench/bench_verifiers.py's
    huge = "7" * 1_000_000
    assert get_verifier("numeric")(huge, "3/7").score == 0.0
    assert get_verifier("numeric")(huge, huge).score == 1.0 and get_verifier("numeric")(huge + "8", huge).score == 0.0
    with pytest.raises(HarnessError, match="zero denominator"):
        get_verifier("numeric")("1", "1/0")


@pytest.mark.parametrize(
    "pred, ref, same",
    [
        ("0.50000001", "\\frac{1}{2}", False),
        ("0.5", "\\frac{1}{2}", True),
        ("-0.5", "\\frac{-1}{2}", True),
        ("1/2", "0.5", True),
        ("2", "\\frac{4}{2}", True),
        ("1000001", "1000000", False),
    ],
)
def test_boxed_math_decides_plain_numbers_exactly_in_process(pred, ref, same):
    from harness.verifiers.boxed_math import _plain_equal

    assert _plain_equal(pred, ref) is same  # never None: math-verify (6-decimal rounding) is not asked


def test_boxed_math_rejects_a_near_miss_decimal_for_a_fraction():
    from harness.verifiers import get_verifier

    v = get_verifier("boxed_math")
    assert v("so \\boxed{0.50000001}", "\\frac{1}{2}").score == 0.0
    assert v("so \\boxed{0.5}", "\\dfrac{1}{2}").score == 1.0


# --- 4. recipe numbers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, words",
    [
        ("sft.epochs=-1", "'epochs' must be a positive integer"),
        ("sft.batch_size=0", "'batch_size' must be a positive integer"),
        ("sft.learning_rate=-1", "'learning_rate' must be a number > 0"),
        ("sft.warmup_ratio=1.5", "'warmup_ratio' must be a number in [0, 1)"),
        ("sft.max_steps=0", "'max_steps' must be -1"),
        ("rl.steps=0", "'steps' must be a positive integer (1, 2, ...) or null"),
        ("rl.num_generations=1", "'num_generations' must be an integer >= 2"),
        ("rl.prompts_per_step=0", "'prompts_per_step' must be a positive integer"),
        ("rl.temperature=0", "'temperature' must be a number > 0"),
        ("rl.top_p=1.5", "'top_p' must be a number in (0, 1]"),
        ("rl.learning_rate=-1e-5", "'learning_rate' must be a number > 0"),
        ("eval.batch_size=0", "'batch_size' must be a positive integer"),
    ],
)
def test_run_rejects_recipe_numbers_out_of_range_before_any_model_loads(tmp_path, monkeypatch, setting, words):
    import harness.run

    def no_model(*a, **k):
        raise AssertionError("a model was resolved or trained")

    monkeypatch.setattr(harness.run.models, "resolve", no_model)
    monkeypatch.setattr(harness.run, "train_for_method", no_model)
    r = invoke("run", "--task", "kk", "--method", "sft", "--budget", "100", "--set", setting, "--runs-dir", tmp_path)
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    key = setting.split("=")[0]
    assert f"--set {key}=VALUE" in r.output
    assert not list(tmp_path.iterdir())


def test_backend_recipe_resolution_checks_the_same_numbers():
    pytest.importorskip("transformers")
    from backends._common import resolve_recipe

    with pytest.raises(HarnessError, match="'epochs' must be a positive integer"):
        resolve_recipe("sft", {"epochs": 0}, {"epochs": 2, "batch_size": 8})
    assert resolve_recipe("sft", {"epochs": 3}, {"epochs": 2, "batch_size": 8}) == {"epochs": 3, "batch_size": 8}


# --- 5. full disk ---------------------------------------------------------------------------------------------------


def disk_full_for(monkeypatch, is_full):
    """os.replace raises ENOSPC for destinations where is_full(dst) (the last step of every atomic write)."""
    import errno
    import os

    real = os.replace

    def replace(src, dst):
        if is_full(Path(dst)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_record_write_failure_keeps_the_finished_evaluation(tmp_path, monkeypatch):
    from harness.records import write_record
    from harness.store import RunStore

    root = tmp_path / "runs"
    rows = [{"id": str(i), "score": 1.0} for i in range(3)]
    record = {"kind": "run", "metrics": {"accuracy": 0.5}}
    disk_full_for(monkeypatch, lambda dst: dst == root / "r1")
    with pytest.raises(HarnessError, match="No space left on device") as e:
        write_record(root, "r1", record, iter(rows), {"redistill.jsonl": "x\n"})
    kept = root / ".unwritten-r1.json"
    assert f"kept in {kept}" in str(e.value) and f"harness runs restore {kept}" in str(e.value)
    assert sorted(p.name for p in root.iterdir()) == [".unwritten-r1.json"]  # no half-written folder, no .tmp-*
    assert RunStore(root).dicts() == []
    monkeypatch.undo()
    r = invoke("runs", "restore", kept, "--runs-dir", root)
    assert r.exit_code == 0, r.output
    assert [json.loads(x) for x in (root / "r1" / "samples.jsonl").read_text().splitlines()] == rows
    assert (root / "r1" / "redistill.jsonl").read_text() == "x\n"
    assert RunStore(root).dicts()[0]["metrics"] == {"accuracy": 0.5} and not kept.exists()


def test_record_kept_in_the_temp_folder_when_the_runs_disk_is_full(tmp_path, monkeypatch):
    import tempfile

    from harness.records import write_record

    root, other = tmp_path / "runs", tmp_path / "tmp"
    other.mkdir()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(other))
    disk_full_for(monkeypatch, lambda dst: root in dst.parents or dst == root)
    with pytest.raises(HarnessError, match=f"kept in {other / 'harness-unwritten-r2.json'}"):
        write_record(root, "r2", {"kind": "run"}, [{"id": "a"}])
    assert json.loads((other / "harness-unwritten-r2.json").read_text())["samples"] == [{"id": "a"}]
    assert not [p for p in root.iterdir()]
    disk_full_for(monkeypatch, lambda dst: True)
    with pytest.raises(HarnessError, match=r"nor save its results anywhere else.*\"accuracy\": 0.25"):
        write_record(root, "r3", {"kind": "run", "metrics": {"accuracy": 0.25}}, [])


def test_harness_run_says_where_its_results_are_when_the_record_cannot_be_written(tmp_path, monkeypatch):
    import harness.run

    root = tmp_path / "runs"
    monkeypatch.setattr(harness.run.models, "resolve", lambda model, spec: "base-ref")
    monkeypatch.setattr(harness.run, "train_for_method", lambda ctx, *a: "base-ref")
    monkeypatch.setattr(harness.run, "provenance", lambda seed, spec: {})
    metrics = {
        "accuracy": 0.5,
        "ci95": [0.1, 0.9],
        "n": 2,
        "truncation_rate": 0.0,
        "mean_response_tokens": 3.0,
        "tokens_generated": 6,
    }
    monkeypatch.setattr(
        harness.run,
        "_evaluate",
        lambda ctx, final, limem: (
            metrics,
            [{"id": "a"}, {"id": "b"}],
            {"n_params": 10, "wall": 1.0, "engine": "transformers", "tokens": 6},
        ),
    )
    disk_full_for(monkeypatch, lambda dst: dst.parent == root and not dst.name.startswith("."))
    r = invoke("run", "--task", "kk", "--method", "base", "--runs-dir", root)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    kept = next(root.glob(".unwritten-*.json"))
    assert "finished results are kept in" in r.output and kept.name in r.output.replace("\n", "")
    assert json.loads(kept.read_text())["record"]["metrics"]["accuracy"] == 0.5


def test_runs_list_tells_a_resumable_stage_from_one_with_only_half_written_checkpoints(tmp_path, monkeypatch):
    stages = tmp_path / "_stages"
    for name, ckpts in (("sft-aaa", {4: '{"global_step": 4}', 8: None}), ("rl-bbb", {2: '{"global_st'})):
        for step, state in ckpts.items():
            d = stages / name / f"checkpoint-{step}"
            d.mkdir(parents=True)
            (d / "model.safetensors").write_bytes(b"x")
            if state is not None:
                (d / "trainer_state.json").write_text(state)
    (stages / "sft-ccc").mkdir()
    (stages / "sft-ccc" / "stage.json").write_text('{"wall_seconds": 5}')
    from harness.run import list_runs

    by_name = {s["name"]: s for s in list_runs(tmp_path)[1]}
    assert by_name["sft-aaa"]["resumable_from"] == "checkpoint-4"
    assert by_name["sft-aaa"]["checkpoints"] == ["checkpoint-4", "checkpoint-8 (incomplete)"]
    assert by_name["rl-bbb"]["resumable_from"] is None and by_name["sft-ccc"]["complete"]
    import harness.cli

    monkeypatch.setattr(harness.cli.out, "_width", 200)  # one table row per line
    r = invoke("runs", "list", "--runs-dir", tmp_path)
    assert r.exit_code == 0, r.output
    rows = {ln.split()[1]: ln for ln in r.output.splitlines() if "-aaa" in ln or "-bbb" in ln or "-ccc" in ln}
    assert "partial (resumable from checkpoint-4)" in rows["sft-aaa"]
    assert "partial (no complete checkpoint; trains from the start)" in rows["rl-bbb"]
    assert "complete" in rows["sft-ccc"] and "partial (resumable)" not in r.output


# --- 6. harness eval numbers ------------------------------------------------------------------------------------------


def no_model_loads(monkeypatch):
    import harness.lmeval
    import harness.run_eval

    def fail(*a, **k):
        raise AssertionError("a model was resolved")

    monkeypatch.setattr(harness.run_eval.models, "resolve", fail)
    monkeypatch.setattr(harness.lmeval, "run_lm_eval", fail)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--samples", "0"], "--samples must be at least 1 (got 0)"),
        (["--samples", "-3"], "--samples must be at least 1"),
        (["--max-new-tokens", "-5"], "--max-new-tokens must be at least 1 (got -5)"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1 (got 0)"),
        (["--samples", "2", "--temperature", "-1"], "--temperature must be 0 (greedy) or more (got -1.0)"),
        (["--temperature", "-1"], "--temperature must be 0 (greedy) or more"),
        (["--temperature", "nan"], "--temperature must be 0 (greedy) or more"),
        (["--samples", "2", "--temperature", "0"], "gives identical samples"),
        (["--samples", "2"], "task 'kk''s temperature 0 (greedy) gives identical samples"),
        (["--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
        (["--limit", "0"], "--limit must be at least 1 (got 0)"),
        (["--engine", "lm-eval", "--lm-eval-tasks", "gsm8k", "--batch-size", "0"], "--batch-size must be at least 1"),
        (
            ["--engine", "lm-eval", "--lm-eval-tasks", "gsm8k", "--num-fewshot", "-1"],
            "--num-fewshot must be at least 0",
        ),
    ],
)
def test_eval_checks_its_numbers_before_loading_anything(tmp_path, monkeypatch, args, words):
    no_model_loads(monkeypatch)
    r = invoke("eval", "--task", "kk", "--runs-dir", tmp_path, *args)
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, words",
    [
        (["--max-new-tokens", "-1"], "--max-new-tokens must be at least 1 (got -1)"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_export_lm_eval_checks_its_numbers(tmp_path, args, words):
    r = invoke("tasks", "export-lm-eval", "kk", "--out", tmp_path / "x", *args)
    assert r.exit_code == 2 and words in r.output, r.output
    assert not (tmp_path / "x").exists()


# --- 7. harness score input ---------------------------------------------------------------------------------------

KK_ANSWER = "Ann is a knight, Bob is a knave"
KK_RIGHT = "\\boxed{Ann is a knight, Bob is a knave}"


def test_score_skips_undecodable_and_too_deep_lines_and_reads_truncated_strictly(tmp_path):
    good = json.dumps({"id": "a", "response": KK_RIGHT, "answer": KK_ANSWER}).encode()
    lines = [
        good,
        b'{"id": "b", "response": "caf\xe9", "answer": "x"}',  # latin-1, not UTF-8
        b"[" * 100_000,  # nested too deeply for json
        json.dumps({"id": "d", "response": KK_RIGHT, "answer": KK_ANSWER, "truncated": "false"}).encode(),
        json.dumps({"id": "e", "response": KK_RIGHT, "answer": KK_ANSWER, "truncated": False}).encode(),
    ]
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    r = invoke("score", "--task", "kk", "--input", inp, "--output", outp)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "in.jsonl:2: malformed line (not UTF-8 text)" in r.output
    assert "in.jsonl:3: malformed line (JSON nested too deeply)" in r.output
    assert "in.jsonl:4: malformed line ('truncated' must be true or false, not 'false')" in r.output
    assert "accuracy 1.000" in r.output and "over 2 responses" in r.output and "3 malformed lines" in r.output
    assert [g["score"] for g in map(json.loads, outp.read_text().splitlines())] == [1.0, None, None, None, 1.0]


@pytest.mark.parametrize(
    "content, words", [(b"", "it is empty"), (b"\n  \n", "it is empty"), (b"{nope\n[1]\n", "all 2 lines are malformed")]
)
def test_score_with_nothing_to_score_is_an_error(tmp_path, content, words):
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_bytes(content)
    r = invoke("score", "--task", "kk", "--input", inp, "--output", outp)
    assert r.exit_code == 2 and words in r.output and "accuracy" not in r.output, r.output
    assert not outp.exists()


# --- 8. output paths ------------------------------------------------------------------------------------------------


def kk_responses(tmp_path: Path) -> Path:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "response": KK_RIGHT, "answer": KK_ANSWER}) + "\n")
    return inp


def test_output_paths_naming_the_wrong_kind_are_one_error(tmp_path):
    folder, afile = tmp_path / "folder", tmp_path / "afile"
    folder.mkdir()
    afile.write_text("keep me\n")
    runs = runs_with_corrupt_records(tmp_path)
    for args, words in [
        (
            ["score", "--task", "kk", "--input", kk_responses(tmp_path), "--output", folder],
            "is a folder; give a file path",
        ),
        (["score", "--task", "kk", "--input", kk_responses(tmp_path), "--output", afile / "x.jsonl"], "is a file, so"),
        (["data", "export", "--task", "kk", "--limit", "2", "--out", folder], "is a folder; give a file path"),
        (["leaderboard", "--task", "kk", "--runs-dir", runs, "--out", afile], "is a file, not a folder"),
        (["tasks", "export-lm-eval", "kk", "--limit", "2", "--out", afile], "is a file, not a folder"),
    ]:
        r = invoke(*args)
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, (args, r.output)
    assert afile.read_text() == "keep me\n" and not list(folder.iterdir())
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    (folder / "kk").write_text("a file where the task's folder goes\n")
    r = invoke("leaderboard", "--task", "kk", "--runs-dir", runs, "--out", folder)
    assert r.exit_code == 2 and "is a file, not a folder" in r.output, r.output


def test_write_failures_are_one_error_and_leave_no_temporary_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    disk_full_for(monkeypatch, lambda dst: dst.parent == out or out in dst.parents)
    r = invoke("score", "--task", "kk", "--input", kk_responses(tmp_path), "--output", out / "v.jsonl")
    assert r.exit_code == 2 and "could not write" in r.output and "No space left" in r.output, r.output
    r = invoke("data", "export", "--task", "kk", "--limit", "2", "--out", out / "d.jsonl")
    assert r.exit_code == 2 and "could not write" in r.output, r.output
    r = invoke("leaderboard", "--task", "kk", "--runs-dir", runs_with_corrupt_records(tmp_path), "--out", out)
    assert r.exit_code == 2 and "could not write" in r.output, r.output
    r = invoke("tasks", "export-lm-eval", "kk", "--limit", "2", "--out", out / "lm")
    assert r.exit_code == 2 and "could not write" in r.output, r.output
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing half-written, no .tmp-* left


def test_write_atomic_removes_its_temporary_file_when_the_write_fails(tmp_path, monkeypatch):
    from harness.records import write_atomic

    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "dir", "x")  # a folder is in the way
    target = tmp_path / "f.txt"
    target.write_text("old\n")
    disk_full_for(monkeypatch, lambda dst: dst == target)
    with pytest.raises(OSError):
        write_atomic(target, "new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "f.txt"] and target.read_text() == "old\n"


@pytest.mark.parametrize("content", [b'{"stage": "sft", "key"', b"[1, 2]", b"\xff\xfe\x00"])
def test_a_damaged_stage_marker_is_one_clear_error(tmp_path, content):
    from harness.pipeline import read_marker

    marker = tmp_path / "sft-abc" / "stage.json"
    marker.parent.mkdir()
    marker.write_bytes(content)
    with pytest.raises(HarnessError, match="is damaged.*delete the folder"):
        read_marker(marker)
