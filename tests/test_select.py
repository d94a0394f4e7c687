"""select (harness/methods/select.py): the pool's sample effect measured at the base model, SFT on the top `budget`;
order random is the seeded control. On the kk tiny recipe with a tiny budget (8 of a pool of 16, one epoch)."""

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import methods, recipes
from harness.cli import app
from harness.errors import HarnessError
from harness.leaderboard import build_table, load_outcomes
from harness.methods.select import choose, pool_size
from harness.records import config_hash
from harness.store import RunStore

runner = CliRunner()
TINY = [
    "--set",
    "select.pool_size=16",
    "--set",
    "select.eval_count=16",
    "--set",
    "select.k=8",
    "--set",
    "sft.epochs=1",
    "--set",
    "sft.batch_size=4",
    "--set",
    "eval.limit=2",
    "--set",
    "eval.max_new_tokens=8",
    "--set",
    "eval.limem=false",
]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """`harness compare --methods sft,select` at budget 8, then the random control: three records in one folder."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other jobs: one thread is faster than two fighting
    root = tmp_path_factory.mktemp("select_runs")
    r = invoke("compare", "--task", "kk", "--methods", "sft,select", "--budgets", "8", "--runs-dir", root, *TINY)
    assert r.exit_code == 0, r.output
    r = invoke(
        "run",
        "--task",
        "kk",
        "--method",
        "select",
        "--budget",
        "8",
        "--runs-dir",
        root,
        *TINY,
        "--set",
        "select.order=random",
    )
    assert r.exit_code == 0, r.output
    torch.set_num_threads(threads)
    recs = RunStore(root).dicts()
    by = {(x["method"], x["config"]["recipe"]["select"].get("order")): x for x in recs}
    return root, by[("select", "effect")], by[("select", "random")], by[("sft", "effect")]


def _jsonl(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def _trained_on(root: Path, rec: dict) -> list[str]:
    sft = rec["stages"][-1]
    assert sft["stage"] == "sft"
    return [r["id"] for r in _jsonl(root / "_stages" / f"sft-{sft['key']}" / "train_data.jsonl")]


def test_select_is_registered_with_its_recipe_section():
    m = methods.get("select")
    assert "select" in methods.names() and m.section.name == "select" and m.demonstrations and m.teacher
    assert "tokens_gradient" in m.count_keys and "select" in recipes.sections()
    _, recipe = recipes.resolve("kk", "tiny")
    assert recipe["select"]["order"] == "effect" and set(recipe["select"]) <= set(m.section.defaults)


def test_order_effect_trains_on_exactly_the_top_effects(grid):
    root, rec, _, _ = grid
    effect, select, sft = rec["stages"]
    assert [st["stage"] for st in rec["stages"]] == ["effect", "select", "sft"]
    measured = _jsonl(effect["data_path"])
    assert [r["index"] for r in measured] == list(range(16))
    top = [r["id"] for r in sorted(measured, key=lambda r: (-r["effect"], r["index"]))[:8]]
    assert _trained_on(root, rec) == top  # the top 8 by the stored effects, highest first
    assert [r["id"] for r in _jsonl(select["data_path"])] == top
    m = select["metrics"]
    assert m["selected_ids_hash"] == config_hash(top) and m["pool_size"] == 16 and m["order"] == "effect"
    assert m["mean_effect_selected"] >= m["mean_effect_pool"]
    assert effect["metrics"]["pool_size"] == 16 and effect["metrics"]["effect_wall_seconds"] > 0
    assert m["effect_wall_seconds"] == effect["metrics"]["effect_wall_seconds"]


def test_the_record_counts_what_measuring_cost(grid):
    _, rec, random_rec, sft_rec = grid
    effect = rec["stages"][0]
    c = rec["counts"]
    assert c["training_examples"] == 8 and c["rollouts_generated"] == 16 * 8 == effect["counts"]["rollouts_generated"]
    assert c["tokens_gradient"] == effect["counts"]["tokens_gradient"] > 0
    backward = c["tokens_trained"] + c["tokens_gradient"]
    assert c["flops_estimate"] == 6 * c["model_parameters"] * backward + 2 * c["model_parameters"] * (
        c["tokens_generated"] + c["tokens_forward_only"]
    )
    assert random_rec["counts"]["tokens_gradient"] == 0 and random_rec["counts"]["rollouts_generated"] == 0
    assert "tokens_gradient" not in sft_rec["counts"]  # other methods' records keep their fields


def test_order_random_is_the_seeded_control(grid):
    root, rec, random_rec, _ = grid
    assert [st["stage"] for st in random_rec["stages"]] == ["select", "sft"]  # nothing measured
    pool = [r["id"] for r in sorted(_jsonl(rec["stages"][0]["data_path"]), key=lambda r: r["index"])]
    picked = [pool[i] for i in random.Random(0).sample(range(16), 8)]
    assert _trained_on(root, random_rec) == picked != _trained_on(root, rec)
    assert random_rec["stages"][0]["metrics"]["effect_wall_seconds"] is None
    assert choose(None, 16, 8, "random", 0) == choose(None, 16, 8, "random", 0) != choose(None, 16, 8, "random", 1)
    assert choose([0.1, 0.5, 0.5, -1.0], 4, 2, "effect", 0) == [1, 2]  # ties: the earlier candidate first


def test_a_second_run_reuses_every_stage(grid):
    root, rec, _, _ = grid
    before = {x["run_id"] for x in RunStore(root).dicts()}
    r = invoke("run", "--task", "kk", "--method", "select", "--budget", "8", "--runs-dir", root, *TINY)
    assert r.exit_code == 0, r.output
    # the new record, by set difference: run ids sort by the second they were made, so the grid's runs of the same
    # second can sort after it
    (again,) = [x for x in RunStore(root).dicts() if x["run_id"] not in before]
    assert [(s["key"], s["cached"]) for s in again["stages"]] == [(s["key"], True) for s in rec["stages"]]


def test_leaderboard_rows_and_effect_predict_see_select_like_any_method(grid):
    root, rec, random_rec, sft_rec = grid
    table = build_table(load_outcomes(RunStore(root).dicts(), root))
    # a select key off its default labels the row (these runs set a small pool and g*), never splits the set-up
    plain, control = "select (pool_size 16, eval_count 16)", "select (order random, pool_size 16, eval_count 16)"
    rows = {r["method"]["display"]: r for r in table["rows"]}
    assert sorted(rows) == sorted(["sft", plain, control])
    assert rows[plain]["recipe"]["value"] == rows[control]["recipe"]["value"] == rows["sft"]["recipe"]["value"]
    assert rows[plain]["start"]["display"] == "base (not in table)"
    assert {
        ("select@8 (pool_size 16, eval_count 16)", "sft@8"),
        ("select@8 (order random, pool_size 16, eval_count 16)", "sft@8"),
    } <= {(c["row"], c["against"]) for c in table["comparisons"]}
    from harness.effect import trained_hashes

    assert {rec["run_id"], random_rec["run_id"], sft_rec["run_id"]} <= set(trained_hashes(RunStore(root).dicts(), root))


def test_dry_run_plans_the_measurement(grid):
    root, *_ = grid
    before = sorted((root / "_stages").iterdir())
    r = invoke(
        "run",
        "--task",
        "kk",
        "--method",
        "select",
        "--budget",
        "4",
        "--dry-run",
        "--runs-dir",
        root,
        *TINY,
        "--set",
        "select.pool_size=12",
    )
    assert r.exit_code == 0, r.output
    planned = [line for line in r.output.splitlines() if "to run" in line]
    assert any("effect" in line for line in planned) and any("select" in line for line in planned), r.output
    assert sorted((root / "_stages").iterdir()) == before  # nothing was built


def test_an_unknown_order_is_one_error_with_the_near_miss(tmp_path):
    r = invoke(
        "run",
        "--task",
        "kk",
        "--method",
        "select",
        "--budget",
        "8",
        "--set",
        "select.order=efect",
        "--runs-dir",
        tmp_path,
    )
    out = r.output.replace("\n", "")
    assert r.exit_code == 2 and "'order' must be effect" in out and "did you mean 'effect'?" in out, r.output
    assert "Traceback" not in r.output and not any(tmp_path.iterdir())
    r = invoke(
        "run",
        "--task",
        "kk",
        "--method",
        "select",
        "--budget",
        "8",
        "--set",
        "select.eval_split=test",
        "--runs-dir",
        tmp_path,
    )
    assert r.exit_code == 2 and "a split other than test" in r.output.replace("\n", ""), r.output
    r = invoke(
        "run", "--task", "kk", "--method", "select", "--budget", "8", "--teacher", "traces:gird", "--runs-dir", tmp_path
    )
    assert r.exit_code == 2 and "select's pool (--teacher traces:gird)" in r.output and "'grid'" in r.output, r.output


def test_pool_size_must_hold_the_budget_and_fit_the_pool():
    assert pool_size(None, 8, 1000, "traces:grid") == 32 and pool_size(None, 300, 1000, "traces:grid") == 1000
    assert pool_size("all", 8, 20, "f.jsonl") == 20 and pool_size(16, 8, 20, "f.jsonl") == 16
    for setting, budget, available, words in [
        (4, 8, 20, "smaller than the budget 8"),
        (30, 8, 20, "larger than the pool f.jsonl (20 demonstrations)"),
        (None, 30, 20, "has 20 demonstrations; budget 30 needs more"),
    ]:
        with pytest.raises(HarnessError, match=words.replace("(", r"\(").replace(")", r"\)")):
            pool_size(setting, budget, available, "f.jsonl")
