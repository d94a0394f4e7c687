"""Evaluation: the engine generates, the task's verifier scores, metrics summarize.

Greedy pass@1 by default; with k samples per problem, the unbiased pass@k estimator. Accuracy per difficulty
level with 95% intervals, the share of responses cut off at the length limit, and mean response length. K&K explicit
traces also get `faithful_accuracy` and `lucky` (harness/faithful.py): a metric only, never the score.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Optional

from harness.data import load_split, render_prompt
from harness.engines import Engine, Generation, SamplingParams
from harness.faithful import annotate as annotate_faithful, rates as faithful_rates
from harness.stats import mean_interval, pass_at_k
from harness.taskspec import TaskSpec
from harness.verifiers import Verifier


def summarize(rows: list[dict], n: int) -> dict:
    """Metrics from per-sample rows (each with `scores`, `level`, `n_tokens`, `truncated` lists)."""

    def block(rs: list[dict]) -> dict:
        per_problem = [sum(r["scores"]) / len(r["scores"]) for r in rs]
        lo, hi = mean_interval(per_problem)
        out = {"n": len(rs), "accuracy": sum(per_problem) / max(1, len(rs)), "ci95": [lo, hi]}
        ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64, 128, n) if k <= n})
        if n > 1:
            out["pass_at_k"] = {
                str(k): sum(pass_at_k(n, int(sum(r["scores"])), k) for r in rs) / max(1, len(rs)) for k in ks
            }
        out.update(faithful_rates(rs) or {})  # K&K explicit traces: right answer from a right search, or lucky
        return out

    metrics = block(rows)
    levels: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        levels[r["level"]].append(r)
    if any(k is not None for k in levels):
        metrics["per_level"] = {str(k): block(v) for k, v in sorted(levels.items(), key=lambda kv: str(kv[0]))}
    lengths = [t for r in rows for t in r["n_tokens"]]
    metrics["truncation_rate"] = sum(t for r in rows for t in r["truncated"]) / max(1, len(lengths))
    metrics["mean_response_tokens"] = sum(lengths) / max(1, len(lengths))
    metrics["samples_per_problem"] = n
    partial = [v["partial"] for r in rows for v in r.get("verdicts", []) if v.get("partial") is not None]
    if partial:  # graded scores (e.g. reasoning-gym's): reported beside accuracy, never as accuracy
        metrics["partial_credit_mean"] = sum(partial) / len(partial)
    lenient = [[v["score"] if v.get("lenient") is None else v["lenient"] for v in r.get("verdicts", [])] for r in rows]
    if any(v.get("lenient") not in (None, v["score"]) for r in rows for v in r.get("verdicts", [])):
        # boxed_math's lenient variant, reported beside the (strict) accuracy only where the two differ
        metrics["lenient_accuracy"] = sum(sum(x) / len(x) for x in lenient if x) / max(1, len(rows))
    return metrics


def score_generations(verifier: Verifier, sample: dict, gens: list[Generation]) -> list[dict]:
    return [verifier(g.text, sample["answer"], truncated=g.truncated).to_dict() for g in gens]


def evaluate(
    task: TaskSpec,
    engine: Engine,
    split: str = "test",
    limit: Optional[int] = None,
    samples: int = 1,
    temperature: Optional[float] = None,
    max_new_tokens: Optional[int] = None,
    seed: int = 0,
    progress: Any = None,
    data: Optional[list[dict]] = None,
) -> tuple[dict, list[dict]]:
    """Returns (metrics, per-sample rows). `progress` is an optional callable(done, total, "acc 0.123"). `data`: these
    samples instead of the split's (e.g. perturbed puzzles; a perturbed sample's row says what it was made from)."""
    if samples < 1:
        raise ValueError("samples must be >= 1")
    temp = task.generation.temperature if temperature is None else temperature
    if samples > 1 and temp == 0:
        from harness.errors import HarnessError

        raise HarnessError("--samples > 1 with temperature 0 gives identical samples; pass --temperature, e.g. 0.7")
    data = load_split(task, split, limit) if data is None else data
    verifier = task.build_verifier()
    params = SamplingParams(
        n=samples,
        temperature=temp,
        stop=tuple(task.generation.stop),
        seed=seed,
        max_new_tokens=max_new_tokens or task.generation.max_new_tokens,
    )
    prompts = [render_prompt(task, s) for s in data]
    rows: list[Optional[dict]] = [None] * len(data)
    correct = [0.0]
    done = [0]

    def on_batch(idx: list[int], batch: list[list[Generation]]) -> None:
        for i, gens in zip(idx, batch):
            verdicts = score_generations(verifier, data[i], gens)
            s = data[i]
            rows[i] = {
                "id": s["id"],
                "level": s["level"],
                "prompt": prompts[i],
                "answer": s["answer"],
                "responses": [g.text for g in gens],
                "verdicts": verdicts,
                "scores": [v["score"] for v in verdicts],
                "n_tokens": [g.n_tokens for g in gens],
                "truncated": [g.truncated for g in gens],
            }
            meta = s.get("metadata") or {}
            if "perturbation" in meta:
                rows[i]["perturbation"] = {
                    "kind": meta["perturbation"],
                    "seed": meta.get("perturb_seed"),
                    "original_id": meta.get("original_id"),
                    "original_key": meta.get("original_key"),
                    "key": meta.get("key"),
                }
            correct[0] += sum(rows[i]["scores"]) / len(gens)
            done[0] += 1
        if progress:
            progress(done[0], len(data), f"acc {correct[0] / max(1, done[0]):.3f}")

    t0 = time.perf_counter()
    engine.generate(prompts, params, on_batch=on_batch)
    wall = time.perf_counter() - t0
    final = [r for r in rows if r is not None]
    annotate_faithful([s for s, r in zip(data, rows) if r is not None], final)  # a metric only, never the score
    metrics = summarize(final, samples)
    gen_tokens = sum(sum(r["n_tokens"]) for r in final)
    if hasattr(engine, "info"):  # stop token ids and the neutralized generation settings
        metrics["engine_info"] = engine.info()
    metrics.update(
        {
            "split": split,
            "engine": engine.name,
            "temperature": temp,
            "max_new_tokens": params.max_new_tokens,
            "wall_seconds": wall,
            "tokens_generated": gen_tokens,
            "tokens_per_second": gen_tokens / wall if wall > 0 else None,
        }
    )
    return metrics, final
