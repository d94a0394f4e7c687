"""`--dry-run`: what a run (or a grid) would do and cost, without training or generating anything.

The stages are resolved exactly as `harness run` resolves them (same keys, same cache), then each one that is not
complete is estimated instead of built:

    counts   sequences and tokens trained (tokenized with the model's tokenizer), rollouts and tokens generated;
             generated lengths are the task's reference traces (the cold-start teacher's) capped at the limit
    FLOPs    6N per trained token or token through a gradient, 2N per generated or forward-only token (as run records
             count them)
    memory   per device, one process: weights, gradients and AdamW state (Trainer keeps fp32 master weights: 16 bytes
             a parameter), activations at the recipe's micro-batch and length (~34 h bytes a token and layer in 16-bit
             without recomputation, Korthikanti et al. 2022; x2 in fp32), the KV cache of generation
    wall     training FLOPs / a training FLOP rate, plus generated tokens / a generation rate (THROUGHPUT: measured
             on this project's CPU runs, or stated assumptions for a GPU)

The sampling stage of redistill keeps one verified response per prompt, so it needs target / accuracy prompts; the
accuracy of a policy that is not trained yet is not known: `assume_accuracy` (default 0.5) says what the plan assumes.
A stage whose data comes from a stage not yet run (the re-distillation SFT) is estimated from reference traces and its
key is shown as `?`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError

# Rates the wall-time estimate divides by. cpu: measured on this project's 2-core CPU runs of the tiny recipe
# (fp32; SFT 660,400 tokens trained in 89 s by a 0.84M-parameter model; evaluation 1,000 grid traces, 130,522 tokens,
# in 70 s at batch 64). gpu: an assumption, stated as such: an H100/H200-class GPU at 35% of its 989 TFLOP/s bf16
# peak for training and 2,000 generated tokens/s for transformers' generate on a 1.5B model (vLLM is several times
# faster).
THROUGHPUT = {
    "cpu": {
        "train_flops_per_s": 3.7e10,
        "gen_tokens_per_s": 1.9e3,
        "source": "measured: tiny recipe on 2 CPU cores (fp32)",
    },
    "gpu": {
        "train_flops_per_s": 0.35 * 989e12,
        "gen_tokens_per_s": 2.0e3,
        "source": "assumed: one H100/H200-class GPU, 35% MFU training, 2k tokens/s transformers generation",
    },
}


class Planner:
    """Collects planned stages while `train_for_method` runs in dry-run mode (Context.plan)."""

    def __init__(self, ctx: Any, assume_accuracy: float = 0.5, device: Optional[str] = None) -> None:
        if not 0 < assume_accuracy <= 1:
            raise HarnessError(f"--assume-accuracy must be in (0, 1], got {assume_accuracy}")
        from transformers import AutoConfig, AutoTokenizer

        self.ctx, self.assume_accuracy = ctx, assume_accuracy
        self.tok = AutoTokenizer.from_pretrained(ctx.base_ref)
        self.config = AutoConfig.from_pretrained(ctx.base_ref)
        self.n_params = _parameters(self.config)
        if device is None:
            import torch

            device = "gpu" if torch.cuda.is_available() else "cpu"
        if device not in THROUGHPUT:
            raise HarnessError(f"unknown device '{device}' for the estimate: cpu or gpu")
        self.device = device
        self.stages: list[dict] = []
        self._ref_len: Optional[float] = None

    # --- token counts ---------------------------------------------------------------------------------------------

    def tokens(self, prompt: Any, completion: str = "") -> tuple[int, int]:
        """(prompt tokens, completion tokens + EOS) as the model's tokenizer counts them (a stage's own estimator
        uses it too)."""
        if isinstance(prompt, list):
            text = self.tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            p = len(self.tok(text, add_special_tokens=False)["input_ids"])
        else:
            p = len(self.tok(prompt, add_special_tokens=False)["input_ids"])
        return p, len(self.tok(completion, add_special_tokens=False)["input_ids"]) + 1 if completion else 0

    def _style(self) -> str:
        """The reference-trace style of the cold start's teacher (`traces:STYLE`)."""
        return str(self.ctx.recipe.get("cold_start", {}).get("teacher", "traces:short")).split(":", 1)[-1]

    def reference_length(self) -> float:
        """Mean tokens of the cold-start teacher's reference traces (the length a trained policy writes, roughly)."""
        if self._ref_len is None:
            from harness.data import load_split

            style = self._style()
            split = "sft" if "sft" in self.ctx.task.splits else "train"
            rows = [s for s in load_split(self.ctx.task, split, limit=200) if style in (s.get("traces") or {})]
            lens = [self.tokens("", s["traces"][style])[1] for s in rows]
            self._ref_len = sum(lens) / len(lens) if lens else float(self.ctx.task.generation.max_new_tokens) / 2
        return self._ref_len

    def placeholder_rows(self, split: str, n: int) -> list[dict]:
        """Rows standing in for data a stage not yet run will produce: prompts of `split` with reference traces."""
        from harness.data import load_split, render_prompt

        style = self._style()
        return [
            {
                "id": s["id"],
                "prompt": render_prompt(self.ctx.task, s),
                "answer": s["answer"],
                "completion": (s.get("traces") or {}).get(style, ""),
            }
            for s in load_split(self.ctx.task, split, limit=n)
        ]

    # --- stages ---------------------------------------------------------------------------------------------------

    def stage(self, name: str, cfg: dict, d: Path, hint: dict) -> dict:
        """A stage not built: its estimate by `hint["estimate"](planner, hint)` when the stage brings one (a method's
        own stage), else by this planner's estimator of that stage."""
        from harness.records import newest_complete_checkpoint

        resume = newest_complete_checkpoint(d) if d.is_dir() else None
        estimate = hint.get("estimate") or (lambda _, h: getattr(self, f"_est_{name}")(h))
        est = self._cost(estimate(self, hint))
        status = f"partial: resumes from {resume.name}" if resume else "to run"
        info = {
            "stage": name,
            "key": "?" if hint.get("unknown_data") else d.name.split("-", 1)[1],
            "cached": False,
            "planned": True,
            "status": status,
            "model_path": str(d / "final"),
            "estimate": est,
            "data_path": None,
            "counts": {},
            "split": hint.get("split"),
        }
        self.stages.append(info)
        return info

    def _cost(self, est: dict) -> dict:
        """est with its FLOPs (6N a token trained or through a gradient, 2N a generated or forward-only one) and wall
        time at THROUGHPUT."""
        trained = est.get("tokens_trained", 0) + est.get("tokens_gradient", 0)
        est["flops"] = 6 * self.n_params * trained + 2 * self.n_params * (
            est.get("tokens_generated", 0) + est.get("tokens_forward_only", 0)
        )
        rate = THROUGHPUT[self.device]
        est["wall_seconds"] = (
            6 * self.n_params * trained / rate["train_flops_per_s"]
            + est.get("tokens_generated", 0) / rate["gen_tokens_per_s"]
        )
        return est

    def memory(
        self, micro_batch: int, seq_len: int, precision: str, train: bool, gen_batch: int = 0, gen_len: int = 0
    ) -> dict:
        """GB per device: weights, gradients and AdamW state and activations when `train`, the KV cache of
        generating gen_batch sequences of gen_len tokens."""
        c, N = self.config, self.n_params
        h, layers = c.hidden_size, c.num_hidden_layers
        half = precision in ("bf16", "fp16", "bfloat16", "float16")
        out = {"weights_gb": N * (2 if half and not train else 4) / 1e9}
        if train:
            out["grads_optimizer_gb"] = N * 12 / 1e9  # fp32 gradients + AdamW's two moments
            out["activations_gb"] = micro_batch * seq_len * h * layers * 34 * (1 if half else 2) / 1e9
        if gen_batch:
            kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
            head_dim = getattr(c, "head_dim", None) or h // c.num_attention_heads
            out["kv_cache_gb"] = 2 * layers * kv_heads * head_dim * (2 if half else 4) * gen_batch * gen_len / 1e9
        out["total_gb"] = sum(out.values())
        return out

    def _est_sft(self, hint: dict) -> dict:
        from backends.defaults import sft_schedule

        sft = sft_schedule(self.ctx.recipe.get("sft", {}), len(hint["data"]))
        r = {"epochs": 2, "batch_size": 8, "max_length": 2048, "precision": "bf16", **sft}
        lens = [min(sum(self.tokens(x["prompt"], x["completion"])), r["max_length"]) for x in hint["data"]]
        per_step = r.get("global_batch") or r["batch_size"] * r.get("grad_accum", 1)
        steps, sequences = math.ceil(len(lens) / per_step) * r["epochs"], len(lens) * r["epochs"]
        if (r.get("max_steps") or -1) > 0:  # max_steps overrides epochs, as in the Trainer
            steps, sequences = r["max_steps"], r["max_steps"] * per_step
        mean = sum(lens) / max(1, len(lens))
        return {
            "sequences_trained": sequences,
            "tokens_trained": round(sequences * mean),
            "optimizer_steps": steps,
            "memory": self.memory(r["batch_size"], max(lens, default=0), str(r["precision"]), True),
        }

    def _est_rl(self, hint: dict) -> dict:
        r = {
            "num_generations": 8,
            "prompts_per_step": 16,
            "max_completion_length": 256,
            "num_iterations": 1,
            "epochs": 1,
            "kl": 0.0,
            "precision": "bf16",
            "steps": None,
            **hint["recipe"],
        }
        rows = self.placeholder_rows("rl", hint["budget"])
        prompt = sum(self.tokens(x["prompt"])[0] for x in rows) / max(1, len(rows))
        completion = min(self.reference_length(), r["max_completion_length"])
        steps = r["steps"] or max(1, len(rows) * r["epochs"] // r["prompts_per_step"])
        batch = r["prompts_per_step"] * r["num_generations"]
        rollouts = steps * batch
        seq = prompt + completion
        micro = r.get("micro_batch_size") or min(batch, 64)
        return {
            "rollouts_generated": rollouts,
            "tokens_generated": round(rollouts * completion),
            "sequences_trained": rollouts * r["num_iterations"],
            "tokens_trained": round(rollouts * seq * r["num_iterations"]),
            "tokens_forward_only": round(rollouts * seq * ((r["num_iterations"] > 1) + (r["kl"] > 0))),
            "optimizer_steps": steps * r["num_iterations"],
            "memory": self.memory(
                micro,
                round(prompt + r["max_completion_length"]),
                str(r["precision"]),
                True,
                gen_batch=batch,
                gen_len=round(prompt + r["max_completion_length"]),
            ),
        }

    def _est_sample(self, hint: dict) -> dict:
        completion = min(self.reference_length(), hint["max_new"])
        rollouts = math.ceil(hint["target"] / self.assume_accuracy) * hint["n"]
        ev = self.ctx.recipe.get("eval", {})
        return {
            "rollouts_generated": rollouts,
            "tokens_generated": round(rollouts * completion),
            "assumed_accuracy": self.assume_accuracy,
            "memory": self.memory(
                0,
                0,
                str(ev.get("dtype", "bf16")),
                False,
                gen_batch=ev.get("batch_size", 32),
                gen_len=hint["max_new"] + 256,
            ),
        }

    def evaluation(self, trained: bool = True) -> dict:
        """The test evaluation: greedy, plus eval.samples sampled responses per problem when set, plus LiMem's
        original and perturbed training puzzles for a trained K&K model (eval.limem)."""
        from harness.perturb import limem_config

        ev = self.ctx.recipe.get("eval", {})
        size = self.ctx.task.split("test").size or 0
        n = min(size, ev["limit"]) if ev.get("limit") else size
        per = 1 + int(ev.get("samples") or 0)
        limem = limem_config(self.ctx.task, self.ctx.recipe, trained=trained)
        completion = min(self.reference_length(), ev.get("max_new_tokens") or self.ctx.task.generation.max_new_tokens)
        generations = n * per + (2 * limem["n"] if limem else 0)
        return self._cost({"rollouts_generated": 0, "tokens_generated": round(generations * completion), "problems": n})


def _parameters(config: Any) -> int:
    """Exact parameter count of the architecture, built on the meta device (no memory, no weights read)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


COUNT_FIELDS = ("rollouts_generated", "sequences_trained", "tokens_generated", "tokens_trained", "tokens_forward_only")


def summary(planner: Planner, cached: list[dict], trained: bool = True) -> dict:
    """The plan as data: every stage (cached ones with what they cost when they ran), the evaluation, and totals of
    what is still to run."""
    rows = []
    for st in cached:
        rows.append(
            {
                "stage": st["stage"],
                "key": st["key"],
                "status": "cached",
                "counts": st.get("counts", {}),
                "wall_seconds": st.get("wall_seconds"),
            }
        )
    for st in planner.stages:
        e = st["estimate"]
        rows.append(
            {
                "stage": st["stage"],
                "key": st["key"],
                "status": st["status"],
                "counts": {k: e[k] for k in (*COUNT_FIELDS, "tokens_gradient") if k in e},
                "flops": e["flops"],
                "memory_gb": e["memory"]["total_gb"],
                "memory": e["memory"],
                "wall_seconds": e["wall_seconds"],
                **({"assumed_accuracy": e["assumed_accuracy"]} if "assumed_accuracy" in e else {}),
            }
        )
    ev = planner.evaluation(trained)
    rows.append(
        {
            "stage": "eval",
            "key": "test",
            "status": "to run",
            "counts": {"tokens_generated": ev["tokens_generated"]},
            "flops": ev["flops"],
            "wall_seconds": ev["wall_seconds"],
        }
    )
    return {
        "model_parameters": planner.n_params,
        "device": planner.device,
        "throughput": THROUGHPUT[planner.device],
        "stages": rows,
        "to_run": totals(rows),
    }


def totals(rows: list[dict]) -> dict:
    """What the stages not cached still cost: counts, FLOPs and wall time summed, memory as the peak."""
    todo = [r for r in rows if r["status"] != "cached"]
    total: dict[str, Any] = {k: sum(r["counts"].get(k, 0) for r in todo) for k in COUNT_FIELDS}
    total.update(
        {
            "flops": sum(r.get("flops", 0) for r in todo),
            "wall_seconds": sum(r["wall_seconds"] or 0 for r in todo),
            "peak_memory_gb": max((r.get("memory_gb") or 0 for r in todo), default=0),
        }
    )
    return total
