"""lm-evaluation-harness: an exported task runs in lm-eval and agrees with `harness eval` sample by sample."""

import importlib.util
import json
import shutil

import pytest
from typer.testing import CliRunner

pytest.importorskip("lm_eval")

N, TOKENS = 12, 24
SYSTEM_TASK = """\
description: K&K with a system prompt and a stop string (tests the export of both).
source: {generator: {name: kk, params: {depth: 2, width: 2}}}
splits: {test: {size: 50, seed: 3, params: {people: [4, 8]}}}
prompt:
  chat: true
  system: "You are a careful logician. Answer in {braces} if asked."
  template: "{question}\\nGive the final answer as \\\\boxed{{...}}."
verifier: {name: kk_boxed}
generation: {max_new_tokens: 1024, temperature: 0.0, stop: ["o", "a", "\\n\\n"]}
"""


def _rows(path):
    return [json.loads(x) for x in (path / "samples.jsonl").read_text().splitlines()]


def _utils(folder):
    spec = importlib.util.spec_from_file_location(f"lmeval_utils_{abs(hash(str(folder)))}", folder / "utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def exported(tiny_kk, tmp_path_factory):
    from harness.cli import app
    from harness.lmeval import export_task
    from harness.tasks import get_task

    tasks_dir = tmp_path_factory.mktemp("user_tasks")
    (tasks_dir / "kk_sys.yaml").write_text(SYSTEM_TASK)
    (tasks_dir / "kk_raw.yaml").write_text(SYSTEM_TASK.replace("chat: true", "chat: false"))
    out = tmp_path_factory.mktemp("lmeval_tasks")
    r = CliRunner().invoke(
        app, ["tasks", "export-lm-eval", "kk", "--out", str(out), "--limit", str(N), "--max-new-tokens", str(TOKENS)]
    )
    assert r.exit_code == 0 and "--include_path" in r.output, r.output
    for tid in ("kk_sys", "kk_raw"):
        export_task(get_task(tid, [tasks_dir]), out, split="test", limit=N, max_new_tokens=TOKENS)
    return out, tasks_dir


def test_export_folder_is_self_contained(exported, tmp_path, monkeypatch):
    out, _ = exported
    assert {p.name for p in out.iterdir()} >= {
        "harness_kk.yaml",
        "harness_kk_sys.yaml",
        "utils.py",
        "harness_export.json",
        "harness_kk_test.jsonl",
        "harness_kk_sys_test.jsonl",
    }
    text = (out / "harness_kk.yaml").read_text()
    assert "custom_dataset: !function utils.load_docs" in text and "max_gen_toks: 24" in text
    assert "description: system" in (out / "harness_kk_sys.yaml").read_text()
    assert "description" not in (out / "harness_kk_raw.yaml").read_text()  # raw prompts never get the system text
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    monkeypatch.chdir(tmp_path)  # the data path is relative to utils.py, not the CWD
    docs = _utils(moved).load_docs(harness_task="harness_kk_sys")["test"]
    assert len(docs) == N and docs[0]["system"].startswith("You are a careful logician")


def test_exported_scoring_is_the_harness_verifier(exported):
    from harness.tasks import get_task
    from harness.verifiers import get_verifier

    out, _ = exported
    utils = _utils(out)
    spec = get_task("kk")
    verifier = get_verifier(spec.verifier.name, spec.verifier.params)
    docs = [json.loads(x) for x in (out / "harness_kk_test.jsonl").read_text().splitlines()]
    seen = set()
    for doc in docs:
        wrong = doc["answer"].replace("knight", "kn_ght").replace("knave", "knight").replace("kn_ght", "knave")
        for response in (f"So \\boxed{{{doc['answer']}}}", f"\\boxed{{{wrong}}}", "no answer"):
            got = utils.process_results(doc, [response])
            want = verifier(response, doc["answer"]).to_dict()
            assert got == {"acc": want["score"], "reason": want["reason"], "extracted": want["extracted"]}
            seen.add(got["reason"])
    assert seen == {"correct", "wrong", "no_box"}


@pytest.mark.slow  # 90-140 s wall on the shared 2-core machine (load 10-14); about 40 s of CPU time with the fixture
def test_lm_eval_and_harness_eval_agree_per_sample(tiny_kk, exported, tmp_path):
    """Greedy, same puzzles, same model: identical prompts, response texts and verdicts through both paths
    (a chat task, a chat task with a system prompt and stop strings, and a raw task)."""
    from transformers import AutoTokenizer

    from harness.engines import prompt_text
    from harness.lmeval import run_lm_eval
    from harness.run_eval import run_eval

    out, tasks_dir = exported
    lm_path, lm_metrics = run_lm_eval(
        tasks="harness_kk,harness_kk_sys", model=str(tiny_kk), include_paths=[out], batch_size=16, runs_dir=tmp_path
    )
    record = json.loads((lm_path / "record.json").read_text())
    assert record["config"]["engine"] == "lm-eval" and record["config"]["apply_chat_template"] is True
    assert (
        record["lm_eval"]["versions"] == {"harness_kk": 1.0, "harness_kk_sys": 1.0}
        and record["provenance"]["packages"]["lm_eval"]
    )
    raw_path, raw_metrics = run_lm_eval(
        tasks="harness_kk_raw", model=str(tiny_kk), include_paths=[out], batch_size=16, runs_dir=tmp_path
    )
    assert json.loads((raw_path / "record.json").read_text())["config"]["apply_chat_template"] is False
    lm_metrics["lm_eval"].update(raw_metrics["lm_eval"])
    lm_rows = {(r["lm_eval_task"], r["doc"]["id"]): r for r in _rows(lm_path) + _rows(raw_path)}
    tok = AutoTokenizer.from_pretrained(tiny_kk)
    cut = 0
    for tid in ("kk", "kk_sys", "kk_raw"):
        h_path, h_metrics = run_eval(
            task=tid,
            model=str(tiny_kk),
            limit=N,
            max_new_tokens=TOKENS,
            batch_size=16,
            engine="transformers",
            runs_dir=tmp_path,
            tasks_dirs=[tasks_dir],
        )
        h_rows = _rows(h_path)
        assert len(h_rows) == N and (
            {(t, i) for t, i in lm_rows if t == "harness_" + tid} == {("harness_" + tid, r["id"]) for r in h_rows}
        )
        for h in h_rows:
            lm = lm_rows[("harness_" + tid, h["id"])]
            assert lm["arguments"][0][0] == prompt_text(tok, h["prompt"])  # the exact text the model saw
            assert lm["filtered_resps"][0] == h["responses"][0]
            assert (lm["acc"], lm["reason"], lm["extracted"]) == tuple(
                h["verdicts"][0][k] for k in ("score", "reason", "extracted")
            )
            cut += tid != "kk" and not h["truncated"][0]  # ended at a stop string, not the length limit
        assert lm_metrics["lm_eval"]["harness_" + tid]["acc,none"] == h_metrics["accuracy"]
    assert (
        "<|im_start|>system\nYou are a careful logician"
        in lm_rows[("harness_kk_sys", "kk_sys/test/0")]["arguments"][0][0]
    )
    assert lm_rows[("harness_kk_raw", "kk_raw/test/0")]["arguments"][0][0].startswith("A very special island")
    assert cut > 0  # the stop string was exercised


def test_lm_eval_unreachable_dataset_is_one_clear_error(tiny_kk, tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    from harness.cli import app

    # Fail at once instead of after the hub client's retries; the error is the one an unreachable hub gives.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    (tmp_path / "gsm_hub.yaml").write_text(
        "task: gsm_hub\ndataset_path: openai/gsm8k\ndataset_name: main\ntest_split: test\noutput_type: generate_until\n"
        "doc_to_text: '{{question}}'\ndoc_to_target: '{{answer}}'\nmetric_list: [{metric: exact_match}]\n"
    )
    runner = CliRunner()
    base = ["eval", "--engine", "lm-eval", "--model", str(tiny_kk), "--lm-eval-include-path", str(tmp_path)]
    r = runner.invoke(app, base + ["--lm-eval-tasks", "gsm_hub"])
    assert r.exit_code == 2, r.output
    assert "could not load the data of gsm_hub" in r.output and "--lm-eval-include-path" in r.output
    r = runner.invoke(app, ["eval", "--lm-eval-tasks", "gsm_hub"])
    assert r.exit_code == 2 and "--engine lm-eval" in r.output


def test_chat_and_raw_exports_do_not_share_a_run(tiny_kk, exported):
    from harness.cli import app

    out, _ = exported
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--engine",
            "lm-eval",
            "--model",
            str(tiny_kk),
            "--lm-eval-include-path",
            str(out),
            "--lm-eval-tasks",
            "harness_kk,harness_kk_raw",
        ],
    )
    assert r.exit_code == 2 and "harness_kk_raw" in r.output and "separate runs" in r.output


def test_export_reads_graded_keys_from_the_verifier_class_without_scoring(tmp_path, monkeypatch):
    from harness.lmeval import export_task
    from harness.tasks import get_task
    from harness.verifiers import BaseVerifier, get_verifier

    def boom(*a, **k):
        raise AssertionError("export_task must not run the verifier")

    monkeypatch.setattr(BaseVerifier, "__call__", boom)
    entry = export_task(get_task("kk"), tmp_path, split="test", limit=2)
    assert entry["graded"] == []
    assert (get_verifier("boxed_math").GRADED, get_verifier("reasoning_gym").GRADED) == (("lenient",), ("partial",))
