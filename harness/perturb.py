"""Perturbed Knights & Knaves puzzles and LiMem, after Xie et al. 2024 ("On Memorization of Large Language Models in
Logical Reasoning"): a model that memorised a training puzzle solves it but fails a slightly changed one.

Each perturbation maps a K&K sample (the generator's dict: question, answer, level, traces, metadata with statements,
names, solution, style, ...) to a NEW puzzle with a unique solution, rendered in the sample's own style with the
generator's own functions, with a recomputed answer, recomputed traces and metadata (`perturbation`,
`perturb_seed`, `original_key`, the new `key`). The result is a pure function of (sample, kind, seed).

Kinds (`KINDS`):
  leaf     one leaf of one statement is replaced, a knight<->knave flip when one works, else another leaf as in
           Xie et al. ("leaf": a newly sampled leaf); like theirs it must change the solution (a memorised answer is
           then wrong), keep it unique, and keep the generator's rules (no "I am a knave" leaf, distinct branches, no
           self-only tautology). The puzzle's logic changes; its surface hardly does.
  role     one person's role in the solution is flipped; the statements that the new assignment makes inconsistent
           get the fewest single-leaf edits that make the new assignment the unique solution (if no such edit
           set exists: those statements and the flipped person's are redrawn with the generator's sampler, the
           deterministic stand-in for Xie et al.'s "flip a role and regenerate the statement").
  reorder  the people (and so the lines) are permuted: person j of the new puzzle is person order[j] of the old one,
           every statement is relabelled with the inverse permutation, so the logic is the same puzzle up to the
           renaming (the same multiset of relabelled statements, the same roles per speaker) while the lines, the
           cast, the answer and the search order of the traces change. With first names each line keeps its
           speaker's name (Xie et al.'s "reorder statements"); with letters the names stay positional (the first
           line is still A's), so the people are renamed with the order and the letters-style convention holds.
  rename   other names, same statements and order: first names are drawn from the generator's NAMES without the
           sample's; letters become other letters in alphabetical order (from A-L when enough are left, else A-Z).
           The key is the original one (the key is a function of the statements only).

`harness eval --perturb KIND` and `harness data export --perturb KIND` use `perturb_split`; `harness run` reports
LiMem = accuracy x (1 - consistency ratio) on the run's own training puzzles (`limem`, `run_limem`).
"""

from __future__ import annotations

import copy
import itertools
import json
import string
from pathlib import Path
from typing import Any, Iterable, Optional

from harness.errors import HarnessError
from harness.generators import kk, seeded_rng
from harness.generators.kk import (
    LETTERS,
    NAMES,
    TEMPLATES,
    _answer,
    _cap,
    _consistent,
    _mentions,
    _sample,
    _search,
    evaluate,
    puzzle_key,
    render,
    render_terse,
)

KINDS = ("leaf", "role", "reorder", "rename")
LIMEM_DEFAULTS = {"kind": "leaf", "n": 200, "seed": 0}
MAX_ROLE_COMBOS = 400  # single-leaf edit sets tried per flipped person before redrawing statements
MAX_REDRAWS = 2000  # redraws per flipped person


class PerturbError(ValueError):
    """This puzzle admits no perturbation of this kind (e.g. no single leaf can change a tiny puzzle's solution)."""


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise HarnessError(f"unknown perturbation '{kind}'; valid kinds: {', '.join(KINDS)}")
    return kind


def is_kk(spec: Any, split: Optional[str] = None) -> bool:
    """A task whose samples (of `split`) come from the K&K generator."""
    gen = getattr(spec.source, "generator", None)
    if gen is None or gen.name != "kk":
        return False
    return split is None or spec.split(split).source is None


def require_kk(spec: Any, split: str, kind: str) -> None:
    check_kind(kind)
    if not is_kk(spec, split):
        raise HarnessError(
            f"--perturb applies to Knights & Knaves tasks (generator 'kk'); task '{spec.id}' split "
            f"'{split}' is not one (valid kinds, for K&K tasks: {', '.join(KINDS)})"
        )


# --- puzzles --------------------------------------------------------------------------------------------------


def _leaves(tree: list, path: tuple = ()) -> Iterable[tuple[tuple, list]]:
    """(path, leaf) of every atomic leaf ["knight"|"knave", i]; a path indexes into the nested lists."""
    if tree[0] in ("knight", "knave"):
        yield path, tree
        return
    for i, sub in enumerate(tree[1:], 1):
        yield from _leaves(sub, path + (i,))


def _replace(tree: list, path: tuple, new: list) -> list:
    if not path:
        return copy.deepcopy(new)
    out = copy.deepcopy(tree)
    cur = out
    for i in path[:-1]:
        cur = cur[i]
    cur[path[-1]] = copy.deepcopy(new)
    return out


def _node(tree: list, path: tuple) -> list:
    for i in path:
        tree = tree[i]
    return tree


def _well_formed(tree: list, speaker: int) -> bool:
    """The generator's rules: no "I am a knave" leaf, distinct branches under every operator."""
    if tree[0] in ("knight", "knave"):
        return not (tree[0] == "knave" and tree[1] == speaker)
    subs = tree[1:]
    if tree[0] != "not" and len({json.dumps(s) for s in subs}) < len(subs):
        return False
    return all(_well_formed(s, speaker) for s in subs)


def _degenerate(statements: list, n: int) -> bool:
    """A tautology or contradiction about only its speaker gives the speaker's role away (the generator rejects it)."""
    for p, tree in enumerate(statements):
        if _mentions(tree) == {p} and evaluate(tree, [True] * n) == evaluate(tree, [False] * n):
            return True
    return False


def unique_solution(statements: list, n: int) -> Optional[list[bool]]:
    """The only consistent assignment, or None (no or several)."""
    ok = _consistent(statements, n)
    if ok == 0 or ok & (ok - 1):
        return None
    a = ok.bit_length() - 1
    return [bool(a >> i & 1) for i in range(n)]


def _lettered(names: list[str]) -> bool:
    return all(len(x) == 1 and x.isupper() for x in names)


def _claims(statements: list, names: list[str], style: str) -> list[str]:
    return [(render if style == "prose" else render_terse)(tree, names) for tree in statements]


def _templates(sample: dict, claims: list[str], names: list[str]) -> list[Optional[int]]:
    """Which of the generator's templates wrote each prose line (None where none matches the question)."""
    q = sample["question"]
    out: list[Optional[int]] = []
    for p, text in enumerate(claims):
        found = [
            t for t, tpl in enumerate(TEMPLATES) if tpl.format(name=names[p], content=text, Content=_cap(text)) in q
        ]
        out.append(found[0] if found else None)
    return out


def question_text(
    statements: list, claims: list[str], names: list[str], style: str, templates: list[int], width: int = 2
) -> str:
    """The quiz as the generator writes it (`templates`: the template index of each prose line)."""
    lines = [
        TEMPLATES[templates[p]].format(name=names[p], content=text, Content=_cap(text)) for p, text in enumerate(claims)
    ]
    return kk.question_text(statements, claims, names, style, lines, width)


def _meta(sample: dict) -> dict:
    meta = sample.get("metadata") or {}
    if not all(k in meta for k in ("statements", "names", "solution")):
        raise HarnessError(
            f"sample {sample.get('id', '?')} is not a Knights & Knaves sample (its metadata needs "
            "statements, names and solution); --perturb applies to K&K tasks only"
        )
    return meta


def perturb(sample: dict, kind: str, seed: int = 0) -> dict:
    """A new puzzle from `sample` (see the module docstring); PerturbError if this puzzle admits none of `kind`."""
    check_kind(kind)
    meta = _meta(sample)
    statements, names, solution = meta["statements"], list(meta["names"]), list(meta["solution"])
    n, style = len(statements), meta.get("style", "prose")
    original_key = meta.get("key") or puzzle_key(statements)
    rng = seeded_rng("perturb", kind, seed, original_key, json.dumps(names))
    claims = _claims(statements, names, style)
    templates = _templates(sample, claims, names) if style == "prose" else [0] * n
    templates = [t if t is not None else rng.randrange(len(TEMPLATES)) for t in templates]
    info: dict[str, Any] = {}
    if kind == "leaf":
        new_statements, info = _perturb_leaf(statements, solution, n, rng)
        new_names, new_templates = names, templates
    elif kind == "role":
        new_statements, info = _perturb_role(statements, solution, n, rng, meta.get("depth", 2), meta.get("width", 2))
        new_names, new_templates = names, templates
    elif kind == "reorder":
        order = list(range(n))
        while order == list(range(n)):
            rng.shuffle(order)
        inverse = {old: new for new, old in enumerate(order)}
        new_statements = [_relabel(statements[old], inverse) for old in order]
        new_names = names if _lettered(names) else [names[old] for old in order]
        new_templates = [templates[old] for old in order]
        info = {"order": order}
    else:
        new_statements, new_templates = copy.deepcopy(statements), templates
        new_names = _rename(names, rng)
    new_solution = unique_solution(new_statements, n)
    if new_solution is None:  # never for reorder / rename; leaf and role check it before returning
        raise PerturbError(f"the {kind} perturbation has no unique solution")
    new_claims = _claims(new_statements, new_names, style)
    answer = _answer(new_names, new_solution)
    tape = _search(new_statements, n)
    traces = kk.make_traces(tape, new_statements, new_names, new_solution, answer, new_claims, meta.get("width", 2))
    out = {
        **sample,
        "question": question_text(new_statements, new_claims, new_names, style, new_templates, meta.get("width", 2)),
        "answer": answer,
        "level": sample.get("level", n),
        "traces": traces,
        "metadata": {
            **meta,
            "names": new_names,
            "solution": new_solution,
            "statements": new_statements,
            "key": puzzle_key(new_statements),
            "perturbation": kind,
            "perturb_seed": seed,
            "original_key": original_key,
            **({"original_id": sample["id"]} if "id" in sample else {}),
            **info,
        },
    }
    if "id" in sample:
        out["id"] = perturbed_id(sample["id"], kind, seed)
    return out


def perturbed_id(sid: str, kind: str, seed: int = 0) -> str:
    return f"{sid}~{kind}" + (f".{seed}" if seed else "")


def _relabel(tree: list, mapping: dict[int, int]) -> list:
    if tree[0] in ("knight", "knave"):
        return [tree[0], mapping[tree[1]]]
    return [tree[0], *(_relabel(t, mapping) for t in tree[1:])]


def _rename(names: list[str], rng) -> list[str]:
    n = len(names)
    if _lettered(names):
        pool = [x for x in LETTERS if x not in names]
        if len(pool) < n:
            pool = [x for x in string.ascii_uppercase if x not in names]
        return sorted(rng.sample(pool, n))
    return rng.sample([x for x in NAMES if x not in names], n)


def _leaf_edits(tree: list, speaker: int, n: int, rng) -> list[tuple[tuple, list, bool]]:
    """Every single-leaf replacement of a statement: (path, new leaf, is a knight<->knave flip), flips first, each
    group in seeded order, only those that keep the generator's rules."""
    flips, others = [], []
    for path, leaf in _leaves(tree):
        flip = ["knave" if leaf[0] == "knight" else "knight", leaf[1]]
        flips.append((path, flip, True))
        others += [(path, [k, w], False) for w in range(n) for k in ("knight", "knave") if [k, w] not in (leaf, flip)]
    rng.shuffle(flips)
    rng.shuffle(others)
    return [e for e in flips + others if _well_formed(_replace(tree, e[0], e[1]), speaker)]


def _perturb_leaf(statements: list, solution: list[bool], n: int, rng) -> tuple[list, dict]:
    persons = list(range(n))
    rng.shuffle(persons)
    edits = [(p, e) for p in persons for e in _leaf_edits(statements[p], p, n, rng)]
    edits.sort(key=lambda pe: not pe[1][2])  # stable: every flip (in seeded order) before any other leaf
    for p, (path, leaf, flip) in edits:
        new = list(statements)
        new[p] = _replace(statements[p], path, leaf)
        sol = unique_solution(new, n)
        if sol is not None and sol != solution and not _degenerate(new, n):
            return copy.deepcopy(new), {
                "changed": {
                    "person": p,
                    "path": list(path),
                    "from": _node(statements[p], path),
                    "to": leaf,
                    "flip": flip,
                }
            }
    raise PerturbError("no single-leaf change gives a unique, different solution")


def _perturb_role(statements: list, solution: list[bool], n: int, rng, depth: int, width: int) -> tuple[list, dict]:
    persons = list(range(n))
    rng.shuffle(persons)
    targets = []
    for p in persons:
        target = list(solution)
        target[p] = not target[p]
        targets.append((p, target, [s for s in range(n) if evaluate(statements[s], target) != target[s]]))
    # 1. the fewest edits: one leaf in each statement the new roles contradict (then one more leaf in a statement that
    #    already fits, where other assignments fit too), for each person in seeded order
    for p, target, bad in targets:
        options = [
            [
                e
                for e in _leaf_edits(statements[s], s, n, rng)
                if evaluate(_replace(statements[s], e[0], e[1]), target) == target[s]
            ]
            for s in bad
        ]
        if not all(options):
            continue
        extra = [
            (o, e)
            for o in range(n)
            if o not in bad
            for e in _leaf_edits(statements[o], o, n, rng)
            if evaluate(_replace(statements[o], e[0], e[1]), target) == target[o]
        ]
        combos = ((c, None) for c in itertools.islice(itertools.product(*options), MAX_ROLE_COMBOS))
        plus = itertools.islice(((c, x) for x in extra for c in itertools.product(*options)), MAX_ROLE_COMBOS)
        for combo, more in itertools.chain(combos, plus):
            new = list(statements)
            for s, (path, leaf, _) in zip(bad, combo):
                new[s] = _replace(statements[s], path, leaf)
            if more is not None:
                new[more[0]] = _replace(statements[more[0]], more[1][0], more[1][1])
            if unique_solution(new, n) == target and not _degenerate(new, n):
                edited = sorted(bad + ([more[0]] if more is not None else []))
                return copy.deepcopy(new), {"flipped": p, "edited": edited, "redrawn": []}
    # 2. redraw the contradicted statements and the flipped person's own with the generator's sampler
    for p, target, bad in targets:
        redraw = sorted(set(bad) | {p})
        for _ in range(MAX_REDRAWS):
            new = list(statements)
            for s in redraw:
                new[s] = _sample(rng, s, n, depth, width)
            if unique_solution(new, n) == target and not _degenerate(new, n):
                return copy.deepcopy(new), {"flipped": p, "edited": [], "redrawn": redraw}
    raise PerturbError("no flipped role could be made the unique solution")


# --- splits and evaluation ------------------------------------------------------------------------------------


def perturb_samples(samples: Iterable[dict], kind: str, seed: int = 0) -> tuple[list[dict], list[str]]:
    """(perturbed samples, ids of samples that admit no perturbation of this kind)."""
    out, skipped = [], []
    for s in samples:
        try:
            out.append(perturb(s, kind, seed))
        except PerturbError:
            skipped.append(s.get("id", "?"))
    return out, skipped


def perturb_split(
    spec: Any, split: str, kind: str, seed: int = 0, limit: Optional[int] = None
) -> tuple[list[dict], list[str]]:
    """The perturbed samples of a K&K split's first `limit` samples (ids `<id>~KIND`), and the ids skipped."""
    from harness.data import load_split

    require_kk(spec, split, kind)
    return perturb_samples(load_split(spec, split, limit), kind, seed)


# --- LiMem ----------------------------------------------------------------------------------------------------


def limem(original: list[float], perturbed: list[float]) -> dict:
    """Xie et al.'s LiMem = Acc x (1 - CR) from per-puzzle scores (1 = solved) of the same puzzles before and after
    perturbation; CR = (solved both times) / (solved originally), None (and LiMem 0) when none was solved."""
    if len(original) != len(perturbed):
        raise ValueError("original and perturbed scores must cover the same puzzles")
    n = len(original)
    solved = sum(1 for o in original if o == 1)
    both = sum(1 for o, q in zip(original, perturbed) if o == 1 and q == 1)
    acc = solved / n if n else 0.0
    cr = both / solved if solved else None
    return {
        "limem": acc * (1 - cr) if cr is not None else 0.0,
        "limem_accuracy": acc,
        "limem_consistency": cr,
        "limem_perturbed_accuracy": sum(1 for q in perturbed if q == 1) / n if n else 0.0,
        "limem_n": n,
        "limem_solved": solved,
        "limem_solved_both": both,
    }


def limem_config(spec: Any, recipe: dict, trained: bool) -> Optional[dict]:
    """`eval.limem` of a recipe: {kind, n, seed} (default on for K&K tasks when a model was trained; `false` or n: 0
    turns it off). Without an explicit n, n is capped by `eval.limit` (the cheap settings tests use)."""
    ev = recipe.get("eval", {}) or {}
    raw = ev.get("limem")
    if raw is False or raw == 0:
        return None
    if raw is None or raw is True:
        if not (is_kk(spec) and (trained or raw is True)):
            return None
        raw = {}
    if not isinstance(raw, dict):
        raise HarnessError(f"eval.limem must be a mapping like {{kind: leaf, n: 200}} or false, not {raw!r}")
    unknown = set(raw) - set(LIMEM_DEFAULTS)
    if unknown:
        raise HarnessError(f"eval.limem has unknown keys {sorted(unknown)}; it takes {', '.join(LIMEM_DEFAULTS)}")
    if not is_kk(spec):
        raise HarnessError(
            f"eval.limem (memorisation under perturbation) applies to K&K tasks; task '{spec.id}' is "
            "not one: drop eval.limem"
        )
    cfg = {**LIMEM_DEFAULTS, **raw}
    check_kind(str(cfg["kind"]))
    try:
        cfg["n"], cfg["seed"] = int(cfg["n"]), int(cfg["seed"])
    except (TypeError, ValueError):
        raise HarnessError(f"eval.limem.n and eval.limem.seed must be integers, got {raw}") from None
    if "n" not in raw and ev.get("limit"):
        cfg["n"] = min(cfg["n"], int(ev["limit"]))
    return cfg if cfg["n"] > 0 else None


def training_refs(spec: Any, stages: list[dict], final: str, root: Path) -> tuple[list[tuple[str, int]], str]:
    """(split, index) of the prompts the final model was trained on, in training order, and where they came from:
    the SFT data of an sft stage (sft, redistill: `<task>/<split>/<i>` ids of train_data.jsonl), the first `budget`
    rl prompts of an rl stage; a model trained by nothing here (base) gets the sft split (not trained on)."""
    st = next((s for s in reversed(stages) if s.get("model_path") == final), None)
    if st is None:
        split = "sft" if "sft" in spec.splits else next(s for s in spec.splits if s != "test")
        return [(split, i) for i in range(spec.split(split).size or 0)], f"{split} split (untrained model)"
    if st["stage"] == "rl":
        return [("rl", i) for i in range(int(st["config"]["budget"]))], "rl prompts"
    from harness.store import RunStore

    path = RunStore(root).stage_dir(st["stage"], st["key"]) / "train_data.jsonl"
    refs = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        sid = str(json.loads(line).get("id", ""))
        parts = sid.rsplit("/", 2)
        if len(parts) == 3 and parts[0] == spec.id and parts[1] in spec.splits and parts[2].isdigit():
            refs.append((parts[1], int(parts[2])))
    return refs, "sft data"


def run_limem(
    spec: Any,
    engine: Any,
    refs: list[tuple[str, int]],
    cfg: dict,
    max_new_tokens: Optional[int] = None,
    seed: int = 0,
    progress: Any = None,
) -> dict:
    """LiMem of a model on the first cfg['n'] of its training puzzles that admit a perturbation: greedy on the
    originals and on their perturbations (cfg['kind'], cfg['seed'])."""
    from harness.data import load_split

    originals, perturbed, skipped = [], [], 0
    for split, i in refs:
        if len(originals) >= cfg["n"]:
            break
        if not is_kk(spec, split):
            continue
        s = load_split(spec, split, limit=i + 1, offset=i)[0]
        try:
            q = perturb(s, cfg["kind"], cfg["seed"])
        except PerturbError:
            skipped += 1
            continue
        originals.append(s)
        perturbed.append(q)
    if not originals:
        return {}
    from harness.evaluate import evaluate

    metrics, rows = evaluate(
        spec,
        engine,
        temperature=0.0,
        max_new_tokens=max_new_tokens,
        seed=seed,
        progress=progress,
        data=originals + perturbed,
    )
    scores = [r["scores"][0] for r in rows]
    k = len(originals)
    return {
        **limem(scores[:k], scores[k:]),
        "limem_kind": cfg["kind"],
        "limem_seed": cfg["seed"],
        "limem_skipped": skipped,
        "limem_tokens": metrics["tokens_generated"],
    }
