"""Sample effect: the first-order check (one SGD step moves a smooth objective by eta * e), projection fidelity,
data sources and their errors, the CLI end to end on a tiny model, --predict, and the leaderboard section."""

import json
import math

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.effect import corrupt_answer, mean_ci, spearman
from harness.errors import HarnessError

runner = CliRunner()

# A user task whose reward a random model earns sometimes (the response contains an "e"), so g* is not zero.
TASK_YAML = """description: Write something; the reward is whether it contains the letter e (for effect tests).
source:
  file: {path: rows.jsonl}
splits:
  sft: {}
  val: {}
prompt: {chat: true, template: "Say a word about {question}"}
answer_field: answer
verifier: {name: regex, params: {pattern: "(e)"}}
generation: {max_new_tokens: 8, temperature: 0.0}
"""


@pytest.fixture
def one_thread():
    """2 cores shared with other jobs: one torch thread is several times faster than two fighting for them."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def letter_task(tmp_path_factory):
    d = tmp_path_factory.mktemp("etask")
    words = ["cats", "trees", "boats", "hills", "rain", "stone", "moon", "fish", "wind", "gold", "snow", "lake"]
    (d / "rows.jsonl").write_text("".join(json.dumps({"question": w, "answer": "e"}) + "\n" for w in words))
    (d / "etask.yaml").write_text(TASK_YAML)
    (d / "demos.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": f"d{i}",
                    "prompt": [{"role": "user", "content": f"Say a word about {w}"}],
                    "response": f"{w} are nice",
                }
            )
            + "\n"
            for i, w in enumerate(words[:5])
        )
    )
    return d


def _tiny_seqs(n_train, n_eval, max_length=200):
    from harness.data import load_split, render_prompt
    from harness.effect_grads import encode_pair
    from harness.tasks import get_task

    spec = get_task("kk")
    ev = load_split(spec, "val", limit=n_eval)
    tr = load_split(spec, "sft", limit=n_train)

    def enc(s):
        return encode_pair(TOK[0], render_prompt(spec, s), s["traces"]["compact"], max_length)

    return [enc(s) for s in tr], [enc(s) for s in ev]


TOK: list = []


def test_first_order_check_one_sgd_step(tiny_kk, one_thread):
    """J = mean token-mean log-likelihood of fixed correct responses (reference traces of val prompts); its gradient
    plays g*. One SGD step of size eta on sample i's l changes J by eta * e_i, to first order."""
    import torch

    from harness.effect import load_model
    from harness.effect_grads import dot, logprobs, sample_grad, select_params, weighted_grad

    model, tok = load_model(str(tiny_kk), "float64")
    TOK[:] = [tok]
    model, _, params, info = select_params(model, "all")
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    train, evals = _tiny_seqs(20, 2, max_length=180)
    g = weighted_grad(model, params, evals, [1 / len(evals)] * len(evals), batch_size=2, mean=True)

    def objective():
        with torch.no_grad():
            return float(logprobs(model, evals, mean=True).mean())

    j0 = objective()
    orig = [p.detach().clone() for p in params]
    eta = 1e-4
    errors = []
    for s in train:
        _, grads = sample_grad(model, params, s)
        e = dot(grads, g)
        with torch.no_grad():
            for p, gi in zip(params, grads):
                p.add_(eta * gi)  # SGD on the loss -l: theta + eta * grad l
        dj = objective() - j0
        with torch.no_grad():
            for p, o in zip(params, orig):
                p.copy_(o)
        errors.append(abs(dj - eta * e) / abs(eta * e))
    print(
        f"first-order check: n={len(errors)} eta={eta} max rel err {max(errors):.2e} "
        f"median {sorted(errors)[len(errors) // 2]:.2e}"
    )
    assert len(errors) >= 20 and max(errors) < 0.10, errors


def test_projection_fidelity(tiny_kk, one_thread):
    """CountSketch effects against exact ones, on the same per-sample gradients: r >= 0.95 at D = 4096."""
    import torch

    from harness.effect import load_model
    from harness.effect_grads import sample_effects, select_params, weighted_grad
    from harness.projection import CountSketch

    model, tok = load_model(str(tiny_kk), "float32")
    TOK[:] = [tok]
    model, _, params, _ = select_params(model, "all")
    train, evals = _tiny_seqs(20, 2, max_length=256)
    g = weighted_grad(model, params, evals, [0.5] * 2, batch_size=2, mean=True)
    sketches = [(sk, sk.project(g)) for sk in (CountSketch(D, 0, [p.numel() for p in params]) for D in (512, 4096))]
    rows = sample_effects(model, params, train, g, sketches)
    exact = torch.tensor([r["effect"] for r in rows])
    r = {
        D: float(torch.corrcoef(torch.stack([exact, torch.tensor([x[f"effect_d{D}"] for x in rows])]))[0, 1])
        for D in (512, 4096)
    }
    print(f"projection fidelity (pearson r vs exact): {r}")
    assert r[4096] >= 0.95
    # Unbiased: the sketched inner product of a vector with itself is its squared norm in expectation.
    sk = CountSketch(4096, 1, [p.numel() for p in params], cache=False)
    n2 = float(sum((x * x).sum() for x in g))
    assert abs(float(sk.project(g).pow(2).sum()) / n2 - 1) < 0.1


def test_countsketch_is_seeded_and_block_consistent():
    import torch

    from harness.projection import CountSketch

    a = [torch.arange(10.0), torch.ones(3, 4)]
    s1, s2 = CountSketch(8, 3, [10, 12]), CountSketch(8, 3, [10, 12], cache=False)
    assert torch.equal(s1.project(a), s2.project(a))
    assert not torch.equal(s1.project(a), CountSketch(8, 4, [10, 12]).project(a))
    assert float(s1.project(a).abs().sum()) > 0 and s1.describe()["name"].startswith("countsketch")


def test_helpers():
    wrong = corrupt_answer("A is a knave.\n\\boxed{A is a knight, B is a knave}")
    assert wrong.endswith("\\boxed{A is a knave, B is a knight}") and wrong.startswith("A is a knave.")
    assert corrupt_answer("x = \\boxed{42}") == "x = \\boxed{02}"
    assert corrupt_answer("no box here") is None
    m, (lo, hi) = mean_ci([-2.0, 0.0, 5.0])
    assert m == 1.0 and lo < -1 and hi > 3  # unbounded, unlike a [0, 1] score interval
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert spearman([1, 1], [1, 2]) is None
    from harness.stats import mean_interval, normal_interval

    lo, hi = normal_interval([0.1, 0.2, 0.9])
    assert lo < 0 and mean_interval([0.1, 0.2, 0.9]) == (0.0, hi)  # the score interval is the normal one, clamped


def test_start_model_is_the_sft_stage_init(tmp_path):
    """--predict groups runs by the model their SFT stage started from (its recorded init), not the base model."""
    from harness.effect import start_model

    def rec(key, init):
        st = tmp_path / "_stages" / f"sft-{key}"
        st.mkdir(parents=True)
        (st / "config.json").write_text(json.dumps({"init": init, "data_hash": "h"}))
        return {
            "run_id": f"r-{key}",
            "kind": "run",
            "method": "sft",
            "stages": [{"stage": "sft", "key": key}],
            "config": {"model": "tiny", "model_path": "/base"},
        }

    (tmp_path / "_stages" / "rl-a").mkdir(parents=True)
    (tmp_path / "_stages" / "rl-a" / "stage.json").write_text(json.dumps({"model_path": "/rl/final"}))
    assert start_model(rec("a", "tiny:abc"), tmp_path) == "/base"
    assert start_model(rec("b", "stage:rl-a"), tmp_path) == "/rl/final"
    assert start_model(rec("c", "/some/model"), tmp_path) == "/some/model"


def test_params_and_sources_errors_exit_2(letter_task):
    from harness.effect_grads import parse_params

    assert parse_params("last:2") == ("last", 2) and parse_params("lora:8") == ("lora", 8)
    with pytest.raises(HarnessError, match="last:N"):
        parse_params("layers")
    task = str(letter_task / "etask.yaml")
    for args, needle in [
        (["--data", "nope:x"], "is not a data source"),
        (["--data", str(letter_task / "missing.jsonl")], "is not a data source"),
        (["--data", "run:no-such-run"], "no run 'no-such-run'"),
        (["--data", "traces:compact"], "has no 'compact' traces"),
        (["--data", str(letter_task / "demos.jsonl"), "--params", "everything"], "--params 'everything'"),
        (["--data", str(letter_task / "demos.jsonl"), "--k", "1"], "--k must be at least 2"),
        (["--data", str(letter_task / "demos.jsonl"), "--eval-split", "nope"], "has no split 'nope'"),
        (["--predict", "--params", "everything"], "--params 'everything'"),
        ([], "at least one --data"),
    ]:
        r = runner.invoke(app, ["effect", "--task", task, "--eval-split", "val", *args])
        assert r.exit_code == 2, (args, r.output)
        assert needle in r.output and "Traceback" not in r.output, (args, r.output)


def test_traces_source_renders_like_training():
    from harness.effect import load_source
    from harness.recipes import apply_task_overrides, resolve
    from harness.records import runs_dir
    from harness.tasks import get_task

    _, recipe = resolve("kk", "tiny")
    spec = apply_task_overrides(get_task("kk"), recipe["task"])
    d = load_source("traces:compact", spec, recipe, runs_dir())
    assert len(d.rows) == 1000 and d.rows[0]["prompt"][0]["role"] == "user" and "\\boxed{" in d.rows[0]["completion"]


def _records(root):
    return {
        p.name: json.loads((p / "record.json").read_text()) for p in root.iterdir() if (p / "record.json").is_file()
    }


def _metrics(acc):
    return {"accuracy": acc, "n": 10, "ci95": [0, 1], "truncation_rate": 0.0, "mean_response_tokens": 5.0}


def test_cli_end_to_end_record_and_predict(letter_task, tmp_path, one_thread):
    task, demos = str(letter_task / "etask.yaml"), str(letter_task / "demos.jsonl")
    common = [
        "--task",
        task,
        "--eval-split",
        "val",
        "--eval-count",
        "4",
        "--k",
        "4",
        "--max-new-tokens",
        "8",
        "--runs-dir",
        tmp_path,
    ]
    r = runner.invoke(app, ["effect", *map(str, common), "--data", demos, "--max-samples", "4", "--seed", "1"])
    assert r.exit_code == 0, r.output
    (rec,) = _records(tmp_path).values()
    assert rec["kind"] == "effect" and rec["config"]["settings"]["k"] == 4
    d = rec["metrics"]["datasets"][demos]
    assert d["n"] == 4 and d["n_available"] == 5 and d["ci95"][0] <= d["mean"] <= d["ci95"][1]
    assert rec["metrics"]["measurement"]["mode"] == "exact" and rec["metrics"]["g_star"]["norm"] > 0
    rows = [json.loads(x) for x in (tmp_path / rec["run_id"] / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"id", "dataset", "effect", "cosine", "grad_norm"} <= set(rows[0])
    assert all(-1 <= x["cosine"] <= 1 and x["grad_norm"] > 0 for x in rows)

    # --predict over a grid of three sft runs (records as `harness run` writes them, stage folders with their data).
    from harness.effect import load_source
    from harness.records import config_hash, write_record
    from harness.tasks import get_task

    model_path = rec["config"]["model_path"]
    spec = get_task(task)
    rows_all = load_source(demos, spec, {}, tmp_path).rows
    write_record(
        tmp_path,
        "r-base",
        {
            "kind": "run",
            "method": "base",
            "budget": 0,
            "metrics": _metrics(0.2),
            "provenance": {"harness_version": "test"},
            "config": {"task": spec.id, "model": "tiny", "model_path": model_path, "recipe": {}},
        },
    )
    for i, (n, acc) in enumerate([(2, 0.3), (3, 0.5), (5, 0.4)]):
        data = rows_all[:n]
        key = f"k{i}"
        stage = tmp_path / "_stages" / f"sft-{key}"
        stage.mkdir(parents=True)
        (stage / "train_data.jsonl").write_text("".join(json.dumps(x) + "\n" for x in data))
        (stage / "config.json").write_text(json.dumps({"data_hash": config_hash(data)}))
        write_record(
            tmp_path,
            f"r-sft-{i}",
            {
                "kind": "run",
                "method": "sft",
                "budget": n,
                "metrics": _metrics(acc),
                "provenance": {"harness_version": "test"},
                "stages": [{"stage": "sft", "key": key}],
                "config": {"task": spec.id, "model": "tiny", "model_path": model_path, "recipe": {}, "seed": 0},
            },
        )
    r = runner.invoke(app, ["effect", *map(str, common), "--predict"])
    assert r.exit_code == 0, r.output
    pred = next(x for x in _records(tmp_path).values() if x.get("method") == "effect-predict")
    m = pred["metrics"]
    assert m["n_runs"] == 3 and m["n_datasets"] == 3 and -1 <= m["spearman"] <= 1
    assert {p["start_accuracy_from"] for p in m["points"]} == {"r-base"}
    assert [round(p["gain"], 6) for p in m["points"]] == [0.1, 0.3, 0.2]

    # The leaderboard shows dataset effects next to the runs trained on them, and the prediction.
    from harness.leaderboard import build_table, render_markdown
    from harness.store import RunStore

    r = runner.invoke(app, ["effect", *map(str, common), "--data", "run:r-sft-1", "--project", "256"])
    assert r.exit_code == 0, r.output
    table = build_table(RunStore(tmp_path).dicts())
    md = render_markdown(table)
    assert "Sample effect" in md and "r-sft-1" in md and "countsketch" in md and "Spearman" in md


def test_gstar_scores_exactly_the_sampled_ids(tiny_kk, one_thread, monkeypatch):
    """g*'s score function is log pi of the token ids the engine sampled (special tokens and the stop token included),
    after the engine's prompt ids: never the decoded text tokenized again."""
    import torch

    import harness.effect_grads as eg
    from harness import models, verifiers
    from harness.effect import EffectSettings, estimate_gstar
    from harness.engines import prompt_ids, stop_token_ids
    from harness.tasks import get_task
    from harness.verifiers import Verdict

    model, tok = models.load(str(tiny_kk), dtype="float32")
    spec = get_task("kk")
    calls = [0]

    def alternating(response, answer, truncated=False):  # rewards 0, 1, 0, 1, ...: every group has signal
        calls[0] += 1
        return Verdict(float(calls[0] % 2), None, "test")

    monkeypatch.setattr(verifiers, "get_verifier", lambda name, params=None: alternating)
    sampled, seen = [], []
    generate = model.generate

    def recording_generate(**kw):
        out = generate(**kw)
        sampled.extend(out[:, kw["input_ids"].shape[1] :].tolist())
        return out

    monkeypatch.setattr(model, "generate", recording_generate)
    original = eg.weighted_grad

    def capture(model_, params, seqs, weights, *a, **kw):
        seen.extend(seqs)
        return original(model_, params, seqs, weights, *a, **kw)

    monkeypatch.setattr(eg, "weighted_grad", capture)
    _, names, params, _ = eg.select_params(model, "lm_head")
    s = EffectSettings(task="kk", eval_split="val", eval_count=3, k=4, temperature=1.0, max_new_tokens=16)
    estimate_gstar(model, tok, params, spec, s)

    stop = set(stop_token_ids(tok, model.generation_config))
    want = []
    for row in sampled:  # what generate sampled: up to and with the first stop token; padding after it is not sampled
        end = next((i for i, t in enumerate(row) if t in stop), None)
        want.append(tuple(row if end is None else row[: end + 1]))
    assert len(seen) == len(want) == 12
    assert sorted(tuple(q.ids[q.start :]) for q in seen) == sorted(want)
    from harness.data import load_split, render_prompt

    prompts = {tuple(prompt_ids(tok, render_prompt(spec, r))) for r in load_split(spec, "val", limit=3)}
    assert {tuple(q.ids[: q.start]) for q in seen} == prompts
    # and the log-probability g* differentiates is the sum over exactly those ids
    q = max(seen, key=lambda q: q.n_tokens)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([q.ids])).logits[0, q.start - 1 : -1].float()
        manual = logits.log_softmax(-1).gather(-1, torch.tensor(q.ids[q.start :])[:, None]).sum()
        assert float(eg.logprobs(model, [q], mean=False)[0]) == pytest.approx(float(manual), abs=1e-4)


def test_measure_at_is_the_measurement_alone_and_says_what_it_cost(letter_task, tmp_path, one_thread):
    """measure_at: the task, recipe and model as given (nothing resolved), the same numbers as `harness effect`, and
    what it cost: g*'s rollouts and tokens generated, and every token a gradient went through."""
    from dataclasses import replace

    from harness import models
    from harness.effect import EffectSettings, load_source, measure, measure_at
    from harness.tasks import get_task

    task, demos = str(letter_task / "etask.yaml"), str(letter_task / "demos.jsonl")
    spec = get_task(task)
    path = models.resolve("tiny", spec)
    s = EffectSettings(task=task, eval_split="val", eval_count=4, k=4, max_new_tokens=8, seed=1)
    d = load_source(demos, spec, {}, tmp_path)
    metrics, rows, cost = measure_at(s, spec, {}, path, [d])
    assert [r["id"] for r in rows] == [r["id"] for r in d.rows] and "cost" not in metrics["g_star"]
    assert cost["rollouts_generated"] == 16 and 0 < cost["tokens_generated"] <= 16 * 8
    assert cost["tokens_gradient"] > sum(r["n_tokens"] for r in rows)  # the samples' whole sequences, and g*'s
    again, rows2, _ = measure(replace(s, data=(demos,)), tmp_path, model_path=path)
    assert [r["effect"] for r in rows2] == pytest.approx([r["effect"] for r in rows])
    assert again["g_star"]["norm"] == pytest.approx(metrics["g_star"]["norm"])
