"""The embedded pretrained tiny base for K&K tasks: its pretraining corpus, its build, and its model card.

A random-init model has no skill for RL to sharpen, so the embedded default is *pretrained*, like the paper's base
models, on text that gives it latent skill without the task's prompt, trace or search. The tiny recipe writes puzzles
in the grid form (harness.generators.kk: claims in leaf codes padded to a fixed width), and the corpus speaks it:
- `drill`: claims evaluated under given roles, each leaf's value appended, the claim padded to the grid width, then
  its value (`AK BV CK : BvT or CkT _ T`);
- `read`: a quiz, answered by evaluating all its claims under a few random assignments, a line each
  (`AK BV CK | BvT or CkT _ T - | ...`): reading claims out of puzzle text at a fixed distance, which is what the
  grid trace asks of a model this small. No verdict (`-` where a trace row has ok / no: is the value what its
  speaker's role needs?), no order, no stopping at the solution and no answer: those are the trace's search, left
  for SFT;
- `solved`: puzzles answered at once in the boxed answer form, with no reasoning (half in the grid form, half in the
  terse one): the base can answer, and guesses, the way a base model answers without a trace.
No assumption is ever checked against its speaker (no `ok` / `no` verdicts), nothing searches, no row of the trace.
Every puzzle in it comes from the K&K generator's reserved bucket, which no split of any task ever uses
(`harness.generators.kk.reserved`); single claims are not puzzles. The checkpoint is committed under
harness/assets/ with a model card; `harness tiny build` rebuilds it deterministically.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

from harness.generators import kk, seeded_rng

# The special tokens and chat template of every tiny model (the pretrained base and tiny-scratch).
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

ASSETS = Path(__file__).parent / "assets"
NAME = "tiny-kk"
# Everything that defines the build; its hash names the committed folder and is checked against the model card.
BUILD = {
    "version": 6,
    "model": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
    },
    "tokenizer": {"vocab_size": 2048, "docs": 4000},
    "corpus": {
        "seed": 0,
        "docs": 18000,
        "mix": {"drill": 0.5, "read": 0.3, "solved": 0.2},
        "people": [2, 4],
        "drill_lines": 8,
        "read_lines": 3,
    },
    "train": {
        "block": 256,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.03,
        "epochs": 3,
        "weight_decay": 0.01,
        "seed": 0,
        "init_seed": 0,
    },
}
# Words of the tasks' fixed wording: they enter the tokenizer's training text only (a real tokenizer knows common
# English), never the pretraining text, so the model meets them for the first time in SFT.
GLOSSARY = "says ok no contradiction back to The final answer is: knight knave not and or if then iff a"
CHAT = "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"


def build_hash(build: dict = BUILD) -> str:
    return hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest()[:12]


def folder() -> Path:
    return ASSETS / f"{NAME}-{build_hash()}"


def drill(rng: Any, n: int) -> str:
    """A random claim about n people (depth <= 2), evaluated under random roles: the roles, the claim in grid words
    with each leaf's value appended, then its value. The speaker is irrelevant here (nobody says it), so any claim can
    be drawn."""
    names = list(kk.LETTERS[:n])
    assign = [rng.random() < 0.5 for _ in range(n)]
    tree = kk._sample(rng, rng.randrange(n), n, 2, 2)
    value = "T" if kk.evaluate(tree, assign) else "F"
    return f"{kk.grid_roles(names, assign)} : {kk.grid_claim(tree, names, 2, assign)} {value}"


def read_row(rng: Any, p: dict) -> str:
    """Every claim of a grid puzzle under random roles, laid out as a grid trace row is, with `-` where the row has
    its verdict: `AK BV CK | BvT or CkT _ T - | ...`."""
    names, width = p["metadata"]["names"], p["metadata"]["width"]
    assign = [rng.random() < 0.5 for _ in names]
    cells = [kk.grid_roles(names, assign)]
    for tree in p["metadata"]["statements"]:
        cells.append(f"{kk.grid_claim(tree, names, width, assign)} {'T' if kk.evaluate(tree, assign) else 'F'} -")
    return " | ".join(cells)


def corpus_docs(build: dict = BUILD, with_keys: bool = False) -> Iterator[tuple]:
    """(kind, text) documents, a pure function of the build config; with_keys: (kind, text, puzzle key or None)."""
    c = build["corpus"]
    lo, hi = c["people"]
    kinds = sorted(c["mix"])
    cum, acc = [], 0.0
    for k in kinds:
        acc += c["mix"][k]
        cum.append(acc)
    for i in range(c["docs"]):
        rng = seeded_rng("tiny-pretraining", c["seed"], i)
        u = rng.random() * acc
        kind = next(k for k, edge in zip(kinds, cum) if u < edge)
        p = None
        if kind == "drill":
            text = "\n".join(drill(rng, rng.randint(lo, hi)) for _ in range(c["drill_lines"]))
        elif kind == "read":  # the quiz, then its claims evaluated under random assignments, a row each
            p = kk.pretraining_puzzle(seed=c["seed"], index=i, people=(lo, hi), names="letters", style="grid")
            text = CHAT.format(
                user=p["question"], assistant="\n".join(read_row(rng, p) for _ in range(c["read_lines"]))
            )
        else:  # answered at once, as a base model answers without reasoning; half in the terse form
            style = "grid" if rng.random() < 0.5 else "terse"
            p = kk.pretraining_puzzle(seed=c["seed"], index=i, people=(lo, hi), names="letters", style=style)
            text = CHAT.format(user=p["question"], assistant=f"\\boxed{{{p['answer']}}}")
        yield (kind, text, p and p["metadata"]["key"]) if with_keys else (kind, text)


def corpus_puzzle_keys(build: dict = BUILD, limit: int | None = None) -> set[str]:
    """Keys of the puzzles in the corpus (the read and solved documents), to check they are in no split."""
    docs = corpus_docs(build, with_keys=True)
    return {key for _, _, key in (docs if limit is None else (d for _, d in zip(range(limit), docs))) if key}


def _log_loss(log, t0: float) -> Any:
    """A Trainer callback printing plain progress lines (step, loss, elapsed), which a log file shows."""
    from transformers import TrainerCallback

    class LogLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                log(
                    f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.3f} "
                    f"{time.perf_counter() - t0:.0f}s"
                )

    return LogLoss()


def build(out: Path | None = None, log=print, cfg: dict = BUILD) -> Path:
    """Train the tokenizer and pretrain the model (transformers Trainer, causal LM on packed blocks); write the folder
    and its model card. Deterministic on a given machine and thread count."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        PrinterCallback,
        Qwen2Config,
        Qwen2ForCausalLM,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    out = out or folder()
    t0 = time.perf_counter()
    docs = [t for _, t in corpus_docs(cfg)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg["tokenizer"]["vocab_size"],
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(docs[: cfg["tokenizer"]["docs"]] + [GLOSSARY] * 50, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>", bos_token=None, unk_token=None
    )
    tok.chat_template = CHAT_TEMPLATE
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    stream: list[int] = []
    for ids in tok(docs, add_special_tokens=False)["input_ids"]:
        stream.extend(ids + [sep])
    block = cfg["train"]["block"]
    blocks = [stream[i : i + block] for i in range(0, len(stream) - block + 1, block)]
    log(f"corpus: {len(docs)} documents, {len(stream):,} tokens, {len(blocks)} blocks of {block}; vocab {len(tok)}")

    tr = cfg["train"]
    set_seed(tr["init_seed"])
    config = Qwen2Config(
        vocab_size=len(tok),
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        **cfg["model"],
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id

    class Blocks(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(blocks)

        def __getitem__(self, i: int) -> dict:
            ids = torch.tensor(blocks[i])
            return {"input_ids": ids, "labels": ids.clone()}

    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=tr["batch_size"],
            learning_rate=tr["learning_rate"],
            warmup_steps=tr["warmup_ratio"],  # a float < 1: a share of the steps
            num_train_epochs=tr["epochs"],
            weight_decay=tr["weight_decay"],
            lr_scheduler_type="cosine",
            logging_steps=tr.get("logging_steps", 50),
            save_strategy="no",
            report_to="none",
            # fp32: bf16 autocast is ~3x slower on this CPU
            use_cpu=True,
            seed=tr["seed"],
            data_seed=tr["seed"],
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer_ = Trainer(model=model, args=args, train_dataset=Blocks(), callbacks=[_log_loss(log, t0)])
        trainer_.remove_callback(PrinterCallback)  # with tqdm off it prints every log dict; _LogLoss prints a line
        result = trainer_.train()
    losses = [x["loss"] for x in trainer_.state.log_history if "loss" in x]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    weights = out / "model.safetensors"
    card = {
        "name": NAME,
        "build_hash": build_hash(cfg),
        "build": cfg,
        "steps": result.global_step,
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "tokens": len(blocks) * block * tr["epochs"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "wall_seconds": round(time.perf_counter() - t0),
        "torch_threads": torch.get_num_threads(),
        "command": "harness tiny build",
    }
    (out / "harness_tiny.json").write_text(json.dumps(card, indent=1) + "\n")
    log(json.dumps({k: v for k, v in card.items() if k != "build"}))
    return out
