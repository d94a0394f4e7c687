"""The embedded pretrained tiny base: its corpus shares no puzzle with any split, its committed checkpoint matches
its model card and the build code, and `tiny` / `tiny-scratch` resolve to the right models."""

import hashlib
import json

import pytest

from harness import models, recipes, tiny
from harness.data import load_split
from harness.generators import kk
from harness.tasks import discover, get_task


def _kk_task_variants():
    """Every built-in K&K-generator task, as is and with each recipe's task overrides."""
    for tid in sorted(discover()):
        spec = get_task(tid)
        if not models.serves_pretrained(spec):
            continue
        yield spec
        for scale in ("tiny", "paper"):
            _, rec = recipes.resolve(tid, scale, None, [])
            if rec.get("task"):
                yield recipes.apply_task_overrides(spec, rec["task"])


def test_corpus_puzzles_are_reserved_and_in_no_split():
    keys = tiny.corpus_puzzle_keys(limit=3000)
    assert len(keys) > 500 and all(kk.reserved(k) for k in keys)
    seen = 0
    for spec in _kk_task_variants():
        for split in spec.splits:
            for s in load_split(spec, split, limit=300):
                assert not kk.reserved(s["metadata"]["key"])
                assert s["metadata"]["key"] not in keys
                seen += 1
    assert seen > 2000


def test_corpus_has_no_trace_or_task_prompt():
    docs = [t for _, t in zip(range(2000), tiny.corpus_docs())]
    text = "\n".join(t for _, t in docs)
    for phrase in ("contradiction", "back to", "final answer", "Let's think", ", ok", " ok", " no\n", " no |"):
        assert phrase not in text
    kinds = {k for k, _ in docs}
    assert kinds == {"drill", "read", "solved"}


def test_drill_values_are_right():
    # Depth-2 claims in grid words (a leaf, two leaves joined by and / or / iff, or `if L then L`), each leaf's value
    # appended; every leaf value and the claim's value re-evaluated independently from the roles.
    from harness.generators import seeded_rng

    ops = {"and": lambda a, b: a and b, "or": lambda a, b: a or b, "iff": lambda a, b: a == b}
    seen = set()
    for i in range(300):
        line = tiny.drill(seeded_rng("t", i), 4)
        roles_text, rest = line.split(" : ")
        roles = {w[0]: w[1] == "K" for w in roles_text.split()}
        *claim, value = rest.split()
        claim = [w for w in claim if w != "_"]
        leaves = []
        for w in claim:
            if w in ops or w in ("if", "then"):
                continue
            who, neg, kind, tf = w[0], w[1:-2] == "n", w[-2], w[-1]
            truth = (roles[who] == (kind == "k")) != neg
            assert tf == ("T" if truth else "F"), line
            leaves.append(truth)
        if claim[0] == "if":
            want = (not leaves[0]) or leaves[1]
        elif len(claim) == 3:
            want = ops[claim[1]](*leaves)
        else:
            want = leaves[0]
        seen.add(claim[0] if claim[0] == "if" else claim[1] if len(claim) == 3 else "leaf")
        assert value == ("T" if want else "F"), line
    assert seen == {"if", "and", "or", "iff", "leaf"}


def test_committed_checkpoint_matches_card_and_build():
    folder = tiny.folder()
    assert folder.is_dir(), "run `harness tiny build` and commit harness/assets"
    card = json.loads((folder / "harness_tiny.json").read_text())
    assert card["build_hash"] == tiny.build_hash() and card["build"] == json.loads(json.dumps(tiny.BUILD))
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == card["sha256"]
    assert (folder / "model.safetensors").stat().st_size <= 8 * 2**20
    assert card["final_loss"] < card["first_loss"]


def test_tiny_names_resolve():
    kk_task = get_task("kk")
    assert models.resolve("tiny", kk_task) == str(tiny.folder())
    scratch = models.resolve("tiny-scratch", kk_task)
    assert scratch != str(tiny.folder()) and "tiny-scratch-kk-" in scratch
    assert models.resolve("tiny", get_task("countdown")) == str(models.build_tiny(get_task("countdown")))
    with pytest.raises(models.HarnessError):
        models.resolve("tiny")
