"""The transformers and vLLM engines on the same prompts: init time, wall time and tok/s (sampled and greedy), and
how often their greedy responses agree. Runs every engine that imports here.

    .venv/bin/python bench/bench_engines.py --model PATH [--prompts 64] [--max-new-tokens 128] [--out hf.json]
    VLLM_CPU_KVCACHE_SPACE=1 /tmp/vllmenv/bin/python bench/bench_engines.py --model PATH --compare hf.json

PATH is a model folder, e.g. the tiny model `.venv/bin/harness eval --task kk --model tiny --limit 4` builds under
$HARNESS_HOME (default ~/.cache/harness)/models. vLLM on a CPU is the vllm-cpu package (README, "GPUs").
`--out` saves the greedy responses; `--compare FILE` adds the agreement with a saved run (another venv's engine).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def agreement(a: list[str], b: list[str]) -> str:
    same = sum(x == y for x, y in zip(a, b))
    prefix = sum(len(os.path.commonprefix([x, y])) for x, y in zip(a, b))
    chars = sum(max(len(x), len(y)) for x, y in zip(a, b)) or 1
    return f"{same}/{len(a)} identical ({same / len(a):.1%}); common prefix {prefix / chars:.1%} of characters"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a model folder")
    ap.add_argument("--task", default="kk")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=64, help="transformers engine batch")
    ap.add_argument("--engines", default=None, help="comma-separated; default: every engine that imports")
    ap.add_argument("--vllm", action="append", default=[], help="vLLM setting KEY=VALUE (repeatable)")
    ap.add_argument("--out", type=Path, help="save the greedy responses as JSON")
    ap.add_argument("--compare", type=Path, help="greedy responses saved by another run (--out)")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache for vLLM on a CPU

    import transformers

    from harness.data import load_split, render_prompt
    from harness.engines import SamplingParams, cuda_available, make_engine, parse_vllm_options, vllm_importable
    from harness.tasks import get_task

    spec = get_task(args.task)
    prompts = [render_prompt(spec, s) for s in load_split(spec, "test", limit=args.prompts)]
    names = args.engines.split(",") if args.engines else ["transformers"] + (["vllm"] if vllm_importable() else [])
    vllm_opts = parse_vllm_options(args.vllm)
    if not cuda_available():  # vLLM on a CPU: no CUDA graphs or compilation, a small context
        vllm_opts = {"enforce_eager": True, "max_model_len": 1024, **vllm_opts}
    print(
        f"model={args.model} task={args.task} prompts={len(prompts)} max_new_tokens={args.max_new_tokens} "
        f"dtype={args.dtype} gpu={cuda_available()} transformers={transformers.__version__}"
    )
    greedy: dict[str, list[str]] = {}
    for name in names:  # transformers first: vLLM lowers torch's thread count in this process
        import torch

        t0 = time.perf_counter()
        eng = make_engine(name, args.model, dtype=args.dtype, batch_size=args.batch_size, vllm=vllm_opts)
        init = time.perf_counter() - t0
        eng.generate(prompts[:2], SamplingParams(max_new_tokens=8))  # warm-up, not timed
        version = transformers.__version__ if name == "transformers" else __import__("vllm").__version__
        print(f"\n[{name} {version}] init {init:.1f}s (load + engine start); torch threads {torch.get_num_threads()}")
        for label, params in [
            ("sampled T=1.0", SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens)),
            ("greedy", SamplingParams(max_new_tokens=args.max_new_tokens)),
        ]:
            t0 = time.perf_counter()
            out = eng.generate(prompts, params)
            wall = time.perf_counter() - t0
            toks = sum(g.n_tokens for gs in out for g in gs)
            trunc = sum(g.truncated for gs in out for g in gs) / len(out)
            print(
                f"  {label:14s} {toks:6d} tokens in {wall:6.2f}s = {toks / wall:7.0f} tok/s; "
                f"truncated {trunc:.0%}, mean {toks / len(out):.0f} tokens"
            )
            if label == "greedy":
                greedy[name] = [gs[0].text for gs in out]
        if name == "vllm":
            eos_check(eng, prompts, args.max_new_tokens)
            eng.close()
    if len(greedy) == 2:
        print(f"\ngreedy agreement transformers vs vllm: {agreement(greedy['transformers'], greedy['vllm'])}")
    if args.compare:
        saved = json.loads(args.compare.read_text())
        for name, texts in greedy.items():
            print(
                f"greedy agreement {name} here vs {saved['engine']} (transformers {saved['transformers']}) "
                f"in {args.compare}: {agreement(saved['texts'], texts)}"
            )
    if args.out:
        name = "transformers" if "transformers" in greedy else next(iter(greedy))
        args.out.write_text(
            json.dumps({"engine": name, "transformers": transformers.__version__, "texts": greedy[name]})
        )


def eos_check(eng, prompts, max_new_tokens: int) -> None:
    """What the engine's token counts assume: vLLM keeps the EOS id at the end of token_ids on finish 'stop'."""
    import vllm

    from harness.engines import prompt_text

    ids = [{"prompt_token_ids": eng.tok(prompt_text(eng.tok, p), add_special_tokens=False).input_ids} for p in prompts]
    res = eng.llm.generate(ids, vllm.SamplingParams(temperature=1.0, max_tokens=max_new_tokens, seed=1), use_tqdm=False)
    stops = [c for r in res for c in r.outputs if c.finish_reason == "stop"]
    ends = sum(bool(c.token_ids) and c.token_ids[-1] == eng.tok.eos_token_id for c in stops)
    print(
        f"  raw vLLM check: {len(stops)} of {len(res)} sampled responses finished 'stop'; "
        f"{ends} of them end with the EOS id in token_ids"
    )


if __name__ == "__main__":
    main()
