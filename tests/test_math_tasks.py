"""The math and gsm8k tasks on the shipped samples (tests/fixtures/data, in each dataset's own format), the local-data
override for hub tasks ($HARNESS_DATA_DIR), per-split sources, answer_pattern, and `harness eval` on the sample."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data import DATA_DIR_ENV, load_split
from harness.errors import HarnessError
from harness.tasks import get_task
from harness.taskspec import load_file
from harness.verifiers import get_verifier

ROOT = Path(__file__).parent.parent
SAMPLES = Path(__file__).parent / "fixtures" / "data"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _samples(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(SAMPLES))


def _all_rows(spec):
    return {split: load_split(spec, split, partial=True) for split in spec.splits}


def test_tasks_validate():
    r = runner.invoke(app, ["tasks", "validate", str(ROOT / "tasks/math.yaml"), str(ROOT / "tasks/gsm8k.yaml")])
    assert r.exit_code == 0, r.output


def test_math_splits_follow_the_paper():
    spec = get_task("math")
    windows = {n: (s.from_, s.start, s.size, s.seed, s.shuffle) for n, s in spec.splits.items()}
    assert windows["sft"] == ("train", 0, 900, 0, True)
    assert windows["val"] == ("train", 900, 100, 0, True)
    assert windows["rl"] == ("train", 1000, 11000, 0, True)
    assert spec.source.hf.path == "nlile/hendrycks-MATH-benchmark"
    assert spec.splits["test"].source.hf.path == "HuggingFaceH4/MATH-500"
    assert spec.verifier.name == "boxed_math" and spec.traces == {"short": "solution"}


@pytest.mark.parametrize("tid, n_train, n_test", [("math", 12, 20), ("gsm8k", 15, 15)])
def test_every_shipped_sample_scores_its_reference_1_and_a_wrong_answer_0(tid, n_train, n_test):
    spec = get_task(tid)
    v = get_verifier(spec.verifier.name, spec.verifier.params)
    rows = _all_rows(spec)
    assert (len(rows["sft"]), len(rows["test"]), rows["val"], rows["rl"]) == (n_train, n_test, [], [])
    samples = rows["sft"] + rows["test"]
    answers = [s["answer"] for s in samples]
    for i, s in enumerate(samples):
        assert s["traces"]["short"] and v(s["traces"]["short"], s["answer"]).score == 1.0, s["id"]
        assert v(f"So the final answer is \\boxed{{{s['answer']}}}.", s["answer"]).score == 1.0, s["id"]
        if tid == "gsm8k":
            wrong = str(float(s["answer"].replace(",", "")) + 1)
        else:  # another problem's answer that the verifier itself does not consider equal
            wrong = next(a for a in answers[i + 1 :] + answers[:i] if a != s["answer"])
        assert v(f"\\boxed{{{wrong}}}\n#### {wrong}", s["answer"]).score == 0.0, (s["id"], wrong)


def test_sample_fields_are_the_dataset_formats():
    m = load_split(get_task("math"), "test", limit=1)[0]
    assert {"problem", "solution", "answer", "subject", "level", "unique_id"} <= set(m)
    assert m["id"] == m["unique_id"] and m["level"] == m["level"] and isinstance(m["level"], int)
    g = load_split(get_task("gsm8k"), "test", limit=1)[0]
    assert "<<" in g["traces"]["short"] and g["traces"]["short"].endswith("#### " + g["answer"])


def test_splits_are_seeded_and_disjoint(tmp_path, monkeypatch):
    rows = [{"question": f"q{i}", "answer": f"w\n#### {i}"} for i in range(40)]
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    spec = get_task("gsm8k")
    got = {s: [r["answer"] for r in load_split(spec, s, partial=True)] for s in ("sft", "val", "rl")}
    assert len(got["sft"]) == 40 and got["val"] == got["rl"] == []  # the sample is shorter than the 900-row window
    assert got["sft"] != [str(i) for i in range(40)] and sorted(got["sft"], key=int) == [str(i) for i in range(40)]
    assert got == {s: [r["answer"] for r in load_split(spec, s, partial=True)] for s in ("sft", "val", "rl")}
    with pytest.raises(HarnessError, match=r"wants rows \[900, 1000\) but the source has 40"):
        load_split(spec, "val")


def test_hub_task_without_local_files_says_how_to_pass_them(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))  # set, but holds nothing for this task
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    with pytest.raises(HarnessError, match=r"HARNESS_DATA_DIR/math/test.jsonl"):
        load_split(get_task("math"), "test", limit=1)


def test_split_source_override_and_answer_pattern(tmp_path):
    (tmp_path / "train.csv").write_text("q,sol\nwhat,so 3\n#### 3\n")
    (tmp_path / "train.csv").write_text('q,sol\nwhat,"so 3\n#### 3"\nwho,"so 4\n#### 4"\n')
    (tmp_path / "extra.jsonl").write_text(json.dumps({"q": "other", "sol": "x\n#### 9"}) + "\n")
    (tmp_path / "t.yaml").write_text(
        "description: d\n"
        "source: {file: {path: '{split}.csv'}, columns: {question: q}}\n"
        "splits:\n"
        "  train: {}\n"
        "  test: {source: {file: {path: extra.jsonl}, columns: {question: q}}}\n"
        "prompt: {template: '{question}'}\n"
        "answer_field: sol\n"
        "answer_pattern: '####\\s*(\\S+)'\n"
        "traces: {short: sol}\n"
        "verifier: {name: numeric}\n"
    )
    spec = load_file(tmp_path / "t.yaml")
    assert [(s["question"], s["answer"]) for s in load_split(spec, "train")] == [("what", "3"), ("who", "4")]
    assert [(s["question"], s["answer"]) for s in load_split(spec, "test")] == [("other", "9")]
    bad = (tmp_path / "t.yaml").read_text().replace("file: {path: extra.jsonl}", "generator: {name: kk}")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(HarnessError, match="a split's own source must be 'file' or 'hf'"):
        load_file(tmp_path / "bad.yaml")


def test_eval_math_on_the_shipped_sample(tmp_path):
    r = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "math",
            "--model",
            "tiny",
            "--limit",
            "3",
            "--max-new-tokens",
            "24",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "on 3 problems" in r.output
    record = json.loads(next(tmp_path.rglob("record.json")).read_text())
    assert record["metrics"]["n"] == 3
