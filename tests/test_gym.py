"""reasoning-gym datasets as tasks from YAML alone: splits, the reasoning_gym verifier, validation and the CLI."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("reasoning_gym")

from harness import gym  # noqa: E402
from harness.cli import app  # noqa: E402
from harness.data import load_split  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.evaluate import summarize  # noqa: E402
from harness.taskspec import load_file, validate_file  # noqa: E402
from harness.verifiers import Verdict, get_verifier  # noqa: E402
from harness.verifiers.gym import extract_tag  # noqa: E402

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "tasks"
runner = CliRunner()

KK = """
description: knights_knaves from reasoning-gym
source:
  reasoning_gym: {name: knights_knaves, config: {n_people: 3, depth_constraint: 2, width_constraint: 2}}
splits:
  sft:  {size: 40, seed: 1}
  rl:   {size: 40, seed: 2}
  test: {size: 20, seed: 3, params: {n_people: 4}}
prompt: {template: "{question}"}
verifier: {name: reasoning_gym}
"""

ARITH = """
description: basic_arithmetic from reasoning-gym
source:
  reasoning_gym: {name: basic_arithmetic, config: {min_terms: 2, max_terms: 3, min_digits: 1, max_digits: 1}}
splits:
  train: {size: 60, seed: 1}
  test:  {size: 30, seed: 2}
prompt: {template: "{question}"}
level_field: metadata.num_terms
verifier: {name: reasoning_gym, params: {max_answer_chars: 100}}
"""


def write(tmp_path, name, text):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


def fresh(spec, split, **kw):
    gym._STREAMS.clear()  # regenerate from reasoning-gym, not from the in-process cache
    return load_split(spec, split, **kw)


@pytest.fixture(params=["kk", "arith"])
def task(request, tmp_path):
    return load_file(write(tmp_path, f"rg_{request.param}", KK if request.param == "kk" else ARITH))


def test_splits_are_deterministic_disjoint_and_distinct(task):
    splits = {s: fresh(task, s) for s in task.splits}
    for name, rows in splits.items():
        assert len(rows) == task.splits[name].size
        assert rows == fresh(task, name)  # same YAML, same samples
        assert len({r["question"] for r in rows}) == len(rows)  # no repeat inside a split
        assert fresh(task, name, limit=7) == rows[:7] and fresh(task, name, limit=7, offset=3) == rows[3:7]
    qs = [{r["question"] for r in rows} for rows in splits.values()]
    for i in range(len(qs)):
        for j in range(i + 1, len(qs)):
            assert not qs[i] & qs[j]


def test_seeds_overlap_in_reasoning_gym_but_splits_stay_disjoint(tmp_path):
    """rg item j of seed s is Random(s + j): seeds 1 and 2 share all but one item. The buckets keep splits apart."""
    import reasoning_gym as rg

    cfg = dict(n_people=2, depth_constraint=2, width_constraint=2)
    a, b = (
        rg.create_dataset("knights_knaves", seed=1, size=5, **cfg),
        rg.create_dataset("knights_knaves", seed=2, size=5, **cfg),
    )
    assert a[1]["question"] == b[0]["question"]
    spec = load_file(
        write(tmp_path, "same", KK.replace("n_people: 3", "n_people: 2").replace(", params: {n_people: 4}", ""))
    )
    rows = {s: {r["question"] for r in fresh(spec, s)} for s in spec.splits}
    assert not rows["sft"] & rows["rl"] and not rows["rl"] & rows["test"] and not rows["sft"] & rows["test"]


def test_samples_carry_question_entry_metadata_and_level(tmp_path):
    kk = fresh(load_file(write(tmp_path, "kk", KK)), "test", limit=3)
    s = kk[0]
    assert s["id"] == "kk/test/0" and s["question"].startswith("A very special island")
    assert "4 inhabitants" in s["question"] and s["level"] == "n_people=4, depth_constraint=2, width_constraint=2"
    entry = json.loads(s["answer"])
    assert entry["rg"] == "knights_knaves" and entry["answer"] == s["oracle_answer"]
    assert entry["config"] == {"n_people": 4, "depth_constraint": 2, "width_constraint": 2}
    md = s["metadata"]
    assert md["source_dataset"] == "knights_knaves" and len(md["names"]) == 4
    json.dumps(md)  # JSON-safe: rg's tuples and numpy strings became lists and str
    assert isinstance(md["statements"][0], list)
    ar = fresh(load_file(write(tmp_path, "ar", ARITH)), "test")
    assert {r["level"] for r in ar} == {2, 3}  # level_field: metadata.num_terms (a dotted path)


def test_oracle_answer_in_tags_scores_one_through_the_harness_verifier(task):
    v = get_verifier(task.verifier.name, task.verifier.params)
    for s in fresh(task, "test"):
        resp = f"Let me work through it step by step. ... so I am done.\n<answer>{s['oracle_answer']}</answer>"
        verdict = v(resp, s["answer"])
        assert verdict == Verdict(1.0, s["oracle_answer"], "correct", partial=1.0), (resp, verdict)
        assert v(s["oracle_answer"], s["answer"]) == Verdict(0.0, None, "no_answer", partial=0.0)  # untagged


def test_wrong_answer_scores_zero_and_partial_credit_is_reported_separately(tmp_path):
    v = get_verifier("reasoning_gym")
    s = fresh(load_file(write(tmp_path, "kk", KK)), "test", limit=1)[0]
    terms = s["metadata"]["knight_knave_terms"]
    first = s["metadata"]["names"][0]
    truth = s["oracle_answer"]
    role = "knight" if f"{first} is {terms['a_knight']}" in truth else "knave"
    flipped = truth.replace(
        f"{first} is {terms['a_' + role]}", f"{first} is {terms['a_' + ('knave' if role == 'knight' else 'knight')]}"
    )
    assert flipped != truth
    wrong = v(f"<answer>{flipped}</answer>", s["answer"])
    assert wrong.score == 0.0 and wrong.reason == "partial"
    assert wrong.partial == pytest.approx(0.3 + 0.7 * 3 / 4)  # rg: 3 of 4 people right
    right = v(f"<answer>{truth}</answer>", s["answer"])
    rows = [
        {"scores": [x.score], "verdicts": [x.to_dict()], "level": None, "n_tokens": [5], "truncated": [False]}
        for x in (wrong, right)
    ]
    m = summarize(rows, 1)
    assert m["accuracy"] == 0.5 and m["partial_credit_mean"] == pytest.approx((0.825 + 1.0) / 2)
    assert "partial_credit_mean" not in summarize([{**rows[0], "verdicts": [{"score": 0.0}]}], 1)
    assert Verdict(0.0, None, "wrong").to_dict() == {"score": 0.0, "extracted": None, "reason": "wrong"}
    assert Verdict.from_dict(wrong.to_dict()) == wrong


def test_answer_format_pitfalls_from_the_docs(tmp_path):
    """Each pitfall that docs/reasoning_gym.md lists, as the verifier sees it."""
    v = get_verifier("reasoning_gym")
    kk = fresh(load_file(write(tmp_path, "kk", KK)), "test", limit=1)[0]
    truth, md = kk["oracle_answer"], kk["metadata"]
    names, terms = md["names"], md["knight_knave_terms"]
    wrong_vocab = (
        {"knight": "sage", "knave": "fool"}
        if terms["knight"] == "knight"
        else {terms["knight"]: "knight", terms["knave"]: "knave"}
    )
    other = truth
    for a, b in wrong_vocab.items():
        other = other.replace(f" {a}", f" {b}")
    assert v(f"<answer>{other}</answer>", kk["answer"]).score == 0.0  # the puzzle's own role words only
    role = {n: terms["knight"] if f"{n} is {terms['a_knight']}" in truth else terms["knave"] for n in names}
    colons = ", ".join(f"{n}: {r}" for n, r in role.items())
    assert v(f"<answer>{colons}</answer>", kk["answer"]).score == 0.0  # "Name: role" is not read
    assert v(f"<answer><answer>{truth}</answer>", kk["answer"]).score == 0.0  # a tag left inside sticks to a name
    # the last tag counts
    assert v(f"<answer>{truth}</answer>\nFormat: <answer>answer here</answer>", kk["answer"]).reason == "wrong"
    spec = load_file(write(tmp_path, "ar", ARITH))
    ar, v = fresh(spec, "test", limit=1)[0], get_verifier(spec.verifier.name, spec.verifier.params)
    n = ar["oracle_answer"]
    assert v(f"<answer>{n}</answer>", ar["answer"]).score == 1.0
    # basic_arithmetic compares strings, partly credits substrings
    for loose in (f"{n}.0", f"The answer is {n}", f"= {n}"):
        got = v(f"<answer>{loose}</answer>", ar["answer"])
        assert got.score == 0.0 and 0 < got.partial < 1, (loose, got)
    assert v(f"<answer>{'9' * 101}</answer>", ar["answer"]).reason == "too_long"  # max_answer_chars: 100


def test_extraction_matches_reasoning_gym_and_is_linear():
    from reasoning_gym.utils import extract_answer

    rnd = random.Random(0)
    parts = ["<answer>", "</answer>", "x", " ", "\n", "<answer", "answer>", "y y"]
    for _ in range(3000):
        text = "".join(rnd.choice(parts) for _ in range(rnd.randint(0, 10)))
        assert extract_tag(text) == extract_answer(text), text
    assert extract_tag("<think>a</think><think>b</think>", "think") == "b"
    import time

    t0 = time.perf_counter()
    assert extract_tag("<answer>" * 200_000) is None  # rg's regex is quadratic on this (minutes)
    assert time.perf_counter() - t0 < 1.0


def test_verifier_never_raises_on_responses_but_rejects_a_non_entry_answer(tmp_path):
    v = get_verifier("reasoning_gym")
    s = fresh(load_file(write(tmp_path, "kk", KK)), "test", limit=1)[0]
    for resp in ["", "<answer></answer>", "<answer>" + "(" * 5000 + "</answer>", "\x00<answer>\udcff</answer>"]:
        assert v(resp, s["answer"]).score == 0.0
    assert v(f"<answer>{s['oracle_answer']}</answer>", s["answer"], truncated=True).score == 1.0
    strict = get_verifier("reasoning_gym", {"require_eos": True})
    assert strict("<answer>x</answer>", s["answer"], truncated=True) == Verdict(0.0, None, "truncated", partial=0.0)
    with pytest.raises(HarnessError, match="is not a reasoning-gym entry"):
        v("<answer>x</answer>", s["oracle_answer"])
    with pytest.raises(HarnessError, match="unknown parameter 'tags'"):
        get_verifier("reasoning_gym", {"tags": "a"})


def test_grpo_reward_is_the_verifier_on_gym_entries(tmp_path):
    from backends._common import Counter
    from backends.grpo import make_reward

    v = get_verifier("reasoning_gym")
    rows = fresh(load_file(write(tmp_path, "kk", KK)), "test", limit=2)
    reward = make_reward(v, {0}, False, Counter(tmp_path))
    completions = [
        [{"role": "assistant", "content": f"hmm <answer>{rows[0]['oracle_answer']}</answer>"}],
        [{"role": "assistant", "content": f"<answer>{rows[0]['oracle_answer']}</answer>"}],
    ]
    assert reward(
        completions=completions, completion_ids=[[5, 0], [5, 0]], answer=[rows[0]["answer"], rows[1]["answer"]]
    ) == [1.0, 0.0]


# ----------------------------------------------------------------------------------------- validation and CLI
BAD = {
    "unknown_dataset": (
        KK.replace("knights_knaves", "knights_knave"),
        ["source.reasoning_gym.name: unknown reasoning-gym dataset 'knights_knave'; did you mean 'knights_knaves'?"],
    ),
    "bad_config_key": (
        KK.replace("n_people: 3", "n_peple: 3"),
        [
            ":4: source.reasoning_gym.config.n_peple: 'knights_knaves' has no config field 'n_peple'; "
            "did you mean 'n_people'? valid fields: n_people, depth_constraint, width_constraint"
        ],
    ),
    "bad_split_param": (
        KK.replace("params: {n_people: 4}", "params: {people: 4}"),
        [
            "splits.test.params.people: 'knights_knaves' has no config field 'people'",
            "valid fields: n_people, depth_constraint, width_constraint",
        ],
    ),
    "bad_value": (
        KK.replace("params: {n_people: 4}", "params: {n_people: 0}"),
        ["splits.test (config + params): reasoning-gym rejected knights_knaves config", "n_people"],
    ),
    "size_in_config": (
        KK.replace("n_people: 3,", "n_people: 3, size: 10,"),
        ["source.reasoning_gym.config.size: is set per split; write it as splits.<name>.size"],
    ),
    "no_size": (KK.replace("{size: 40, seed: 1}", "{seed: 1}"), ["reasoning_gym splits need a size: sft"]),
    "two_sources": (
        KK.replace("  reasoning_gym:", "  generator: {name: kk}\n  reasoning_gym:"),
        ["give exactly one of 'generator', 'file', 'hf' or 'reasoning_gym' (found: generator, reasoning_gym)"],
    ),
    "verifier_without_gym_source": (
        KK.replace(
            "reasoning_gym: {name: knights_knaves, config: {n_people: 3, depth_constraint: 2, width_constraint: 2}}",
            "generator: {name: kk}",
        ).replace(", params: {n_people: 4}", ""),
        ["verifier: 'reasoning_gym' scores reasoning-gym entries; use it with source.reasoning_gym"],
    ),
    "other_verifier": (
        KK.replace("name: reasoning_gym}", "name: exact}"),
        [
            "verifier: 'exact' would read the rg entry (JSON) in 'answer'; use verifier reasoning_gym, "
            "or set answer_field: oracle_answer"
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_names_the_problem_and_the_fix(tmp_path, case):
    text, needles = BAD[case]
    path = write(tmp_path, case, text)
    r = runner.invoke(app, ["tasks", "validate", str(path)])
    assert r.exit_code == 2, r.output
    flat = " ".join(r.output.split())
    for needle in needles:
        assert needle in flat, (needle, r.output)
    assert "Traceback" not in r.output


def test_validate_good_files_and_shipped_examples(tmp_path):
    paths = [write(tmp_path, "kk", KK), write(tmp_path, "ar", ARITH), EXAMPLES]
    r = runner.invoke(app, ["tasks", "validate", *map(str, paths)])
    assert r.exit_code == 0, r.output
    assert r.output.count(": ok") == 4
    ok = KK.replace("name: reasoning_gym}", "name: exact}") + "answer_field: oracle_answer\n"
    assert validate_file(write(tmp_path, "exact", ok))[1] == []


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    _, errors = validate_file(write(tmp_path, "kk", KK))
    assert errors and "pip install -e '.[gym]'" in errors[0]


def test_validation_imports_no_torch():
    code = (
        "import sys; from harness.taskspec import validate_file;"
        f"assert validate_file({str(EXAMPLES / 'rg_knights_knaves.yaml')!r})[1] == [];"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_export_then_score_round_trip(tmp_path):
    task = str(write(tmp_path, "ar", ARITH))
    out = tmp_path / "test.jsonl"
    r = runner.invoke(app, ["data", "export", "--task", task, "--split", "test", "--limit", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    responses = tmp_path / "responses.jsonl"
    responses.write_text(
        "".join(
            json.dumps(
                {
                    "id": x["id"],
                    "answer": x["answer"],
                    "response": f"<answer>{x['oracle_answer'] if i % 2 else 'no'}</answer>",
                }
            )
            + "\n"
            for i, x in enumerate(rows)
        )
    )
    verdicts = tmp_path / "verdicts.jsonl"
    r = runner.invoke(app, ["score", "--task", task, "--input", str(responses), "--output", str(verdicts)])
    assert r.exit_code == 0 and "accuracy 0.500" in r.output, r.output
    assert [json.loads(x)["partial"] for x in verdicts.read_text().splitlines()] == [0.0, 1.0, 0.0, 1.0]


def test_eval_cli_end_to_end_on_the_tiny_model(tmp_path):
    path = EXAMPLES / "rg_basic_arithmetic.yaml"
    r = runner.invoke(
        app,
        [
            "eval",
            "--task",
            str(path),
            "--model",
            "tiny",
            "--limit",
            "5",
            "--max-new-tokens",
            "8",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    (record_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    record = json.loads((record_dir / "record.json").read_text())
    m = record["metrics"]
    assert m["n"] == 5 and 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["partial_credit_mean"] <= 1.0
    assert record["config"]["task"] == "rg_basic_arithmetic"
    lines = (record_dir / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all("partial" in json.loads(x)["verdicts"][0] for x in lines)
