"""Pieces shared by the SFT and GRPO backends: recipe checking, device arguments, callbacks, resume and the final save.

Nothing here trains: both backends hand the loop to TRL's trainers and plug in only through the Trainer's hooks.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

from transformers import PrinterCallback, TrainerCallback

from backends.defaults import ORCHESTRATOR_KEYS  # a backend accepts and ignores these keys
from harness import recipes
from harness.errors import HarnessError

FINAL = "final"
COUNTS_FILE = "harness_counts.json"  # written into every checkpoint: the counts a resumed run continues from
RESULT_FILE = "harness_train.json"  # written into final/: log, counts and metrics of the finished stage

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def resolve_recipe(
    stage: str, recipe: Optional[dict], defaults: dict[str, Any], types: Optional[dict[str, tuple]] = None
) -> dict[str, Any]:
    """The recipe merged over the defaults. Unknown keys and ill-typed values are a HarnessError naming the key.

    A key's type is its default's type (an int is fine where a float is expected), or `types[key]` when the default
    is None or the key takes several types.
    """
    recipe = dict(recipe or {})
    valid = sorted(defaults)
    for key in recipe:
        if key not in defaults and key not in ORCHESTRATOR_KEYS:
            raise HarnessError(f"{stage} recipe: unknown key {key!r}; valid keys: {', '.join(valid)}")
    out = dict(defaults)
    for key in valid:
        if key not in recipe:
            continue
        value = recipe[key]
        allowed = (types or {}).get(key) or (type(defaults[key]),)
        ok = any(_is(value, t) for t in allowed)
        if not ok:
            want = " or ".join(_TYPE_WORDS.get(t, "null") for t in allowed)
            hint = ""
            if float in allowed and isinstance(value, str):
                try:
                    float(value)
                    hint = f" (YAML reads {value} as a string; write it with a dot, e.g. 1.0e-5)"
                except ValueError:
                    pass
            raise HarnessError(f"{stage} recipe: {key!r} must be {want}, got {type(value).__name__} {value!r}{hint}")
        out[key] = float(value) if allowed == (float,) else value
    recipes.check_values(stage, out)  # numbers in range (also checked when `harness run` resolves the recipe)
    return out


def _is(value: Any, t: type) -> bool:
    if t is type(None):
        return value is None
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is bool:
        return isinstance(value, bool)
    return isinstance(value, t) and not isinstance(value, bool)


PRECISIONS = ("auto", "bf16", "fp32")


def device_args(precision: str = "auto") -> dict[str, Any]:
    """CPU when there is no CUDA; bf16 mixed precision on CUDA cards that support it ("auto"), or when asked for
    ("bf16": on a CPU with bf16 instructions it is ~1.4x faster for the tiny model), else fp32."""
    import torch

    if precision not in PRECISIONS:
        raise HarnessError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    cuda = torch.cuda.is_available()
    bf16 = precision == "bf16" or (precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    # Activation (gradient) checkpointing saves memory at ~20% more compute: worth it on a GPU, not on a CPU.
    return {"use_cpu": not cuda, "bf16": bf16, "fp16": False, "activation_checkpointing": cuda}


def tracker_logs(r: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Where the stage's training curves went, for the run record (report_to was checked by resolve_recipe)."""
    names = recipes.trackers(r["report_to"])
    if not names:
        return {}
    where = {
        "tensorboard": os.environ.get("TENSORBOARD_LOGGING_DIR") or str(Path(output_dir) / "runs"),
        "wandb": "the W&B project (WANDB_PROJECT; offline runs under WANDB_DIR or ./wandb)",
        "trackio": "the trackio project (TRACKIO_PROJECT)",
        "mlflow": "the MLflow tracking URI (MLFLOW_TRACKING_URI)",
    }
    return {"report_to": names, "logs": {n: where[n] for n in names}}


def common_args(spec: Any, r: dict[str, Any]) -> dict[str, Any]:
    """TrainingArguments both backends set the same way."""
    return {
        **device_args(r["precision"]),
        "output_dir": str(spec.output_dir),
        "seed": spec.seed,
        "report_to": recipes.trackers(r.get("report_to", "none")) or "none",
        "disable_tqdm": True,
        "logging_strategy": "steps",
        "logging_steps": r["logging_steps"],
        "save_strategy": "steps",
        # A float below 1 is a share of the total steps: the default checkpoints every 20% of the run.
        "save_steps": r["save_steps"] if r["save_steps"] is not None else 0.2,
        "save_total_limit": 1,
    }


@contextmanager
def quiet_datasets():
    """No `datasets` progress bars while a trainer prepares its data (restored afterwards)."""
    import datasets

    was_enabled = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def quiet(trainer: Any) -> Any:
    """With tqdm off the Trainer prints every log dict; progress goes to spec.progress instead."""
    trainer.remove_callback(PrinterCallback)
    return trainer


def config_error(stage: str, e: Exception) -> HarnessError:
    return HarnessError(f"{stage} recipe: {e}")


def load_model(ref: str) -> tuple[Any, Any]:
    """Model and tokenizer for training: fp32 master weights (bf16 autocast on CUDA comes from the Trainer)."""
    from harness.models import load

    return load(ref, dtype="float32", for_training=True)


class Counter(TrainerCallback):
    """Counts the Trainer's state does not keep. Saved into every checkpoint and read back on resume, so a resumed
    stage reports the counts of the whole stage, not only of its last run."""

    def __init__(self, output_dir: Path, **start: int) -> None:
        self.output_dir = Path(output_dir)
        self.counts: dict[str, int] = dict(start)

    def add(self, **kv: int) -> None:
        for k, v in kv.items():
            self.counts[k] = self.counts.get(k, 0) + int(v)

    def totals(self, accelerator: Any) -> dict[str, int]:
        """Counts summed over all processes (each process counts only its own shard under DDP)."""
        if accelerator.num_processes == 1:
            return dict(self.counts)
        import torch

        keys = sorted(self.counts)
        t = torch.tensor([self.counts[k] for k in keys], dtype=torch.long, device=accelerator.device)
        return dict(zip(keys, accelerator.reduce(t, reduction="sum").tolist()))

    def on_train_begin(self, args, state, control, **kw):
        saved = self.output_dir / f"checkpoint-{state.global_step}" / COUNTS_FILE
        if state.global_step > 0 and saved.is_file():
            self.counts.update(json.loads(saved.read_text()))

    def on_save(self, args, state, control, **kw):
        folder = self.output_dir / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            from harness.records import write_atomic

            write_atomic(folder / COUNTS_FILE, json.dumps(self.counts))  # whole or absent, never truncated


class Progress(TrainerCallback):
    """Reports (step, total_steps, "<key> <value>") to spec.progress each time the Trainer logs `key`."""

    def __init__(self, report: Callable[[int, int, str], None], key: str, label: str) -> None:
        self.report, self.key, self.label = report, key, label

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and self.key in logs and logs[self.key] is not None:
            self.report(state.global_step, state.max_steps, f"{self.label} {logs[self.key]:.4g}")


class LogCapture(TrainerCallback):
    """Every `logs` dict the Trainer emits, with its step. On resume it starts from the log history restored from the
    checkpoint, so the log covers the whole stage."""

    def __init__(self) -> None:
        self.log: list[dict] = []

    def on_train_begin(self, args, state, control, **kw):
        self.log = [dict(e) for e in state.log_history]  # empty unless resumed

    def on_log(self, args, state, control, logs=None, **kw):
        if logs:
            self.log.append({**logs, "step": state.global_step})


def resume_checkpoint(output_dir: Path) -> Optional[str]:
    """The newest complete checkpoint-* folder in output_dir, or None. Trainer writes trainer_state.json last, so a
    checkpoint whose trainer_state.json is missing or unreadable was cut off mid-write (kill -9) and is skipped:
    resuming falls back to the one before it rather than failing on the half-written one."""
    from harness.records import newest_complete_checkpoint  # the same notion `harness runs list` shows

    ckpt = newest_complete_checkpoint(output_dir)
    return None if ckpt is None else str(ckpt)


def finished(output_dir: Path) -> Optional[dict]:
    """The saved result of a completed stage (final/ exists), else None."""
    f = Path(output_dir) / FINAL / RESULT_FILE
    return json.loads(f.read_text()) if f.is_file() else None


ADAPTER = "adapter"
LORA_KEYS = {"r": int, "alpha": (int, float), "dropout": (int, float), "target_modules": (list, str)}


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def lora_config(stage: str, lora: Optional[dict]) -> Any:
    """`<stage>.lora: {r, alpha, dropout, target_modules}` as a peft LoraConfig (None: full fine-tuning). The stage
    trains the adapter only; its final/ holds the merged weights (what eval and the next stage load) and
    final/adapter/ the adapter alone."""
    if lora is None:
        return None
    if not isinstance(lora, dict):
        raise HarnessError(f"{stage} recipe: 'lora' must be a mapping, e.g. --set {stage}.lora.r=16")
    for k, v in lora.items():
        if k not in LORA_KEYS:
            raise HarnessError(f"{stage} recipe: unknown lora key {k!r}; valid keys: {', '.join(LORA_KEYS)}")
        if isinstance(v, bool) or not isinstance(v, LORA_KEYS[k]):
            raise HarnessError(f"{stage} recipe: lora.{k} has the wrong type ({v!r})")
    r = lora.get("r", 16)
    if r < 1 or not 0 <= lora.get("dropout", 0.0) < 1:
        raise HarnessError(f"{stage} recipe: lora.r must be at least 1 and lora.dropout in [0, 1), got {lora}")
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=lora.get("alpha", 2 * r),
        lora_dropout=lora.get("dropout", 0.0),
        target_modules=lora.get("target_modules", "all-linear"),
        task_type="CAUSAL_LM",
    )


def lora_info(model: Any, lora: Optional[dict]) -> dict:
    """For the record: the adapter's settings and how many parameters trained."""
    if lora is None or not is_peft(model):
        return {}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"lora": {**lora, "trainable_parameters": trainable, "total_parameters": total, "adapter": ADAPTER}}


def save_final(trainer: Any, tokenizer: Any, output_dir: Path, result: dict) -> Path:
    """Model + tokenizer (+ the stage's result) to output_dir/final, written to a temporary folder and renamed into
    place, so that final/ existing means the stage completed. The checkpoints are then removed.
    Under several processes every rank takes part in save_model (DeepSpeed gathers shards) and rank 0 writes."""
    output_dir = Path(output_dir)
    final = output_dir / FINAL
    tmp = output_dir / f".{FINAL}-tmp"
    main = trainer.is_world_process_zero()
    if main and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    try:
        if is_peft(trainer.model):  # LoRA: the adapter alone in adapter/, and the merged weights as the model folder
            trainer.save_model(str(tmp / ADAPTER))
            if main:
                merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
                merged.save_pretrained(str(tmp))
        else:
            trainer.save_model(str(tmp))
        if main:
            tokenizer.save_pretrained(str(tmp))
            (tmp / RESULT_FILE).write_text(json.dumps(result, default=jsonable))
            if final.exists():  # an earlier run's final, left by a caller that asked to train again
                shutil.rmtree(final)
            os.replace(tmp, final)
            for ckpt in output_dir.glob("checkpoint-*"):
                shutil.rmtree(ckpt, ignore_errors=True)
    finally:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
    return final


def jsonable(x: Any) -> Any:
    """For json.dumps: numpy/torch scalars as floats, anything else as its string."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def last(log: list[dict], key: str) -> Optional[float]:
    for entry in reversed(log):
        if entry.get(key) is not None:
            return entry[key]
    return None
