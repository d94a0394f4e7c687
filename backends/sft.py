"""SFT backend: TRL's SFTTrainer on prompt/completion pairs, loss on the completion tokens only.

Recipe keys (all optional):

    learning_rate 1e-5    epochs 2            batch_size 8 (per device)   grad_accum 1
    global_batch None     (sequences per optimizer step over all processes: grad_accum = global_batch / (batch_size
                          × processes), an error if that is not a whole number; set it or grad_accum, not both)
    lr_scheduler cosine   warmup_ratio 0.0    weight_decay 0.0            max_length 2048
    loss seq_mean         logging_steps 1     save_steps (20% of steps)   max_steps -1 (= from epochs)
    min_steps 0           (a floor on optimizer steps: fewer demonstrations train more epochs; defaults.sft_schedule)
    group_by_length false (batches of similar lengths; less padding)

loss: "seq_mean" is the paper's normalisation (released code): each sequence's token losses are averaged over its
completion tokens, then the sequences of the batch are averaged, so a long trace weighs as much as a short one.
"token_mean" is TRL's default: all completion tokens of the (accumulated) batch are averaged together.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from backends import TrainResult, TrainSpec
from backends._common import (
    FINAL,
    Counter,
    LogCapture,
    Progress,
    common_args,
    config_error,
    finished,
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
from backends.defaults import SFT as DEFAULTS, SFT_TYPES as TYPES, grad_accum_for, sft_schedule
from harness.errors import HarnessError

LOSSES = ("seq_mean", "token_mean")


def seq_mean_loss(log_probs: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    """Mean over sequences of each sequence's mean token NLL. log_probs and label_mask are (batch, positions);
    sequences without a trained token (all cut by max_length) are left out of the mean."""
    mask = label_mask.to(log_probs.dtype)
    n_tokens = mask.sum(-1)
    per_seq = -(log_probs * mask).sum(-1) / n_tokens.clamp(min=1)
    return per_seq.sum() / (n_tokens > 0).sum().clamp(min=1)


class HarnessSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer, plus real counts of what went through training forwards and, with seq_mean=True, the
    paper's per-sequence loss. The loop, collation, masking and metrics stay TRL's."""

    def __init__(self, *args: Any, seq_mean: bool, counter: Counter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seq_mean, self.counter = seq_mean, counter
        if seq_mean:
            # A mean per micro-batch: the Trainer divides it by the accumulation steps (TRL's token loss is instead
            # normalised by the token count of the whole accumulated batch).
            self.loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training:
            self.counter.add(
                sequences_trained=inputs["input_ids"].size(0), tokens_trained=int(inputs["attention_mask"].sum())
            )
        if not self.seq_mean or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)  # TRL's fused head: per-token log-probs, zero where label -100
        loss = seq_mean_loss(outputs.log_probs, outputs.label_mask)
        # The same metrics TRL's compute_loss logs.
        mode = "train" if self.model.training else "eval"
        n = self.accelerator.gather_for_metrics(outputs.label_mask.sum()).sum()
        ent = self.accelerator.gather_for_metrics(outputs.entropy.detach().sum()).sum()
        top1 = self.accelerator.gather_for_metrics(outputs.is_top1.sum()).sum()
        self._metrics[mode]["entropy"].append((ent / n).item() if n > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((top1 / n).item() if n > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss


def world_size() -> int:
    from harness import dist

    return dist.world_size()


def build_dataset(rows: list[dict]) -> Dataset:
    """Chat prompts -> conversational prompt/completion; raw-text prompts -> plain strings (TRL adds the EOS)."""
    if not rows:
        raise HarnessError("sft: no training data")
    chat = not isinstance(rows[0].get("prompt"), str)
    out = []
    for i, r in enumerate(rows):
        if "prompt" not in r or "completion" not in r:
            raise HarnessError(f"sft: data row {i} needs 'prompt' and 'completion' (has: {', '.join(r)})")
        if not isinstance(r["completion"], str):
            raise HarnessError(f"sft: data row {i}: 'completion' must be a string")
        if isinstance(r["prompt"], str) == chat:
            raise HarnessError(f"sft: data row {i} mixes chat and raw-text prompts; use one kind per dataset")
        if chat:
            out.append(
                {
                    "prompt": [dict(m) for m in r["prompt"]],
                    "completion": [{"role": "assistant", "content": r["completion"]}],
                }
            )
        else:
            out.append({"prompt": r["prompt"], "completion": r["completion"]})
    return Dataset.from_list(out)


def train(spec: TrainSpec) -> TrainResult:
    r = resolve_recipe("sft", sft_schedule(spec.recipe or {}, len(spec.data), world_size()), DEFAULTS, TYPES)
    lora = lora_config("sft", r["lora"])  # checked before any data or model is loaded
    if r["loss"] not in LOSSES:
        raise HarnessError(f"sft recipe: loss must be one of {', '.join(LOSSES)}, got {r['loss']!r}")
    if not 0.0 <= r["warmup_ratio"] < 1.0:
        raise HarnessError(f"sft recipe: warmup_ratio must be in [0, 1), got {r['warmup_ratio']}")
    grad_accum = grad_accum_for(r, (spec.recipe or {}).get("grad_accum") is not None, world_size())
    done = finished(spec.output_dir)
    if done is not None:  # final/ exists: the stage completed earlier
        return TrainResult(spec.output_dir / FINAL, done["log"], done["counts"], done["metrics"])

    dataset = build_dataset(spec.data)
    model, tokenizer = load_model(spec.init_model)
    try:
        config = SFTConfig(
            **common_args(spec, r),
            learning_rate=r["learning_rate"],
            num_train_epochs=r["epochs"],
            max_steps=r["max_steps"],
            per_device_train_batch_size=r["batch_size"],
            gradient_accumulation_steps=grad_accum,
            lr_scheduler_type=r["lr_scheduler"],
            warmup_steps=r["warmup_ratio"],  # transformers 5: a float below 1 is a share of the total steps
            weight_decay=r["weight_decay"],
            max_length=r["max_length"],
            completion_only_loss=True,
            packing=False,
            # batches of similar lengths: on a CPU padding is paid in full (K&K traces run from 50 to 700 tokens)
            train_sampling_strategy="group_by_length" if r["group_by_length"] else "random",
        )
    except ValueError as e:
        raise config_error("sft", e) from None

    counter = Counter(spec.output_dir, sequences_trained=0, tokens_trained=0)
    capture = LogCapture()
    callbacks = [counter, capture]
    if spec.progress is not None:
        callbacks.append(Progress(spec.progress, "loss", "loss"))
    with quiet_datasets():
        trainer = quiet(
            HarnessSFTTrainer(
                model=model,
                args=config,
                train_dataset=dataset,
                processing_class=tokenizer,
                callbacks=callbacks,
                seq_mean=r["loss"] == "seq_mean",
                counter=counter,
                peft_config=lora,
            )
        )

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(spec.output_dir))
    seconds = time.perf_counter() - t0

    counts = {"optimizer_steps": trainer.state.global_step, **counter.totals(trainer.accelerator)}
    metrics = {
        "final_loss": last(capture.log, "loss"),
        "train_loss": last(capture.log, "train_loss"),
        "train_seconds": round(seconds, 3),
        **tracker_logs(r, spec.output_dir),
        **lora_info(trainer.model, r["lora"]),
    }
    path = save_final(trainer, tokenizer, spec.output_dir, {"log": capture.log, "counts": counts, "metrics": metrics})
    return TrainResult(path, capture.log, counts, metrics)
