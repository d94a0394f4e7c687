"""Training backends, each built on TRL and implementing one small contract:

    train(spec: TrainSpec) -> TrainResult

A backend reads its data and its section of the resolved recipe from the spec, trains from `spec.init_model`,
saves the final model (weights + tokenizer) to `spec.output_dir / "final"`, checkpoints under `spec.output_dir`
so that a killed stage resumes, and returns what it counted. Backends depend on harness, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional


@dataclass
class TrainSpec:
    init_model: str  # a model folder or hub id (already resolved; `tiny` is built)
    output_dir: Path  # checkpoints go here; the final model to output_dir / "final"
    # sft: {"prompt": messages | str, "completion": str}; rl: {"prompt", "answer", "id"}
    data: list[dict]
    recipe: dict  # this stage's section of the resolved recipe
    seed: int = 0
    verifier: Any = None  # rl: the task's verifier object (the reward)
    eval_fn: Optional[Callable[[Any, Any], dict]] = None  # rl: (model, tokenizer) -> metrics on the val split
    progress: Optional[Callable[[int, int, str], None]] = None  # (step, total_steps, live metric text)


@dataclass
class TrainResult:
    model_path: Path
    log: list[dict] = field(default_factory=list)  # one dict per logged step (loss / reward / ...)
    counts: dict = field(default_factory=dict)  # sequences_trained, tokens_trained, optimizer_steps,
    # rollouts_generated, tokens_generated
    metrics: dict = field(default_factory=dict)  # final numbers worth a record (last loss, val accuracy, ...)
