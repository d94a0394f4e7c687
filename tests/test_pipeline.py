"""`harness run` end to end on the tiny model: budgets, cached stages, re-distillation, resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import recipes
from harness.budget import format_budget, parse_budget
from harness.errors import HarnessError
from harness.run import run
from harness.verifiers import get_verifier

REPO = Path(__file__).resolve().parent.parent
FAST = ["sft.max_steps=2", "sft.batch_size=4", "eval.limit=2", "eval.max_new_tokens=8", "eval.dtype=float32"]


@pytest.mark.parametrize(
    "text,value",
    [
        ("100", 100),
        ("500", 500),
        ("1k", 1000),
        ("2.5k", 2500),
        ("10k", 10000),
        ("1m", 1_000_000),
        ("1K", 1000),
        (250, 250),
    ],
)
def test_budget_parser_accepts(text, value):
    assert parse_budget(text) == value


@pytest.mark.parametrize("text", ["1kk", "", "abc", "0", "-5", "1.5", "2.5", "1.2345k", "k", "1g", "1e3"])
def test_budget_parser_rejects_clearly(text):
    with pytest.raises(HarnessError, match="budget"):
        parse_budget(text)


def test_budget_format_round_trips():
    for n in (100, 500, 1000, 2500, 10000, 1_000_000, 300):
        assert parse_budget(format_budget(n)) == n


def test_sft_run_records_counts_and_reuses_its_stage(tiny_kk, tmp_path):
    path, rec = run(task="kk", method="sft", budget="16", sets=FAST, runs_dir=tmp_path)
    assert (path / "record.json").is_file() and (path / "samples.jsonl").is_file()
    c = rec["counts"]
    assert c["training_examples"] == 16 and c["optimizer_steps"] == 2 and c["sequences_trained"] == 8
    assert c["tokens_trained"] > 0 and c["flops_estimate"] > 0 and c["rollouts_generated"] == 0
    assert rec["config"]["recipe"]["sft"]["max_steps"] == 2  # --set reached the resolved recipe
    tiny_test = recipes.resolve("kk", "tiny", None, [])[1]["task"]["splits"]["test"]
    # the recipe's override
    assert rec["provenance"]["splits"]["test"]["params"]["people"] == tiny_test["params"]["people"]
    assert [s["cached"] for s in rec["stages"]] == [False]
    _, again = run(task="kk", method="sft", budget="16", sets=FAST, runs_dir=tmp_path)
    assert [s["cached"] for s in again["stages"]] == [True]
    assert again["stages"][0]["key"] == rec["stages"][0]["key"]


def test_budget_larger_than_split_says_how_many(tiny_kk, tmp_path):
    with pytest.raises(HarnessError, match=r"1000 demonstrations available"):
        run(task="kk", method="sft", budget="2k", sets=FAST, runs_dir=tmp_path)
    with pytest.raises(HarnessError, match=r"10000 prompts available"):
        run(task="kk", method="rl", budget="1m", sets=FAST + ["rl.init=base"], runs_dir=tmp_path)


def test_bad_method_and_teacher(tmp_path):
    with pytest.raises(HarnessError, match="did you mean 'redistill'"):
        run(task="kk", method="redistil", budget="1k", runs_dir=tmp_path)
    with pytest.raises(HarnessError, match="has no 'medium' traces"):
        run(task="kk", method="sft", budget="16", teacher="traces:medium", sets=FAST, runs_dir=tmp_path)


def _letters_task(folder: Path) -> Path:
    """A user task whose verifier (regex, the last 'a' or 'b') gives an untrained model a mix of verdicts."""
    rows = [{"question": f"Question {i}: say a letter, a or b.", "answer": "a", "trace": "a"} for i in range(80)]
    (folder / "letters.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "letters.yaml").write_text(
        yaml.safe_dump(
            {
                "description": "Say the letter a.",
                "source": {"file": {"path": "letters.jsonl"}},
                "splits": {
                    "sft": {"from": "all", "size": 20},
                    "rl": {"from": "all", "start": 20, "size": 50},
                    "test": {"from": "all", "start": 70, "size": 10},
                },
                "prompt": {"template": "{question}"},
                "traces": {"short": "trace"},
                "verifier": {"name": "regex", "params": {"pattern": "([ab])"}},
                "generation": {"max_new_tokens": 8},
            }
        )
    )
    # `from: all` names the file's only split; the file path does not depend on it.
    return folder


def test_redistill_keeps_verified_one_per_prompt_and_trains_the_base(tmp_path):
    tasks = _letters_task(tmp_path)
    sets = FAST + [
        "rl.init=base",
        "rl.budget=8",
        "rl.prompts_per_step=4",
        "rl.num_generations=4",
        "rl.steps=1",
        "rl.max_completion_length=8",
        "rl.learning_rate=1.0e-3",
        "redistill.samples_per_prompt=4",
        "redistill.temperature=1.0",
        "redistill.max_new_tokens=64",
    ]
    path, rec = run(
        task="letters", method="redistill", budget="4", sets=sets, runs_dir=tmp_path / "runs", tasks_dirs=[tasks]
    )
    assert [s["stage"] for s in rec["stages"]] == ["rl", "sample", "sft"]
    sft_cfg = json.loads((Path(rec["stages"][2]["model_path"]).parent / "stage.json").read_text())["config"]
    assert sft_cfg["init"].startswith("tiny:tiny-scratch-letters-")  # the student is the base model, not the RL policy
    assert sft_cfg["n"] == 4
    kept = [json.loads(x) for x in (path / "redistill.jsonl").read_text().splitlines()]
    verifier = get_verifier("regex", {"pattern": "([ab])"})
    assert len(kept) >= 4
    assert all(verifier(r["completion"], r["answer"]).score == 1.0 for r in kept)
    assert len({r["id"] for r in kept}) == len(kept)  # one per prompt
    trained = [
        json.loads(x)
        for x in (Path(rec["stages"][2]["model_path"]).parent / "train_data.jsonl").read_text().splitlines()
    ]
    assert trained == kept[:4]
    assert rec["counts"]["rollouts_generated"] > 0 and rec["counts"]["training_examples"] == 4


def test_killed_run_resumes_from_its_checkpoint(tiny_kk, tmp_path):
    STEPS = 40
    args = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--task",
        "kk",
        "--method",
        "sft",
        "--budget",
        "32",
        "--runs-dir",
        str(tmp_path),
    ]
    # Enough steps that the run cannot finish in the moment between the first checkpoint and the kill.
    for s in [
        f"sft.max_steps={STEPS}",
        "sft.save_steps=2",
        "sft.batch_size=4",
        "eval.limit=2",
        "eval.max_new_tokens=8",
    ]:
        args += ["--set", s]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    ckpt = None
    while time.time() < deadline and ckpt is None:
        found = list((tmp_path / "_stages").glob("sft-*/checkpoint-*")) if (tmp_path / "_stages").is_dir() else []
        ckpt = next((c for c in found if (c / "trainer_state.json").is_file()), None)
        time.sleep(0.2)
    assert ckpt is not None, "no checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stage = ckpt.parent
    assert not (stage / "stage.json").exists() and not list(tmp_path.glob("2*"))  # nothing read as complete
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    info = json.loads((stage / "stage.json").read_text())
    assert info["resumed_from"] is not None and info["resumed_from"].startswith("checkpoint-")
    assert info["counts"]["optimizer_steps"] == STEPS
    records = [p for p in tmp_path.iterdir() if (p / "record.json").is_file()]
    assert len(records) == 1


def test_base_takes_no_budget_and_teacher_model_only_for_sft(tmp_path):
    with pytest.raises(HarnessError, match="does not apply to method 'base'"):
        run(task="kk", method="base", budget="1k", runs_dir=tmp_path)
    with pytest.raises(HarnessError, match="--teacher-model applies to --method sft"):
        run(task="kk", method="rl", budget="16", teacher_model="x", runs_dir=tmp_path)
