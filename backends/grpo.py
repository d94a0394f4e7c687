"""GRPO backend: TRL's GRPOTrainer with the task's verifier as the only reward.

Recipe keys (all optional):

    learning_rate 5e-6        beta1 0.9 (paper 0.5)     beta2 0.99            weight_decay 0.0
    warmup_steps 0            lr_scheduler constant_with_warmup
    num_generations 8         prompts_per_step 16 (global)   micro_batch_size (per process: largest divisor of the
                                                             process's share of the step's batch <= 64)
    temperature 0.7           top_p 1.0                 max_completion_length 256
    max_prompt_length None    prompt_overflow error (or truncate_left)
    clip 0.2 (epsilon)        kl 0.0 (beta)             entropy_coef 0.0      loss_type grpo
    num_iterations 1 (updates per generated batch)
    scale_rewards true        reward_requires_eos true
    steps: RL steps (generations; default len(data) * epochs // prompts_per_step)    epochs 1
    eval_every 0 (off)        logging_steps 1           save_steps (20% of steps)

One RL step = prompts_per_step prompts × num_generations completions in all (a GLOBAL batch, the same whatever the
number of processes), generated once, then trained as one optimizer step, or num_iterations of them on the same
completions (TRL's μ; the clipped ratio keeps the later ones close to the policy that generated). Each of W processes
takes batch / W of it (an error if W does not divide it) in micro-batches of micro_batch_size with gradient
accumulation: per_device_train_batch_size = micro_batch_size, gradient_accumulation_steps = steps_per_generation =
batch / (W × micro_batch_size), generation_batch_size = batch (TRL's is global). Because an optimizer step
accumulates exactly steps_per_generation micro-batches, every slice of the generated batch is used once per optimizer
step, also with μ > 1 and several processes. On a CPU generation is most of an RL step's time, so μ > 1 buys updates
cheaply. scale_rewards true is TRL's "group" scaling, (r - group mean) / (group std + 1e-4) (the paper's code adds
1e-6); false (or "none") only centres; "batch" scales by the batch std.

max_prompt_length caps the prompt in tokens (TRL 1.16 has no such option): `error` (the paper's verl code, which
asserts that no prompt is longer) fails before training and names the longest prompt; `truncate_left` keeps the last
max_prompt_length tokens of each prompt, as TRL's old max_prompt_length did.

Generation stops on every end token of the model and its chat template (harness.engines.stop_token_ids: the
tokenizer's EOS, generation_config.eos_token_id, and e.g. <|im_end|>), and the model's own generation_config is
neutralized while TRL generates (TRL's explicit settings stay: temperature, top_p, top_k 0, repetition_penalty 1).
The reward is exactly `spec.verifier(response, answer, truncated=...)`, where truncated means the completion has none
of those stop ids within max_completion_length (read from the completion's token ids, as TRL's clipped_ratio does);
with reward_requires_eos a truncated completion scores 0 whatever the verifier says.

Counts: tokens_trained and sequences_trained are counted per optimizer pass (a batch reused μ times counts μ times);
tokens_forward_only counts the extra forward passes without a backward: TRL's old log-probs (computed when μ > 1,
i.e. when gradient_accumulation_steps is not a multiple of steps_per_generation × μ, and always under vLLM's
importance-sampling correction) and the reference model's log-probs when kl > 0.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from backends import TrainResult, TrainSpec
from backends._common import (
    FINAL,
    Counter,
    LogCapture,
    Progress,
    common_args,
    config_error,
    finished,
    jsonable,
    last,
    load_model,
    lora_config,
    lora_info,
    quiet,
    quiet_datasets,
    resolve_recipe,
    resume_checkpoint,
    save_final,
    tracker_logs,
)
from backends.defaults import RL as DEFAULTS, RL_TYPES as TYPES
from harness.engines import pick_engine, stop_token_ids
from harness.errors import HarnessError

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.16's
PROMPT_OVERFLOW = ("error", "truncate_left")

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


class HarnessGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer plus: counts of what each optimizer pass trained and of the extra forward passes, the prompt
    cap, and generation with the model's own generation_config neutralized. The loop and the loss stay TRL's."""

    def __init__(
        self,
        *args: Any,
        counter: Counter,
        max_prompt_length: Optional[int] = None,
        prompt_overflow: str = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.counter, self.max_prompt_length, self.prompt_overflow = counter, max_prompt_length, prompt_overflow

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training:  # one micro-batch of one optimizer pass: counted on every pass (mu of them)
            self.counter.add(
                sequences_trained=inputs["completion_ids"].size(0),
                tokens_trained=int(inputs["prompt_mask"].sum()) + int(inputs["completion_mask"].sum()),
            )
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        # TRL ran a no-grad forward over the generated batch for each of these (old policy, reference model).
        passes = sum(k in out for k in ("old_per_token_logps", "ref_per_token_logps"))
        if passes and self.model.training:
            n = int(out["prompt_mask"].sum()) + int(out["completion_mask"].sum())
            self.counter.add(tokens_forward_only=passes * n)
        return out

    def _tokenize_prompts(self, prompts: list):
        prompt_ids, images, fields = super()._tokenize_prompts(prompts)
        cap = self.max_prompt_length
        if cap is not None and any(len(ids) > cap for ids in prompt_ids):
            if self.prompt_overflow != "truncate_left":
                longest = max(len(ids) for ids in prompt_ids)
                raise HarnessError(f"rl: a prompt of {longest} tokens is longer than max_prompt_length ({cap})")
            prompt_ids = [list(ids)[-cap:] for ids in prompt_ids]
        return prompt_ids, images, fields

    def _generate_single_turn(self, *args: Any, **kwargs: Any):
        from transformers import GenerationConfig

        # transformers fills every setting the trainer's explicit GenerationConfig leaves unset from the model's
        # generation_config (a shipped no_repeat_ngram_size, min_length, ...): blank it while generating.
        model = self.accelerator.unwrap_model(self.model)
        shipped = model.generation_config
        model.generation_config = GenerationConfig()
        try:
            return super()._generate_single_turn(*args, **kwargs)
        finally:
            model.generation_config = shipped


def world_size() -> int:
    """Processes that train together (accelerate launch sets WORLD_SIZE)."""
    from harness import dist

    return dist.world_size()


def batch_plan(r: dict[str, Any], world: int) -> dict[str, int]:
    """Per-process batch sizes from the recipe's GLOBAL batch: prompts_per_step × num_generations per optimizer
    step, whatever the number of processes."""
    P, G = r["prompts_per_step"], r["num_generations"]
    batch = P * G
    if world < 1 or batch % world:
        raise HarnessError(
            f"rl recipe: the global batch prompts_per_step × num_generations ({P} × {G} = {batch}) "
            f"must be divisible by the number of processes ({world})"
        )
    local = batch // world
    micro = r["micro_batch_size"] or max(d for d in range(1, min(local, 64) + 1) if local % d == 0)
    if micro < 1 or local % micro:
        raise HarnessError(
            f"rl recipe: micro_batch_size ({micro}) must divide each process's share of the global "
            f"batch (prompts_per_step × num_generations / processes = {P} × {G} / {world} = {local})"
        )
    return {
        "world_size": world,
        "prompts_per_step": P,
        "num_generations": G,
        "global_batch": batch,
        "per_process_batch": local,
        "micro_batch_size": micro,
        "grad_accum": local // micro,
    }


def build_config(
    spec: TrainSpec,
    r: dict[str, Any],
    engine: str,
    steps: int,
    stop_ids: Optional[list[int]] = None,
    world: Optional[int] = None,
) -> tuple[GRPOConfig, dict]:
    """The GRPOConfig a stage trains with, and its batch plan."""
    plan = batch_plan(r, world_size() if world is None else world)
    scale = {True: "group", False: "none"}.get(r["scale_rewards"], r["scale_rewards"])
    vllm = {}
    if engine == "vllm":
        vllm = {
            "vllm_mode": "colocate",
            **{k: r[k] for k in ("vllm_gpu_memory_utilization", "vllm_max_model_length", "vllm_tensor_parallel_size")},
        }
        if stop_ids:  # vLLM stops on these besides its own EOS (TRL's vLLM path does not read the model's list)
            vllm["generation_kwargs"] = {"stop_token_ids": list(stop_ids)}
    try:
        config = GRPOConfig(
            **common_args(spec, r),
            learning_rate=r["learning_rate"],
            optim=r["optim"],
            optim_args=r["optim_args"],
            adam_beta1=r["beta1"],
            adam_beta2=r["beta2"],
            weight_decay=r["weight_decay"],
            warmup_steps=r["warmup_steps"],
            lr_scheduler_type=r["lr_scheduler"],
            max_steps=steps * r["num_iterations"],
            num_generations=plan["num_generations"],
            per_device_train_batch_size=plan["micro_batch_size"],
            gradient_accumulation_steps=plan["grad_accum"],
            generation_batch_size=plan["global_batch"],  # global in TRL: one generation per optimizer step
            num_iterations=r["num_iterations"],
            temperature=r["temperature"],
            top_p=r["top_p"],
            top_k=0,
            repetition_penalty=1.0,
            max_completion_length=r["max_completion_length"],
            epsilon=r["clip"],
            beta=r["kl"],
            entropy_coef=r["entropy_coef"],
            loss_type=r["loss_type"],
            scale_rewards=scale,
            mask_truncated_completions=False,  # truncated completions are trained on, with reward 0 (the paper's RL)
            cache_implementation=None if r["cache"] == "dynamic" else r["cache"],
            use_vllm=engine == "vllm",
            **vllm,
            log_completions=False,
        )
    except ValueError as e:
        raise config_error("rl", e) from None
    if config.world_size != plan["world_size"] or config.steps_per_generation != plan["grad_accum"]:
        raise HarnessError(
            f"rl: the trainer sees {config.world_size} processes and {config.steps_per_generation} "
            f"micro-batches per generation, the plan {plan['world_size']} and {plan['grad_accum']}; "
            "an optimizer step would not train each generated slice exactly once"
        )
    return config, plan


def check_prompt_lengths(dataset: Dataset, tokenizer: Any, cap: Optional[int], overflow: str) -> dict:
    """Prompt lengths in tokens as TRL renders them (chat template with the generation prompt, or the raw text);
    longer than the cap is an error (overflow `error`) before anything trains."""
    if cap is None:
        return {}
    lengths = []
    for p in dataset["prompt"]:
        if isinstance(p, str):
            lengths.append(len(tokenizer(p)["input_ids"]))
        else:
            out = tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)
            lengths.append(len(out["input_ids"]))
    over = [i for i, n in enumerate(lengths) if n > cap]
    if over and overflow == "error":
        worst = max(over, key=lambda i: lengths[i])
        raise HarnessError(
            f"rl: {len(over)} of {len(lengths)} prompts are longer than max_prompt_length ({cap}); the "
            f"longest, row {worst} (id {dataset['id'][worst]}), has {lengths[worst]} tokens. Raise "
            "max_prompt_length or set prompt_overflow: truncate_left"
        )
    return {"max_prompt_tokens": max(lengths), "prompts_over_cap": len(over), "max_prompt_length": cap}


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


def check_recipe(spec: TrainSpec, r: dict) -> tuple[int, dict]:
    """(optimizer steps, the batch plan) after every check of the resolved rl recipe against the data, before any
    model is loaded."""
    if spec.verifier is None:
        raise HarnessError("rl: no verifier given (the reward is the task's verifier)")
    P = r["prompts_per_step"]
    plan = batch_plan(r, world_size())  # the batch checks, before any model is loaded
    if len(spec.data) < P:
        raise HarnessError(
            f"rl: {len(spec.data)} prompts is fewer than prompts_per_step ({P}); lower "
            "prompts_per_step or give more data"
        )
    steps = r["steps"] if r["steps"] is not None else max(1, len(spec.data) * r["epochs"] // P)
    if not isinstance(r["num_iterations"], int) or r["num_iterations"] < 1:
        raise HarnessError(f"rl recipe: num_iterations must be an integer >= 1, got {r['num_iterations']!r}")
    scale = {True: "group", False: "none"}.get(r["scale_rewards"], r["scale_rewards"])
    if scale not in ("group", "batch", "none"):
        raise HarnessError(f"rl recipe: scale_rewards must be true, false, 'group', 'batch' or 'none', got {scale!r}")
    if r["loss_type"] not in LOSS_TYPES:
        raise HarnessError(f"rl recipe: loss_type must be one of {', '.join(LOSS_TYPES)}, got {r['loss_type']!r}")
    if r["prompt_overflow"] not in PROMPT_OVERFLOW:
        raise HarnessError(
            f"rl recipe: prompt_overflow must be one of {', '.join(PROMPT_OVERFLOW)}, got {r['prompt_overflow']!r}"
        )
    if r["max_prompt_length"] is not None and r["max_prompt_length"] < 1:
        raise HarnessError(
            f"rl recipe: max_prompt_length must be a positive number of tokens or null, "
            f"got {r['max_prompt_length']}"
        )
    return steps, plan


def train(spec: TrainSpec) -> TrainResult:
    r = resolve_recipe("rl", spec.recipe, DEFAULTS, TYPES)
    lora = lora_config("rl", r["lora"])  # checked before any data or model is loaded
    steps, plan = check_recipe(spec, r)
    done = finished(spec.output_dir)
    if done is not None:  # final/ exists: the stage completed earlier
        return TrainResult(spec.output_dir / FINAL, done["log"], done["counts"], done["metrics"])

    engine = pick_engine(r["engine"], rollouts=True, what="rl.engine")
    dataset = build_dataset(spec.data)
    model, tokenizer = load_model(spec.init_model)
    prompt_info = check_prompt_lengths(dataset, tokenizer, r["max_prompt_length"], r["prompt_overflow"])
    # Every id generation stops on: the tokenizer's EOS, the model's generation_config list and the chat template's
    # end-of-turn token. TRL stops on model.generation_config.eos_token_id plus the tokenizer's EOS, so the model
    # declares them all (its saved generation_config keeps them).
    stop_ids = stop_token_ids(tokenizer, model.generation_config)
    model.generation_config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else list(stop_ids)
    config, plan = build_config(spec, r, engine, steps, stop_ids, plan["world_size"])
    counter = Counter(
        spec.output_dir,
        rollouts_generated=0,
        tokens_generated=0,
        sequences_trained=0,
        tokens_trained=0,
        tokens_forward_only=0,
    )
    capture = LogCapture()
    trainer = make_trainer(spec, r, model, tokenizer, dataset, config, lora, stop_ids, counter, capture)

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(spec.output_dir))
    seconds = time.perf_counter() - t0

    log = [{RENAME.get(k, k): v for k, v in e.items()} for e in capture.log]
    counts = {"optimizer_steps": trainer.state.global_step, **counter.totals(trainer.accelerator)}
    metrics = {
        "final_loss": last(log, "loss"),
        "final_reward_mean": last(log, "reward_mean"),
        "train_seconds": round(seconds, 3),
        "generation_engine": engine,
        "stop_token_ids": list(stop_ids),
        "batch": plan,
        **({"prompts": prompt_info} if prompt_info else {}),
        **tracker_logs(r, spec.output_dir),
        **lora_info(trainer.model, r["lora"]),
    }
    vals = [e["val"] for e in log if "val" in e]
    if vals:
        metrics["val"] = vals[-1]
        metrics.update({f"val_{k}": v for k, v in vals[-1].items() if isinstance(v, (int, float))})
    path = save_final(trainer, tokenizer, spec.output_dir, {"log": log, "counts": counts, "metrics": metrics})
    return TrainResult(path, log, counts, metrics)


def make_trainer(
    spec: TrainSpec, r: dict, model, tokenizer, dataset, config, lora, stop_ids, counter: Counter, capture: LogCapture
) -> "HarnessGRPOTrainer":
    """TRL's GRPO trainer with the harness's reward (the task's verifier), callbacks and counters; it must stop
    generation on exactly the harness's stop ids."""
    callbacks: list[TrainerCallback] = [counter, capture]
    if spec.progress is not None:
        callbacks.append(Progress(spec.progress, "reward", "reward"))
    if spec.eval_fn is not None and r["eval_every"] > 0:
        callbacks.append(EvalCallback(spec.eval_fn, r["eval_every"], tokenizer, capture))
    reward = make_reward(spec.verifier, set(stop_ids), r["reward_requires_eos"], counter)
    try:
        with quiet_datasets():
            trainer = quiet(
                HarnessGRPOTrainer(
                    model=model,
                    reward_funcs=reward,
                    args=config,
                    train_dataset=dataset,
                    processing_class=tokenizer,
                    callbacks=callbacks,
                    counter=counter,
                    max_prompt_length=r["max_prompt_length"],
                    prompt_overflow=r["prompt_overflow"],
                    peft_config=lora,
                )
            )
    except ValueError as e:
        raise config_error("rl", e) from None
    if set(trainer.eos_token_ids) != set(stop_ids):
        raise HarnessError(f"rl: TRL stops on {sorted(trainer.eos_token_ids)}, the harness on {sorted(stop_ids)}")
    return trainer
