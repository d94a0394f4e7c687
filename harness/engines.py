"""Generation engines behind one small interface, so that a vLLM engine can slot in beside transformers.

An engine turns prompts (chat messages or raw text) into n generations each, and says for every generation
how many tokens it has and whether it was cut off at the length limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

from harness.registry import Registry


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    truncated: bool  # hit max_new_tokens without an end-of-sequence token or stop string


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0
    top_p: float = 1.0


OnBatch = Callable[[list[int], list[list[Generation]]], None]


class Engine(Protocol):
    name: str

    def generate(self, prompts: Sequence[list[dict] | str], params: SamplingParams,
                 on_batch: Optional[OnBatch] = None) -> list[list[Generation]]: ...


ENGINES: Registry = Registry("engine")


def prompt_text(tokenizer: Any, prompt: list[dict] | str) -> str:
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    # Base models without a chat template get the messages joined plainly.
    return "\n\n".join(m["content"] for m in prompt) + "\n\n"


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@ENGINES.register("transformers")
class HFEngine:
    """Batched `generate` with KV cache, left padding and batches sorted by prompt length."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32) -> None:
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size

    @classmethod
    def from_ref(cls, ref: str, dtype: str = "auto", batch_size: int = 32) -> "HFEngine":
        from harness.models import load

        model, tok = load(ref, dtype=dtype)
        import torch

        if torch.cuda.is_available():
            model.to("cuda")
        return cls(model, tok, batch_size)

    def generate(self, prompts: Sequence[list[dict] | str], params: SamplingParams,
                 on_batch: Optional[OnBatch] = None) -> list[list[Generation]]:
        import torch

        texts = [prompt_text(self.tok, p) for p in prompts]
        lengths = [len(self.tok(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
        # Several samples per prompt share a batch slot budget.
        per_batch = max(1, self.batch_size // max(1, params.n))
        out: list[list[Generation]] = [[] for _ in texts]
        eos = self.tok.eos_token_id
        pad = self.tok.pad_token_id
        device = self.model.device
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start:start + per_batch]
            enc = self.tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            sample = params.temperature > 0
            # Seeding per batch makes a sample's draws independent of how many batches ran before a resume.
            torch.manual_seed(params.seed * 1_000_003 + b)
            kwargs: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, do_sample=sample,
                                          num_return_sequences=params.n, pad_token_id=pad, eos_token_id=eos)
            if sample:
                kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
            with torch.inference_mode():
                seqs = self.model.generate(**enc, **kwargs)
            new = seqs[:, enc.input_ids.shape[1]:].tolist()
            batch_gens: list[list[Generation]] = []
            for j, i in enumerate(idx):
                gens = []
                for ids in new[j * params.n:(j + 1) * params.n]:
                    ended = eos in ids
                    ids = ids[:ids.index(eos)] if ended else [t for t in ids if t != pad]
                    text = self.tok.decode(ids, skip_special_tokens=True)
                    text, stopped = _cut_at_stop(text, params.stop)
                    gens.append(Generation(text, len(ids), truncated=not (ended or stopped)
                                           and len(ids) >= params.max_new_tokens))
                out[i] = gens
                batch_gens.append(gens)
            if on_batch:
                on_batch(idx, batch_gens)
        return out


def make_engine(name: str, ref: str, **kwargs: Any) -> Engine:
    return ENGINES.get(name).from_ref(ref, **kwargs)
