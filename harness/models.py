"""Model references: `tiny` (the embedded default, built locally), a local folder, or a hub id.

All three are loaded by the same code path (`load`); `tiny` is only a small model, not a fake one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.hub import hub_offline_unless_reachable
from harness.records import config_hash, write_atomic
from harness.tiny import CHAT_TEMPLATE, SPECIAL

if TYPE_CHECKING:
    from harness.taskspec import TaskSpec

HOME_ENV = "HARNESS_HOME"
# A standard Qwen2 decoder, small enough to train on 2 CPU cores in minutes. Bump TINY_VERSION when the
# build recipe changes so cached models are rebuilt.
TINY_VERSION = 3
TINY_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "vocab_size_target": 2048,
    "corpus_per_split": 200,
    "init_seed": 0,
}


def home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "harness")


TINY_NAMES = ("tiny", "tiny-scratch")


def is_tiny(ref: str) -> bool:
    """The embedded models: `tiny` (pretrained for K&K tasks, else as tiny-scratch) and `tiny-scratch` (random init,
    its tokenizer trained on the task's text). Both run the tiny CPU recipes."""
    return ref in TINY_NAMES


def serves_pretrained(task: "TaskSpec") -> bool:
    """Tasks whose `tiny` is the committed pretrained base: those built by the K&K generator."""
    gen = task.source.generator
    return gen is not None and gen.name == "kk"


def resolve(ref: str, task: "TaskSpec | None" = None) -> str:
    """Turn a --model value into something `from_pretrained` accepts, building `tiny-scratch` on first use."""
    if ref in TINY_NAMES:
        if task is None:
            raise HarnessError(f"--model {ref} needs a task (it is chosen, or its tokenizer trained, per task)")
        if ref == "tiny" and serves_pretrained(task):
            return str(pretrained_tiny())
        return str(build_tiny(task))
    from harness import gguf

    if gguf.wants(ref):  # a GGUF file, or a known model shipped as one (smollm2-135m): converted once, then a folder
        return str(gguf.convert(ref, home()))
    p = Path(ref).expanduser()
    if p.exists() or ref.startswith((".", "/", "~")):
        if not p.is_dir():
            raise HarnessError(
                f"model path {p} is not a folder; pass a Hugging Face model folder (with config.json), "
                "a hub id, or 'tiny'"
            )
        if not (p / "config.json").is_file():
            raise HarnessError(
                f"{p} is not a model folder (no config.json); pass a folder written by "
                "save_pretrained, a hub id, or 'tiny'"
            )
        return str(p)
    return _hub_ref(ref)


def _hub_ref(ref: str) -> str:
    """A hub id as it is when the hub is reachable; its cached snapshot folder when not; else one clear error."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return ref  # loading needs transformers, which brings huggingface_hub; load() says what is missing
    from huggingface_hub import snapshot_download

    with hub_offline_unless_reachable() as why:
        if why is None:
            return ref  # load() turns a missing or gated repository into a clear message
        try:
            return snapshot_download(ref, local_files_only=True)  # cached earlier: load it without the network
        except Exception:  # not cached (LocalEntryNotFoundError), or not a valid repo id (HFValidationError)
            raise HarnessError(
                f"model '{ref}' is not a local folder and cannot be fetched from the Hugging Face hub "
                f"({why}); pass a local model folder (one written by save_pretrained, or "
                f"`hf download {ref} --local-dir DIR` on a machine with hub access), "
                "or 'tiny'"
            ) from None


def load(ref: str, dtype: str = "auto", for_training: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) from a resolved reference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the harness shows its own progress
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(
        dtype
    )
    if torch_dtype is None:
        raise HarnessError(f"unknown dtype '{dtype}'; use auto, float32, bfloat16 or float16")
    try:
        tok = AutoTokenizer.from_pretrained(ref)
        model = AutoModelForCausalLM.from_pretrained(ref, dtype=torch_dtype)
    except (OSError, ValueError) as e:
        where = "folder" if Path(ref).exists() else "hub id"
        raise HarnessError(
            f"could not load model {where} '{ref}': {str(e).splitlines()[0]}. Without hub access, "
            "pass a local model folder (or 'tiny')"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if not for_training:
        model.eval()
    return model, tok


def pretrained_tiny() -> Path:
    """The committed pretrained tiny base (harness/assets; built by `harness tiny build`)."""
    from harness.tiny import folder

    out = folder()
    if not (out / "model.safetensors").is_file():
        raise HarnessError(
            f"the pretrained tiny model is missing ({out}); rebuild it with `harness tiny build`, "
            "or use --model tiny-scratch"
        )
    return out


def _corpus(task: "TaskSpec") -> list[str]:
    from harness.data import load_split, render_prompt

    texts = []
    for split in sorted(s for s in task.splits if s != "test"):  # the model never sees test text, even here
        # partial: a data sample shorter than the split windows (e.g. $HARNESS_DATA_DIR) still gives its text
        for s in load_split(task, split, limit=TINY_CONFIG["corpus_per_split"], partial=True):
            prompt = render_prompt(task, s)
            texts.append(prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt))
            texts.extend(s["traces"].values())
            texts.append(s["answer"])
    if not texts:
        raise HarnessError(
            f"task '{task.id}' has no non-test rows to build the tiny model's tokenizer from; "
            "give it a training split with data"
        )
    return texts


def build_tiny(task: "TaskSpec") -> Path:
    """Build (once) and cache the embedded model for a task; deterministic for a given task and recipe."""
    corpus = _corpus(task)
    key = config_hash({"v": TINY_VERSION, "cfg": TINY_CONFIG, "task": task.id, "corpus": corpus})
    out = home() / "models" / f"tiny-scratch-{task.id.replace('/', '_')}-{key}"
    if (out / "config.json").is_file():
        return out

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_CONFIG["vocab_size_target"],
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>", bos_token=None, unk_token=None
    )
    tok.chat_template = CHAT_TEMPLATE
    cfg = {k: v for k, v in TINY_CONFIG.items() if k not in ("vocab_size_target", "corpus_per_split", "init_seed")}
    config = Qwen2Config(
        vocab_size=len(tok),
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        **cfg,
    )
    torch.manual_seed(TINY_CONFIG["init_seed"])
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    tmp = out.with_name(f".tmp-{out.name}-{uuid.uuid4().hex[:6]}")
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_atomic(tmp / "harness_tiny.json", f'{{"task": "{task.id}", "key": "{key}", "version": {TINY_VERSION}}}\n')
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, out)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
