"""Knights & Knaves puzzles in the style of Xie et al. 2024 ("On Memorization of LLMs in Logical
Reasoning"): one random statement tree per person, kept only when exactly one knight/knave assignment
is consistent, rendered as the paper's quiz text together with two reference traces: "short" (the
generator's own depth-first chain of thought, as in the paper's SFT data), "long" (a verbose
systematic search with a final verification), "compact" (the short search in a few words per step) and
"explicit" (the same search with every check written out: the claim copied from the prompt, the truth value
of each of its parts under the current roles, its value and the verdict; a very small model learns the
logic from it, not only the format).

style "prose" renders the quiz as the paper does; "terse" writes one line per person, `A: B knave or C knight.`,
so a very small model spends its few training steps on the logic rather than on long, varied sentences; "grid" writes
each claim in leaf codes padded to a fixed width (`A: Bv or Ck _`), for the "grid" trace.

The "grid" trace (names as letters, depth <= 2, at most GRID_MAX_PEOPLE people) checks the assignments in order
(all knights first, the last person flipping fastest) until one is consistent, a row each: the roles (`AK BV CK`),
then per person their claim with every leaf's truth value appended (`BvT or CkF _`), its value and the verdict
(`T ok`). Every row has the same width, so all a row copies (the claims, the previous roles) sits a fixed distance
back: a very small model learns that in a few hundred steps, where copying a claim found by its speaker's name (the
explicit trace) stayed at chance for thousands (bench/bench_tiny_retrieval.py).

Statement trees are JSON-friendly lists over 0-based person indices (name order):
["knight", i], ["knave", i], ["not", s], ["and", s, ...], ["or", s, ...], ["imply", s, t], ["iff", s, t].
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import lru_cache

from harness.generators.rng import seeded_rng

# Xie et al.'s COMMON_NAMES plus a few more, so 8-person puzzles still get varied casts.
NAMES = (
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Ethan",
    "Sophia",
    "Mason",
    "Isabella",
    "William",
    "Mia",
    "James",
    "Charlotte",
    "Benjamin",
    "Amelia",
    "Lucas",
    "Harper",
    "Henry",
    "Evelyn",
    "Alexander",
    "Abigail",
    "Michael",
    "Emily",
    "Daniel",
    "Elizabeth",
    "Jacob",
    "Sofia",
    "Logan",
    "Avery",
    "Jackson",
    "Ella",
    "Sebastian",
    "Scarlett",
    "Jack",
    "Grace",
    "Aiden",
    "Chloe",
    "Owen",
    "Victoria",
    "Samuel",
    "Riley",
    "Matthew",
    "Aria",
    "Joseph",
    "Lily",
    "Luke",
    "Aurora",
    "David",
    "Zoey",
    "Oliver",
    "Penelope",
    "Hannah",
    "Nora",
    "Leo",
    "Wyatt",
    "Ryan",
    "Nathan",
    "Ruby",
    "Isaac",
    "Stella",
)
# {Content} is the claim capitalised (it opens a quotation), {content} the claim as is.
TEMPLATES = (
    '{name} said, "{Content}."',
    "{name} told you that {content}.",
    '{name} claimed, "{Content}."',
    '{name} stated, "{Content}."',
    '{name} remarked, "{Content}."',
    '{name} mentioned, "{Content}."',
    '"{Content}," {name} claimed.',
    'According to {name}, "{Content}."',
    "{name} said that {content}.",
    '"{Content}," {name} mentioned.',
)
INTRO = (
    "A very special island is inhabited only by knights and knaves. Knights always tell the truth, "
    "and knaves always lie. "
)
HEADER = "Let's think step by step, by considering whether each person is lying and if that leads to contradiction."
MAX_PEOPLE = 12  # the brute-force check is over 2^n assignments
MAX_ATTEMPTS = 200_000  # bounds the rejection loop; real puzzles need ~10-1000 attempts
# One bucket in RESERVED of puzzle space (by puzzle key) belongs to no split of any task: the embedded tiny model's
# pretraining corpus draws its puzzles only from it, so no pretraining puzzle can be a training or test puzzle.
RESERVED = 16


def reserved(key: str) -> bool:
    """Whether a puzzle key is in the bucket kept for pretraining text (never in any split)."""
    return int(key, 16) % RESERVED == 0


def split_bucket(key: str, parts: int) -> int:
    """The split bucket of a puzzle key outside the reserved bucket (independent of RESERVED's residue)."""
    return (int(key, 16) // RESERVED) % parts


def evaluate(tree: list, assignment: list[bool]) -> bool:
    """Truth value of a statement tree under an assignment (True = knight)."""
    op = tree[0]
    if op == "knight":
        return bool(assignment[tree[1]])
    if op == "knave":
        return not assignment[tree[1]]
    if op == "not":
        return not evaluate(tree[1], assignment)
    if op == "and":
        return all(evaluate(t, assignment) for t in tree[1:])
    if op == "or":
        return any(evaluate(t, assignment) for t in tree[1:])
    if op == "imply":
        return (not evaluate(tree[1], assignment)) or evaluate(tree[2], assignment)
    if op == "iff":
        return evaluate(tree[1], assignment) == evaluate(tree[2], assignment)
    raise ValueError(f"unknown statement operator {op!r}")


@lru_cache(maxsize=None)
def _columns(n: int) -> tuple[int, tuple[int, ...]]:
    """Truth tables as 2^n-bit integers (bit a = assignment a, person i a knight iff bit i of a),
    so a whole statement is checked against all assignments with a handful of big-int operations;
    this is what makes 8-person rejection sampling cheap."""
    size = 1 << n
    cols = []
    for i in range(n):
        block = ((1 << (1 << i)) - 1) << (1 << i)
        cols.append(sum(block << start for start in range(0, size, 2 << i)))
    return (1 << size) - 1, tuple(cols)


def _table(tree: list, cols: tuple[int, ...], full: int) -> int:
    op = tree[0]
    if op == "knight":
        return cols[tree[1]]
    if op == "knave":
        return full ^ cols[tree[1]]
    if op == "not":
        return full ^ _table(tree[1], cols, full)
    subs = [_table(t, cols, full) for t in tree[1:]]
    if op == "and":
        out = full
        for s in subs:
            out &= s
        return out
    if op == "or":
        out = 0
        for s in subs:
            out |= s
        return out
    if op == "imply":
        return (full ^ subs[0]) | subs[1]
    if op == "iff":
        return full ^ (subs[0] ^ subs[1])
    raise ValueError(f"unknown statement operator {op!r}")


def _consistent(statements: list, n: int) -> int:
    full, cols = _columns(n)
    ok = full
    for p, s in enumerate(statements):
        ok &= full ^ (cols[p] ^ _table(s, cols, full))  # p is a knight iff p's statement is true
    return ok


def solutions(statements: list, n: int) -> list[list[bool]]:
    """All consistent assignments (person p is a knight iff p's statement is true)."""
    ok = _consistent(statements, n)
    return [[bool(a >> i & 1) for i in range(n)] for a in range(1 << n) if ok >> a & 1]


def _mentions(tree: list) -> set[int]:
    if tree[0] in ("knight", "knave"):
        return {tree[1]}
    return set().union(*(_mentions(t) for t in tree[1:]))


def _sample(rng: random.Random, speaker: int, n: int, depth: int, width: int) -> list:
    """Xie et al.'s sampler: a fair six-sided die picks leaf / not / and / or / imply / iff, and
    depth 1 forces a leaf; "I am a knave" is never drawn (it has no consistent speaker)."""
    dice = rng.randrange(6)
    if depth <= 1 or dice == 0:
        while True:
            kind, who = rng.choice(("knight", "knave")), rng.randrange(n)
            if not (kind == "knave" and who == speaker):
                return [kind, who]
    if dice == 1:
        return ["not", _sample(rng, speaker, n, depth - 1, width)]
    op = ("and", "or", "imply", "iff")[dice - 2]
    count = rng.randint(2, max(2, width)) if op in ("and", "or") else 2
    subs: list[list] = []
    for _ in range(20 * count):  # distinct branches; bounded because tiny casts may run out of them
        s = _sample(rng, speaker, n, depth - 1, width)
        if s not in subs:
            subs.append(s)
            if len(subs) == count:
                break
    return [op, *subs]


def _is_leaf(tree: list) -> bool:
    return tree[0] in ("knight", "knave") or (tree[0] == "not" and tree[1][0] in ("knight", "knave"))


def render(tree: list, names: list[str]) -> str:
    """English for a statement; compound parts are parenthesised so deep trees stay unambiguous."""
    op = tree[0]
    if op in ("knight", "knave"):
        return f"{names[tree[1]]} is a {op}"
    if op == "not" and tree[1][0] in ("knight", "knave"):
        return f"{names[tree[1][1]]} is not a {tree[1][0]}"  # the paper's wording for negated leaves
    parts = [render(t, names) if _is_leaf(t) else f"({render(t, names)})" for t in tree[1:]]
    if op == "not":
        return f"it is not the case that {parts[0]}"
    if op in ("and", "or"):
        return f"{', '.join(parts[:-1])} {op} {parts[-1]}"
    if op == "imply":
        return f"if {parts[0]} then {parts[1]}"
    return f"{parts[0]} if and only if {parts[1]}"


def render_terse(tree: list, names: list[str], leaf=None) -> str:
    """A statement in few words (`B knave or (C knight and A not knave)`); `leaf` replaces each leaf's text
    (the explicit trace writes truth values in the claim's shape)."""
    op = tree[0]
    if _is_leaf(tree):
        if leaf is not None:
            return leaf(tree)
        return f"{names[tree[1]]} {op}" if op != "not" else f"{names[tree[1][1]]} not {tree[1][0]}"
    parts = [render_terse(t, names, leaf) if _is_leaf(t) else f"({render_terse(t, names, leaf)})" for t in tree[1:]]
    if op == "not":
        return f"not {parts[0]}"
    if op in ("and", "or"):
        return f" {op} ".join(parts)
    if op == "imply":
        return f"if {parts[0]} then {parts[1]}"
    return f"{parts[0]} iff {parts[1]}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _role(knight: bool) -> str:
    return "a knight" if knight else "a knave"


def _answer(names: list[str], solution: list[bool]) -> str:
    return ", ".join(f"{name} is {_role(k)}" for name, k in zip(names, solution))


def _search(statements: list, n: int) -> list[tuple]:
    """Depth-first search in name order, knight before knave. A statement is checked as soon as its
    speaker and everyone it mentions are assigned, i.e. when the highest-indexed of them is."""
    due: list[list[int]] = [[] for _ in range(n)]
    for s, tree in enumerate(statements):
        due[max(_mentions(tree) | {s})].append(s)
    tape: list[tuple] = []
    assign: list[bool | None] = [None] * n
    options = [[True, False] for _ in range(n)]
    p = 0
    while p < n:
        if not options[p]:
            exhausted = []
            while p >= 0 and not options[p]:
                options[p], assign[p] = [True, False], None
                exhausted.append(p)
                p -= 1
            if p < 0:  # unreachable for a puzzle with a solution
                raise RuntimeError("search exhausted without a solution")
            tape.append(("back", exhausted, p))
            continue
        assign[p] = options[p].pop(0)
        checks, bad = [], None
        for s in due[p]:
            value = evaluate(statements[s], assign)
            checks.append((s, value))
            if value != assign[s]:
                bad = s
                break
        tape.append(("try", p, assign[p], checks, bad, list(assign)))
        if bad is None:
            p += 1
    return tape


def _list_names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _short_trace(tape: list, statements: list, names: list[str], answer: str) -> str:
    steps = [HEADER]
    for ev in tape:
        if ev[0] == "back":
            gone = _list_names([names[q] for q in ev[1]])
            steps.append(
                f"We have exhausted all possibilities for {gone}, so let us go back and reconsider {names[ev[2]]}."
            )
            continue
        _, p, knight, _, bad, assign = ev
        if bad is None:
            false = "" if knight else "false "
            steps.append(
                f"Assume {names[p]} is {_role(knight)}. No contradiction is found in their "
                f"{false}claim that {render(statements[p], names)}."
            )
        else:
            false = "" if assign[bad] else "false "
            whom = "their own" if bad == p else names[bad]
            steps.append(
                f"{names[p]} cannot be {_role(knight)}, because this would contradict the {false}claim of {whom}."
            )
    steps.append("This leads to a feasible solution.")
    steps.append(f"The final answer is: \\boxed{{{answer}}}.")
    return " ".join(steps)


def _compact_trace(tape: list, names: list[str], answer: str) -> str:
    """The same search as the short trace in a few words per step (a small model trains ~4x faster on it):
    each assumption, then either "ok" or the claim whose truth value contradicts its speaker's role."""
    steps = []
    for ev in tape:
        if ev[0] == "back":
            steps.append(f"{_list_names([names[q] for q in ev[1]])} exhausted, back to {names[ev[2]]}.")
            continue
        _, p, knight, checks, bad, _ = ev
        role = "knight" if knight else "knave"
        if bad is None:
            steps.append(f"{names[p]} {role}: ok.")
        else:
            value = dict(checks)[bad]
            whose = "own" if bad == p else f"{names[bad]}'s"
            steps.append(f"{names[p]} {role}: {whose} claim {str(value).lower()}, contradiction.")
    steps.append(f"The final answer is: \\boxed{{{answer}}}.")
    return " ".join(steps)


def _explicit_trace(tape: list, statements: list, names: list[str], answer: str, claims: list[str]) -> str:
    """The search with nothing left implicit: at each step that can check a claim, the roles assigned so far, then for
    each such claim: who says it, the claim as written in the prompt, the truth value of each part in the claim's
    shape, its value, and whether that fits the speaker's role. `claims` are the claims as the prompt words them."""
    steps = []
    for ev in tape:
        if ev[0] == "back":
            steps.append(f"back to {names[ev[2]]}.")
            continue
        _, p, _, checks, _, assign = ev
        state = " ".join(f"{names[i]} {'knight' if assign[i] else 'knave'}" for i in range(p + 1))
        parts = []
        for s, value in checks:
            tree = statements[s]
            text = f"{names[s]} says {claims[s]}"
            if not _is_leaf(tree):
                text += " = " + render_terse(tree, names, leaf=lambda t: "T" if evaluate(t, assign) else "F")
            parts.append(f"{text} = {'T' if value else 'F'}, {'ok' if value == assign[s] else 'contradiction'}")
        if parts:  # an assumption with nothing to check yet shows up in the next step's roles
            steps.append(f"{state}: {'; '.join(parts)}.")
    steps.append(f"The final answer is: \\boxed{{{answer}}}.")
    return " ".join(steps)


GRID_MAX_PEOPLE = 4  # the grid trace checks up to 2^n assignments


def grid_width(width: int) -> int:
    """Words of a claim in leaf codes at depth <= 2: `if Ak then Bv` (4), or `width` leaves joined by and/or."""
    return max(4, 2 * width - 1)


def _leaf_code(tree: list, names: list[str]) -> str:
    """`Ak` (A is a knight), `Av` (a knave), `Ank` / `Anv` (A is not a knight / knave): letters only, one word."""
    neg = tree[0] == "not"
    kind, who = tree[1] if neg else tree
    return f"{names[who]}{'n' if neg else ''}{'k' if kind == 'knight' else 'v'}"


def grid_words(tree: list, names: list[str], assign: list | None = None) -> list[str]:
    """A depth <= 2 claim as grid words; with `assign`, each leaf's truth value appended (`AkT`)."""

    def leaf(t: list) -> str:
        return _leaf_code(t, names) + ("" if assign is None else ("T" if evaluate(t, assign) else "F"))

    if _is_leaf(tree):
        return [leaf(tree)]
    if any(not _is_leaf(t) for t in tree[1:]):  # `not` over a leaf is a leaf, so this covers every deeper claim
        raise ValueError("the grid form needs claims of depth <= 2")
    if tree[0] == "imply":
        return ["if", leaf(tree[1]), "then", leaf(tree[2])]
    words = [leaf(tree[1])]
    for t in tree[2:]:
        words += [tree[0], leaf(t)]
    return words


def grid_claim(tree: list, names: list[str], width: int, assign: list | None = None) -> str:
    """grid_words padded with `_` to the grid width of the generator's `width`."""
    words = grid_words(tree, names, assign)
    return " ".join(words + ["_"] * (grid_width(width) - len(words)))


def grid_roles(names: list[str], assign: list[bool]) -> str:
    """An assignment in grid words: `AK BV CK`."""
    return " ".join(f"{name}{'K' if knight else 'V'}" for name, knight in zip(names, assign))


def grid_question(statements: list, names: list[str], width: int) -> str:
    return "\n".join(f"{names[p]}: {grid_claim(t, names, width)}" for p, t in enumerate(statements))


def grid_trace(statements: list, names: list[str], width: int, answer: str) -> str | None:
    """The grid trace (module docstring); None where it does not apply (more than GRID_MAX_PEOPLE people, depth > 2,
    names that are not single letters)."""
    n = len(statements)
    if n > GRID_MAX_PEOPLE or not all(len(x) == 1 and x.isupper() for x in names):
        return None
    rows = []
    try:
        for a in range(1 << n):
            assign = [not (a >> (n - 1 - i) & 1) for i in range(n)]  # all knights first; the last person flips fastest
            cells = [grid_roles(names, assign)]
            good = True
            for s, tree in enumerate(statements):
                value = evaluate(tree, assign)
                good &= value == assign[s]
                cells.append(
                    f"{grid_claim(tree, names, width, assign)} {'T' if value else 'F'} "
                    f"{'ok' if value == assign[s] else 'no'}"
                )
            rows.append(" | ".join(cells))
            if good:
                return "\n".join(rows) + f"\nThe final answer is: \\boxed{{{answer}}}."
    except ValueError:
        return None
    raise RuntimeError("no consistent assignment")  # unreachable for a puzzle with a solution


def make_traces(
    tape: list, statements: list, names: list[str], solution: list[bool], answer: str, claims: list[str], width: int
) -> dict:
    """Every reference trace of a puzzle (grid only where it applies)."""
    out = {
        "short": _short_trace(tape, statements, names, answer),
        "compact": _compact_trace(tape, names, answer),
        "explicit": _explicit_trace(tape, statements, names, answer, claims),
        "long": _long_trace(tape, statements, names, solution, answer),
    }
    grid = grid_trace(statements, names, width, answer)
    if grid is not None:
        out["grid"] = grid
    return out


def question_text(
    statements: list, claims: list[str], names: list[str], style: str, lines: list[str] | None = None, width: int = 2
) -> str:
    """The quiz in a style; `lines`: the prose lines (one per person, templates filled in)."""
    if style == "terse":
        return " ".join(f"{names[p]}: {text}." for p, text in enumerate(claims))
    if style == "grid":
        return grid_question(statements, names, width)
    n = len(names)
    cast = " and ".join(names) if n == 2 else ", ".join(names[:-1]) + ", and " + names[-1]
    return f"{INTRO}You meet {n} inhabitants: {cast}. {' '.join(lines)} So who is a knight and who is a knave?"


def _why(tree: list, assign: list, names: list[str]) -> str:
    """The facts a statement's truth value rests on: the speaker-independent parts one level down."""
    if _is_leaf(tree):
        who = tree[1][1] if tree[0] == "not" else tree[1]
        return f"{names[who]} is {_role(assign[who])}"
    parts = [f'"{render(t, names)}" is {str(evaluate(t, assign)).lower()}' for t in tree[1:]]
    return _list_names(parts)


def _long_trace(tape: list, statements: list, names: list[str], solution: list[bool], answer: str) -> str:
    lines = [
        "Each person is either a knight, whose statement is true, or a knave, whose statement is "
        "false. I will assign roles in the order the people were introduced, trying knight before "
        "knave, check each statement as soon as everyone it involves has a role, and backtrack "
        "whenever a contradiction appears."
    ]
    for ev in tape:
        if ev[0] == "back":
            gone, q = [names[x] for x in ev[1]], names[ev[2]]
            lines.append(
                f"Both options for {_list_names(gone)} lead to contradictions, so the assumption "
                f"that {q} is a knight must be wrong. Go back and try {q} as a knave."
            )
            continue
        _, p, knight, checks, bad, assign = ev
        must = "true" if knight else "false"
        text = [
            f"Suppose {names[p]} is {_role(knight)}. Then their statement "
            f'"{_cap(render(statements[p], names))}" must be {must}.'
        ]
        if not checks:
            text.append("Nothing can be fully checked yet.")
        for s, value in checks:
            val = str(value).lower()
            text.append(f"{names[s]}'s statement is now {val}, since {_why(statements[s], assign, names)}.")
            if s != bad:
                text.append(f"That fits {names[s]} being {_role(assign[s])}.")
            else:
                need = "true" if assign[s] else "false"
                text.append(
                    f"But {names[s]} is {_role(assign[s])}, so it would have to be {need}. "
                    f"Contradiction: {names[p]} cannot be {_role(knight)} here."
                )
        lines.append(" ".join(text))
    lines.append(f"Every statement is consistent with these roles, so a solution is: {answer}.")
    lines.append("Verification:")
    for p, tree in enumerate(statements):
        truth = "true" if solution[p] else "false"
        lines.append(
            f"Check: {names[p]} is {_role(solution[p])}, and their statement "
            f'"{_cap(render(tree, names))}" is {truth}, consistent.'
        )
    lines.append(f"The final answer is: \\boxed{{{answer}}}.")
    return "\n".join(lines)


def puzzle_key(statements: list) -> str:
    """Identity of a puzzle: its statements only, so renamings/rephrasings count as the same puzzle."""
    return hashlib.sha256(json.dumps(statements, separators=(",", ":")).encode()).hexdigest()


LETTERS = tuple("ABCDEFGHIJKL")


def generate(
    *,
    seed: int,
    split: str,
    index: int,
    partition: tuple[int, int] = (0, 1),
    people: list[int] | tuple[int, int] = (2, 3),
    depth: int = 2,
    width: int = 2,
    names: str = "common",
    style: str = "prose",
    min_rank: int = 1,
) -> dict:
    """A puzzle of split bucket `partition` (never one of the reserved pretraining bucket). min_rank: the solution is
    at least the min_rank-th assignment a search in name order, knight before knave, tries (the grid trace writes
    that many rows); 1 = any puzzle, higher = harder puzzles (e.g. RL prompts harder than the SFT ones)."""
    return _generate(
        seed=seed,
        split=split,
        index=index,
        partition=partition,
        people=people,
        depth=depth,
        width=width,
        names=names,
        style=style,
        pretraining=False,
        min_rank=min_rank,
    )


def pretraining_puzzle(
    *,
    seed: int,
    index: int,
    people: list[int] | tuple[int, int] = (2, 4),
    depth: int = 2,
    width: int = 2,
    names: str = "common",
    style: str = "prose",
) -> dict:
    """A puzzle of the reserved bucket, for the tiny model's pretraining text only: no split of any task holds it."""
    return _generate(
        seed=seed,
        split="pretraining",
        index=index,
        partition=(0, 1),
        people=people,
        depth=depth,
        width=width,
        names=names,
        style=style,
        pretraining=True,
    )


def _generate(
    *,
    seed: int,
    split: str,
    index: int,
    partition: tuple[int, int],
    people: list[int] | tuple[int, int],
    depth: int,
    width: int,
    names: str,
    style: str,
    pretraining: bool,
    min_rank: int = 1,
) -> dict:
    """names: "common" draws first names (Xie et al.); "letters" calls the people A, B, C, ... in order, which
    spares a very small model from copying names out of the prompt. style: "prose" (the paper's quiz text) or
    "terse" (`A: B knave or C knight.`, one line per person); the puzzle and its key are the same either way."""
    names_kind = names
    if names_kind not in ("common", "letters"):
        raise ValueError(f"names must be 'common' or 'letters', got {names_kind!r}")
    if style not in ("prose", "terse", "grid"):
        raise ValueError(f"style must be 'prose', 'terse' or 'grid', got {style!r}")
    if style == "grid" and (names_kind != "letters" or depth > 2):
        raise ValueError("style 'grid' needs names: letters and depth <= 2")
    lo, hi = (int(x) for x in people)
    if not 2 <= lo <= hi <= MAX_PEOPLE:
        raise ValueError(f"people must be [min, max] with 2 <= min <= max <= {MAX_PEOPLE}, got {people}")
    part, parts = (int(x) for x in partition)
    if not 0 <= part < parts:
        raise ValueError(f"partition must be (k, K) with 0 <= k < K, got {partition}")
    if depth < 1 or width < 1:
        raise ValueError("depth and width must be >= 1")
    if not 1 <= min_rank <= 2**lo:
        raise ValueError(f"min_rank must be between 1 and 2^(min people) = {2 ** lo}, got {min_rank}")
    n = lo + index % (hi - lo + 1)  # exact level balance over consecutive indices
    full, cols = _columns(n)
    for attempt in range(MAX_ATTEMPTS):
        rng = seeded_rng(seed, split, index, attempt)
        statements = [_sample(rng, p, n, depth, width) for p in range(n)]
        key = puzzle_key(statements)
        if pretraining != reserved(key) or (not pretraining and split_bucket(key, parts) != part):
            continue  # disjoint splits by construction, and none in the pretraining bucket
        ok, degenerate = full, False
        for p, tree in enumerate(statements):
            table = _table(tree, cols, full)
            # a tautology/contradiction about only oneself gives one's role away for free
            degenerate |= table in (0, full) and _mentions(tree) == {p}
            ok &= full ^ (cols[p] ^ table)
        if degenerate or ok == 0 or ok & (ok - 1):
            continue
        winner = ok.bit_length() - 1
        solution = [bool(winner >> i & 1) for i in range(n)]
        if 1 + sum((not k) << (n - 1 - i) for i, k in enumerate(solution)) < min_rank:
            continue  # the search would find it before its min_rank-th assignment
        names = rng.sample(NAMES, n) if names_kind == "common" else list(LETTERS[:n])
        claims = [(render if style == "prose" else render_terse)(tree, names) for tree in statements]
        lines = None
        if style == "prose":
            lines = [
                rng.choice(TEMPLATES).format(name=names[p], content=text, Content=_cap(text))
                for p, text in enumerate(claims)
            ]
        question = question_text(statements, claims, names, style, lines, width)
        answer = _answer(names, solution)
        tape = _search(statements, n)
        return {
            "question": question,
            "answer": answer,
            "level": n,
            "traces": make_traces(tape, statements, names, solution, answer, claims, width),
            "metadata": {
                "n_people": n,
                "names": names,
                "solution": solution,
                "statements": statements,
                "depth": depth,
                "width": width,
                "style": style,
                "key": key,
            },
        }
    raise RuntimeError(
        f"no unique K&K puzzle with {n} people after {MAX_ATTEMPTS} attempts "
        f"(depth={depth}, width={width}, partition={partition})"
    )
