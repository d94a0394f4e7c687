"""Eval throughput of the transformers engine on the embedded tiny model: generated tokens per second.

.venv/bin/python bench/bench_eval.py [--limit 64] [--max-new-tokens 256] [--batch-size 32] [--dtype auto]
    [--cache dynamic|static] [--model PATH] [--recipe kk-tiny]

--model: a trained model folder (e.g. a run's stage final/) instead of the embedded base; --recipe: the task as that
recipe tests it (its splits and prompt; the tiny K&K grid puzzles for kk-tiny).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="kk")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--cache", default="dynamic", choices=["dynamic", "static"])
    ap.add_argument("--model", default=None)
    ap.add_argument("--recipe", default=None)
    args = ap.parse_args()

    import torch

    from harness.engines import HFEngine
    from harness.evaluate import evaluate
    from harness.models import build_tiny
    from harness.tasks import get_task

    spec = get_task(args.task)
    if args.recipe:
        from harness import recipes

        spec = recipes.apply_task_overrides(spec, recipes.for_eval(spec.id, args.recipe)[1].get("task"))
    ref = args.model or str(build_tiny(spec))
    eng = HFEngine.from_ref(ref, dtype=args.dtype, batch_size=args.batch_size, cache=args.cache)
    t0 = time.perf_counter()
    m, _ = evaluate(
        spec,
        eng,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        samples=args.samples,
        temperature=1.0 if args.samples > 1 else None,
    )
    wall = time.perf_counter() - t0
    print(
        f"engine={eng.name} dtype={args.dtype} cache={args.cache} threads={torch.get_num_threads()} "
        f"problems={m['n']} samples/problem={args.samples} batch={args.batch_size}"
    )
    print(
        f"generated {m['tokens_generated']} tokens in {wall:.2f}s: {m['tokens_generated'] / wall:.0f} tok/s "
        f"(incl. scoring); {m['n'] * args.samples / wall:.1f} responses/s"
    )


if __name__ == "__main__":
    main()
