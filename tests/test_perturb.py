"""Perturbed K&K puzzles (harness/perturb.py) and LiMem: unique solutions, the change each kind promises, determinism,
recomputed traces, LiMem's arithmetic, and the CLI's `--perturb`."""

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.engines import Generation
from harness.errors import HarnessError
from harness.generators.kk import LETTERS, _answer, generate, puzzle_key, solutions
from harness.perturb import (
    KINDS,
    _claims,
    _leaves,
    _relabel,
    _templates,
    limem,
    limem_config,
    perturb,
    perturb_split,
    question_text,
    run_limem,
    training_refs,
)
from harness.tasks import get_task

runner = CliRunner()
TERSE = dict(seed=1, split="sft", people=[2, 3], names="letters", style="terse")  # the tiny recipe's puzzles
PROSE = dict(seed=3, split="test", people=[4, 8])  # the paper's
SAMPLES = [generate(index=i, **TERSE) for i in range(30)] + [generate(index=i, **PROSE) for i in range(15)]


def _perturbed(kind):
    """(original, perturbed) for every sample that admits the kind (leaf: not every 2-person puzzle does)."""
    out = []
    for s in SAMPLES:
        try:
            out.append((s, perturb(s, kind, seed=0)))
        except ValueError:
            assert kind == "leaf"
    assert len(out) >= 0.7 * len(SAMPLES)
    return out


def _atoms(tree):
    return [leaf for _, leaf in _leaves(tree)]


def _shape(tree):
    return "leaf" if tree[0] in ("knight", "knave") else [tree[0], *(_shape(t) for t in tree[1:])]


def test_the_generator_layout_is_reproduced():
    """perturb re-renders quizzes itself: the original statements, names and templates give the original text back."""
    for s in SAMPLES:
        m = s["metadata"]
        claims = _claims(m["statements"], m["names"], m["style"])
        templates = _templates(s, claims, m["names"]) if m["style"] == "prose" else [0] * len(claims)
        assert question_text(m["statements"], claims, m["names"], m["style"], templates) == s["question"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_a_new_unique_puzzle_with_recomputed_answer_traces_and_metadata(kind):
    for s, p in _perturbed(kind):
        m, n = p["metadata"], s["level"]
        assert solutions(m["statements"], n) == [m["solution"]]  # unique
        assert p["answer"] == _answer(m["names"], m["solution"]) and p["level"] == n
        assert m["key"] == puzzle_key(m["statements"]) and m["original_key"] == s["metadata"]["key"]
        assert m["perturbation"] == kind and m["style"] == s["metadata"]["style"]
        # the question is written in the sample's own style, with the new claims
        claims = _claims(m["statements"], m["names"], m["style"])
        for name, claim in zip(m["names"], claims):
            if m["style"] == "terse":
                assert f"{name}: {claim}." in p["question"]
            else:
                assert claim in p["question"] or claim[:1].upper() + claim[1:] in p["question"]
        # the explicit trace's last step has every role of the new solution, every check ok, and boxes the answer
        trace = p["traces"]["explicit"]
        assert trace.endswith(f"\\boxed{{{p['answer']}}}.")
        roles = " ".join(f"{x} {'knight' if k else 'knave'}" for x, k in zip(m["names"], m["solution"]))
        last = trace.rsplit(" The final answer", 1)[0].rsplit(f"{roles}: ", 1)[1]
        assert "contradiction" not in last
        assert set(p["traces"]) >= {"short", "compact", "explicit", "long"}
        assert all(p["answer"] in t for t in p["traces"].values())


def test_leaf_changes_exactly_one_leaf_and_the_solution():
    for s, p in _perturbed("leaf"):
        old, new = s["metadata"]["statements"], p["metadata"]["statements"]
        assert [_shape(t) for t in old] == [_shape(t) for t in new]
        diffs = [(a, b) for t, u in zip(old, new) for a, b in zip(_atoms(t), _atoms(u)) if a != b]
        assert len(diffs) == 1
        assert p["metadata"]["solution"] != s["metadata"]["solution"]  # a memorised answer is wrong (Xie et al.)
    flips = [p["metadata"]["changed"]["flip"] for _, p in _perturbed("leaf")]
    assert sum(flips) > len(flips) / 2  # a knight<->knave flip when one works


def test_role_flips_exactly_one_person():
    for s, p in _perturbed("role"):
        a, b = s["metadata"]["solution"], p["metadata"]["solution"]
        assert sum(x != y for x, y in zip(a, b)) == 1
        assert b[p["metadata"]["flipped"]] != a[p["metadata"]["flipped"]]
        assert p["metadata"]["names"] == s["metadata"]["names"]


def test_reorder_is_the_same_puzzle_under_the_renaming():
    for s, p in _perturbed("reorder"):
        order, m0, m1 = p["metadata"]["order"], s["metadata"], p["metadata"]
        assert sorted(order) == list(range(len(order))) and order != sorted(order)
        inverse = {old: new for new, old in enumerate(order)}
        relabelled = [json.dumps(_relabel(t, inverse)) for t in m0["statements"]]
        assert Counter(relabelled) == Counter(json.dumps(t) for t in m1["statements"])
        assert m1["solution"] == [m0["solution"][old] for old in order]
        if m0["style"] == "terse":  # letters stay positional: the first line is still A's
            assert m1["names"] == m0["names"] == list(LETTERS[: len(order)])
        else:  # each line keeps its speaker
            assert m1["names"] == [m0["names"][old] for old in order]
        assert p["question"] != s["question"]


def test_rename_keeps_the_statements_with_other_names():
    for s, p in _perturbed("rename"):
        m0, m1 = s["metadata"], p["metadata"]
        assert m1["statements"] == m0["statements"] and m1["solution"] == m0["solution"]
        assert m1["key"] == m0["key"]  # the key is the statements'
        assert not set(m1["names"]) & set(m0["names"]) and len(set(m1["names"])) == len(m1["names"])
        if m0["style"] == "terse":
            assert m1["names"] == sorted(m1["names"]) and all(len(x) == 1 for x in m1["names"])


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_given_sample_kind_and_seed(kind):
    for s in SAMPLES[:8] + SAMPLES[-4:]:
        try:
            first = perturb(s, kind, seed=0)
        except ValueError:
            continue
        assert perturb(json.loads(json.dumps(s)), kind, seed=0) == first
    others = []
    for s in SAMPLES[-6:]:
        others.append(perturb(s, kind, seed=0)["question"] != perturb(s, kind, seed=1)["question"])
    assert any(others)


def test_unknown_kind_and_non_kk_are_one_clear_error():
    with pytest.raises(HarnessError, match="valid kinds: leaf, role, reorder, rename"):
        perturb(SAMPLES[0], "flip")
    with pytest.raises(HarnessError, match="Knights & Knaves"):
        perturb_split(get_task("countdown"), "test", "leaf", limit=2)


def test_perturbed_split_ids_and_metadata():
    rows, skipped = perturb_split(get_task("kk"), "test", "role", limit=4)
    assert not skipped and [r["id"] for r in rows] == [f"kk/test/{i}~role" for i in range(4)]
    assert all(r["metadata"]["original_id"] == f"kk/test/{i}" for i, r in enumerate(rows))
    rows, _ = perturb_split(get_task("kk"), "test", "rename", seed=2, limit=1)
    assert rows[0]["id"] == "kk/test/0~rename.2"


def test_limem_arithmetic():
    # 5 training puzzles: 3 solved originally, of which 1 still after perturbation (one more solved only perturbed)
    m = limem([1, 1, 1, 0, 0], [1, 0, 0, 0, 1])
    assert m["limem_accuracy"] == pytest.approx(0.6) and m["limem_consistency"] == pytest.approx(1 / 3)
    assert m["limem"] == pytest.approx(0.6 * (1 - 1 / 3)) and m["limem_n"] == 5
    assert limem([1, 1], [1, 1])["limem"] == 0.0  # solves the perturbed ones too: reasoning, no memorisation
    assert limem([1, 1], [0, 0])["limem"] == 1.0  # solves only what it saw: pure memorisation
    none = limem([0, 0], [1, 0])
    assert none["limem"] == 0.0 and none["limem_consistency"] is None


def test_limem_config_defaults_and_errors():
    kk, cd = get_task("kk"), get_task("countdown")
    assert limem_config(kk, {}, trained=True) == {"kind": "leaf", "n": 200, "seed": 0}
    assert limem_config(kk, {}, trained=False) is None  # base: off unless asked
    assert limem_config(kk, {"eval": {"limem": {"n": 50}}}, trained=False)["n"] == 50
    assert limem_config(kk, {"eval": {"limit": 2}}, trained=True)["n"] == 2  # cheap settings stay cheap
    assert limem_config(kk, {"eval": {"limem": False}}, trained=True) is None
    assert limem_config(cd, {}, trained=True) is None
    with pytest.raises(HarnessError, match="applies to K&K"):
        limem_config(cd, {"eval": {"limem": {"kind": "leaf"}}}, trained=True)
    with pytest.raises(HarnessError, match="valid kinds"):
        limem_config(kk, {"eval": {"limem": {"kind": "nope"}}}, trained=True)


def test_training_refs_follow_the_stage_that_made_the_model(tmp_path):
    spec = get_task("kk")
    d = tmp_path / "_stages" / "sft-abc"
    d.mkdir(parents=True)
    (d / "train_data.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ("kk/rl/7", "kk/sft/3", "x")))
    stages = [
        {"stage": "rl", "key": "r", "model_path": "/m/rl", "config": {"budget": 3}},
        {"stage": "sft", "key": "abc", "model_path": "/m/sft", "config": {}},
    ]
    assert training_refs(spec, stages, "/m/sft", tmp_path) == ([("rl", 7), ("sft", 3)], "sft data")
    assert training_refs(spec, stages, "/m/rl", tmp_path) == ([("rl", 0), ("rl", 1), ("rl", 2)], "rl prompts")
    refs, source = training_refs(spec, [], "/base", tmp_path)
    assert refs[:2] == [("sft", 0), ("sft", 1)] and "untrained" in source


def _cast(question):
    """The quiz up to its cast ("... You meet 3 inhabitants: Emma, Liam and Noah"): what a role flip leaves alone."""
    return question[: question.index(".", question.index("You meet"))]


class _Memoriser:
    """Answers every puzzle it was 'trained' on with the trained answer, whatever the statements now say."""

    name = "fake"

    def __init__(self, known):
        self.known = known  # cast -> answer

    def generate(self, prompts, params, on_batch=None):
        out = []
        for p in prompts:
            answer = self.known.get(_cast(p[-1]["content"] if isinstance(p, list) else p), "none")
            out.append([Generation(text=f"\\boxed{{{answer}}}", n_tokens=3, truncated=False)])
        if on_batch:
            on_batch(list(range(len(out))), out)
        return out


def test_run_limem_flags_a_memoriser():
    from harness.data import load_split

    spec = get_task("kk")  # prose, first names: a role flip keeps the cast
    engine = _Memoriser({_cast(s["question"]): s["answer"] for s in load_split(spec, "sft", limit=6)})
    m = run_limem(spec, engine, [("sft", i) for i in range(6)], {"kind": "role", "n": 4, "seed": 0})
    assert m["limem_n"] == 4 and m["limem_accuracy"] == 1.0 and m["limem_consistency"] == 0.0 and m["limem"] == 1.0
    assert m["limem_kind"] == "role"


def test_cli_perturb(tmp_path):
    out = tmp_path / "p.jsonl"
    r = runner.invoke(app, ["data", "export", "--task", "kk", "--limit", "3", "--perturb", "leaf", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows and all(x["id"].endswith("~leaf") and x["metadata"]["perturbation"] == "leaf" for x in rows)
    assert all(x["prompt"].startswith(x["question"]) for x in rows)
    for args in (
        ["data", "export", "--task", "kk", "--perturb", "flip", "--out", str(out)],
        ["eval", "--task", "kk", "--perturb", "flip", "--limit", "1"],
        ["data", "export", "--task", "countdown", "--perturb", "leaf", "--out", str(out)],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "leaf, role, reorder, rename" in r.output and "Traceback" not in r.output


def test_eval_on_a_perturbed_split_and_limem_in_a_run_record(tiny_kk, tmp_path):
    from harness.run import run
    from harness.run_eval import run_eval

    path, m = run_eval(task="kk", model="tiny", limit=3, max_new_tokens=8, runs_dir=tmp_path, perturb="reorder")
    rec = json.loads((path / "record.json").read_text())
    assert rec["config"]["perturb"] == "reorder" and m["perturbation"] == "reorder" and m["n"] == 3
    rows = [json.loads(x) for x in (path / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"kk/test/{i}~reorder" for i in range(3)]
    assert all(r["perturbation"]["original_id"] == f"kk/test/{i}" for i, r in enumerate(rows))

    fast = ["sft.max_steps=2", "sft.batch_size=4", "eval.limit=2", "eval.max_new_tokens=8", "eval.dtype=float32"]
    _, rec = run(task="kk", method="sft", budget="16", sets=fast, runs_dir=tmp_path)
    m = rec["metrics"]
    assert m["limem_kind"] == "leaf" and m["limem_n"] == 2 and m["limem_source"] == "sft data"  # capped by eval.limit
    assert m["limem"] == pytest.approx(m["limem_accuracy"] * (1 - (m["limem_consistency"] or 0)))
    _, rec = run(task="kk", method="sft", budget="16", sets=fast + ["eval.limem=false"], runs_dir=tmp_path)
    assert "limem" not in rec["metrics"]
