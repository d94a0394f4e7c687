"""Faithfulness of K&K explicit traces (harness/faithful.py): every step checked against the puzzle, lucky answers told
apart from right searches; the metrics it adds to an evaluation and the redistill filter it offers."""

import json
import time

import pytest

from harness.faithful import (
    check,
    check_sample,
    expected_checks,
    looks_explicit,
    reference,
    reference_for_sample,
    step_text,
)
from harness.generators.kk import generate


def puzzle(i, seed=3, people=(3, 4)):
    return generate(seed=seed, split="test", index=i, people=list(people), names="letters", style="terse")


def sentences(trace):
    return trace.split(". ")  # steps, then the final-answer sentence (claims never hold ". ")


def edit_check(trace, step, check_no, fn):
    """The trace with check `check_no` of step `step` replaced by fn(speaker, claim, middle parts, value, verdict)."""
    parts = sentences(trace)
    head, body = parts[step].split(": ", 1)
    checks = body.split("; ")
    speaker, rest = checks[check_no].split(" says ", 1)
    pieces = rest.split(" = ")
    value, verdict = pieces[-1].split(", ")
    checks[check_no] = fn(speaker, pieces[0], pieces[1:-1], value, verdict)
    parts[step] = f"{head}: {'; '.join(checks)}"
    return ". ".join(parts)


def join(speaker, claim, middle, value, verdict):
    return " = ".join([f"{speaker} says {claim}", *middle, f"{value}, {verdict}"])


def flip(tf):
    return "F" if tf == "T" else "T"


def first(pred, start=0):
    """The first generated puzzle (and its explicit trace) that pred accepts."""
    for i in range(start, start + 200):
        s = puzzle(i)
        if pred(s, s["traces"]["explicit"]):
            return s, s["traces"]["explicit"]
    raise AssertionError("no such puzzle")


def test_reference_trace_is_faithful():
    s = puzzle(0)
    assert "A:" in s["question"] and s["metadata"]["statements"]  # the terse quiz, with its logic trees
    v = check_sample(s["traces"]["explicit"], s)
    assert v["faithful"] and not v["lucky"] and v["correct"] and v["parses"]
    assert v["kind"] is None and v["step"] is None and v["steps"] == len(sentences(s["traces"]["explicit"])) - 1
    assert looks_explicit(s["traces"]["explicit"]) and not looks_explicit(s["traces"]["short"])


def test_reference_traces_of_300_puzzles_are_all_faithful():
    samples = [puzzle(i, seed=seed) for seed in (1, 2, 3) for i in range(100)]
    assert {s["level"] for s in samples} == {3, 4}
    bad = [(s["question"], v) for s in samples if not (v := check_sample(s["traces"]["explicit"], s))["faithful"]]
    assert bad == []
    for s in samples[:60]:
        md = s["metadata"]
        ref = reference(md["statements"], md["names"], style=md["style"])
        # The reference writes its steps exactly as the generator's trace does ...
        texts = [step_text(ref, i) for i in range(len(ref.steps))]
        assert " ".join(t + "." for t in texts) + " The final answer is: \\boxed{" in s["traces"]["explicit"]
        # ... and every step of that trace also passes when parsed and judged (not only matched as text), against
        # checks worked out from the roles alone (not taken from the search's tape).
        tape_checks = dict(ref.checks)
        ref.texts[:] = ["\0"] * len(texts)  # no step matches as text
        ref.checks.clear()
        assert check(s["traces"]["explicit"], ref)["faithful"]
        assert {r: expected_checks(ref, r) for r in tape_checks} == tape_checks
    # The paper's prose quiz and first names (claims in prose), up to 8 people, as well.
    for i in range(40):
        s = generate(seed=5, split="test", index=i, people=[2, 8])
        assert check_sample(s["traces"]["explicit"], s)["faithful"], s["traces"]["explicit"]


def test_checking_is_cheap():
    samples = [puzzle(i) for i in range(250)]
    t0 = time.perf_counter()
    for s in samples:
        ref = reference_for_sample(s)
        for _ in range(4):
            assert check(s["traces"]["explicit"], ref, True)["faithful"]
    assert time.perf_counter() - t0 < 3.0  # ~0.1 s measured for these 1,000 responses; a loose bound


def test_lucky_answer_from_a_wrong_step():
    s, trace = first(lambda s, t: sentences(t)[0].endswith("contradiction"))
    last = sentences(trace)[0].count("; ")
    lucky = edit_check(trace, 0, last, lambda sp, c, m, v, _: join(sp, c, m, v, "ok"))  # the answer stays right
    v = check_sample(lucky, s)
    assert v["lucky"] and not v["faithful"] and v["correct"] and v["parses"]
    assert (v["step"], v["kind"]) == (0, "wrong_verdict")
    # The verifier's verdict on the answer is taken when given.
    assert not check(lucky, reference_for_sample(s), correct=False)["lucky"]


@pytest.mark.parametrize("kind", ["wrong_copy", "wrong_truth_value", "wrong_value", "wrong_verdict"])
def test_each_wrong_part_of_a_check_is_found(kind):
    def compound(s, t):
        return " = " in sentences(t)[0].split("; ")[0].split(" = ", 1)[1]

    s, trace = first(compound)  # the first check of the first step has a compound claim (its parts' values shown)

    def mutate(sp, claim, middle, value, verdict):
        if kind == "wrong_copy":
            word = "knight" if "knight" in claim else "knave"
            claim = claim.replace(word, "knave" if word == "knight" else "knight", 1)
        elif kind == "wrong_truth_value":
            words = middle[0].split(" ")
            at = next(i for i, w in enumerate(words) if w in ("T", "F"))
            middle = [" ".join(words[:at] + [flip(words[at])] + words[at + 1 :])]
        elif kind == "wrong_value":
            value = flip(value)
        else:
            verdict = "ok" if verdict == "contradiction" else "contradiction"
        return join(sp, claim, middle, value, verdict)

    v = check_sample(edit_check(trace, 0, 0, mutate), s)
    assert (v["step"], v["kind"], v["faithful"], v["lucky"]) == (0, kind, False, True), v
    assert v["detail"]


def test_a_later_wrong_step_is_the_one_reported():
    s, trace = first(lambda s, t: len(sentences(t)) > 4)
    v = check_sample(edit_check(trace, 3, 0, lambda sp, c, m, val, vd: join(sp, c, m, flip(val), vd)), s)
    assert (v["step"], v["kind"]) == (3, "wrong_value")


def test_wrong_search_and_wrong_roles():
    s, trace = first(lambda s, t: any(x.startswith("back to ") for x in sentences(t)))
    parts = sentences(trace)
    b = next(i for i, x in enumerate(parts) if x.startswith("back to "))
    # Skipping the backtrack changes an earlier person's role without going back: not a legal next assumption.
    v = check_sample(". ".join(parts[:b] + parts[b + 1 :]), s)
    assert (v["step"], v["kind"], v["lucky"]) == (b, "wrong_roles", True)
    # Repeating a step is a legal assumption, but not the search's next one.
    v = check_sample(". ".join(parts[:b] + [parts[b - 1]] + parts[b:]), s)
    assert (v["step"], v["kind"]) == (b, "wrong_search")
    # Going back to someone else.
    other = next(nm for nm in s["metadata"]["names"] if f"back to {nm}" != parts[b])
    v = check_sample(". ".join(parts[:b] + [f"back to {other}"] + parts[b + 1 :]), s)
    assert (v["step"], v["kind"]) == (b, "wrong_search")
    # Stopping early, or going on after the solution.
    v = check_sample(". ".join(parts[:-2] + parts[-1:]), s)
    assert (v["step"], v["kind"], v["lucky"]) == (len(parts) - 2, "wrong_search", True)
    v = check_sample(". ".join(parts[:-1] + [parts[-2]] + parts[-1:]), s)
    assert (v["step"], v["kind"]) == (len(parts) - 1, "wrong_search")
    # Roles out of name order.
    head, body = parts[0].split(": ", 1)
    words = head.split(" ")
    swapped = " ".join(words[2:4] + words[:2] + words[4:])
    v = check_sample(". ".join([f"{swapped}: {body}"] + parts[1:]), s)
    assert (v["step"], v["kind"]) == (0, "wrong_roles")


def test_a_claim_checked_out_of_turn_is_a_wrong_search():
    s, trace = first(lambda s, t: sentences(t)[0].count("; ") >= 1 and sentences(t)[0].endswith(", ok"))
    parts = sentences(trace)
    head, body = parts[0].split(": ", 1)
    checks = body.split("; ")
    dropped = ". ".join([f"{head}: {'; '.join(checks[:-1])}"] + parts[1:])
    v = check_sample(dropped, s)
    assert (v["step"], v["kind"]) == (0, "wrong_search") and "does not check" in v["detail"]
    swapped = ". ".join([f"{head}: {'; '.join(checks[::-1])}"] + parts[1:])
    assert check_sample(swapped, s)["kind"] == "wrong_search"


def test_garbage_and_cut_off_traces_are_unparseable():
    s = puzzle(1)
    answer = s["answer"]
    v = check_sample("I think the answer is that everyone lies.", s)
    assert (v["kind"], v["step"], v["parses"], v["faithful"], v["lucky"]) == ("unparseable", 0, False, False, False)
    v = check_sample(f"Let me guess. The final answer is: \\boxed{{{answer}}}.", s)
    assert v["kind"] == "unparseable" and v["lucky"] and not v["faithful"]
    trace = s["traces"]["explicit"]
    cut = trace[: len(trace) // 2]
    v = check_sample(cut, s)
    assert v["kind"] == "unparseable" and not v["parses"] and not v["correct"]
    v = check_sample(trace + " And more text.", s)
    assert v["kind"] == "unparseable" and v["lucky"]
    assert check_sample("", s)["kind"] == "unparseable"


def test_right_trace_wrong_answer():
    s = puzzle(2)
    trace = s["traces"]["explicit"]
    first_role = s["answer"].split(", ")[0]
    other = first_role.replace("knight", "knave") if "knight" in first_role else first_role.replace("knave", "knight")
    wrong = trace.replace(s["answer"], s["answer"].replace(first_role, other, 1))
    v = check_sample(wrong, s)
    assert (v["kind"], v["faithful"], v["lucky"], v["correct"]) == ("wrong_answer", False, False, False)


def test_no_metadata_no_check():
    assert check_sample("A knight: A says B knave = T, ok.", {"answer": "x", "metadata": {}}) is None


# --- integration ------------------------------------------------------------------------------------------------


def _tiny_task():
    from harness import recipes
    from harness.tasks import get_task

    _, recipe = recipes.resolve("kk", "tiny")
    return recipes.apply_task_overrides(get_task("kk"), recipe["task"]), recipe


class FixedEngine:
    """Returns fixed texts per prompt (the sample's texts from `texts_for(sample)`), like a model would."""

    name = "fixed"

    def __init__(self, task, split, texts_for, limit=64):
        from harness.data import load_split, render_prompt

        self.by_prompt = {json.dumps(render_prompt(task, s)): s for s in load_split(task, split, limit)}
        self.texts_for = texts_for

    def generate(self, prompts, params, on_batch=None):
        from harness.engines import Generation

        out = []
        for p in prompts:
            texts = self.texts_for(self.by_prompt[json.dumps(p)])[: params.n]
            out.append([Generation(t, len(t.split()), False) for t in texts])
        if on_batch:
            on_batch(list(range(len(prompts))), out)
        return out


def lucky_text(s):
    return edit_check(s["traces"]["explicit"], 0, 0, lambda sp, c, m, v, vd: join(sp, c, m, flip(v), vd))


def test_evaluate_adds_faithful_accuracy_and_lucky():
    from harness.cli import print_metrics
    from harness.evaluate import evaluate

    task, _ = _tiny_task()

    def texts(s):
        k = s["index"] % 4
        if k == 0:
            return [s["traces"]["explicit"]]
        if k == 1:
            return [lucky_text(s)]  # right answer, a wrong value on the way
        if k == 2:
            return [f"The final answer is: \\boxed{{{s['answer']}}}."]  # right answer, no trace
        return ["A knight B knight: nonsense. The final answer is: \\boxed{A is a knight}."]

    metrics, rows = evaluate(task, FixedEngine(task, "test", texts), split="test", limit=8)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["faithful_accuracy"] == pytest.approx(2 / 8) and metrics["lucky"] == pytest.approx(4 / 8)
    for lv, block in metrics["per_level"].items():
        assert block["faithful_accuracy"] + block["lucky"] == pytest.approx(block["accuracy"])
    kinds = [r["verdicts"][0]["faithful"]["kind"] for r in rows]
    assert kinds[:4] == [None, "wrong_value", "wrong_search", "unparseable"]
    assert all(r["scores"][0] == (1.0 if i % 4 < 3 else 0.0) for i, r in enumerate(rows))  # never the score
    print_metrics(metrics)  # prints the line without error

    # k samples per problem: per problem the share of its samples, averaged over problems, like accuracy.
    both = lambda s: [s["traces"]["explicit"], lucky_text(s)]  # noqa: E731
    metrics, rows = evaluate(task, FixedEngine(task, "test", both), split="test", limit=4, samples=2, temperature=0.7)
    assert (metrics["accuracy"], metrics["faithful_accuracy"], metrics["lucky"]) == (1.0, 0.5, 0.5)

    # Responses that are not explicit traces (another trace style): no faithfulness metrics, no entries.
    metrics, rows = evaluate(task, FixedEngine(task, "test", lambda s: [s["traces"]["short"]]), split="test", limit=4)
    assert metrics["accuracy"] == 1.0 and "faithful_accuracy" not in metrics
    assert "faithful" not in rows[0]["verdicts"][0]


def test_redistill_filter_faithful_keeps_only_faithful_samples(tmp_path, monkeypatch):
    import harness.engines
    from harness.pipeline import Context, stage_sample

    task, recipe = _tiny_task()
    engine = FixedEngine(task, "sft", lambda s: [lucky_text(s)] if s["index"] % 2 else [s["traces"]["explicit"]])
    monkeypatch.setattr(harness.engines, "make_engine", lambda *a, **k: engine)
    monkeypatch.setattr(harness.engines, "pick_engine", lambda name, **_: "transformers")

    def sample(**rd):
        ctx = Context(
            task=task,
            recipe_name="kk-tiny",
            recipe={**recipe, "redistill": {**recipe["redistill"], **rd}},
            base_model="tiny",
            base_ref=str(tmp_path / "base"),
            seed=0,
            root=tmp_path,
        )
        info = stage_sample(ctx, str(tmp_path / "teacher"), 8, "A")
        assert ctx.stages[-1]["filter"] == info["filter"]  # goes into the run record with the stage
        return info, [json.loads(x) for x in open(info["data_path"])]

    info, kept = sample()
    assert info["filter"] == "correct" and "filter" not in info["config"]  # the default keeps the old cache keys
    assert len(kept) == 64 and {r["id"] for r in kept} == set(engine.by_prompt[k]["id"] for k in engine.by_prompt)
    info, kept = sample(filter="faithful")
    assert info["filter"] == "faithful" and info["config"]["filter"] == "faithful"
    assert len(kept) == 32 and all(int(r["id"].rsplit("/", 1)[1]) % 2 == 0 for r in kept)
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="redistill.filter must be"):
        sample(filter="lucky")


def grid_puzzle(i=0):
    return generate(seed=1, split="sft", index=i, people=[3, 3], names="letters", style="grid")


def test_grid_trace_kinds_on_hand_made_rows():
    """The grid trace's checker on hand-edited rows: the reference is faithful; a claim copied wrong, a leaf's value,
    the claim's value, a verdict, another assignment, stopping early and a wrong box each are the kind they are."""
    d = grid_puzzle()
    rows = d["traces"]["grid"].split("\n")
    assert rows[1].startswith("AK BK CV | CvT and CkF _ F no")  # the row the edits below change
    v = check_sample(d["traces"]["grid"], d)
    assert v["faithful"] and not v["lucky"] and v["steps"] == len(rows) - 1

    def edited(old, new):
        out = list(rows)
        out[1] = out[1].replace(old, new, 1)
        return check_sample("\n".join(out), d)

    for (old, new), kind in [
        (("CvT and CkF", "CkT and CkF"), "wrong_copy"),
        (("CvT and CkF", "CvF and CkF"), "wrong_truth_value"),
        (("CkF _ F no", "CkF _ T no"), "wrong_value"),
        (("CkF _ F no", "CkF _ F ok"), "wrong_verdict"),
        (("AK BK CV", "AK BV CV"), "wrong_search"),
        (("AK BK CV", "AK CK BV"), "wrong_roles"),
    ]:
        v = edited(old, new)
        assert (v["kind"], v["step"], v["lucky"], v["faithful"]) == (kind, 1, True, False), (kind, v)
    v = check_sample("\n".join(rows[:2] + rows[-1:]), d)  # stops early, right box
    assert (v["kind"], v["lucky"]) == ("wrong_search", True)
    v = check_sample(d["traces"]["grid"].replace("A is a knave, B is a knave", "A is a knight, B is a knave"), d)
    assert (v["kind"], v["correct"], v["lucky"]) == ("wrong_answer", False, False)
    v = check_sample("\n".join(rows[:-1]), d)  # no final answer line
    assert v["kind"] == "unparseable" and not v["correct"]
