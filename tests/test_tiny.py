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
    for phrase in ("contradiction", "back to", "final answer", "Let's think", ", ok"):
        assert phrase not in text
    kinds = {k for k, _ in docs}
    assert kinds == {"drill", "copy", "solved"}


def _leaf(words: list[str], roles: dict[str, bool]) -> bool:
    """`B knave`, `C not knight`: an independent reading of a terse leaf."""
    who, *rest = words
    truth = roles[who] == (rest[-1] == "knight")
    return not truth if rest[0] == "not" else truth


def test_drill_values_are_right():
    # Depth-2 claims: a leaf, or two leaves joined by and / or / iff, or `if L then L`; re-evaluated independently.
    from harness.generators import seeded_rng

    ops = {"and": lambda a, b: a and b, "or": lambda a, b: a or b, "iff": lambda a, b: a == b}
    for i in range(300):
        line = tiny.drill(seeded_rng("t", i), 4)
        roles_text, rest = line.rstrip(".").split(": ", 1)
        words = roles_text.split()
        roles = dict(zip(words[::2], (w == "knight" for w in words[1::2])))
        parts = rest.split(" = ")
        claim, value = parts[0].split(), parts[-1]
        if claim[0] == "if":
            k = claim.index("then")
            a, b = _leaf(claim[1:k], roles), _leaf(claim[k + 1:], roles)
            want, leaves = (not a) or b, [a, b]
        else:
            op = next((w for w in claim if w in ops), None)
            if op is None:
                want = _leaf(claim, roles)
                leaves = [want]
            else:
                k = claim.index(op)
                a, b = _leaf(claim[:k], roles), _leaf(claim[k + 1:], roles)
                want, leaves = ops[op](a, b), [a, b]
        assert value == ("T" if want else "F"), line
        if len(parts) == 3:  # the shape line carries each leaf's value in order
            assert [w for w in parts[1].split() if w in ("T", "F")] == ["T" if x else "F" for x in leaves], line


def test_committed_checkpoint_matches_card_and_build():
    folder = tiny.folder()
    assert folder.is_dir(), "run `harness tiny build` and commit harness/assets"
    card = json.loads((folder / "harness_tiny.json").read_text())
    assert card["build_hash"] == tiny.build_hash() and card["build"] == json.loads(json.dumps(tiny.BUILD))
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == card["sha256"]
    assert (folder / "model.safetensors").stat().st_size <= 8 * 2 ** 20
    assert card["final_loss"] < card["first_loss"]


def test_tiny_names_resolve():
    kk_task = get_task("kk")
    assert models.resolve("tiny", kk_task) == str(tiny.folder())
    scratch = models.resolve("tiny-scratch", kk_task)
    assert scratch != str(tiny.folder()) and "tiny-scratch-kk-" in scratch
    assert models.resolve("tiny", get_task("countdown")) == str(models.build_tiny(get_task("countdown")))
    with pytest.raises(models.HarnessError):
        models.resolve("tiny")
