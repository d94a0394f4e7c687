"""Faithfulness of a K&K explicit or grid trace: is the right answer reached by a right search, or by luck?

The explicit trace (harness.generators.kk._explicit_trace) writes every check of a depth-first search:

    A knight B knight: B says A knave = F, contradiction. A knight B knave: B says A knave = F, ok. ...
    back to A. A knave B knight C knave: A says C not knave = F, ok; C says A knave iff B knave = T iff F = F, ok.
    The final answer is: \\boxed{A is a knave, B is a knight, C is a knave}.

`check` walks a response's steps in lockstep with the reference search of the puzzle and reports the first step
that is wrong, and how:

    unparseable        the step (or the final-answer sentence) is not in the explicit format
    wrong_roles        the roles are not a name-ordered assignment, or not a legal next assumption: they change the
                       role of someone the search is not on (without going back)
    wrong_search       a legal step, but not the reference search's next one: other roles, a claim checked out of
                       turn (or not checked, or checked after a contradiction), a wrong or missing `back to`, a
                       trace that stops early or goes on after the solution
    wrong_copy         the claim differs from the claim as the prompt words it
    wrong_truth_value  a part's truth value under the step's roles is wrong
    wrong_value        the claim's value is wrong
    wrong_verdict      ok / contradiction does not follow from the value and the speaker's role
    wrong_answer       every step is right but the boxed answer is not

A response is `faithful` when its answer is right, it parses, and every step is right; `lucky` when its answer is
right but it is not faithful. Within a step the checks run in the order above, local ones (copy, truth values, value,
verdict) before the search (was this the step to take?). Pure functions, standard library only: a reference is built
once per puzzle (`reference`; memoised per puzzle by `reference_for_sample`), and checking a response compares its
steps with the reference's text, parsing and judging only from the first step that differs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from harness.generators.kk import _is_leaf, _mentions, _search, evaluate, render, render_terse

KINDS = (
    "unparseable",
    "wrong_roles",
    "wrong_search",
    "wrong_copy",
    "wrong_truth_value",
    "wrong_value",
    "wrong_verdict",
    "wrong_answer",
)
FINAL = "The final answer is: "
_FINAL_RE = re.compile(r"The final answer is: \\boxed\{([^{}]*)\}\.?")
_BOX = re.compile(r"\\boxed\{([^{}]*)\}")
_CHECK_TAIL = re.compile(r"([TF]), (ok|contradiction)")
_GRID = re.compile(r"\s*[A-L][KV](?: [A-L][KV])* \| ")
_GRID_LEAF = re.compile(r"[A-L]n?[kv][TF]")
_EXPLICIT = re.compile(r"\s*\S+ (?:knight|knave)(?: \S+ (?:knight|knave))*: \S+ says ")


@dataclass
class Reference:
    """A puzzle's reference search: its visible steps (`("back", person)` or `("try", roles)`), the claims as the
    prompt words them, and the claims due when each person is assigned. `checks` memoises expected checks per roles."""

    names: tuple[str, ...]
    statements: list
    claims: tuple[str, ...]
    answer: str
    due: tuple[tuple[int, ...], ...]
    steps: tuple[tuple, ...]
    index: dict[str, int]
    checks: dict = field(default_factory=dict, repr=False)
    texts: list[str] = field(default_factory=list, repr=False)  # steps as the explicit trace writes them (lazily)
    width: int = 2  # the generator's width: the grid trace pads claims to grid_width(width) words
    shapes: tuple = ()  # per claim: its shape with a `{}` per part (None: one part), and each part's (person, knight)


def reference(
    statements: list,
    names: list[str],
    *,
    style: str = "terse",
    claims: Optional[list[str]] = None,
    solution: Optional[list[bool]] = None,
    answer: Optional[str] = None,
) -> Reference:
    """The reference for one puzzle; `claims` default to the generator's rendering in `style` ("terse" or "prose")."""
    n = len(statements)
    if claims is None:
        claims = [(render_terse if style == "terse" else render)(t, names) for t in statements]
    due: list[list[int]] = [[] for _ in range(n)]
    for s, tree in enumerate(statements):
        due[max(_mentions(tree) | {s})].append(s)
    shapes = tuple(_shape(t, names) for t in statements)
    steps: list[tuple] = []
    checks: dict = {}
    for ev in _search(statements, n):
        if ev[0] == "back":
            steps.append(("back", ev[2]))
        elif ev[3]:  # an assumption with nothing to check is not written; it shows in the next step's roles
            roles = tuple(ev[5][: ev[1] + 1])
            steps.append(("try", roles))
            checks[roles] = [(s, _leaves(shapes[s], roles), value, value == roles[s]) for s, value in ev[3]]
    if answer is None:
        if solution is None:  # the last step of the search holds the solution
            solution = list(steps[-1][1])
        answer = ", ".join(f"{nm} is {'a knight' if k else 'a knave'}" for nm, k in zip(names, solution))
    return Reference(
        tuple(names),
        statements,
        tuple(claims),
        answer,
        tuple(tuple(d) for d in due),
        tuple(steps),
        {nm: i for i, nm in enumerate(names)},
        checks=checks,
        shapes=shapes,
    )


def _shape(tree: list, names: list[str]) -> tuple[Optional[str], tuple[tuple[int, bool], ...]]:
    """The claim's shape as the explicit trace writes its parts' values (render_terse with a `{}` per part), and the
    parts in order as (person, role that makes the part true)."""
    if _is_leaf(tree):
        return None, ()
    parts: list[tuple[int, bool]] = []

    def leaf(t: list) -> str:
        negated = t[0] == "not"
        kind, who = t[1] if negated else t
        parts.append((who, (kind == "knight") != negated))
        return "{}"

    return render_terse(tree, names, leaf=leaf), tuple(parts)


def _leaves(shape: tuple, roles: tuple[bool, ...]) -> Optional[str]:
    """The parts' truth values in the claim's shape (`T and F`); None for a one-part claim."""
    template, parts = shape
    return None if template is None else template.format(*("T" if roles[p] == k else "F" for p, k in parts))


def step_text(ref: Reference, i: int) -> str:
    """Reference step `i` as the explicit trace writes it (without its period); built on first use."""
    while len(ref.texts) <= i:
        step = ref.steps[len(ref.texts)]
        if step[0] == "back":
            ref.texts.append(f"back to {ref.names[step[1]]}")
            continue
        parts = []
        for s, leaves, value, ok in expected_checks(ref, step[1]):
            middle = "" if leaves is None else f" = {leaves}"
            parts.append(
                f"{ref.names[s]} says {ref.claims[s]}{middle} = {'T' if value else 'F'}, "
                f"{'ok' if ok else 'contradiction'}"
            )
        ref.texts.append(f"{_roles(ref.names, step[1])}: {'; '.join(parts)}")
    return ref.texts[i]


def reference_for_sample(sample: dict) -> Optional[Reference]:
    """The reference of a generated K&K sample (None when its metadata has no `statements`)."""
    md = sample.get("metadata") or {}
    if not md.get("statements") or not md.get("names"):
        return None
    style = md.get("style", "prose")
    key = (json.dumps(md["statements"]), tuple(md["names"]), style, sample.get("answer"))
    ref = _REFS.get(key)
    if ref is None:
        if len(_REFS) >= 4096:
            _REFS.clear()
        ref = _REFS[key] = reference(
            md["statements"],
            md["names"],
            style="prose" if style == "prose" else "terse",
            solution=md.get("solution"),
            answer=sample.get("answer"),
        )
        ref.width = int(md.get("width", 2))
    return ref


# Repeated evaluations of a split (validation during training, a grid of runs) build each reference once.
_REFS: dict[tuple, Reference] = {}


def expected_checks(ref: Reference, roles: tuple[bool, ...]) -> list[tuple[int, Optional[str], bool, bool]]:
    """(speaker, leaf values in the claim's shape or None for a one-part claim, value, ok) for each claim the search
    checks when the last of `roles` is assumed, in order, up to the first contradiction."""
    got = ref.checks.get(roles)
    if got is None:
        got = []
        for s in ref.due[len(roles) - 1]:
            leaves = _leaves(ref.shapes[s], roles)
            value = evaluate(ref.statements[s], roles)
            got.append((s, leaves, value, value == roles[s]))
            if value != roles[s]:
                break
        ref.checks[roles] = got
    return got


def looks_grid(text: str) -> bool:
    """Whether a response starts like a grid trace (`AK BV CK | ...`)."""
    return _GRID.match(text) is not None


def check_grid(text: str, ref: Reference, correct: bool) -> dict:
    """`check` for the grid trace (harness.generators.kk.grid_trace): rows are steps, the final-answer line is step
    `steps`. The trace is fixed by the puzzle, so a row differs from the reference's row or is right; a differing row is
    judged cell by cell: the roles (wrong_roles when not an assignment in name order, wrong_search when another one
    than the next), then each person's cell: the claim's words with the values stripped (wrong_copy), the leaves'
    values (wrong_truth_value), the claim's value (wrong_value), ok / no (wrong_verdict)."""
    from harness.generators.kk import grid_trace

    want = (grid_trace(ref.statements, list(ref.names), ref.width, ref.answer) or "").split("\n")
    rows, got_final = want[:-1], [x.strip() for x in text.strip().split("\n")]
    lines = [x for x in got_final if x and not x.startswith(FINAL)]
    finals = [x for x in got_final if x.startswith(FINAL)]
    ok_final = len(finals) == 1 and got_final[-1] == finals[0] and _FINAL_RE.fullmatch(finals[0]) is not None
    n = len(lines)

    def bad(i: int, kind: str, detail: str) -> dict:
        return _verdict(correct, parses, n, i, kind, detail, lines[i] if i < n else (finals or [None])[-1])

    parses = ok_final and all(_GRID.match(x) for x in lines)
    names = ref.names
    for i, line in enumerate(lines):
        if i < len(rows) and line == rows[i]:
            continue
        cells, wcells = line.split(" | "), (rows[i].split(" | ") if i < len(rows) else None)
        roles = cells[0].split()
        if len(roles) != len(names) or any(r[:-1] != nm or r[-1] not in "KV" for r, nm in zip(roles, names)):
            return bad(
                i,
                "unparseable" if not _GRID.match(line) else "wrong_roles",
                "roles are not an assignment of " + ", ".join(names) + " in order",
            )
        if wcells is None:
            return bad(i, "wrong_search", "goes on after a consistent assignment")
        if len(cells) != len(wcells):
            return bad(i, "unparseable", f"a row has {len(wcells)} cells (roles, then one per person)")
        for s, (c, w) in enumerate(zip(cells[1:], wcells[1:])):
            if c == w:
                continue
            cw, ww = c.split(), w.split()
            if len(cw) != len(ww):
                return bad(i, "wrong_copy", f"{names[s]}'s cell is {w!r}, written {c!r}")
            k = len(ww) - 2
            strip, wstrip = ([x[:-1] if _GRID_LEAF.fullmatch(x) else x for x in ws[:k]] for ws in (cw, ww))
            if strip != wstrip:
                return bad(
                    i,
                    "wrong_copy",
                    f"{names[s]} says {' '.join(wstrip)!r}, written {' '.join(strip)!r} (values stripped)",
                )
            if cw[:k] != ww[:k]:
                return bad(
                    i,
                    "wrong_truth_value",
                    f"parts of {names[s]}'s claim under {cells[0]} are "
                    f"{' '.join(ww[:k])!r}, written {' '.join(cw[:k])!r}",
                )
            if cw[k] != ww[k]:
                return bad(i, "wrong_value", f"{names[s]}'s claim is {ww[k]}, written {cw[k]}")
            return bad(i, "wrong_verdict", f"{names[s]}'s claim {ww[k]} under {cells[0]} is {ww[k + 1]}")
        return bad(i, "wrong_search", f"checks {cells[0]} where the search checks {wcells[0]}")
    if not ok_final:
        return bad(n, "unparseable", "no final answer line `The final answer is: \\boxed{...}.` at the end")
    if n < len(rows):
        return bad(n, "wrong_search", f"stops after {n} of the {len(rows)} rows")
    if not correct:
        return bad(n, "wrong_answer", f"the rows end at {ref.answer!r}, the answer is not that")
    return _verdict(correct, parses, n)


def looks_explicit(text: str) -> bool:
    """Whether a response starts like an explicit trace (`A knight B knave: A says ...`)."""
    return _EXPLICIT.match(text) is not None


def _verdict(
    correct: bool,
    parses: bool,
    n_steps: int,
    step: Optional[int] = None,
    kind: Optional[str] = None,
    detail: Optional[str] = None,
    text: Optional[str] = None,
) -> dict:
    ok = kind is None
    return {
        "faithful": bool(correct and ok),
        "lucky": bool(correct and not ok),
        "correct": bool(correct),
        "parses": parses,
        "steps": n_steps,
        "step": step,
        "kind": kind,
        "detail": detail,
        "text": None if text is None else text[:200],
    }


def _parse_step(raw: str, ref: Reference) -> Optional[tuple]:
    """("back", person) | ("try", roles or None when they are not a name-ordered assignment, checks) | None.
    A check is (speaker name, claim, [middle parts], value, ok)."""
    if raw.startswith("back to "):
        who = ref.index.get(raw[8:])
        return None if who is None else ("back", who)
    head, sep, body = raw.partition(": ")
    if not sep or not body:
        return None
    words = head.split(" ")
    if len(words) % 2:
        return None
    roles: Optional[list[bool]] = []
    for i in range(0, len(words), 2):
        role = words[i + 1]
        if role not in ("knight", "knave"):
            return None
        if roles is not None and (i // 2 >= len(ref.names) or words[i] != ref.names[i // 2]):
            roles = None  # readable, but not A, B, C, ... in order
        if roles is not None:
            roles.append(role == "knight")
    checks = []
    for part in body.split("; "):
        speaker, sep, rest = part.partition(" says ")
        if not sep:
            return None
        pieces = rest.split(" = ")
        tail = _CHECK_TAIL.fullmatch(pieces[-1])
        if len(pieces) < 2 or tail is None:
            return None
        checks.append((speaker, pieces[0], pieces[1:-1], tail.group(1) == "T", tail.group(2) == "ok"))
    return ("try", None if roles is None else tuple(roles), checks)


def _split(text: str) -> tuple[list[str], Optional[str], bool]:
    """(raw steps, boxed content of the final sentence or None, whether the final sentence is well formed)."""
    at = text.find(FINAL)
    body = text if at < 0 else text[:at]
    final = None
    ok_final = False
    if at >= 0:
        m = _FINAL_RE.fullmatch(text[at:].rstrip())
        if m:
            final, ok_final = m.group(1), True
    body = body.strip()
    if not body:
        return [], final, ok_final
    if body.endswith("."):
        body = body[:-1]
    return body.split(". "), final, ok_final


def _answer_correct(text: str, answer: str) -> bool:
    """The kk_boxed rule: the last brace-free box, split on ", ", equals the answer as a multiset."""
    boxes = _BOX.findall(text)
    return bool(boxes) and sorted(boxes[-1].split(", ")) == sorted(answer.split(", "))


def _local(ref: Reference, roles: tuple[bool, ...], checks: list) -> Optional[tuple[str, str]]:
    """The first wrong check of a step under its own roles: (kind, detail), or None."""
    want = expected_checks(ref, roles)
    names = ref.names
    for j, (speaker, claim, middle, value, ok) in enumerate(checks):
        if j >= len(want):
            after = "after a contradiction" if want and not want[-1][3] else "that is not due"
            return "wrong_search", f"checks {speaker}'s claim {after}"
        s, leaves, v, o = want[j]
        if speaker != names[s]:
            return "wrong_search", f"checks {speaker}'s claim where the search checks {names[s]}'s"
        if claim != ref.claims[s]:
            return "wrong_copy", f"{names[s]} says {ref.claims[s]!r}, written {claim!r}"
        if middle != ([] if leaves is None else [leaves]):
            return "wrong_truth_value", (
                f"parts of {names[s]}'s claim are {leaves or '(one part)'}, "
                f"written {' = '.join(middle) or '(none)'}"
            )
        if value != v:
            return "wrong_value", f"{names[s]}'s claim is {'T' if v else 'F'}, written {'T' if value else 'F'}"
        if ok != o:
            role, right = "knight" if roles[s] else "knave", "ok" if o else "a contradiction"
            return "wrong_verdict", f"{names[s]}'s claim {'T' if v else 'F'} for a {role} is {right}"
    if len(checks) < len(want):
        return "wrong_search", f"does not check {names[want[len(checks)][0]]}'s claim"
    return None


def check(text: str, ref: Reference, correct: Optional[bool] = None) -> dict:
    """Judge one response against a puzzle's reference. `correct`: the verifier's verdict on the answer (default: the
    kk_boxed rule against the reference answer). Returns faithful, lucky, correct, parses, steps (how many the response
    has), and for the first wrong step its index (0-based; the final-answer sentence counts as step `steps`), kind,
    detail and text; step/kind/detail/text are None for a fully right trace."""
    if correct is None:
        correct = _answer_correct(text, ref.answer)
    if looks_grid(text):
        return check_grid(text, ref, correct)
    raws, final, ok_final = _split(text)
    # A step written exactly as the reference writes it is right; only the others are parsed and judged.
    same = [False] * len(raws)
    for i, r in enumerate(raws):  # up to the first step that differs
        if i >= len(ref.steps) or r != step_text(ref, i):
            break
        same[i] = True
    parsed = [ref.steps[i] if same[i] else _parse_step(r, ref) for i, r in enumerate(raws)]
    parses = ok_final and all(p is not None for p in parsed)
    n = len(parsed)

    at = text.find(FINAL)

    def bad(i: int, kind: str, detail: str) -> dict:
        where = raws[i] if i < n else text[at:] if at >= 0 else None
        return _verdict(correct, parses, n, i, kind, detail, where)

    names = ref.names
    prev: tuple[bool, ...] = ()
    front = 0  # the person the search is on: roles of everyone before them must stay
    for i, step in enumerate(parsed):
        if same[i]:  # the reference step itself: nothing to judge, only the search state moves on
            if step[0] == "back":
                front = step[1]
            else:
                prev = step[1]
                front = len(prev) if expected_checks(ref, prev)[-1][3] else len(prev) - 1
            continue
        if step is None:
            return bad(i, "unparseable", "not a step of the explicit format")
        want = ref.steps[i] if i < len(ref.steps) else None
        if want is None:
            return bad(i, "wrong_search", "goes on after the search has found the solution")
        if step[0] == "back":
            if want != step:
                return bad(i, "wrong_search", f"goes back to {names[step[1]]} where the search {_does(names, want)}")
            front = step[1]
            continue
        roles = step[1]
        if roles is None:
            return bad(i, "wrong_roles", "roles are not an assignment of " + ", ".join(names) + " in order")
        if len(roles) <= front or roles[:front] != prev[:front]:
            return bad(
                i,
                "wrong_roles",
                f"{_roles(names, roles)} is not a next assumption after {_roles(names, prev) or 'the start'}",
            )
        local = _local(ref, roles, step[2])
        if local:
            return bad(i, *local)
        if want != ("try", roles):
            return bad(i, "wrong_search", f"assumes {_roles(names, roles)} where the search {_does(names, want)}")
        prev = roles
        front = len(roles) if expected_checks(ref, roles)[-1][3] else len(roles) - 1
    if not ok_final:
        return bad(n, "unparseable", "no final answer sentence `The final answer is: \\boxed{...}.` at the end")
    if n < len(ref.steps):
        return bad(n, "wrong_search", f"stops after {n} of the search's {len(ref.steps)} steps")
    if not correct:
        return bad(n, "wrong_answer", f"the search ends at {ref.answer!r}, the answer is {final!r}")
    return _verdict(correct, parses, n)


def _roles(names: tuple[str, ...], roles: tuple[bool, ...]) -> str:
    return " ".join(f"{nm} {'knight' if k else 'knave'}" for nm, k in zip(names, roles))


def _does(names: tuple[str, ...], step: tuple) -> str:
    return f"goes back to {names[step[1]]}" if step[0] == "back" else f"assumes {_roles(names, step[1])}"


def check_sample(text: str, sample: dict, correct: Optional[bool] = None) -> Optional[dict]:
    """`check` for a generated K&K sample (None when the sample carries no statements)."""
    ref = reference_for_sample(sample)
    return None if ref is None else check(text, ref, correct)


def compact(verdict: dict) -> dict:
    """The per-response entry an evaluation row keeps."""
    return {k: verdict[k] for k in ("faithful", "lucky", "parses", "step", "kind", "detail")}


def annotate(samples: list[dict], rows: list[dict]) -> bool:
    """Add a `faithful` entry to every verdict of `rows` (evaluation rows, aligned with `samples`) when the samples
    are K&K puzzles with statements and some response is an explicit trace; the verdict's score is the answer's
    correctness. Returns whether it did."""
    if not rows or not any(looks_explicit(t) or looks_grid(t) for r in rows for t in r["responses"]):
        return False
    refs = [reference_for_sample(s) for s in samples]
    if any(ref is None for ref in refs):
        return False
    for ref, row in zip(refs, rows):
        for text, v in zip(row["responses"], row["verdicts"]):
            v["faithful"] = compact(check(text, ref, v["score"] == 1.0))
    return True


def rates(rows: list[dict]) -> Optional[dict[str, Any]]:
    """faithful_accuracy and lucky: per problem the share of its responses, averaged over problems (like accuracy);
    None when the rows carry no faithfulness entries."""
    per = [[v["faithful"] for v in r.get("verdicts", []) if v.get("faithful") is not None] for r in rows]
    if not any(per):
        return None
    per = [p for p in per if p]
    return {
        "faithful_accuracy": sum(sum(x["faithful"] for x in p) / len(p) for p in per) / len(per),
        "lucky": sum(sum(x["lucky"] for x in p) / len(p) for p in per) / len(per),
    }
