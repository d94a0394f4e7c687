"""Training backends (TRL SFT and GRPO) on the embedded tiny model: they train, count, checkpoint, resume and save,
seq_mean is the paper's per-sequence loss, and the GRPO reward is exactly the verifier."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOTrainer, SFTConfig  # noqa: E402

from backends import TrainSpec, grpo, sft  # noqa: E402
from backends._common import COUNTS_FILE, Counter, device_args, resolve_recipe  # noqa: E402
from harness.data import load_split, render_prompt  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.models import build_tiny  # noqa: E402
from harness.tasks import get_task  # noqa: E402
from harness.verifiers import Verdict, get_verifier  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(tmp_path_factory.mktemp("harness_home")))
        task = get_task("kk")
        yield task, str(build_tiny(task))


@pytest.fixture(scope="session")
def sft_rows(tiny):
    task, _ = tiny
    return [
        {"prompt": render_prompt(task, s), "completion": s["traces"]["short"]}
        for s in load_split(task, "sft", limit=16)
    ]


@pytest.fixture(scope="session")
def rl_rows(tiny):
    task, _ = tiny
    return [
        {"prompt": render_prompt(task, s), "answer": s["answer"], "id": s["id"]}
        for s in load_split(task, "rl", limit=8)
    ]


def changed(init: str, final: Path) -> bool:
    a = AutoModelForCausalLM.from_pretrained(init).state_dict()
    b = AutoModelForCausalLM.from_pretrained(final).state_dict()
    assert a.keys() == b.keys()
    return any(not torch.equal(a[k], b[k]) for k in a)


class Recorder:
    """A verifier proxy that remembers every call and its verdict."""

    def __init__(self, inner):
        self.inner, self.name, self.params = inner, getattr(inner, "name", "proxy"), getattr(inner, "params", {})
        self.calls: list[tuple[str, str, bool, float]] = []

    def __call__(self, response, answer, *, truncated=False):
        v = self.inner(response, answer, truncated=truncated)
        self.calls.append((response, answer, truncated, v.score))
        return v


class LetterA:
    """Toy verifier with a graded score (share of 'a' in the response), so that groups are never all equal."""

    name, params = "letter_a", {}

    def __call__(self, response, answer, *, truncated=False):
        return Verdict(response.count("a") / max(1, len(response)), None, "toy")


# ------------------------------------------------------------------------------------------------ SFT
def test_sft_trains_counts_and_saves(tiny, sft_rows, tmp_path):
    task, init = tiny
    seen = []
    res = sft.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "sft",
            data=sft_rows,
            seed=1,
            recipe={"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "max_length": 1024},
            progress=lambda step, total, text: seen.append((step, total, text)),
        )
    )
    assert res.model_path == tmp_path / "sft" / "final"
    assert changed(init, res.model_path)
    AutoTokenizer.from_pretrained(res.model_path)
    assert not list((tmp_path / "sft").glob("checkpoint-*"))  # removed once final/ is in place

    losses = [e["loss"] for e in res.log if "loss" in e]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert [e["step"] for e in res.log if "loss" in e] == [1, 2, 3, 4]
    assert res.metrics["final_loss"] == losses[-1] and res.metrics["train_seconds"] > 0
    assert [s[:2] for s in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)] and seen[0][2].startswith("loss ")

    # Counts from the data: 16 sequences once each; their tokens are the chat-templated prompt + completion.
    tok = AutoTokenizer.from_pretrained(init)
    n_tokens = sum(
        len(
            tok.apply_chat_template(
                r["prompt"] + [{"role": "assistant", "content": r["completion"]}], tokenize=True, return_dict=False
            )
        )
        for r in sft_rows
    )
    assert res.counts == {"optimizer_steps": 4, "sequences_trained": 16, "tokens_trained": n_tokens}

    # final/ holds the result: a second call returns it without training.
    again = sft.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "sft",
            data=sft_rows,
            recipe={"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "max_length": 1024},
        )
    )
    assert again.counts == res.counts and again.metrics["final_loss"] == res.metrics["final_loss"]


def test_seq_mean_loss_by_hand():
    log_probs = torch.tensor([[-1.0, -1.0, -4.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # the third sequence has no completion token
    assert sft.seq_mean_loss(log_probs, mask).item() == pytest.approx((6 / 3 + 3 / 1) / 2)  # 2.5; token mean 2.25


def test_seq_mean_differs_from_token_mean_on_a_real_batch(tiny, sft_rows, tmp_path):
    """The trainer's seq_mean and token_mean losses on one batch of a short and a long completion, against a hand
    computation from the model's logits."""
    _, init = tiny
    model = AutoModelForCausalLM.from_pretrained(init)
    tok = AutoTokenizer.from_pretrained(init)
    rows = [{**sft_rows[0], "completion": "\\boxed{A is a knight}"}, sft_rows[1]]
    args = SFTConfig(output_dir=str(tmp_path), report_to="none", max_length=1024, **device_args())
    trainer = sft.HarnessSFTTrainer(
        model=model,
        args=args,
        train_dataset=sft.build_dataset(rows),
        processing_class=tok,
        seq_mean=True,
        counter=Counter(tmp_path),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    assert mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1] / 5  # very different completion lengths

    with torch.no_grad():
        seq = trainer.compute_loss(model, dict(batch)).item()
        trainer.seq_mean = False
        token = trainer.compute_loss(model, dict(batch)).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    hand_seq = (-(lp.sum(1)) / mask.sum(1)).mean().item()
    hand_token = (-lp.sum() / mask.sum()).item()
    assert seq == pytest.approx(hand_seq, rel=1e-5)
    assert token == pytest.approx(hand_token, rel=1e-5)
    assert abs(seq - token) > 20 * 1e-5 * token  # the two losses differ by far more than the match tolerance


def test_sft_min_steps_trains_small_data_for_more_epochs(tiny, sft_rows, tmp_path):
    """16 rows in batches of 4 for 1 epoch are 4 steps; a floor of 10 steps runs 10 (over 3 epochs of the data)."""
    _, init = tiny
    recipe = {"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "max_length": 1024, "min_steps": 10}
    res = sft.train(TrainSpec(init_model=init, output_dir=tmp_path / "sft", data=sft_rows, recipe=recipe))
    assert [e["step"] for e in res.log if "loss" in e] == list(range(1, 11))
    assert res.counts["optimizer_steps"] == 10 and res.counts["sequences_trained"] == 40


def test_sft_schedule_binds_min_steps_only_where_epochs_give_fewer():
    from backends.defaults import sft_schedule

    r = {"epochs": 2, "batch_size": 16, "min_steps": 64}
    assert sft_schedule(r, 100) == {"epochs": 2, "batch_size": 16, "max_steps": 64}  # 7 x 2 = 14 steps < 64
    assert sft_schedule(r, 500) == {"epochs": 2, "batch_size": 16}  # 32 x 2 = 64: not below the floor
    assert sft_schedule(r, 1000) == {"epochs": 2, "batch_size": 16}  # the key of a section it does not bind
    assert sft_schedule(r, 500, world=2) == {"epochs": 2, "batch_size": 16, "max_steps": 64}  # 16 x 2 over 2 ranks
    # global batch 64: 8 steps an epoch, 16 in all
    assert sft_schedule({**r, "global_batch": 64}, 500) == {
        "epochs": 2,
        "batch_size": 16,
        "global_batch": 64,
        "max_steps": 64,
    }
    assert sft_schedule({**r, "max_steps": 5}, 100) == {"epochs": 2, "batch_size": 16, "max_steps": 5}  # explicit wins
    assert sft_schedule({"epochs": 2}, 3) == {"epochs": 2}  # no floor: the section as given


def test_sft_resumes_from_checkpoint(tiny, sft_rows, tmp_path):
    _, init = tiny
    out = tmp_path / "sft"
    recipe = {"learning_rate": 1e-3, "batch_size": 4, "max_length": 1024, "save_steps": 2, "max_steps": 4}

    def interrupt(step, total, text):
        if step == 3:  # after checkpoint-2 was written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sft.train(TrainSpec(init_model=init, output_dir=out, data=sft_rows, recipe=recipe, progress=interrupt))
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"]
    assert json.loads((out / "checkpoint-2" / COUNTS_FILE).read_text())["sequences_trained"] == 8
    assert not (out / "final").exists()

    steps = []
    res = sft.train(
        TrainSpec(
            init_model=init,
            output_dir=out,
            data=sft_rows,
            recipe=recipe,
            progress=lambda step, total, text: steps.append(step),
        )
    )
    assert steps == [3, 4]  # continued from step 2, not restarted
    assert (out / "final" / "model.safetensors").is_file()
    assert [e["step"] for e in res.log if "loss" in e] == [1, 2, 3, 4]  # the restored history plus the new steps
    assert res.counts["optimizer_steps"] == 4 and res.counts["sequences_trained"] == 16


def test_sft_rejects_unknown_and_ill_typed_keys(tiny, sft_rows, tmp_path):
    _, init = tiny
    with pytest.raises(HarnessError, match=r"unknown key 'lr'.*learning_rate"):
        sft.train(TrainSpec(init_model=init, output_dir=tmp_path, data=sft_rows, recipe={"lr": 1e-3}))
    with pytest.raises(HarnessError, match="write it with a dot"):
        sft.train(TrainSpec(init_model=init, output_dir=tmp_path, data=sft_rows, recipe={"learning_rate": "1e-5"}))
    with pytest.raises(HarnessError, match="loss must be one of"):
        sft.train(TrainSpec(init_model=init, output_dir=tmp_path, data=sft_rows, recipe={"loss": "mean"}))


# ----------------------------------------------------------------------------------------------- GRPO
GRPO_SMALL = {
    "learning_rate": 1e-3,
    "steps": 2,
    "prompts_per_step": 2,
    "num_generations": 4,
    "max_completion_length": 32,
    "temperature": 1.0,
}


def test_grpo_trains_logs_and_counts(tiny, rl_rows, tmp_path):
    _, init = tiny
    proxy = Recorder(LetterA())
    evals = []

    def eval_fn(model, tokenizer):
        evals.append(model.training)
        return {"accuracy": 0.25}

    res = grpo.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "rl",
            data=rl_rows,
            verifier=proxy,
            recipe={**GRPO_SMALL, "reward_requires_eos": False, "eval_every": 1},
            eval_fn=eval_fn,
        )
    )
    assert changed(init, res.model_path)
    steps = [e for e in res.log if "reward_mean" in e]
    assert [e["step"] for e in steps] == [1, 2]
    for e in steps:
        for key in (
            "loss",
            "reward_mean",
            "reward_std",
            "frac_all_equal_groups",
            "completion_length",
            "truncation_rate",
        ):
            assert math.isfinite(e[key]), key
    assert len(proxy.calls) == 16
    scores = [c[3] for c in proxy.calls]
    assert len(set(scores)) > 1
    assert steps[0]["reward_mean"] == pytest.approx(sum(scores[:8]) / 8, abs=1e-6)

    assert [e["val"] for e in res.log if "val" in e] == [{"accuracy": 0.25}] * 2 and evals == [False, False]
    assert res.metrics["val_accuracy"] == 0.25 and res.metrics["final_reward_mean"] == steps[-1]["reward_mean"]
    c = res.counts
    assert c["optimizer_steps"] == 2 and c["rollouts_generated"] == 16 and c["sequences_trained"] == 16
    assert c["tokens_generated"] == round(sum(e["completion_length"] * 8 for e in steps))
    assert c["tokens_trained"] > c["tokens_generated"]  # prompts + completions
    # mu = 1: each generated batch is trained once (TRL's own count agrees) and needs no old-log-prob forward
    assert c["tokens_trained"] == steps[-1]["num_tokens"] and c["tokens_forward_only"] == 0


def test_grpo_reward_is_the_task_verifier(tiny, rl_rows, tmp_path, monkeypatch):
    """The rewards GRPO computes advantages from are the task verifier's scores on the same completions, with
    truncated = no EOS in the completion's token ids (and 0 for truncated ones under reward_requires_eos)."""
    task, init = tiny
    proxy = Recorder(get_verifier(task.verifier.name, task.verifier.params))
    received = []
    original = GRPOTrainer._calculate_rewards

    def spy(self, inputs, prompts, completions, completion_ids_list):
        rewards = original(self, inputs, prompts, completions, completion_ids_list)
        received.append(
            (
                completions,
                completion_ids_list,
                [x["answer"] for x in inputs],
                rewards[:, 0].tolist(),
                set(self.eos_token_ids),
            )
        )
        return rewards

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", spy)
    grpo.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "rl",
            data=rl_rows,
            verifier=proxy,
            recipe={**GRPO_SMALL, "learning_rate": 1e-5, "max_completion_length": 24},
        )
    )
    assert len(received) == 2 and len(proxy.calls) == 16
    calls = iter(proxy.calls)
    for completions, ids, answers, rewards, eos in received:
        for completion, cids, answer, reward in zip(completions, ids, answers, rewards, strict=True):
            response, called_answer, truncated, score = next(calls)
            assert response == completion[0]["content"] and called_answer == answer
            assert truncated == (cids[-1] not in eos)
            assert reward == (0.0 if truncated else score)


def test_grpo_num_iterations_reuses_each_generated_batch(tiny, rl_rows, tmp_path):
    _, init = tiny
    proxy = Recorder(LetterA())
    res = grpo.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "rl",
            data=rl_rows,
            verifier=proxy,
            recipe={**GRPO_SMALL, "reward_requires_eos": False, "num_iterations": 3},
        )
    )
    c = res.counts
    assert len(proxy.calls) == 16 and c["rollouts_generated"] == 16  # 2 RL steps generate, as with one update
    assert c["optimizer_steps"] == 6 and c["sequences_trained"] == 48  # 3 updates on each generated batch
    assert changed(init, res.model_path)
    # Tokens are counted per optimizer pass (TRL's num_tokens counts each generated batch once), and TRL's extra
    # no-grad forward for the old log-probs (mu > 1) once per generated batch.
    generated = [e for e in res.log if "num_tokens" in e][-1]["num_tokens"]
    assert c["tokens_trained"] == 3 * generated and c["tokens_forward_only"] == generated


def test_grpo_recipe_checks(tiny, rl_rows, tmp_path):
    _, init = tiny
    v = LetterA()
    with pytest.raises(HarnessError, match=r"unknown key 'group_size'.*num_generations"):
        grpo.train(TrainSpec(init_model=init, output_dir=tmp_path, data=rl_rows, verifier=v, recipe={"group_size": 4}))
    with pytest.raises(HarnessError, match="fewer than prompts_per_step"):
        grpo.train(TrainSpec(init_model=init, output_dir=tmp_path, data=rl_rows, verifier=v, recipe={}))
    with pytest.raises(HarnessError, match="micro_batch_size"):
        grpo.train(
            TrainSpec(
                init_model=init,
                output_dir=tmp_path,
                data=rl_rows,
                verifier=v,
                recipe={**GRPO_SMALL, "micro_batch_size": 3},
            )
        )
    with pytest.raises(HarnessError, match="num_iterations"):
        grpo.train(
            TrainSpec(
                init_model=init,
                output_dir=tmp_path,
                data=rl_rows,
                verifier=v,
                recipe={**GRPO_SMALL, "num_iterations": 0},
            )
        )
    # Keys the orchestrator keeps in the rl section (init, budget, val_limit) are accepted and ignored.
    r = resolve_recipe(
        "rl", {"init": "sft@1k", "budget": "10k", "val_limit": 100, "steps": 3}, grpo.DEFAULTS, grpo.TYPES
    )
    assert r["steps"] == 3 and "init" not in r


def test_resume_skips_a_checkpoint_cut_off_mid_write(tmp_path):
    from backends._common import resume_checkpoint

    assert resume_checkpoint(tmp_path) is None
    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_step": 4}'), (6, '{"global_st'), (8, None)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    # 8 has no trainer_state.json (killed before it was written), 6 a truncated one: resume from 4
    assert resume_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")


# ------------------------------------------------------------------ stop tokens, neutral generation (issue 12: 5, 6)
def test_grpo_stops_on_every_end_token_with_the_shipped_settings_neutralized(tiny, rl_rows, tmp_path, monkeypatch):
    """A model whose tokenizer EOS (<|endoftext|>) is not the chat template's end token (<|im_end|>) and whose
    generation_config ships a repetition_penalty and no_repeat_ngram_size: GRPO stops on both ids (and the reward's
    truncation check accepts both), and generation runs with neutral settings."""
    from transformers.generation.utils import GenerationMixin

    from tiny_variants import tiny_variant

    _, init = tiny
    folder = tiny_variant(init, tmp_path / "m", eos="<|endoftext|>", repetition_penalty=1.3, no_repeat_ngram_size=2)
    tok = AutoTokenizer.from_pretrained(folder)
    eot, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    seen, used = [], []
    original_rewards, original_prepare = GRPOTrainer._calculate_rewards, GenerationMixin._prepare_generation_config

    def spy_rewards(self, inputs, prompts, completions, completion_ids_list):
        seen.append(set(self.eos_token_ids))
        return original_rewards(self, inputs, prompts, completions, completion_ids_list)

    def spy_prepare(self, generation_config, **kw):
        config, rest = original_prepare(self, generation_config, **kw)
        used.append(config)
        return config, rest

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", spy_rewards)
    monkeypatch.setattr(GenerationMixin, "_prepare_generation_config", spy_prepare)
    res = grpo.train(
        TrainSpec(
            init_model=str(folder),
            output_dir=tmp_path / "rl",
            data=rl_rows,
            verifier=LetterA(),
            recipe={**GRPO_SMALL, "steps": 1, "max_completion_length": 8},
        )
    )
    assert seen == [{eot, im_end}] and res.metrics["stop_token_ids"] == [eot, im_end]
    assert used and all(c.repetition_penalty == 1.0 and c.no_repeat_ngram_size == 0 and c.top_k == 0 for c in used)
    assert all(set(c.eos_token_id) == {eot, im_end} for c in used)
    counter = Counter(tmp_path)
    reward = grpo.make_reward(LetterA(), {eot, im_end}, True, counter)
    assert reward([[{"content": "aa"}], [{"content": "aa"}]], [[5, im_end], [5, 6]], ["x", "x"]) == [1.0, 0.0]


# ------------------------------------------------------------------ the paper's recipe, global batch (issue 12: 7)
def _paper_rl_config(world, monkeypatch, tmp_path, **over):
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from harness import recipes

    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: world))  # what accelerate would say
    monkeypatch.setattr(grpo, "world_size", lambda: world)
    _, recipe = recipes.resolve("kk", "paper")
    r = resolve_recipe("rl", {**recipe["rl"], **over}, grpo.DEFAULTS, grpo.TYPES)
    spec = SimpleNamespace(output_dir=tmp_path / f"w{world}", seed=0)
    return grpo.build_config(spec, r, "transformers", steps=125, world=grpo.world_size())


@pytest.mark.parametrize("world", [1, 2])
def test_kk_paper_grpo_config_is_128_prompts_x_8_rollouts_per_step_on_any_number_of_processes(
    world, monkeypatch, tmp_path
):
    config, plan = _paper_rl_config(world, monkeypatch, tmp_path)
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps * config.world_size
    assert config.world_size == world and per_step == 128 * 8  # sequences per optimizer step, all processes
    assert config.generation_batch_size == 128 * 8 and config.num_generations == 8  # 128 prompts per generation
    # one generation per optimizer step, and each process's slices are each used once per optimizer step
    assert config.steps_per_generation == config.gradient_accumulation_steps
    assert plan == {
        "world_size": world,
        "prompts_per_step": 128,
        "num_generations": 8,
        "global_batch": 1024,
        "per_process_batch": 1024 // world,
        "micro_batch_size": 8,
        "grad_accum": 1024 // world // 8,
    }
    assert config.max_steps == 125 and config.num_iterations == 1
    # the paper's optimizer and loss (released verl code)
    assert (config.adam_beta1, config.adam_beta2, config.weight_decay) == (0.5, 0.999, 0.01)
    assert config.loss_type == "bnpo" and config.learning_rate == 5e-6 and config.warmup_steps == 8
    assert (config.temperature, config.top_p, config.top_k, config.repetition_penalty) == (0.7, 1.0, 0, 1.0)
    assert config.max_completion_length == 4096 and config.epsilon == 0.2 and config.beta == 0.0
    # with mu > 1 the slices are still used once per optimizer step (mu optimizer steps per generation)
    config, _ = _paper_rl_config(world, monkeypatch, tmp_path, num_iterations=2)
    assert config.steps_per_generation == config.gradient_accumulation_steps and config.max_steps == 250


def test_global_batch_not_divisible_by_the_processes_is_an_error(monkeypatch, tmp_path):
    with pytest.raises(HarnessError, match=r"128 × 8 = 1024\) must be divisible by the number of processes \(3\)"):
        _paper_rl_config(3, monkeypatch, tmp_path)
    with pytest.raises(HarnessError, match="micro_batch_size \\(24\\) must divide"):
        _paper_rl_config(2, monkeypatch, tmp_path, micro_batch_size=24)


def test_kk_paper_prompt_and_sft_global_batch():
    from harness import recipes
    from harness.data import load_split, render_prompt
    from harness.tasks import get_task

    _, recipe = recipes.resolve("kk", "paper")
    spec = recipes.apply_task_overrides(get_task("kk"), recipe["task"])
    system, user = render_prompt(spec, load_split(spec, "test", limit=1)[0])
    assert system == {
        "role": "system",
        "content": "Please reason step by step, and put your final answer within \\boxed{}.",
    }
    assert user["content"].endswith(
        " Your final answer should be in this format: \\boxed{XX is a knave, YY is a knight, ...}"
    )
    r = resolve_recipe("sft", recipe["sft"], sft.DEFAULTS, sft.TYPES)
    assert [sft.grad_accum_for(r, False, w) for w in (1, 2)] == [16, 8]  # 64 sequences per step on 1 or 2 GPUs
    with pytest.raises(HarnessError, match="global_batch \\(64\\) must be a multiple"):
        sft.grad_accum_for(r, False, 3)
    with pytest.raises(HarnessError, match="not both"):
        sft.grad_accum_for(r, True, 1)


def test_prompt_cap_errors_before_training_or_truncates_left(tiny, rl_rows, monkeypatch):
    task, init = tiny
    tok = AutoTokenizer.from_pretrained(init)
    ds = grpo.build_dataset(rl_rows)
    info = grpo.check_prompt_lengths(ds, tok, 4096, "error")
    assert info["prompts_over_cap"] == 0 and info["max_prompt_tokens"] > 10
    with pytest.raises(HarnessError, match=r"8 of 8 prompts are longer than max_prompt_length \(10\)"):
        grpo.check_prompt_lengths(ds, tok, 10, "error")
    assert grpo.check_prompt_lengths(ds, tok, 10, "truncate_left")["prompts_over_cap"] == 8
    # the trainer keeps the last max_prompt_length tokens of a longer prompt (TRL 1.16 has no such option)
    monkeypatch.setattr(GRPOTrainer, "_tokenize_prompts", lambda self, prompts: ([list(range(20)), [1, 2]], None, {}))
    t = grpo.HarnessGRPOTrainer.__new__(grpo.HarnessGRPOTrainer)
    t.max_prompt_length, t.prompt_overflow = 5, "truncate_left"
    assert t._tokenize_prompts(["x", "y"])[0] == [[15, 16, 17, 18, 19], [1, 2]]
    t.prompt_overflow = "error"
    with pytest.raises(HarnessError, match="20 tokens is longer than max_prompt_length"):
        t._tokenize_prompts(["x", "y"])


def test_sft_reports_to_tensorboard(tiny, sft_rows, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    task, init = tiny
    res = sft.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "sft",
            data=sft_rows[:8],
            seed=1,
            recipe={"learning_rate": 1e-3, "epochs": 1, "batch_size": 4, "report_to": "tensorboard"},
        )
    )
    assert res.metrics["report_to"] == ["tensorboard"]
    logdir = Path(res.metrics["logs"]["tensorboard"])
    (events,) = {p.parent for p in logdir.rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(events))
    acc.Reload()
    curve = [e.value for e in acc.Scalars("train/loss")]
    assert len(curve) == 2 and curve == pytest.approx([e["loss"] for e in res.log if "loss" in e], rel=1e-5)


def test_report_to_must_name_trackers(tiny, sft_rows, tmp_path):
    from harness import recipes

    task, init = tiny
    with pytest.raises(HarnessError, match="report_to.*tensorboard, wandb, trackio, mlflow"):
        sft.train(TrainSpec(init_model=init, output_dir=tmp_path, data=sft_rows, recipe={"report_to": "tensorbored"}))
    with pytest.raises(HarnessError, match="rl recipe: 'report_to'"):
        recipes.check_values("rl", {"report_to": "none,wandb"})
    assert recipes.trackers("tensorboard, wandb") == ["tensorboard", "wandb"] and recipes.trackers("none") == []


def test_sft_with_lora_trains_the_adapter_only_and_saves_merged_weights(tiny, sft_rows, tmp_path):
    from peft import PeftModel

    task, init = tiny
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    res = sft.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "sft",
            data=sft_rows[:8],
            seed=1,
            recipe={"learning_rate": 1e-2, "epochs": 1, "batch_size": 4, "lora": lora},
        )
    )
    info = res.metrics["lora"]
    assert info["r"] == 4 and 0 < info["trainable_parameters"] < info["total_parameters"] / 10
    adapter = res.model_path / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(init)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, str(adapter))
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # the adapter trained (lora_B starts at zero)
    frozen = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in peft_model.state_dict().items()
        if "lora_" not in k
    }
    assert all(torch.equal(frozen[k], before[k]) for k in before)  # the base's weights did not move
    merged = AutoModelForCausalLM.from_pretrained(res.model_path).state_dict()
    changed_keys = {k for k in before if not torch.equal(merged[k], before[k])}
    assert changed_keys and all("q_proj" in k or "v_proj" in k for k in changed_keys)


def test_grpo_with_lora_records_the_adapter(tiny, rl_rows, tmp_path):
    task, init = tiny
    proxy = LetterA()
    res = grpo.train(
        TrainSpec(
            init_model=init,
            output_dir=tmp_path / "rl",
            data=rl_rows,
            verifier=proxy,
            seed=0,
            recipe={**GRPO_SMALL, "reward_requires_eos": False, "lora": {"r": 2}},
        )
    )
    assert res.metrics["lora"]["r"] == 2 and (res.model_path / "adapter" / "adapter_config.json").is_file()
    assert changed(init, res.model_path)
    with pytest.raises(HarnessError, match="unknown lora key 'rank'"):
        grpo.train(
            TrainSpec(
                init_model=init, output_dir=tmp_path / "bad", data=rl_rows, verifier=proxy, recipe={"lora": {"rank": 2}}
            )
        )
