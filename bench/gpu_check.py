"""A prepared check of the GPU path, for a short window on a GPU machine with no network (bench/gpu_check.sh).

On a locally built random-init Qwen2 decoder of ~0.5B parameters (Qwen2.5-0.5B's shapes, a 32k vocabulary, the tiny
tokenizer: throughput does not depend on the weights or on which ids the tokenizer uses) it measures, with the
harness's own code paths and K&K grid prompts and traces:
    generation   the transformers engine (harness.engines.HFEngine), batch 64, 256 new tokens: tokens/s
    grpo         backends.grpo (TRL's GRPOTrainer), 3 steps of 8 prompts x 8 rollouts of 256 tokens: s/step
    sft          backends.sft (TRL's SFTTrainer), 5 steps of batch 8: s/step, tokens/s
    effect       harness.effect_grads: per-sample gradients dotted with g* over all parameters: samples/s
and each stage's peak GPU memory (torch.cuda.max_memory_allocated; on a CPU the process's peak RSS). One table.
`--smoke` runs the same code on a 2-layer model with a few tokens (the CPU test in tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

SHAPES = {
    "full": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
    },
    "smoke": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 512,
        "max_position_embeddings": 1024,
    },
}
SIZES = {
    "full": {
        "gen_prompts": 64,
        "new_tokens": 256,
        "rl_steps": 3,
        "prompts_per_step": 8,
        "generations": 8,
        "sft_steps": 5,
        "sft_batch": 8,
        "effect_samples": 16,
    },
    "smoke": {
        "gen_prompts": 4,
        "new_tokens": 8,
        "rl_steps": 1,
        "prompts_per_step": 2,
        "generations": 2,
        "sft_steps": 1,
        "sft_batch": 2,
        "effect_samples": 2,
    },
}


def _peak_gb(torch) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KB -> GB (Linux)


def _reset(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a 2-layer model and a few tokens (CPU test)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args()
    size = "smoke" if a.smoke else "full"
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from backends import TrainSpec
    from harness.data import load_split, render_prompt
    from harness.engines import HFEngine, SamplingParams
    from harness.models import build_tiny, load
    from harness.recipes import apply_task_overrides, resolve
    from harness.tasks import get_task

    z = SIZES[size]
    gpu = torch.cuda.is_available()
    precision, dtype = ("bf16", "bfloat16") if gpu else ("fp32", "float32")
    _, recipe = resolve("kk", "tiny")
    spec = apply_task_overrides(get_task("kk"), recipe["task"])
    rows, t_all = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        _, tok = load(str(build_tiny(spec)))
        torch.manual_seed(0)
        shape = {**SHAPES[size], "vocab_size": max(SHAPES[size]["vocab_size"], len(tok))}
        model = Qwen2ForCausalLM(
            Qwen2Config(tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **shape)
        )
        n_params = sum(p.numel() for p in model.parameters())
        model.to(torch.bfloat16 if gpu else torch.float32).save_pretrained(folder)
        tok.save_pretrained(folder)
        del model
        device = torch.cuda.get_device_name(0) if gpu else "cpu"
        test = load_split(spec, "test", limit=z["gen_prompts"])

        _reset(torch)
        engine = HFEngine.from_ref(str(folder), dtype=dtype, batch_size=64)
        prompts = [render_prompt(spec, s) for s in test]
        engine.generate(prompts[:2], SamplingParams(n=1, temperature=1.0, max_new_tokens=4))  # warm-up
        t0 = time.perf_counter()
        gens = engine.generate(prompts, SamplingParams(n=1, temperature=1.0, max_new_tokens=z["new_tokens"]))
        wall = time.perf_counter() - t0
        tokens = sum(g.n_tokens for gs in gens for g in gs)
        rows.append(
            {
                "stage": "generation",
                "rate": tokens / wall,
                "unit": "tokens/s",
                "seconds": wall,
                "peak_gb": _peak_gb(torch),
                "detail": f"{len(prompts)} prompts x {z['new_tokens']} new tokens",
            }
        )
        del engine

        from backends.grpo import train as grpo

        _reset(torch)
        rl_rows = [
            {"id": s["id"], "prompt": render_prompt(spec, s), "answer": s["answer"]}
            for s in load_split(spec, "rl", limit=z["rl_steps"] * z["prompts_per_step"])
        ]
        rl = {
            "steps": z["rl_steps"],
            "prompts_per_step": z["prompts_per_step"],
            "num_generations": z["generations"],
            "max_completion_length": z["new_tokens"],
            "micro_batch_size": z["generations"] * 2 if gpu else 2,
            "precision": precision,
            "learning_rate": 1e-6,
            "temperature": 1.0,
        }
        t0 = time.perf_counter()
        res = grpo(
            TrainSpec(
                init_model=str(folder),
                output_dir=Path(tmp) / "rl",
                data=rl_rows,
                recipe=rl,
                verifier=spec.build_verifier(),
            )
        )
        wall = time.perf_counter() - t0
        rows.append(
            {
                "stage": "grpo",
                "rate": wall / z["rl_steps"],
                "unit": "s/step",
                "seconds": wall,
                "peak_gb": _peak_gb(torch),
                "detail": f"{z['prompts_per_step']} prompts x {z['generations']} "
                f"rollouts x {z['new_tokens']} tokens; {res.counts.get('tokens_trained', 0):,} tokens trained",
            }
        )

        from backends.sft import train as sft

        _reset(torch)
        data = [
            {"id": s["id"], "prompt": render_prompt(spec, s), "completion": s["traces"]["grid"]}
            for s in load_split(spec, "sft", limit=z["sft_steps"] * z["sft_batch"])
        ]
        t0 = time.perf_counter()
        res = sft(
            TrainSpec(
                init_model=str(folder),
                output_dir=Path(tmp) / "sft",
                data=data,
                recipe={
                    "max_steps": z["sft_steps"],
                    "batch_size": z["sft_batch"],
                    "precision": precision,
                    "max_length": 1024,
                    "learning_rate": 1e-6,
                },
            )
        )
        wall = time.perf_counter() - t0
        rows.append(
            {
                "stage": "sft",
                "rate": wall / z["sft_steps"],
                "unit": "s/step",
                "seconds": wall,
                "peak_gb": _peak_gb(torch),
                "detail": f"batch {z['sft_batch']}; "
                f"{res.counts.get('tokens_trained', 0) / wall:,.0f} tokens trained/s",
            }
        )

        from harness.effect import load_model
        from harness.effect_grads import encode_pair, sample_effects, select_params, weighted_grad

        _reset(torch)
        model, tok = load_model(str(folder), dtype)
        model, _, params, _ = select_params(model, "all")
        seqs = [
            encode_pair(tok, render_prompt(spec, s), s["traces"]["grid"])
            for s in load_split(spec, "sft", limit=z["effect_samples"] + 4)
        ]
        g = weighted_grad(model, params, seqs[:4], [0.25] * 4, batch_size=4, mean=True)
        sample_effects(model, params, seqs[4:5], g)  # warm-up
        t0 = time.perf_counter()
        sample_effects(model, params, seqs[4:], g)
        wall = time.perf_counter() - t0
        rows.append(
            {
                "stage": "effect",
                "rate": z["effect_samples"] / wall,
                "unit": "samples/s",
                "seconds": wall,
                "peak_gb": _peak_gb(torch),
                "detail": "exact, all parameters",
            }
        )
    print(
        f"gpu_check: {n_params / 1e6:.1f}M-parameter random-init Qwen2 ({size}), {precision}, {device}; "
        f"{time.perf_counter() - t_all:.0f} s in all"
    )
    print(f"{'stage':11} {'rate':>12} {'unit':10} {'seconds':>8} {'peak GB':>8}  detail")
    for r in rows:
        print(
            f"{r['stage']:11} {r['rate']:12.2f} {r['unit']:10} {r['seconds']:8.1f} {r['peak_gb']:8.2f}  "
            f"{r['detail']}"
        )
    if a.json:
        a.json.write_text(
            json.dumps({"parameters": n_params, "device": device, "precision": precision, "rows": rows}, indent=1)
            + "\n"
        )


if __name__ == "__main__":
    main()
