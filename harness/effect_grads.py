"""The torch side of the sample effect: token sequences as training renders them, the parameter subset, g*
accumulated over micro-batches, and per-sample gradients dotted with it (exactly and/or through CountSketches).

Per-sample gradients are taken one sequence at a time (batch 1, no padding), each dotted with g* and dropped
before the next, so at most two subset-sized vectors live at once: g* and one sample's gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from harness.errors import HarnessError
from harness.projection import CountSketch


@dataclass(frozen=True)
class Seq:
    ids: list[int]
    start: int  # the response is ids[start:]

    @property
    def n_tokens(self) -> int:
        return len(self.ids) - self.start


def _chat_ids(tok: Any, messages: list[dict], generation_prompt: bool) -> list[int]:
    if not getattr(tok, "chat_template", None):
        raise HarnessError(
            "chat prompts need a tokenizer with a chat template (as SFT training does); this model has "
            "none: use a task with prompt.chat: false or a model folder with a chat template"
        )
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=True)
    return list(out["input_ids"])


def encode_pair(tok: Any, prompt: list[dict] | str, completion: str, max_length: Optional[int] = None) -> Seq:
    """A training pair tokenized exactly as TRL's SFTTrainer does (prompt-completion data, completion-only loss):
    chat prompts through the chat template (the assistant turn with its end tokens is the completion); raw prompts
    with the EOS appended to the completion; the completion starts where prompt and prompt+completion diverge."""
    if isinstance(prompt, str):
        eos = tok.eos_token or ""
        p = list(tok(prompt)["input_ids"])
        full = list(tok(prompt + (completion if completion.endswith(eos) else completion + eos))["input_ids"])
    else:
        p = _chat_ids(tok, list(prompt), True)
        full = _chat_ids(tok, list(prompt) + [{"role": "assistant", "content": completion}], False)
    start = 0
    for a, b in zip(p, full):
        if a != b:
            break
        start += 1
    if max_length:
        full = full[:max_length]
    return Seq(full, max(1, start))


def encode_sampled(tok: Any, prompt: list[dict] | str, gen: Any) -> Seq:
    """A sampled response exactly as the engine produced it: the engine's prompt ids followed by the sampled token ids
    (`gen.token_ids`, with the stop token that ended it and any special tokens), never its text re-tokenized: the
    score function of g* is log pi of what was sampled."""
    from harness.engines import prompt_ids

    if not gen.token_ids:
        raise HarnessError("g* needs the sampled token ids, and this engine's generation has none")
    p = prompt_ids(tok, prompt)
    return Seq(p + list(gen.token_ids), max(1, len(p)))


# --- parameter subsets ------------------------------------------------------------------------------------------


def parse_params(spec: str) -> tuple[str, Optional[int]]:
    """all | last:N | lm_head | lora:R."""
    if spec in ("all", "lm_head"):
        return spec, None
    kind, _, n = spec.partition(":")
    if kind in ("last", "lora") and n.isdigit() and int(n) > 0:
        return kind, int(n)
    raise HarnessError(
        f"--params '{spec}' is not one of: all, last:N (the last N blocks and the final norm), "
        "lm_head, lora:R (LoRA adapters of rank R on every linear layer of a frozen model)"
    )


def _blocks(model: Any) -> tuple[Any, Any]:
    import torch

    dec = model.get_decoder() if hasattr(model, "get_decoder") else model
    layers = getattr(dec, "layers", None) or getattr(dec, "h", None)
    if layers is None:
        lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
        layers = max(lists, key=len) if lists else None
    if layers is None:
        raise HarnessError("--params last:N: this model has no list of transformer blocks; use all, lm_head or lora:R")
    return layers, getattr(dec, "norm", None)


def select_params(model: Any, spec: str, seed: int = 0) -> tuple[Any, list[str], list[Any], dict]:
    """Freeze everything but the subset; returns (model, names, params, info). lora wraps the model with peft."""
    import torch

    kind, n = parse_params(spec)
    for p in model.parameters():
        p.requires_grad_(False)
    info: dict[str, Any] = {"spec": spec}
    if kind == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise HarnessError("--params lora:R needs peft: pip install -e '.[train]'") from None

        torch.manual_seed(seed)  # A's random init
        model = get_peft_model(model, LoraConfig(r=n, lora_alpha=n, lora_dropout=0.0, target_modules="all-linear"))
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        info["lora"] = {
            "rank": n,
            "alpha": n,
            "target_modules": "all-linear",
            "init_seed": seed,
            "note": "peft init: A random, B = 0, so the model is unchanged and grad A = 0; the effect is "
            "carried by grad B = G A^T, a rank-r random sketch (by A) of each layer's full weight "
            "gradient G",
        }
    elif kind == "all":
        named = list(model.named_parameters())
    elif kind == "lm_head":
        head = model.get_output_embeddings()
        named = [("lm_head.weight", head.weight)]
        info["tied_to_input_embeddings"] = head.weight is model.get_input_embeddings().weight
    else:
        layers, norm = _blocks(model)
        if n > len(layers):
            raise HarnessError(f"--params last:{n}: the model has only {len(layers)} blocks")
        keep = {id(p) for m in list(layers)[-n:] for p in m.parameters()}
        keep |= {id(p) for p in norm.parameters()} if norm is not None else set()
        named = [(k, p) for k, p in model.named_parameters() if id(p) in keep]
    for _, p in named:
        p.requires_grad_(True)
    info["parameters"] = sum(p.numel() for _, p in named)
    info["tensors"] = len(named)
    return model, [k for k, _ in named], [p for _, p in named], info


# --- log-probabilities and gradients ----------------------------------------------------------------------------


def logprobs(model: Any, seqs: Sequence[Seq], temperature: float = 1.0, mean: bool = True) -> Any:
    """Per sequence: the mean (or sum) over response tokens of log pi(y_t | x, y_<t), teacher-forced, right-padded.
    Only the logits of response positions are computed (logits_to_keep)."""
    import torch

    device = next(model.parameters()).device
    L = max(len(s.ids) for s in seqs)
    m0 = min(s.start for s in seqs)
    ids = torch.tensor([s.ids + [0] * (L - len(s.ids)) for s in seqs], device=device)
    att = torch.tensor([[1] * len(s.ids) + [0] * (L - len(s.ids)) for s in seqs], device=device)
    logits = model(input_ids=ids, attention_mask=att, logits_to_keep=L - m0 + 1, use_cache=False).logits[:, :-1]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if temperature != 1.0:
        logits = logits / temperature
    lp = logits.log_softmax(-1).gather(-1, ids[:, m0:, None]).squeeze(-1)
    pos = torch.arange(m0, L, device=device)[None]
    mask = (
        (pos >= torch.tensor([s.start for s in seqs], device=device)[:, None])
        & (pos < torch.tensor([len(s.ids) for s in seqs], device=device)[:, None])
    ).to(lp.dtype)
    total = (lp * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if mean else total


def weighted_grad(
    model: Any,
    params: list[Any],
    seqs: Sequence[Seq],
    weights: Sequence[float],
    batch_size: int = 8,
    temperature: float = 1.0,
    mean: bool = False,
    progress: Optional[Callable] = None,
) -> list[Any]:
    """sum_j w_j grad f(seq_j), f = sum (mean=False: log pi(y|x), for g*) or token-mean log-likelihood, accumulated
    over micro-batches (one accumulator the size of the subset). Sequences with weight 0 are skipped."""
    import torch

    acc = [torch.zeros_like(p) for p in params]
    todo = [(s, w) for s, w in zip(seqs, weights) if w != 0.0]
    todo.sort(key=lambda sw: len(sw[0].ids))  # similar lengths share a micro-batch: less padding
    for b in range(0, len(todo), batch_size):
        chunk = todo[b : b + batch_size]
        lp = logprobs(model, [s for s, _ in chunk], temperature, mean=mean)
        w = torch.tensor([w for _, w in chunk], device=lp.device, dtype=lp.dtype)
        grads = torch.autograd.grad((lp * w).sum(), params, allow_unused=True)
        for a, g in zip(acc, grads):
            if g is not None:
                a.add_(g)
        if progress:
            progress(min(b + batch_size, len(todo)), len(todo), "g*")
    return acc


def _flat(x: Any) -> Any:
    import torch

    return x.reshape(-1).to(torch.promote_types(x.dtype, torch.float32))  # no copy for float32 / float64 blocks


def dot(a: Sequence[Any], b: Sequence[Any]) -> float:
    """<a, b> over parameter blocks, without concatenating them (float32 or wider per block, summed in Python)."""
    import torch

    return float(sum(float(torch.dot(_flat(x), _flat(y))) for x, y in zip(a, b)))


def sample_grad(model: Any, params: list[Any], seq: Seq) -> tuple[float, list[Any]]:
    """(l, grad l) for one sequence, l its token-mean log-likelihood; zeros where a parameter gets no gradient."""
    import torch

    ll = logprobs(model, [seq], mean=True)[0]
    grads = torch.autograd.grad(ll, params, allow_unused=True)
    return ll.item(), [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def sample_effects(
    model: Any,
    params: list[Any],
    seqs: Sequence[Seq],
    gstar: Optional[list[Any]],
    sketches: Sequence[tuple[CountSketch, Any]] = (),
    progress: Optional[Callable] = None,
) -> list[dict]:
    """Per sequence: grad of its token-mean log-likelihood, dotted with g* exactly (if given) and through each
    (sketch, sketched g*) pair; also the gradient's norm and the log-likelihood."""
    import torch

    out = []
    for i, s in enumerate(seqs):
        ll, grads = sample_grad(model, params, s)
        row: dict[str, Any] = {"loglik": ll, "n_tokens": s.n_tokens, "grad_norm": math.sqrt(dot(grads, grads))}
        if gstar is not None:
            row["effect"] = dot(grads, gstar)
        for sk, gp in sketches:
            row[f"effect_d{sk.dim}"] = float(torch.dot(sk.project(grads).double(), gp.double()))
        out.append(row)
        del grads
        if progress:
            progress(i + 1, len(seqs), "samples")
    return out
