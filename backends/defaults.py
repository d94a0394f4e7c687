"""The sft and rl recipe keys with their defaults (and the types of keys whose default is None or that take several
types): plain data, so that `harness/recipes.py` checks every recipe section before anything trains without
importing torch or TRL. The backends merge a recipe over these (`_common.resolve_recipe`)."""

from __future__ import annotations

import math
from typing import Any

from harness.errors import HarnessError

# Keys the orchestrator keeps in a stage's recipe section for itself (which model to start from, how much data, how
# many val samples); a backend accepts and ignores them.
ORCHESTRATOR_KEYS = frozenset({"init", "budget", "val_limit"})

SFT: dict[str, Any] = {
    "learning_rate": 1e-5,
    "epochs": 2,
    "batch_size": 8,
    "grad_accum": 1,
    "global_batch": None,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
    "max_length": 2048,
    "loss": "seq_mean",
    "logging_steps": 1,
    "lora": None,  # {r, alpha, dropout, target_modules}: train a LoRA adapter (peft) instead of every weight
    "report_to": "none",  # or tensorboard, wandb, trackio, mlflow (joined by commas): TRL's trackers
    "precision": "auto",
    "group_by_length": False,
    "save_steps": None,
    "max_steps": -1,
    "min_steps": 0,  # at least this many optimizer steps: a small budget trains more epochs (0: off; sft_schedule)
}


def sft_schedule(recipe: dict, n: int, world: int = 1) -> dict:
    """The sft section as it trains on `n` demonstrations over `world` processes. `min_steps` is a floor on optimizer
    steps: where `epochs` would give fewer, it becomes `max_steps` (the Trainer then runs more epochs, the schedule
    over those steps). The key itself leaves the section, so a section it does not bind is the section without it
    (the stage key of sft@1k stays what it was) and one it binds says what trained. An explicit max_steps wins."""
    out = dict(recipe)
    floor = out.pop("min_steps", 0) or 0
    r = {**SFT, **out}
    if floor and r["max_steps"] == -1:
        accum = grad_accum_for(r, recipe.get("grad_accum") is not None, world)
        steps = math.ceil(math.ceil(n / (r["batch_size"] * world)) / max(1, accum)) * r["epochs"]
        if steps < floor:
            out["max_steps"] = floor
    return out


def grad_accum_for(r: dict[str, Any], grad_accum_given: bool, world: int) -> int:
    """Gradient accumulation steps: grad_accum as given, or from global_batch / (batch_size × processes)."""
    g = r["global_batch"]
    if g is None:
        return r["grad_accum"]
    if grad_accum_given:
        raise HarnessError(
            "sft recipe: set global_batch or grad_accum, not both (grad_accum follows from "
            "global_batch / (batch_size × processes))"
        )
    per_step = r["batch_size"] * world
    if g < 1 or g % per_step:
        raise HarnessError(
            f"sft recipe: global_batch ({g}) must be a multiple of batch_size × processes "
            f"({r['batch_size']} × {world} = {per_step})"
        )
    return g // per_step


SFT_TYPES = {"save_steps": (int, float, type(None)), "global_batch": (int, type(None)), "lora": (dict, type(None))}

RL: dict[str, Any] = {
    "learning_rate": 5e-6,
    "optim": "adamw_torch",  # or any optimizer name transformers' TrainingArguments.optim takes (sgd, adafactor, ...)
    "optim_args": None,  # its extra arguments as transformers reads them, e.g. "momentum=0.9" for sgd
    "beta1": 0.9,
    "beta2": 0.99,
    "weight_decay": 0.0,
    "warmup_steps": 0,
    "lr_scheduler": "constant_with_warmup",
    "num_generations": 8,
    "prompts_per_step": 16,
    "micro_batch_size": None,
    "temperature": 0.7,
    "top_p": 1.0,
    "clip": 0.2,
    "kl": 0.0,
    "entropy_coef": 0.0,
    "max_completion_length": 256,
    "max_prompt_length": None,
    "prompt_overflow": "error",
    "steps": None,
    "epochs": 1,
    "loss_type": "grpo",
    "num_iterations": 1,
    "scale_rewards": True,
    "reward_requires_eos": True,
    "eval_every": 0,
    "logging_steps": 1,
    "lora": None,  # {r, alpha, dropout, target_modules}: train a LoRA adapter (peft) instead of every weight
    "report_to": "none",  # or tensorboard, wandb, trackio, mlflow (joined by commas): TRL's trackers
    "engine": "auto",
    # TRL's colocate-mode vLLM settings (used only when the engine is vllm)
    "vllm_gpu_memory_utilization": 0.3,
    "vllm_max_model_length": None,
    "vllm_tensor_parallel_size": 1,
    "precision": "auto",
    "save_steps": None,
    "cache": "dynamic",  # or static: the KV cache of generation on the transformers engine (harness/engines.py)
}
RL_TYPES = {
    "lora": (dict, type(None)),
    "optim_args": (str, type(None)),
    "micro_batch_size": (int, type(None)),
    "steps": (int, type(None)),
    "scale_rewards": (bool, str),
    "max_prompt_length": (int, type(None)),
    "save_steps": (int, float, type(None)),
    "vllm_max_model_length": (int, type(None)),
    "warmup_steps": (int, float),
}
