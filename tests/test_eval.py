"""Evaluation on the embedded tiny model: records, metrics, determinism, and the pieces that feed them."""

import json

import pytest

from harness.engines import SamplingParams
from harness.evaluate import summarize
from harness.stats import pass_at_k, wilson


def test_tiny_model_is_a_real_cached_hf_model(tiny_kk):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models import build_tiny
    from harness.tasks import get_task

    assert (tiny_kk / "config.json").is_file() and (tiny_kk / "tokenizer.json").is_file()
    assert build_tiny(get_task("kk")) == tiny_kk  # reused, not rebuilt
    model = AutoModelForCausalLM.from_pretrained(tiny_kk)
    tok = AutoTokenizer.from_pretrained(tiny_kk)
    assert model.config.model_type == "qwen2"
    assert tok.decode(tok("Zoey is a knave \\boxed{x}").input_ids) == "Zoey is a knave \\boxed{x}"


def test_eval_writes_a_complete_record(tiny_kk, tmp_path):
    from harness.run_eval import run_eval

    path, metrics = run_eval(task="kk", model="tiny", limit=6, max_new_tokens=16, runs_dir=tmp_path)
    rec = json.loads((path / "record.json").read_text())
    rows = [json.loads(x) for x in (path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rec["metrics"]["n"] == 6
    assert rec["provenance"]["task_sha256"] and rec["provenance"]["verifier"]["name"] == "kk_boxed"
    assert "torch" in rec["provenance"]["packages"]
    assert set(rec["metrics"]["per_level"]) == {"4", "5", "6", "7", "8"}
    for r in rows:
        assert r["n_tokens"][0] <= 16 and r["verdicts"][0]["reason"]
    # A response is cut off exactly when it ran to the 16-token limit without an end token, and the rate counts them.
    cut = [r["truncated"][0] for r in rows]
    assert all(r["n_tokens"][0] == 16 for r, c in zip(rows, cut) if c)
    assert rec["metrics"]["truncation_rate"] == pytest.approx(sum(cut) / len(cut)) and any(cut)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    # Greedy generation is deterministic.
    _, again = run_eval(task="kk", model="tiny", limit=6, max_new_tokens=16, runs_dir=tmp_path)
    assert again["accuracy"] == metrics["accuracy"]
    assert json.loads((path / "samples.jsonl").read_text().splitlines()[0])["responses"] == rows[0]["responses"]


def test_sampling_k_reports_pass_at_k(tiny_kk, tmp_path):
    from harness.run_eval import run_eval

    _, m = run_eval(task="kk", model="tiny", limit=3, samples=4, temperature=1.0, max_new_tokens=8, runs_dir=tmp_path)
    assert set(m["pass_at_k"]) == {"1", "2", "4"}
    assert m["samples_per_problem"] == 4


def test_engine_batches_sorted_and_results_in_input_order(tiny_kk):
    from harness.engines import HFEngine

    eng = HFEngine.from_ref(str(tiny_kk), batch_size=2)
    prompts = ["short", "a much longer prompt than the others by far", "mid length one"]
    seen = []
    out = eng.generate(prompts, SamplingParams(max_new_tokens=4), on_batch=lambda idx, g: seen.append(idx))
    assert seen == [[1, 2], [0]]  # longest first
    single = [eng.generate([p], SamplingParams(max_new_tokens=4))[0][0].text for p in prompts]
    assert [o[0].text for o in out] == single  # left padding does not change greedy output


def test_summarize_per_level_and_truncation():
    rows = [
        {"scores": [1.0], "level": 3, "n_tokens": [10], "truncated": [False]},
        {"scores": [0.0], "level": 3, "n_tokens": [30], "truncated": [True]},
        {"scores": [1.0], "level": 4, "n_tokens": [20], "truncated": [False]},
    ]
    m = summarize(rows, 1)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["per_level"]["3"]["accuracy"] == 0.5 and m["per_level"]["4"]["n"] == 1
    assert m["truncation_rate"] == pytest.approx(1 / 3) and m["mean_response_tokens"] == 20
    assert m["ci95"] == list(wilson(2, 3))


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - (7 * 6 * 5 * 4 * 3) / (10 * 9 * 8 * 7 * 6))


def test_wilson_interval_bounds():
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
