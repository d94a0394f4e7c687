"""Eval throughput of the transformers engine on the embedded tiny model: generated tokens per second.

.venv/bin/python bench/bench_eval.py [--limit 64] [--max-new-tokens 256] [--batch-size 32] [--dtype auto]
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
    args = ap.parse_args()

    import torch

    from harness.engines import HFEngine
    from harness.evaluate import evaluate
    from harness.models import build_tiny
    from harness.tasks import get_task

    spec = get_task(args.task)
    eng = HFEngine.from_ref(str(build_tiny(spec)), dtype=args.dtype, batch_size=args.batch_size)
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
        f"engine={eng.name} dtype={args.dtype} threads={torch.get_num_threads()} problems={m['n']} "
        f"samples/problem={args.samples} batch={args.batch_size}"
    )
    print(
        f"generated {m['tokens_generated']} tokens in {wall:.2f}s: {m['tokens_generated'] / wall:.0f} tok/s "
        f"(incl. scoring); {m['n'] * args.samples / wall:.1f} responses/s"
    )


if __name__ == "__main__":
    main()
