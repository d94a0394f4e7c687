"""Leaderboards from run records only: a pure table builder (records in, table out), pure renderers (table in,
text out), and one function that writes files.

One row per set-up and (method, budget): task, model, recipe hash, task-file hash, split definition and verifier
are part of the row key, so rows from different set-ups never mix; seeds are aggregated. Accuracy is the mean
over seeds with a 95% Wilson interval over all problems of all seeds (pooled). Methods at the same budget are
compared with a two-sided two-proportion z-test on the pooled outcomes (alpha 0.05).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from harness.budget import format_budget
from harness.records import config_hash
from harness.stats import wilson

TEST = "two-sided two-proportion z-test on pooled per-problem outcomes, alpha 0.05"
METHOD_ORDER = {"base": 0, "sft": 1, "rl": 2, "redistill": 3}
COST_KEYS = ("training_examples", "rollouts_generated", "sequences_trained", "tokens_generated", "tokens_trained",
             "flops_estimate")
COLUMNS = ["task", "model", "method", "budget", "seeds", "accuracy", "ci95", "per_level", "pass_at_k", "truncation",
           "mean_len", "significant", *COST_KEYS, "wall_s", "recipe", "task_sha", "split_def", "verifier", "harness",
           "runs"]


def _setup(rec: dict) -> dict:
    c, p = rec.get("config", {}), rec.get("provenance", {})
    return {"task": c.get("task"), "model": c.get("model"), "recipe": p.get("recipe_hash") or config_hash(c.get("recipe", {})),
            "task_sha": (p.get("task_sha256") or "")[:12], "split_def": config_hash(p.get("splits", {})),
            "verifier": config_hash(p.get("verifier", {})) if p.get("verifier") else None,
            "verifier_name": (p.get("verifier") or {}).get("name")}


def _z_test(s1: float, n1: int, s2: float, n2: int) -> float:
    """Two-sided p-value of H0: equal proportions (pooled standard error)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    p = (s1 + s2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(s1 / n1 - s2 / n2) / se
    return math.erfc(z / math.sqrt(2))


def _chain_seconds(rec: dict) -> float:
    """Wall time of everything that produced the row's model: its stages (also when this run reused them) + eval."""
    w = rec.get("wall_seconds", {})
    parts = [v for k, v in w.items() if k != "total"]
    return sum(parts) if parts else w.get("total", 0.0)


def _cell(value: Any, display: str, runs: list[str]) -> dict:
    return {"value": value, "display": display, "runs": runs}


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def build_table(records: list[dict]) -> dict:
    """Records in, table out (a JSON-ready dict). Pure: no I/O, no clock."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("kind") != "run" or "metrics" not in r:
            continue
        s = _setup(r)
        key = (s["task"], s["model"], s["recipe"], s["task_sha"], s["split_def"], s["verifier"], r.get("method"),
               int(r.get("budget") or 0))
        groups[key].append(r)

    rows, pooled = [], {}
    for key in sorted(groups, key=lambda k: (tuple(str(x) for x in k[:6]), METHOD_ORDER.get(k[6], 9), k[6], k[7])):
        # One record per seed: a cell that was run again counts once, by its latest record (run ids sort by time).
        per_seed = {r["config"].get("seed", 0): r for r in sorted(groups[key], key=lambda r: r["run_id"])}
        recs = [per_seed[seed] for seed in sorted(per_seed)]
        runs = [r["run_id"] for r in recs]
        s = _setup(recs[0])
        ms = [r["metrics"] for r in recs]
        succ = sum(m["accuracy"] * m["n"] for m in ms)
        n = sum(m["n"] for m in ms)
        acc = sum(m["accuracy"] for m in ms) / len(ms)
        lo, hi = wilson(succ, n)
        levels: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for m in ms:
            for lv, b in (m.get("per_level") or {}).items():
                levels[lv].append((b["accuracy"], b["n"]))
        per_level = {lv: sum(a * k for a, k in v) / sum(k for _, k in v) for lv, v in sorted(levels.items())}
        pak: dict[str, list[float]] = defaultdict(list)
        for m in ms:
            for k, v in (m.get("pass_at_k") or {}).items():
                pak[k].append(v)
        pass_k = {k: sum(v) / len(v) for k, v in sorted(pak.items(), key=lambda kv: int(kv[0]))}
        costs = {k: sum(r.get("counts", {}).get(k, 0) for r in recs) / len(recs) for k in COST_KEYS}
        wall = sum(_chain_seconds(r) for r in recs) / len(recs)
        method, budget = key[6], key[7]
        row = {
            "task": _cell(s["task"], s["task"], runs), "model": _cell(s["model"], s["model"], runs),
            "method": _cell(method, method, runs),
            "budget": _cell(budget, format_budget(budget) if budget else "-", runs),
            "seeds": _cell(len(recs), str(len(recs)), runs),
            "accuracy": _cell(acc, f"{acc:.3f}", runs), "ci95": _cell([lo, hi], f"{lo:.3f}-{hi:.3f}", runs),
            "per_level": _cell(per_level, " ".join(f"L{lv}:{a:.2f}" for lv, a in per_level.items()), runs),
            "pass_at_k": _cell(pass_k, " ".join(f"@{k}:{v:.2f}" for k, v in pass_k.items()) or "-", runs),
            "truncation": _cell(sum(m["truncation_rate"] for m in ms) / len(ms),
                                f"{sum(m['truncation_rate'] for m in ms) / len(ms):.1%}", runs),
            "mean_len": _cell(sum(m["mean_response_tokens"] for m in ms) / len(ms),
                              f"{sum(m['mean_response_tokens'] for m in ms) / len(ms):.0f}", runs),
            "significant": _cell([], "", runs),
            **{k: _cell(v, f"{v:.3g}" if k == "flops_estimate" else _fmt_int(v), runs) for k, v in costs.items()},
            "wall_s": _cell(wall, f"{wall:.0f}", runs),
            "recipe": _cell(s["recipe"], s["recipe"], runs), "task_sha": _cell(s["task_sha"], s["task_sha"], runs),
            "split_def": _cell(s["split_def"], s["split_def"], runs),
            "verifier": _cell(s["verifier_name"], s["verifier_name"] or "-", runs),
            "harness": _cell(recs[0]["provenance"].get("harness_version"), recs[0]["provenance"].get("harness_version"), runs),
            "runs": _cell(runs, " ".join(runs), runs),
        }
        rows.append(row)
        pooled[id(row)] = (key[:6], method, budget, succ, n)

    significance = []
    by_setup_budget: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        setup, method, budget, *_ = pooled[id(row)]
        by_setup_budget[(setup, budget)].append(row)
    for (setup, budget), group in by_setup_budget.items():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                _, ma, _, sa, na = pooled[id(a)]
                _, mb, _, sb, nb = pooled[id(b)]
                p = _z_test(sa, na, sb, nb)
                if p < 0.05:
                    hi_row, lo_row = (a, b) if sa / na > sb / nb else (b, a)
                    significance.append({"budget": budget, "higher": hi_row["method"]["value"],
                                         "lower": lo_row["method"]["value"], "p": p, "setup": list(setup)})
                    hi_row["significant"]["value"].append(f">{lo_row['method']['value']}")
                    lo_row["significant"]["value"].append(f"<{hi_row['method']['value']}")
    for row in rows:
        row["significant"]["display"] = " ".join(sorted(row["significant"]["value"]))
    table = {"columns": COLUMNS, "rows": rows, "significance_test": TEST, "significant_pairs": significance,
             "samples_to_match": _samples_to_match(rows, pooled)}
    effects = _effects(records, rows)
    if effects["datasets"] or effects["predictions"]:
        table["effects"] = effects  # only with `harness effect` records, so tables without them stay as they were
    return table


def _effects(records: list[dict], rows: list[dict]) -> dict:
    """Dataset sample effects (kind "effect" records) next to the rows trained on that data (matched by run id),
    and the effect-vs-gain rank correlations of `harness effect --predict`."""
    datasets, predictions = [], []
    for rec in sorted((r for r in records if r.get("kind") == "effect"), key=lambda r: r.get("run_id", "")):
        m, st = rec.get("metrics", {}), rec.get("config", {}).get("settings", {})
        if rec.get("method") == "effect-predict":
            rho = m.get("spearman")
            predictions.append({"record": rec.get("run_id"), "spearman": rho, "n_runs": m.get("n_runs"),
                                "n_datasets": m.get("n_datasets"),
                                "display": f"{rho:.3f}" if rho is not None else "undefined"})
            continue
        proj = (m.get("measurement") or {}).get("projection")
        how = f"{proj['name']} D={proj['dim']}" if proj else "exact"
        g = m.get("g_star", {})
        for label, d in m.get("datasets", {}).items():
            trained = set(d.get("trained_runs", []))
            hits = [r for r in rows if trained & set(r["runs"]["value"])]
            matched = [f"{r['method']['display']} {r['budget']['display']}" for r in hits]
            display = f"{d['mean']:.4g} [{d['ci95'][0]:.3g}, {d['ci95'][1]:.3g}]"
            datasets.append({"data": label, "n": d["n"], "mean": d["mean"], "ci95": d["ci95"], "display": display,
                             "mean_cosine": d.get("mean_cosine"), "model": rec.get("config", {}).get("model"),
                             "params": st.get("params"), "measurement": how,
                             "g_star": f"{g.get('n_prompts')} {st.get('eval_split')} prompts x {g.get('k')}",
                             "trained_runs": sorted(trained), "rows": matched, "record": rec.get("run_id")})
            for r in hits:
                r["effect"] = _cell(d["mean"], display, [rec.get("run_id")])
    return {"datasets": datasets, "predictions": predictions}


def _samples_to_match(rows: list[dict], pooled: dict) -> list[dict]:
    """Per set-up and method: the smallest budget whose 95% interval reaches rl's accuracy at rl's largest budget."""
    out = []
    setups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        setups[pooled[id(row)][0]].append(row)
    for setup, group in setups.items():
        rl = [r for r in group if r["method"]["value"] == "rl"]
        if not rl:
            continue
        target_row = max(rl, key=lambda r: r["budget"]["value"])
        target = target_row["accuracy"]["value"]
        for method in sorted({r["method"]["value"] for r in group}, key=lambda m: METHOD_ORDER.get(m, 9)):
            cands = sorted((r for r in group if r["method"]["value"] == method), key=lambda r: r["budget"]["value"])
            hit = next((r for r in cands if r["ci95"]["value"][1] >= target), None)
            out.append({"task": setup[0], "model": setup[1], "recipe": setup[2], "method": method,
                        "target": f"rl@{target_row['budget']['display']} = {target:.3f}",
                        "budget": hit["budget"]["value"] if hit else None,
                        "display": hit["budget"]["display"] if hit else "not reached"})
    return out


# --- renderers (table in, text out) --------------------------------------------------------------------------

MD_COLUMNS = ["task", "model", "method", "budget", "seeds", "accuracy", "ci95", "per_level", "pass_at_k", "truncation",
              "mean_len", "significant", "training_examples", "rollouts_generated", "sequences_trained",
              "tokens_generated", "tokens_trained", "flops_estimate", "wall_s", "recipe", "task_sha", "split_def",
              "verifier", "harness"]


def render_markdown(table: dict, command: str = "") -> str:
    lines = []
    if command:
        lines += [f"<!-- generated by the harness; do not edit. Regenerate with: {command} -->",
                  f"Regenerate with `{command}`.", ""]
    lines.append("| " + " | ".join(MD_COLUMNS) + " |")
    lines.append("|" + "---|" * len(MD_COLUMNS))
    for row in table["rows"]:
        lines.append("| " + " | ".join(row[c]["display"].replace("|", "\\|") for c in MD_COLUMNS) + " |")
    lines += ["", f"Accuracy: mean over seeds; ci95: Wilson interval over all problems of all seeds. "
              f"significant: {table['significance_test']}.", ""]
    if table["samples_to_match"]:
        lines += ["Samples to match rl at its largest budget (smallest budget whose 95% interval reaches it):", ""]
        lines += ["| task | model | recipe | method | target | budget |", "|---|---|---|---|---|---|"]
        lines += [f"| {s['task']} | {s['model']} | {s['recipe']} | {s['method']} | {s['target']} | {s['display']} |"
                  for s in table["samples_to_match"]]
        lines.append("")
    lines += ["Run ids per row:", ""] + [f"- {r['method']['display']} {r['budget']['display']}: {r['runs']['display']}"
                                           for r in table["rows"]]
    eff = table.get("effects")
    if eff:
        lines += ["", "Sample effect of the training data (mean of <grad log-lik, g*> with 95% interval; `harness effect`):", "",
                  "| data | n | mean effect [95% CI] | mean cosine | rows trained on it | measured at | params | measurement | g* | record |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {d['data']} | {d['n']} | {d['display']} | {d['mean_cosine']:.4f} | {', '.join(d['rows']) or '-'} | "
                  f"{d['model']} | {d['params']} | {d['measurement']} | {d['g_star']} | {d['record']} |" for d in eff["datasets"]]
        lines += [""] + [f"Does the effect predict the gain? Spearman(mean effect at the start model, accuracy gain) = "
                         f"{p['display']} over {p['n_runs']} runs ({p['n_datasets']} datasets); record {p['record']}."
                         for p in eff["predictions"]]
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


def render_plot(table: dict, fmt: str = "png") -> bytes:
    """Accuracy against budget (log axis) per method and set-up, with 95% interval bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    series: dict[tuple, list[dict]] = defaultdict(list)
    for row in table["rows"]:
        if row["budget"]["value"]:
            series[(row["method"]["value"], row["model"]["value"], row["recipe"]["value"])].append(row)
    for (method, model, recipe), rs in sorted(series.items(), key=lambda kv: (METHOD_ORDER.get(kv[0][0], 9), kv[0])):
        rs.sort(key=lambda r: r["budget"]["value"])
        xs = [r["budget"]["value"] for r in rs]
        ys = [r["accuracy"]["value"] for r in rs]
        err = [[y - r["ci95"]["value"][0] for y, r in zip(ys, rs)], [r["ci95"]["value"][1] - y for y, r in zip(ys, rs)]]
        label = method if len({k[1:] for k in series}) == 1 else f"{method} ({model}, {recipe})"
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
    for row in table["rows"]:
        if row["method"]["value"] == "base":
            ax.axhline(row["accuracy"]["value"], color="grey", linestyle=":", label="base")
    ax.set_xscale("log")
    ax.set_xlabel("sample budget (distinct training examples)")
    ax.set_ylabel("test accuracy (95% CI)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else {"Software": None})  # byte-stable
    plt.close(fig)
    return buf.getvalue()


def render_html(table: dict, command: str, plot_file: Optional[str]) -> str:
    head = "".join(f"<th onclick=\"sortBy({i})\">{html.escape(c)}</th>" for i, c in enumerate(MD_COLUMNS))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(r[c]['display'])}</td>" for c in MD_COLUMNS) + "</tr>\n"
                   for r in table["rows"])
    img = f'<img src="{html.escape(plot_file)}" alt="accuracy against budget">' if plot_file else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Leaderboard</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{cursor:pointer;background:#eee}}img{{max-width:700px}}</style>
</head><body>
<p>Generated by the harness from run records; do not edit. Regenerate with <code>{html.escape(command)}</code>.</p>
{img}
<p>Accuracy: mean over seeds; ci95: Wilson over all problems of all seeds; significant: {html.escape(table['significance_test'])}.</p>
<table id="t"><thead><tr>{head}</tr></thead><tbody>
{body}</tbody></table>
<script>
function sortBy(i) {{
  const tb = document.querySelector('#t tbody'), rows = Array.from(tb.rows);
  const asc = tb.dataset.col == i ? tb.dataset.asc != '1' : true;
  const key = r => {{ const t = r.cells[i].innerText.replace(/,/g, ''); const f = parseFloat(t); return isNaN(f) ? t : f; }};
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1));
  rows.forEach(r => tb.appendChild(r)); tb.dataset.col = i; tb.dataset.asc = asc ? '1' : '0';
}}
</script>
</body></html>
"""


def write_leaderboard(table: dict, out_dir: Path, command: str) -> list[Path]:
    """The one function that writes: Markdown, CSV, JSON, the plot (PNG + SVG) and the HTML page."""
    from harness.records import write_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"leaderboard.md": render_markdown(table, command), "leaderboard.csv": render_csv(table),
             "leaderboard.json": render_json(table)}
    written = []
    plot = None
    try:
        for fmt in ("png", "svg"):
            data = render_plot(table, fmt)
            tmp = out_dir / f".tmp-accuracy.{fmt}"
            tmp.write_bytes(data)
            tmp.replace(out_dir / f"accuracy.{fmt}")
            written.append(out_dir / f"accuracy.{fmt}")
        plot = "accuracy.svg"
    except ImportError:
        pass  # matplotlib is optional; the tables stand alone
    files["index.html"] = render_html(table, command, plot)
    for name, text in files.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written
