"""Leaderboards from run records only: a pure table builder (records in, table out), pure renderers (table in,
text out), one function that reads the per-problem outcomes of records and one that writes files.

One row per set-up and (method, budget): task, model, recipe hash (without the keys that only add measurements:
eval.samples, eval.temperature, eval.limem), task-file hash, split definition and verifier are part of the row key,
so rows from different set-ups never mix; seeds are aggregated. Every seed answers the same
test problems, so seeds are not independent samples of problems: a row's outcome on a problem is the mean over its
samples and seeds, and its 95% interval is over distinct problems (Wilson when those outcomes are 0/1, else normal).
Rows are compared on the problems both answered with a paired test (McNemar exact on 0/1 outcomes, else a sign-flip
permutation test on the per-problem differences): each trained row against its start and against base, and every
row against rl and sft at their largest budgets; Holm's correction over the comparisons of a set-up. Records read
without their samples (no per-problem outcomes) fall back to Wilson over the problems of one seed and an unpaired
two-proportion z-test, named as such.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Optional

from harness import methods
from harness.budget import format_budget, parse_budget
from harness.errors import HarnessError
from harness.records import config_hash
from harness.stats import (
    Z95,
    holm,
    interval_name,
    mean_interval,
    normal_interval,
    paired_test,
    problem_outcomes,
    seed_average,
    two_proportion_z,
    wilson,
)

ALPHA = 0.05
INTERVAL = (
    "95% interval over distinct problems of the per-problem outcome averaged over samples and seeds: Wilson "
    "when every such outcome is 0 or 1 (one seed and one sample, or seeds that agree), else normal "
    "(mean +- 1.96 sd / sqrt(problems)); records without per-problem outcomes: Wilson over one seed's problems "
    "at the mean accuracy"
)
TEST = (
    "paired on the problems both rows answered: McNemar exact on 0/1 outcomes, else a sign-flip permutation test "
    "on per-problem differences (unpaired two-proportion z-test over problems where records lack per-problem "
    "outcomes); Holm-adjusted over the comparisons of a set-up, two-sided, alpha 0.05"
)
MATCH_RULE = (
    "smallest budget whose accuracy is at least the target's, or that the paired test (two-sided, "
    "unadjusted, alpha 0.05) does not find lower than it"
)
EXTRA_METRICS = ("faithful_accuracy", "lucky", "limem")  # shown only when some record has them
SAMPLED_COLUMNS = ("sampled", "vs_start_sampled")  # sampled pass@1 (eval.samples), shown only when some record has it
COST_KEYS = (
    "training_examples",
    "rollouts_generated",
    "sequences_trained",
    "tokens_generated",
    "tokens_trained",
    "flops_estimate",
)
PROVENANCE = ("recipe", "task_sha", "split_def", "verifier", "harness")
MAIN_COLUMNS = [
    "task",
    "model",
    "method",
    "budget",
    "seeds",
    "accuracy",
    "ci95",
    *EXTRA_METRICS,
    "per_level",
    "pass_at_k",
    "sampled",
    "truncation",
    "mean_len",
    "start",
    "vs_start",
    "vs_start_sampled",
    "vs_base",
    "significant",
]
COLUMNS = [*MAIN_COLUMNS, *COST_KEYS, "wall_s", *PROVENANCE, "runs"]


# Recipe keys that only add measurements (sampled pass@k, LiMem) and change neither the model nor its greedy accuracy:
# runs that differ only there are one set-up, so the expensive extras can run on the rows a claim needs.
MEASUREMENT_ONLY = {"eval": ("samples", "temperature", "limem")}
# Keys that change only how fast generation runs (the KV cache: the same tokens either way, tests/test_engines.py).
SPEED_ONLY = {"eval": ("cache",), "rl": ("cache",)}


def variants() -> dict[str, tuple[str, dict[str, Any]]]:
    """Method -> (its recipe section, {key: default}) for the keys that make a variant of it (harness/methods:
    Section.variants): a run with another value is its own row, labelled with it (`redistill@1k (filter faithful)`),
    in the same set-up as the rest, so it is tested against them."""
    return {
        m.name: (m.section.name, {k: m.section.defaults[k] for k in m.section.variants})
        for m in methods.all_methods()
        if m.section is not None and m.section.variants
    }


def setup_recipe_hash(recipe: dict) -> str:
    """The recipe's hash without its measurement-only, speed-only and variant keys: the `recipe` of a row's set-up."""
    out = dict(recipe)
    for section, keys in [*MEASUREMENT_ONLY.items(), *SPEED_ONLY.items(), *variants().values()]:
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
            if not out[section]:
                del out[section]
    return config_hash(out)


def _setup(rec: dict) -> dict:
    c, p = rec.get("config", {}), rec.get("provenance", {})
    recipe = setup_recipe_hash(c["recipe"]) if isinstance(c.get("recipe"), dict) else p.get("recipe_hash")
    return {
        "task": c.get("task"),
        "model": c.get("model"),
        "recipe": recipe,
        "task_sha": (p.get("task_sha256") or "")[:12],
        "split_def": config_hash(p.get("splits", {})),
        "verifier": config_hash(p.get("verifier", {})) if p.get("verifier") else None,
        "verifier_name": (p.get("verifier") or {}).get("name"),
    }


def _chain_seconds(rec: dict) -> float:
    """Wall time of everything that produced the row's model: its stages (also when this run reused them) + eval."""
    w = rec.get("wall_seconds", {})
    parts = [v for k, v in w.items() if k != "total"]
    return sum(parts) if parts else w.get("total", 0.0)


def _cell(value: Any, display: str, runs: list[str]) -> dict:
    return {"value": value, "display": display, "runs": runs}


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def load_outcomes(records: Iterable[dict], runs_root: Optional[Path] = None) -> list[dict]:
    """The records with `outcomes` ({problem id: mean score over its samples}) read from each run folder's
    samples.jsonl (the folder is the record's `path`, else runs_root/run_id). A record whose samples are missing or
    unreadable keeps no outcomes, and the table says which test it fell back to."""
    out = []
    for rec in records:
        folder = rec.get("path") or (runs_root / rec["run_id"] if runs_root and rec.get("run_id") else None)
        f = Path(folder) / "samples.jsonl" if folder else None
        outcomes, sampled, lengths = None, None, None
        if rec.get("kind") == "run" and "outcomes" not in rec and f is not None and f.is_file():
            try:
                lines = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
                outcomes = problem_outcomes(lines)
                sampled = problem_outcomes({"id": x.get("id"), "scores": x.get("sampled_scores")} for x in lines)
                # per problem, the mean length of its greedy responses in tokens (the mean_len column's interval)
                lengths = problem_outcomes({"id": x.get("id"), "scores": x.get("n_tokens")} for x in lines)
            except (ValueError, TypeError, AttributeError):
                outcomes = sampled = lengths = None
        extra = {
            **({"sampled_outcomes": sampled} if sampled else {}),
            **({"response_lengths": lengths} if lengths else {}),
        }
        out.append({**rec, "outcomes": outcomes, **extra} if outcomes else rec)
    return out


def _label(method: str, budget: int, variant: Optional[str] = None) -> str:
    label = f"{method}@{format_budget(budget)}" if budget else method
    if not variant:
        return label
    return f"{label} {variant}" if variant.startswith("from ") else f"{label} ({variant})"


def _recipe_init(rec: dict) -> str:
    """The start its recipe gives a run of a method that starts from an init (its init_key, rl.init; base when
    unset)."""
    m = methods.find(rec.get("method"))
    section, _, key = (m.init_key if m and m.init_key else "rl.init").partition(".")
    return (rec.get("config", {}).get("recipe", {}).get(section) or {}).get(key) or "base"


def _starts_from(rec: dict) -> Optional[str]:
    m = methods.find(rec.get("method"))
    return m.starts_from if m else None


def _variant(rec: dict) -> Optional[str]:
    """What makes a run a variant of its method, its own row: the --init of a method that starts from one when it
    differs from its recipe's (`rl from base`, beside the recipe's rl from its cold start), or a variant key of the
    method's recipe section off its default (`filter faithful`). None for a run as its recipe runs the method."""
    method, config = rec.get("method"), rec.get("config", {})
    init = config.get("init")
    if _starts_from(rec) == "init" and init and init != _recipe_init(rec):
        return f"from {init}"
    section_name, keys = variants().get(method, (method, {}))
    section = (config.get("recipe") or {}).get(section_name) or {}
    parts = [f"{k} {section[k]}" for k, default in keys.items() if section.get(k, default) != default]
    return ", ".join(parts) or None


def _reference(rows: list[dict], method: str) -> Optional[dict]:
    """A method's row at its largest budget, as its recipe runs it (a variant row, e.g. rl with another --init, only if
    there is no other)."""
    return max(
        (r for r in rows if r["_method"] == method), key=lambda r: (r["_budget"], r["_variant"] is None), default=None
    )


def _start(rec: dict, rows: list[dict]) -> tuple[Optional[str], Optional[dict]]:
    """(label, row) of the model a run's training started from (its method's starts_from): base for sft / redistill
    (re-distillation trains the base on the RL policy's samples); for a method that starts from an init (rl) the row
    whose final stage is the rl stage's init stage (same cached checkpoint), else the row named by its --init (config
    `init`, else the recipe's rl.init)."""
    method, starts = rec.get("method"), _starts_from(rec)
    base = next((r for r in rows if r["_method"] == "base"), None)
    if starts == "base":
        return "base", base
    if starts != "init":
        return None, None
    stages = rec.get("stages") or []
    rl_at = max((i for i, st in enumerate(stages) if st.get("stage") == "rl"), default=None)
    if rl_at:  # a stage trained before the rl stage is its start
        key = stages[rl_at - 1].get("key")
        for r in rows:
            if r["_method"] != method and any((x.get("stages") or [{}])[-1].get("key") == key for x in r["_recs"]):
                return r["_label"], r
    init = rec.get("config", {}).get("init") or _recipe_init(rec)
    if init == "base":
        return "base", base
    if init.startswith("sft@"):
        try:
            budget = parse_budget(init.split("@", 1)[1])
        except Exception:  # a label we cannot read is shown as written
            return init, None
        return init, next((r for r in rows if r["_method"] == "sft" and r["_budget"] == budget), None)
    hit = next((r for r in rows if init in r["_runs"]), None)
    return (hit["_label"] if hit else init), hit


def _paired(a: dict, b: dict) -> Optional[dict]:
    common = sorted(set(a) & set(b))
    return paired_test([a[i] for i in common], [b[i] for i in common]) if common else None


def _paired_rows(a: dict, b: dict, key: str = "outcomes") -> Optional[dict]:
    """The paired test of two rows' per-problem outcomes (`outcomes` or `sampled_outcomes`), each averaged over the
    seeds both rows measured: a row run on seeds 1-2 against one on 0-2 is tested on seeds 1-2, never on its own
    average against the other's (the seed that only one row has would count as a difference between methods). Rows
    that share no seed, and an untrained row (base: its model is the same under every seed), are compared as they
    are, each over its own seeds."""
    field = "_outcomes" if key == "outcomes" else "_sampled"
    seed_free = any(not getattr(methods.find(r["_method"]), "trains", True) for r in (a, b))

    def by_seed(row: dict) -> dict:
        return {r["config"].get("seed", 0): r[key] for r in row["_recs"] if r.get(key)}

    sa, sb = by_seed(a), by_seed(b)
    common = sorted(set(sa) & set(sb))
    if seed_free or not common or (set(sa) == set(sb) and a[field] is not None and b[field] is not None):
        return _paired(a[field], b[field]) if a[field] is not None and b[field] is not None else None
    t = _paired(seed_average([sa[x] for x in common]), seed_average([sb[x] for x in common]))
    ran = {r["config"].get("seed", 0) for r in a["_recs"]} | {r["config"].get("seed", 0) for r in b["_recs"]}
    if t and ran != set(common):
        t["test"] += f", on the seeds both rows ran ({', '.join(map(str, common))})"
        t["seeds"] = common
    return t


def _compare(a: dict, b: dict) -> dict:
    """a against b: the paired test on the problems (and seeds) both answered, else the unpaired fallback."""
    paired = _paired_rows(a, b)
    if paired:
        return paired
    pa, pb, na, nb = a["_acc"], b["_acc"], a["_n"], b["_n"]
    se = math.sqrt(pa * (1 - pa) / max(1, na) + pb * (1 - pb) / max(1, nb))
    return {
        "test": "two-proportion z-test (unpaired)",
        "n": min(na, nb),
        "diff": pa - pb,
        "ci95": [pa - pb - Z95 * se, pa - pb + Z95 * se],
        "p": two_proportion_z(pa, na, pb, nb),
    }


def _comparisons(rows: list[dict]) -> list[dict]:
    """Per set-up: each trained row against its start and base; every row against rl and sft at their largest
    budgets; at the same budget, a variant row against the row it varies (select (order random) against select) and
    a method on demonstrations against sft. Holm-adjusted within the set-up."""
    out = []
    setups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        setups[r["_setup"]].append(r)
    for setup, group in setups.items():
        base = next((r for r in group if r["_method"] == "base"), None)
        refs = [_reference(group, m) for m in ("rl", "sft")]
        pairs: dict[tuple, tuple[dict, dict, list[str]]] = {}

        def add(a: dict, b: Optional[dict], role: str) -> None:
            if b is None or a is b:
                return
            k = (id(a), id(b))
            if (id(b), id(a)) in pairs:  # the same pair already, the other way round
                pairs[(id(b), id(a))][2].append(role)
            else:
                pairs.setdefault(k, (a, b, []))[2].append(role)

        for r in group:
            if r["_method"] != "base":
                add(r, r["_start_row"], "start")
                add(r, base, "base")
        for ref, m in zip(refs, ("rl", "sft")):
            for r in group:
                add(r, ref, f"{m} at largest budget")
        for r in group:  # at the same budget: a variant against the row it varies, another method against sft
            add(r, _parent(r, group), "variant of")
            if r["_variant"] is None and r["_method"] != "sft" and r["_method"] in methods.demonstration_methods():
                add(
                    r,
                    next(
                        (
                            x
                            for x in group
                            if x["_method"] == "sft" and x["_variant"] is None and x["_budget"] == r["_budget"]
                        ),
                        None,
                    ),
                    "sft at the same budget",
                )
        found = [(a, b, roles, _compare(a, b)) for a, b, roles in pairs.values()]
        adjusted = holm([t["p"] for *_, t in found])
        # sampled pass@1 (eval.samples) on the same pairs, where both rows have it; its own Holm family
        sampled = [
            (i, t)
            for i, (a, b, *_) in enumerate(found)
            if a["_sampled"] and b["_sampled"]
            for t in [_paired_rows(a, b, "sampled_outcomes")]
            if t
        ]
        s_adjusted = dict(zip([i for i, _ in sampled], holm([t["p"] for _, t in sampled])))
        s_tests = dict(sampled)
        for i, ((a, b, roles, t), p_holm) in enumerate(zip(found, adjusted)):
            extra = {}
            if i in s_tests:
                extra["sampled"] = {**s_tests[i], "p_holm": s_adjusted[i], "significant": s_adjusted[i] < ALPHA}
            out.append(
                {
                    "setup": list(setup),
                    "row": a["_label"],
                    "against": b["_label"],
                    "roles": roles,
                    **t,
                    "p_holm": p_holm,
                    "significant": p_holm < ALPHA,
                    **extra,
                    "_a": a,
                    "_b": b,
                }
            )
    return out


def _parent(row: dict, group: list[dict]) -> Optional[dict]:
    """The row a variant row varies: same method and budget, the largest proper subset of its variant keys (the
    method as its recipe runs it when none is closer). None for a row that is no such variant (or a `from` one)."""
    variant = row["_variant"]
    if not variant or variant.startswith("from "):
        return None
    parts = set(variant.split(", "))
    candidates = [
        (len(own), r)
        for r in group
        if r["_method"] == row["_method"]
        and r["_budget"] == row["_budget"]
        and r is not row
        and not (r["_variant"] or "").startswith("from ")
        for own in [set(r["_variant"].split(", ")) if r["_variant"] else set()]
        if own < parts
    ]
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def _vs_display(c: dict) -> str:
    return f"{c['diff']:+.3f} p={c['p_holm']:.2g}{'*' if c['significant'] else ''}"


def build_table(records: list[dict]) -> dict:
    """Records in, table out (a JSON-ready dict). Pure: no I/O, no clock. Per-problem outcomes come in the records'
    `outcomes` (see load_outcomes)."""
    groups = _groups(records)
    extras = [k for k in EXTRA_METRICS if any(r["metrics"].get(k) is not None for g in groups.values() for r in g)]
    order = sorted(groups, key=lambda k: (tuple(str(x) for x in k[:6]), methods.order(k[6]), k[6], k[7], k[8]))
    rows = [_row(key, groups[key], extras) for key in order]
    comparisons = _mark_comparisons(rows)
    matches = _samples_to_match(rows, comparisons)
    effects = _effects(records, rows)
    comparisons = [{k: v for k, v in c.items() if not k.startswith("_")} for c in comparisons]
    has_sampled = any(r["sampled"]["value"] is not None for r in rows)
    rows = [
        {k: v for k, v in r.items() if not k.startswith("_") and (has_sampled or k not in SAMPLED_COLUMNS)}
        for r in rows
    ]
    columns = [
        c for c in COLUMNS if (c not in EXTRA_METRICS or c in extras) and (c not in SAMPLED_COLUMNS or has_sampled)
    ]
    table = {
        "columns": columns,
        "rows": rows,
        "interval": INTERVAL,
        "significance_test": TEST,
        "comparisons": comparisons,
        "match_rule": MATCH_RULE,
        "samples_to_match": matches,
    }
    if effects["datasets"] or effects["predictions"]:
        table["effects"] = effects  # only with `harness effect` records, so tables without them stay as they were
    return table


def _groups(records: list[dict]) -> dict[tuple, list[dict]]:
    """Run records by row: (task, model, recipe, task file, split definition, verifier, method, budget, variant)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("kind") != "run" or "metrics" not in r:
            continue
        s = _setup(r)
        key = (
            s["task"],
            s["model"],
            s["recipe"],
            s["task_sha"],
            s["split_def"],
            s["verifier"],
            r.get("method"),
            int(r.get("budget") or 0),
            _variant(r) or "",
        )
        groups[key].append(r)
    return groups


def _row(key: tuple, group: list[dict], extras: list[str]) -> dict:
    """One table row from the records of one (set-up, method, budget, variant) group: seeds aggregated over the same
    problems, plus working fields (`_...`) the comparisons use and build_table removes."""
    # One record per seed: a cell that was run again counts once, by its latest record (run ids sort by time).
    per_seed = {r["config"].get("seed", 0): r for r in sorted(group, key=lambda r: r["run_id"])}
    recs = [per_seed[seed] for seed in sorted(per_seed)]
    runs = [r["run_id"] for r in recs]
    s = _setup(recs[0])
    ms = [r["metrics"] for r in recs]
    acc = sum(m["accuracy"] for m in ms) / len(ms)
    outcomes, n, (lo, hi), how = _interval(recs, acc)
    per_level, pass_k = _per_level(ms), _pass_at_k(ms)
    costs = {k: sum(r.get("counts", {}).get(k, 0) for r in recs) / len(recs) for k in COST_KEYS}
    sampled, s_out = _sampled(recs, runs)
    wall = sum(_chain_seconds(r) for r in recs) / len(recs)
    method, budget = key[6], key[7]
    extra_cells = {}
    for k in extras:
        vals = [m[k] for m in ms if m.get(k) is not None]
        v = sum(vals) / len(vals) if vals else None
        extra_cells[k] = _cell(v, "-" if v is None else f"{v:.3f}", runs)
    return {
        "task": _cell(s["task"], s["task"], runs),
        "model": _cell(s["model"], s["model"], runs),
        "method": _cell(method, _label(method, 0, key[8] or None), runs),
        "budget": _cell(budget, format_budget(budget) if budget else "-", runs),
        "start": _cell(None, "-", runs),
        "seeds": _cell(len(recs), str(len(recs)), runs),
        "accuracy": _cell(acc, f"{acc:.3f}", runs),
        "ci95": {**_cell([lo, hi], f"{lo:.3f}-{hi:.3f}", runs), "method": how, "problems": n},
        **extra_cells,
        "per_level": _cell(per_level, " ".join(f"L{lv}:{a:.2f}" for lv, a in per_level.items()), runs),
        "pass_at_k": _cell(pass_k, " ".join(f"@{k}:{v:.2f}" for k, v in pass_k.items()) or "-", runs),
        "sampled": sampled,
        "truncation": _cell(
            sum(m["truncation_rate"] for m in ms) / len(ms),
            f"{sum(m['truncation_rate'] for m in ms) / len(ms):.1%}",
            runs,
        ),
        "mean_len": _mean_len(recs, runs),
        "vs_start": _cell(None, "-", runs),
        "vs_start_sampled": _cell(None, "-", runs),
        "vs_base": _cell(None, "-", runs),
        "significant": _cell([], "", runs),
        **{k: _cell(v, f"{v:.3g}" if k == "flops_estimate" else _fmt_int(v), runs) for k, v in costs.items()},
        "wall_s": _cell(wall, f"{wall:.0f}", runs),
        "recipe": _cell(s["recipe"], s["recipe"], runs),
        "task_sha": _cell(s["task_sha"], s["task_sha"], runs),
        "split_def": _cell(s["split_def"], s["split_def"], runs),
        "verifier": _cell(s["verifier_name"], s["verifier_name"] or "-", runs),
        "harness": _cell(
            recs[0]["provenance"].get("harness_version"), recs[0]["provenance"].get("harness_version"), runs
        ),
        "runs": _cell(runs, " ".join(runs), runs),
        # working fields, removed below
        "_setup": key[:6],
        "_method": method,
        "_budget": budget,
        "_label": _label(method, budget, key[8] or None),
        "_variant": key[8] or None,
        "_recs": recs,
        "_runs": runs,
        "_outcomes": outcomes,
        "_sampled": s_out,
        "_acc": acc,
        "_n": n,
        "_start_row": None,
    }


def _interval(recs: list[dict], acc: float) -> tuple[Optional[dict], int, tuple[float, float], str]:
    """(per-problem outcomes averaged over seeds, problems, 95% interval, its name). Without per-problem outcomes
    the seeds' problems are one test set, counted once, under a Wilson interval."""
    outcomes = seed_average([r["outcomes"] for r in recs]) if all(r.get("outcomes") for r in recs) else None
    if outcomes:
        return outcomes, len(outcomes), mean_interval(list(outcomes.values())), interval_name(list(outcomes.values()))
    n = max(r["metrics"]["n"] for r in recs)
    return None, n, wilson(acc * n, n), "Wilson (no per-problem outcomes)"


def _per_level(ms: list[dict]) -> dict[str, float]:
    levels: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for m in ms:
        for lv, b in (m.get("per_level") or {}).items():
            levels[lv].append((b["accuracy"], b["n"]))
    return {lv: sum(a * k for a, k in v) / sum(k for _, k in v) for lv, v in sorted(levels.items())}


def _pass_at_k(ms: list[dict]) -> dict[str, float]:
    pak: dict[str, list[float]] = defaultdict(list)
    for m in ms:
        for k, v in (m.get("pass_at_k") or {}).items():
            pak[k].append(v)
    return {k: sum(v) / len(v) for k, v in sorted(pak.items(), key=lambda kv: int(kv[0]))}


def _mean_len(recs: list[dict], runs: list[str]) -> dict:
    """Mean response length in tokens over the seeds, with a 95% normal interval over problems (each problem's
    length averaged over its seeds) where every record's samples give the lengths."""
    mean = sum(r["metrics"]["mean_response_tokens"] for r in recs) / len(recs)
    if not all(r.get("response_lengths") for r in recs):
        return _cell(mean, f"{mean:.0f}", runs)
    lo, hi = normal_interval(list(seed_average([r["response_lengths"] for r in recs]).values()))
    return {**_cell(mean, f"{mean:.0f} ({lo:.0f}-{hi:.0f})", runs), "ci95": [lo, hi]}


def _sampled(recs: list[dict], runs: list[str]) -> tuple[dict, Optional[dict]]:
    """(the sampled pass@1 cell, its per-problem outcomes): an extra measurement (eval.samples), over the seeds that
    made it, which must share temperature and sample count."""
    with_s = [r for r in recs if r["metrics"].get("sampled")]
    sm = [r["metrics"]["sampled"] for r in with_s]
    if len({(x["temperature"], x["samples"]) for x in sm}) > 1:
        raise HarnessError(
            f"runs {runs} mix sampled evaluations at different temperatures or sample counts; "
            "evaluate them alike (eval.samples, eval.temperature) or keep them apart"
        )
    if not sm:
        return _cell(None, "-", runs), None
    s_out = (
        seed_average([r["sampled_outcomes"] for r in with_s])
        if all(r.get("sampled_outcomes") for r in with_s)
        else None
    )
    s_acc = sum(x["pass_at_1"] for x in sm) / len(sm)
    s_seeds = "" if len(sm) == len(recs) else f", {len(sm)} of {len(recs)} seeds"
    value = {"pass_at_1": s_acc, "temperature": sm[0]["temperature"], "samples": sm[0]["samples"], "seeds": len(sm)}
    return _cell(value, f"{s_acc:.3f} (T{sm[0]['temperature']:g} x{sm[0]['samples']}{s_seeds})", runs), s_out


def _mark_comparisons(rows: list[dict]) -> list[dict]:
    """Each row's start (the row it was trained from), its paired tests against its start and the base model, and
    the significant differences it takes part in; the comparisons, with their working fields."""
    for row in rows:
        same = [r for r in rows if r["_setup"] == row["_setup"]]
        label, start_row = _start(row["_recs"][0], same)
        row["_start_row"] = start_row
        if label is not None:
            row["start"] = _cell(label, label + ("" if start_row else " (not in table)"), row["runs"]["value"])
    comparisons = _comparisons(rows)
    for c in comparisons:
        a, b = c["_a"], c["_b"]
        for role, cell in (("start", "vs_start"), ("base", "vs_base")):
            if role in c["roles"]:
                a[cell] = _cell(
                    {k: c[k] for k in ("against", "diff", "test", "p", "p_holm", "significant")},
                    _vs_display(c),
                    a["runs"]["value"],
                )
        if "start" in c["roles"] and c.get("sampled"):
            a["vs_start_sampled"] = _cell(
                {"against": c["against"], **c["sampled"]}, _vs_display(c["sampled"]), a["runs"]["value"]
            )
        if c["significant"]:
            up, down = (a, b) if c["diff"] > 0 else (b, a)
            up["significant"]["value"].append(f">{down['_label']}")
            down["significant"]["value"].append(f"<{up['_label']}")
    for row in rows:
        row["significant"]["display"] = " ".join(sorted(row["significant"]["value"]))
    return comparisons


def _effects(records: list[dict], rows: list[dict]) -> dict:
    """Dataset sample effects (kind "effect" records) next to the rows trained on that data (matched by run id),
    and the effect-vs-gain rank correlations of `harness effect --predict`."""
    datasets, predictions = [], []
    for rec in sorted((r for r in records if r.get("kind") == "effect"), key=lambda r: r.get("run_id", "")):
        m, st = rec.get("metrics", {}), rec.get("config", {}).get("settings", {})
        if rec.get("method") == "effect-predict":
            rho = m.get("spearman")
            predictions.append(
                {
                    "record": rec.get("run_id"),
                    "spearman": rho,
                    "n_runs": m.get("n_runs"),
                    "n_datasets": m.get("n_datasets"),
                    "display": f"{rho:.3f}" if rho is not None else "undefined",
                }
            )
            continue
        proj = (m.get("measurement") or {}).get("projection")
        how = f"{proj['name']} D={proj['dim']}" if proj else "exact"
        g = m.get("g_star", {})
        for label, d in m.get("datasets", {}).items():
            trained = set(d.get("trained_runs", []))
            hits = [r for r in rows if trained & set(r["runs"]["value"])]
            matched = [f"{r['method']['display']} {r['budget']['display']}" for r in hits]
            display = f"{d['mean']:.4g} [{d['ci95'][0]:.3g}, {d['ci95'][1]:.3g}]"
            datasets.append(
                {
                    "data": label,
                    "n": d["n"],
                    "mean": d["mean"],
                    "ci95": d["ci95"],
                    "display": display,
                    "mean_cosine": d.get("mean_cosine"),
                    "model": rec.get("config", {}).get("model"),
                    "params": st.get("params"),
                    "measurement": how,
                    "g_star": f"{g.get('n_prompts')} {st.get('eval_split')} prompts x {g.get('k')}",
                    "trained_runs": sorted(trained),
                    "rows": matched,
                    "record": rec.get("run_id"),
                }
            )
            for r in hits:
                r["effect"] = _cell(d["mean"], display, [rec.get("run_id")])
    return {"datasets": datasets, "predictions": predictions}


def _samples_to_match(rows: list[dict], comparisons: list[dict]) -> list[dict]:
    """Per set-up and method: the smallest budget that matches rl at its largest budget (MATCH_RULE). Both rows'
    uncertainty counts: the paired test weighs the differences against their spread over problems."""
    tests = {(id(c["_a"]), id(c["_b"])): c for c in comparisons}
    out = []
    setups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        setups[row["_setup"]].append(row)
    for setup, group in setups.items():
        target = _reference(group, "rl")
        if target is None:
            continue
        for method in sorted({r["_method"] for r in group}, key=methods.order):
            hit, why = None, ""
            for r in sorted(
                (r for r in group if r["_method"] == method and r["_variant"] is None), key=lambda r: r["_budget"]
            ):
                c = tests.get((id(r), id(target))) or tests.get((id(target), id(r)))
                diff = r["_acc"] - target["_acc"]
                if r is target or diff >= 0:
                    hit, why = r, "the target itself" if r is target else f"{diff:+.3f}"
                elif c is not None and c["p"] >= ALPHA:
                    hit, why = r, f"{diff:+.3f}, p={c['p']:.2g} ({c['test']})"
                if hit:
                    break
            out.append(
                {
                    "task": setup[0],
                    "model": setup[1],
                    "recipe": setup[2],
                    "method": method,
                    "target": f"{target['_label']} = {target['_acc']:.3f}",
                    "budget": hit["_budget"] if hit else None,
                    "display": ((hit["budget"]["display"] if hit["_budget"] else "matched") if hit else "not reached"),
                    "evidence": why or "-",
                }
            )
    return out


# --- renderers (table in, text out) --------------------------------------------------------------------------

COST_COLUMNS = [*COST_KEYS, "wall_s"]


def _md_columns(table: dict) -> list[str]:
    return [c for c in table["columns"] if c != "runs"]


def _sections(table: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The tables below the main one, as (title, header, rows, note): shared by the Markdown and the HTML page."""
    out = []
    if table["samples_to_match"]:
        out.append(
            (
                "Samples to match rl at its largest budget",
                ["task", "model", "recipe", "method", "target", "budget", "evidence"],
                [
                    [s["task"], s["model"], s["recipe"], s["method"], s["target"], s["display"], s["evidence"]]
                    for s in table["samples_to_match"]
                ],
                f"Budget: the {table['match_rule']}.",
            )
        )
    if table["comparisons"]:
        out.append(
            (
                "Significance",
                ["row", "against", "why", "difference [95% CI]", "problems", "test", "p", "p (Holm)", "significant"],
                [
                    [
                        c["row"],
                        c["against"],
                        ", ".join(c["roles"]),
                        f"{c['diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]",
                        str(c["n"]),
                        c["test"],
                        f"{c['p']:.3g}",
                        f"{c['p_holm']:.3g}",
                        "yes" if c["significant"] else "no",
                    ]
                    for c in table["comparisons"]
                ],
                f"Tests: {table['significance_test']}. why: start = the model the row trained from, base = the "
                "untrained model, rl / sft at largest budget = the reference rows.",
            )
        )
    eff = table.get("effects")
    if eff and eff["datasets"]:
        out.append(
            (
                "Sample effect of the training data (mean of <grad log-lik, g*> with 95% interval; "
                "`harness effect`)",
                [
                    "data",
                    "n",
                    "mean effect [95% CI]",
                    "mean cosine",
                    "rows trained on it",
                    "measured at",
                    "params",
                    "measurement",
                    "g*",
                    "record",
                ],
                [
                    [
                        d["data"],
                        str(d["n"]),
                        d["display"],
                        f"{d['mean_cosine']:.4f}",
                        ", ".join(d["rows"]) or "-",
                        str(d["model"]),
                        str(d["params"]),
                        d["measurement"],
                        d["g_star"],
                        str(d["record"]),
                    ]
                    for d in eff["datasets"]
                ],
                "",
            )
        )
    return out


def _predictions(table: dict) -> list[str]:
    return [
        f"Does the effect predict the gain? Spearman(mean effect at the start model, accuracy gain) = "
        f"{p['display']} over {p['n_runs']} runs ({p['n_datasets']} datasets); record {p['record']}."
        for p in (table.get("effects") or {}).get("predictions", [])
    ]


def render_markdown(table: dict, command: str = "") -> str:
    cols = _md_columns(table)
    lines = []
    if command:
        lines += [
            f"<!-- generated by the harness; do not edit. Regenerate with: {command} -->",
            f"Regenerate with `{command}`.",
            "",
        ]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for row in table["rows"]:
        lines.append("| " + " | ".join(row[c]["display"].replace("|", "\\|") for c in cols) + " |")
    lines += [
        "",
        f"Accuracy: mean over seeds; ci95: {table['interval']}. start: the model a row trained from. "
        f"vs_start, vs_base: accuracy difference and Holm-adjusted p (* significant); significant: rows this "
        f"one is significantly above (>) or below (<). Tests: {table['significance_test']}.",
        "",
    ]
    for title, header, body, note in _sections(table):
        lines += [f"{title}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in r) + " |" for r in body]
        lines += ["", note, ""] if note else [""]
    if _predictions(table):
        lines += _predictions(table) + [""]
    lines += ["Run ids per row:", ""] + [
        f"- {r['method']['display']} {r['budget']['display']}: {r['runs']['display']}" for r in table["rows"]
    ]
    return "\n".join(lines) + "\n"


def render_csv(table: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table["columns"])
    for row in table["rows"]:
        w.writerow([row[c]["display"] for c in table["columns"]])
    return buf.getvalue()


def render_json(table: dict) -> str:
    return json.dumps(table, indent=2, sort_keys=True) + "\n"


def plot_series(table: dict) -> list[dict]:
    """The plot's series: one per method, start and set-up, with its label, marker and point labels. A chained
    method (rl from sft@1k) sits at its own budget but also used its start's examples: its marker differs and each
    point says what it started from."""
    series: dict[tuple, list[dict]] = defaultdict(list)
    for row in table["rows"]:
        if row["budget"]["value"]:
            start = row["start"]["value"]
            chained = start if start not in (None, "base") else None
            series[(row["method"]["value"], chained, row["model"]["value"], row["recipe"]["value"])].append(row)
    one_setup = len({k[2:] for k in series}) == 1
    out = []
    for (method, chained, model, recipe), rs in sorted(
        series.items(), key=lambda kv: (methods.order(kv[0][0]), tuple(map(str, kv[0])))
    ):
        rs.sort(key=lambda r: r["budget"]["value"])
        ys = [r["accuracy"]["value"] for r in rs]
        out.append(
            {
                "label": method
                + (f" (from {chained})" if chained else "")
                + ("" if one_setup else f" ({model}, {recipe})"),
                "chained": chained is not None,
                "marker": "D" if chained else "o",
                "x": [r["budget"]["value"] for r in rs],
                "y": ys,
                "err": [
                    [y - r["ci95"]["value"][0] for y, r in zip(ys, rs)],
                    [r["ci95"]["value"][1] - y for y, r in zip(ys, rs)],
                ],
                "points": [f"{method}@{r['budget']['display']} (from {chained})" if chained else "" for r in rs],
            }
        )
    return out


def render_plot(table: dict, fmt: str = "png") -> bytes:
    """Accuracy against budget (log axis) per method and set-up, with 95% interval bars (see plot_series)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for s in plot_series(table):
        ax.errorbar(
            s["x"],
            s["y"],
            yerr=s["err"],
            marker=s["marker"],
            markerfacecolor="white" if s["chained"] else None,
            linestyle="--" if s["chained"] else "-",
            capsize=3,
            label=s["label"],
        )
        for x, y, text in zip(s["x"], s["y"], s["points"]):
            if text:
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    for row in table["rows"]:
        if row["method"]["value"] == "base":
            ax.axhline(row["accuracy"]["value"], color="grey", linestyle=":", label="base")
    ax.set_xscale("log")
    ax.set_xlabel("sample budget (distinct training examples of the method's own stage)")
    ax.set_ylabel("test accuracy (95% CI)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    # byte-stable: no date, and SVG element ids from a fixed salt (matplotlib draws them at random otherwise)
    with plt.rc_context({"svg.hashsalt": "harness-leaderboard"}):
        fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else {"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _html_table(
    header: list[str], body: list[list[str]], classes: Optional[list[str]] = None, table_id: Optional[str] = None
) -> str:
    cls = [f' class="{c}"' if c else "" for c in (classes or [""] * len(header))]
    sort = table_id is not None
    click = [f' onclick="sortBy({i})"' if sort else "" for i in range(len(header))]
    head = "".join(f"<th{k}{c}>{html.escape(h)}</th>" for h, k, c in zip(header, cls, click))
    rows = "".join("<tr>" + "".join(f"<td{k}>{html.escape(x)}</td>" for x, k in zip(r, cls)) + "</tr>\n" for r in body)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>\n{rows}</tbody></table>"


def render_html(table: dict, command: str, plot_file: Optional[str]) -> str:
    """The plot, the main table (cost and provenance columns behind toggles; click a header to sort) and the
    sections of the Markdown. Plain HTML and a few lines of JS, no external assets."""
    cols = table["columns"]
    group = {**{c: "cost" for c in COST_COLUMNS}, **{c: "prov" for c in (*PROVENANCE, "runs")}}
    main = _html_table(
        cols, [[r[c]["display"] for c in cols] for r in table["rows"]], [group.get(c, "") for c in cols], "t"
    )
    sections = "".join(
        f"<h2>{html.escape(title)}</h2>\n{_html_table(header, body)}\n"
        + (f"<p>{html.escape(note)}</p>\n" if note else "")
        for title, header, body, note in _sections(table)
    )
    sections += "".join(f"<p>{html.escape(p)}</p>\n" for p in _predictions(table))
    img = f'<img src="{html.escape(plot_file)}" alt="accuracy against budget">' if plot_file else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Leaderboard</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:12px;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eee}}#t th{{cursor:pointer}}img{{max-width:700px}}
#t.hide-cost .cost,#t.hide-prov .prov{{display:none}}label{{margin-right:1em}}h2{{font-size:15px}}</style>
</head><body>
<p>Generated by the harness from run records; do not edit. Regenerate with <code>{html.escape(command)}</code>.</p>
{img}
<p>Accuracy: mean over seeds; ci95: {html.escape(table['interval'])}. start: the model a row trained from; vs_start,
vs_base: accuracy difference and Holm-adjusted p (* significant). Tests: {html.escape(table['significance_test'])}.</p>
<p><label><input type="checkbox" onchange="toggle('cost', this.checked)"> cost columns</label>
<label><input type="checkbox" onchange="toggle('prov', this.checked)"> provenance columns</label></p>
{main.replace('<table id="t">', '<table id="t" class="hide-cost hide-prov">', 1)}
{sections}<script>
function toggle(group, show) {{ document.getElementById('t').classList.toggle('hide-' + group, !show); }}
function sortBy(i) {{
  const tb = document.querySelector('#t tbody'), rows = Array.from(tb.rows);
  const asc = tb.dataset.col == i ? tb.dataset.asc != '1' : true;
  const key = r => {{ const t = r.cells[i].innerText.replace(/,/g, ''); const f = parseFloat(t); return isNaN(f) ? t : f; }};
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1));
  rows.forEach(r => tb.appendChild(r)); tb.dataset.col = i; tb.dataset.asc = asc ? '1' : '0';
}}
</script>
</body></html>
"""  # noqa: E501 -- the page's own HTML and JavaScript: a line break here would change every generated page


def write_leaderboard(table: dict, out_dir: Path, command: str) -> list[Path]:
    """The one function that writes: Markdown, CSV, JSON, the plot (PNG + SVG) and the HTML page."""
    from harness.records import write_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "leaderboard.md": render_markdown(table, command),
        "leaderboard.csv": render_csv(table),
        "leaderboard.json": render_json(table),
    }
    written = []
    plot = None
    try:
        for fmt in ("png", "svg"):
            write_atomic(out_dir / f"accuracy.{fmt}", render_plot(table, fmt))
            written.append(out_dir / f"accuracy.{fmt}")
        plot = "accuracy.svg"
    except ImportError:
        pass  # matplotlib is optional; the tables stand alone
    files["index.html"] = render_html(table, command, plot)
    for name, text in files.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written
