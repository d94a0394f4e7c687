"""Variants of a tiny model folder for tests: another EOS token, shipped generation settings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional


def tiny_variant(src: str | Path, dst: Path, eos: Optional[str] = None, **generation: Any) -> Path:
    """A copy of the model folder `src` at `dst`; `eos` becomes the tokenizer's EOS token (and the config's and
    generation_config's eos_token_id), and `generation` entries are written into its generation_config."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    shutil.copytree(src, dst)
    if eos is not None:
        tok = AutoTokenizer.from_pretrained(dst)
        tok.eos_token = eos
        tok.save_pretrained(dst)
        cfg = AutoConfig.from_pretrained(dst)
        cfg.eos_token_id = tok.eos_token_id
        cfg.save_pretrained(dst)
    gc = GenerationConfig.from_pretrained(dst)
    if eos is not None:
        gc.eos_token_id = tok.eos_token_id
    for k, v in generation.items():
        setattr(gc, k, v)
    gc.save_pretrained(dst)
    return Path(dst)


class ForceTokenAfter:
    """A forward hook for the LM head: from its (after+1)-th call on, `token` gets a logit far above the rest, so the
    model emits it as its (after+1)-th generated token (call 1 is the prefill)."""

    def __init__(self, token: int, after: int) -> None:
        self.token, self.after, self.calls = token, after, 0

    def __call__(self, module, inputs, output):
        self.calls += 1
        if self.calls <= self.after:
            return output
        out = output.clone()
        out[..., self.token] = out.abs().max() + 1e4
        return out
