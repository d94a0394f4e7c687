"""Knights & Knaves generator: determinism, level balance, uniqueness checked by an independent
brute-force solver, answer/trace formats, and partition disjointness."""

from __future__ import annotations

import itertools
import re
from collections import Counter

import pytest

from harness.generators import kk

HEADER = "Let's think step by step, by considering whether each person is lying and if that leads to contradiction."


def truth(tree, roles):
    # Written independently of kk.evaluate on purpose: the test must not trust the code under test.
    op, args = tree[0], tree[1:]
    if op in ("knight", "knave"):
        return roles[args[0]] == (op == "knight")
    values = [truth(t, roles) for t in args]
    return {
        "not": lambda: not values[0],
        "and": lambda: all(values),
        "or": lambda: any(values),
        "imply": lambda: values[1] or not values[0],
        "iff": lambda: values[0] is values[1],
    }[op]()


def brute_force(statements):
    n = len(statements)
    return [
        list(r)
        for r in itertools.product([True, False], repeat=n)
        if all(truth(s, r) == r[p] for p, s in enumerate(statements))
    ]


def depth_of(tree):
    return 1 if tree[0] in ("knight", "knave") else 1 + max(depth_of(t) for t in tree[1:])


def width_of(tree):
    return 0 if tree[0] in ("knight", "knave") else max([len(tree) - 1] + [width_of(t) for t in tree[1:]])


@pytest.fixture(scope="module")
def mixed():
    """40 puzzles per level 2..8."""
    return [kk.generate(seed=7, split="test", index=i, people=(2, 8)) for i in range(280)]


def test_deterministic_and_index_sensitive():
    a = kk.generate(seed=1, split="train", index=2, people=[3, 7])
    assert a == kk.generate(seed=1, split="train", index=2, people=(3, 7))
    b = kk.generate(seed=1, split="train", index=7, people=[3, 7])  # same level (5 people)
    assert a["level"] == b["level"] == 5
    assert a["metadata"]["key"] != b["metadata"]["key"] and a["question"] != b["question"]
    c = kk.generate(seed=2, split="train", index=2, people=[3, 7])
    assert c["metadata"]["key"] != a["metadata"]["key"]


def test_levels_balanced():
    levels = Counter(kk.generate(seed=0, split="test", index=i, people=(4, 8))["level"] for i in range(500))
    assert levels == {4: 100, 5: 100, 6: 100, 7: 100, 8: 100}


def test_unique_solution_matches_metadata(mixed):
    assert Counter(d["level"] for d in mixed) == {n: 40 for n in range(2, 9)}
    for d in mixed:
        meta = d["metadata"]
        n = meta["n_people"]
        assert d["level"] == n == len(meta["statements"]) == len(meta["names"]) == len(meta["solution"])
        sols = brute_force(meta["statements"])
        assert sols == [meta["solution"]], meta
        assert kk.solutions(meta["statements"], n) == sols
        assert all(kk.evaluate(s, meta["solution"]) == meta["solution"][p] for p, s in enumerate(meta["statements"]))
        for s in meta["statements"]:
            assert depth_of(s) <= meta["depth"] and width_of(s) <= max(2, meta["width"])


def test_deeper_and_wider_statements_still_unique():
    for i in range(40):
        meta = kk.generate(seed=3, split="x", index=i, people=(3, 6), depth=3, width=3)["metadata"]
        assert brute_force(meta["statements"]) == [meta["solution"]]
        assert all(depth_of(s) <= 3 and width_of(s) <= 3 for s in meta["statements"])


def test_answer_format_and_names(mixed):
    for d in mixed:
        names, sol = d["metadata"]["names"], d["metadata"]["solution"]
        assert len(set(names)) == len(names) and set(names) <= set(kk.NAMES)
        expected = ", ".join(f"{x} is {'a knight' if k else 'a knave'}" for x, k in zip(names, sol))
        assert d["answer"] == expected
        assert " and " not in d["answer"] and not d["answer"].endswith(".")
        assert re.fullmatch(r"\w+ is a (knight|knave)(, \w+ is a (knight|knave))*", d["answer"])


def test_question_text(mixed):
    for d in mixed:
        q, names = d["question"], d["metadata"]["names"]
        assert q.startswith(
            "A very special island is inhabited only by knights and knaves. Knights always "
            "tell the truth, and knaves always lie. "
        )
        assert f"You meet {len(names)} inhabitants: " in q
        assert q.endswith("So who is a knight and who is a knave?")
        assert all(name in q for name in names)


def test_traces(mixed):
    for d in mixed:
        box = f"The final answer is: \\boxed{{{d['answer']}}}."
        short, long = d["traces"]["short"], d["traces"]["long"]
        for trace in (short, long):
            assert trace.endswith(box)
            found = re.findall(r"\\boxed\{([^{}]*)\}", trace)
            assert found[-1] == d["answer"]
        assert short.startswith(HEADER)
        assert short.endswith("This leads to a feasible solution. " + box)
        assert long.count("\nCheck: ") == d["level"]
        for name, knight in zip(d["metadata"]["names"], d["metadata"]["solution"]):
            role = "a knight" if knight else "a knave"
            assert f"Check: {name} is {role}, and their statement" in long


def test_short_trace_backtracks():
    # Some puzzle in a batch must need backtracking, and the narration must say so.
    shorts = [kk.generate(seed=0, split="sft", index=i, people=(3, 3))["traces"]["short"] for i in range(50)]
    assert any("We have exhausted all possibilities for" in s and "cannot be" in s for s in shorts)


def test_partition_disjoint():
    keys = {}
    for k in (0, 1):
        keys[k] = set()
        for i in range(150):
            d = kk.generate(seed=0, split=f"part{k}", index=i, partition=(k, 2), people=(2, 3))
            assert kk.split_bucket(d["metadata"]["key"], 2) == k and not kk.reserved(d["metadata"]["key"])
            keys[k].add(d["metadata"]["key"])
    assert not keys[0] & keys[1]
    d = kk.generate(seed=0, split="a", index=0, partition=(2, 3))
    assert kk.split_bucket(d["metadata"]["key"], 3) == 2
    assert d["metadata"]["key"] == kk.puzzle_key(d["metadata"]["statements"])


def test_pretraining_bucket_is_no_splits():
    # The tiny model's pretraining puzzles come from a bucket that generate() never returns, whatever the partition.
    pre = {kk.pretraining_puzzle(seed=0, index=i, people=(2, 3))["metadata"]["key"] for i in range(100)}
    assert all(kk.reserved(k) for k in pre)
    for parts in (1, 3, 4, 5):
        for i in range(60):
            key = kk.generate(seed=0, split="sft", index=i, partition=(i % parts, parts), people=(2, 3))["metadata"][
                "key"
            ]
            assert not kk.reserved(key) and key not in pre


def test_render_forms():
    names = ["A", "B", "C"]
    assert (
        kk.render(["and", ["knight", 0], ["knave", 1], ["knight", 2]], names)
        == "A is a knight, B is a knave and C is a knight"
    )
    assert kk.render(["imply", ["knight", 0], ["not", ["knave", 1]]], names) == "if A is a knight then B is not a knave"
    assert (
        kk.render(["not", ["or", ["knight", 0], ["knave", 2]]], names)
        == "it is not the case that (A is a knight or C is a knave)"
    )
    assert (
        kk.render(["iff", ["and", ["knight", 0], ["knight", 1]], ["knave", 2]], names)
        == "(A is a knight and B is a knight) if and only if C is a knave"
    )


def test_bad_arguments():
    with pytest.raises(ValueError):
        kk.generate(seed=0, split="x", index=0, partition=(2, 2))
    with pytest.raises(ValueError):
        kk.generate(seed=0, split="x", index=0, people=(5, 4))


def test_bad_params_through_a_task_are_one_clear_error(tmp_path):
    from pathlib import Path

    from harness.data import load_split
    from harness.errors import HarnessError
    from harness.tasks import get_task

    yaml = (Path(__file__).parents[1] / "tasks" / "kk.yaml").read_text()
    (tmp_path / "kk_bad.yaml").write_text(yaml.replace("params: {depth: 2, width: 2}", "params: {names: klingon}"))
    with pytest.raises(
        HarnessError,
        match=r"generator 'kk' cannot make sample 0 .*names must be 'common'.*fix " r"source.generator.params",
    ):
        load_split(get_task(str(tmp_path / "kk_bad.yaml")), "test", limit=1)


def test_terse_style_is_the_same_puzzle_in_one_line_per_person():
    for i in range(30):
        prose = kk.generate(seed=5, split="sft", index=i, people=(2, 4), names="letters")
        terse = kk.generate(seed=5, split="sft", index=i, people=(2, 4), names="letters", style="terse")
        assert terse["metadata"]["key"] == prose["metadata"]["key"] and terse["answer"] == prose["answer"]
        lines = re.findall(r"([A-L]): (.*?)\.(?: |$)", terse["question"])
        assert [name for name, _ in lines] == terse["metadata"]["names"]
    assert (
        kk.render_terse(["not", ["or", ["knight", 0], ["not", ["knave", 2]]]], ["A", "B", "C"])
        == "not (A knight or C not knave)"
    )
    assert (
        kk.render_terse(["imply", ["knight", 0], ["iff", ["knave", 1], ["knight", 2]]], ["A", "B", "C"])
        == "if A knight then (B knave iff C knight)"
    )
    with pytest.raises(ValueError, match="style"):
        kk.generate(seed=0, split="x", index=0, style="poem")


@pytest.mark.parametrize("style", ["terse", "prose"])
def test_explicit_trace_checks_are_right(style):
    """Every check in the explicit trace, re-done by the independent evaluator: the claim is the one its speaker
    makes in the prompt, its value under the roles of that step is right, and the verdict says whether it fits."""
    backtracked = 0
    for i in range(60):
        d = kk.generate(seed=9, split="sft", index=i, people=(2, 4), names="letters", style=style)
        st, names = d["metadata"]["statements"], d["metadata"]["names"]
        claims = (
            dict(re.findall(r"([A-L]): (.*?)\.(?: |$)", d["question"]))
            if style == "terse"
            else {n: kk.render(t, names) for n, t in zip(names, st)}
        )
        body, box = d["traces"]["explicit"].rsplit(" The final answer is: ", 1)
        assert box == f"\\boxed{{{d['answer']}}}."
        backtracked += "back to" in body
        roles = None
        for step in re.split(r"(?<=\.) ", body):
            if step.startswith("back to "):
                continue
            state, checks = step[:-1].split(": ", 1)
            roles = {n: r == "knight" for n, r in re.findall(r"([A-L]) (knight|knave)", state)}
            assign = [roles.get(n) for n in names]
            for check in checks.split("; "):
                m = re.fullmatch(r"([A-L]) says (.*?)(?: = [^=]*)? = ([TF]), (ok|contradiction)", check)
                assert m, check
                speaker, claim, value, verdict = m.groups()
                p = names.index(speaker)
                assert claim == claims[speaker]
                assert (value == "T") == truth(st[p], assign)
                assert (verdict == "ok") == ((value == "T") == roles[speaker])
        assert [roles[n] for n in names] == d["metadata"]["solution"]  # the last step holds the answer
    assert backtracked


def test_grid_style_and_trace_fixed_width_and_right():
    """The grid question pads every claim to the same number of words and the grid trace's rows all have the same
    number of words (so all a row copies sits a fixed distance back); every row's values are re-done by the
    independent evaluator, and the rows stop at the first consistent assignment, which is the answer."""
    w = kk.grid_width(2)
    for i in range(60):
        d = kk.generate(seed=9, split="sft", index=i, people=(2, 4), names="letters", style="grid")
        terse = kk.generate(seed=9, split="sft", index=i, people=(2, 4), names="letters", style="terse")
        assert d["metadata"]["key"] == terse["metadata"]["key"] and d["answer"] == terse["answer"]
        st, names, n = d["metadata"]["statements"], d["metadata"]["names"], d["level"]
        q = d["question"].split("\n")
        assert [line.split(": ")[0] for line in q] == names and {len(line.split()) for line in q} == {w + 1}
        *rows, final = d["traces"]["grid"].split("\n")
        assert final == f"The final answer is: \\boxed{{{d['answer']}}}."
        assert {len(r.split()) for r in rows} == {n + n * (w + 3)}
        for a, row in enumerate(rows):
            cells = row.split(" | ")
            assign = [c[-1] == "K" for c in cells[0].split()]
            assert assign == [not (a >> (n - 1 - k) & 1) for k in range(n)]  # all knights first, last flips fastest
            verdicts = []
            for p, cell in enumerate(cells[1:]):
                words = cell.split()
                claim = [x[:-1] if re.fullmatch(r"[A-L]n?[kv][TF]", x) else x for x in words[:w]]
                assert claim == q[p].split()[1:]  # the claim as the question words it
                for x in words[:w]:
                    if re.fullmatch(r"[A-L]n?[kv][TF]", x):
                        who, neg, kind = names.index(x[0]), "n" in x[1:-1], x[-2]
                        assert (x[-1] == "T") == ((assign[who] == (kind == "k")) != neg)
                assert (words[w] == "T") == truth(st[p], assign)
                assert words[w + 1] == ("ok" if (words[w] == "T") == assign[p] else "no")
                verdicts.append(words[w + 1])
            assert (set(verdicts) == {"ok"}) == (a == len(rows) - 1)
        assert assign == d["metadata"]["solution"]
    assert "grid" not in kk.generate(seed=9, split="sft", index=0, people=(5, 5), names="letters")["traces"]
    with pytest.raises(ValueError, match="grid"):
        kk.generate(seed=0, split="x", index=0, style="grid")  # common names
    with pytest.raises(ValueError, match="grid"):
        kk.generate(seed=0, split="x", index=0, names="letters", style="grid", depth=3)


def test_min_rank_gives_harder_puzzles_and_leaves_the_default_unchanged():
    def rank(sample):  # the solution's place in name order, knight before knave (1 = everyone a knight)
        n = len(sample["metadata"]["solution"])
        return 1 + sum((not k) << (n - 1 - i) for i, k in enumerate(sample["metadata"]["solution"]))

    plain = [kk.generate(seed=7, split="rl", index=i, people=(3, 3), names="letters", style="grid") for i in range(40)]
    same = [
        kk.generate(seed=7, split="rl", index=i, people=(3, 3), names="letters", style="grid", min_rank=1)
        for i in range(40)
    ]
    assert same == plain and min(map(rank, plain)) == 1
    hard = [
        kk.generate(seed=7, split="rl", index=i, people=(3, 3), names="letters", style="grid", min_rank=5)
        for i in range(40)
    ]
    assert min(map(rank, hard)) == 5 and set(map(rank, hard)) == {5, 6, 7, 8}
    for s in hard:  # the grid trace writes one row per assignment tried, the solution's row last
        assert len(s["traces"]["grid"].splitlines()) - 1 == rank(s)
    with pytest.raises(ValueError, match="min_rank"):
        kk.generate(seed=0, split="x", index=0, people=(3, 3), min_rank=9)
