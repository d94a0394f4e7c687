r"""Checks of the sample effect on a trained model, with a real g* (sampled responses scored by the verifier):

1. sanity: correct reference demonstrations (traces:compact, the sft split) have a higher mean effect than the same
   demonstrations with their final boxed answer corrupted (every role flipped);
2. projection fidelity: Pearson r between CountSketch effects and exact ones, for several D.

    .venv/bin/python bench/effect_checks.py --model RUN_ID|PATH [--runs-dir runs] [--samples 100] \
        [--eval-count 32] [--k 8]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an sft run id (or a model folder, with --scale tiny)")
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--task", default="kk")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--eval-count", type=int, default=32)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", default=None, help="tiny | paper: the recipe's task overrides for a model folder")
    ap.add_argument("--dims", default="256,1024,4096,16384")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from harness.effect import (
        EffectSettings,
        corrupt_answer,
        estimate_gstar,
        load_model,
        load_source,
        mean_ci,
        resolve_setup,
        subsample,
    )
    from harness.effect_grads import encode_pair, sample_effects, select_params
    from harness.projection import CountSketch
    from harness.records import runs_dir

    s = EffectSettings(
        task=a.task, model=a.model, data=("traces:compact",), eval_count=a.eval_count, k=a.k, seed=a.seed, scale=a.scale
    )
    root = runs_dir(a.runs_dir)
    spec, recipe, _, path = resolve_setup(s, root)
    t0 = time.perf_counter()
    model, tok = load_model(path, "float32")
    model, _, params, _ = select_params(model, "all")
    g, ginfo = estimate_gstar(model, tok, params, spec, s)
    print(
        f"model {path}\ng*: {ginfo['n_prompts']} {s.eval_split} prompts x {s.k} samples at T={s.temperature}, "
        f"mean reward {ginfo['mean_reward']:.3f}, {ginfo['prompts_with_signal']} prompts with reward variance, "
        f"|g*| {ginfo['norm']:.4g} ({time.perf_counter() - t0:.0f}s)"
    )
    good = load_source("traces:compact", spec, recipe, root)
    rows = subsample(good.rows, a.samples, a.seed)
    bad = [{**r, "completion": corrupt_answer(r["completion"])} for r in rows]
    assert all(b["completion"] and b["completion"] != r["completion"] for b, r in zip(bad, rows))
    max_len = int(recipe.get("sft", {}).get("max_length", 2048))
    dims = [int(d) for d in a.dims.split(",")]
    sketches = [(sk, sk.project(g)) for sk in (CountSketch(d, a.seed, [p.numel() for p in params]) for d in dims)]
    res = {}
    for name, rs in (("correct", rows), ("corrupted", bad)):
        seqs = [encode_pair(tok, r["prompt"], r["completion"], max_len) for r in rs]
        res[name] = sample_effects(model, params, seqs, g, sketches)
    for name in res:
        m, ci = mean_ci([x["effect"] for x in res[name]])
        mc, cci = mean_ci([x["effect"] / (x["grad_norm"] * ginfo["norm"]) for x in res[name]])
        print(
            f"{name:9} traces:compact n={len(res[name])}: mean effect {m:.5g} (95% CI {ci[0]:.5g} to {ci[1]:.5g}); "
            f"mean cosine {mc:.4f} ({cci[0]:.4f} to {cci[1]:.4f})"
        )
    diff = [x["effect"] - y["effect"] for x, y in zip(res["correct"], res["corrupted"])]
    m, ci = mean_ci(diff)
    print(
        f"paired difference correct - corrupted: {m:.5g} (95% CI {ci[0]:.5g} to {ci[1]:.5g}); "
        f"correct higher for {sum(d > 0 for d in diff)}/{len(diff)} samples"
    )
    exact = torch.tensor([x["effect"] for name in res for x in res[name]])
    for d in dims:
        proj = torch.tensor([x[f"effect_d{d}"] for name in res for x in res[name]])
        r = float(torch.corrcoef(torch.stack([exact, proj]))[0, 1])
        print(f"projection fidelity D={d}: pearson r = {r:.4f} over {len(exact)} samples")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
