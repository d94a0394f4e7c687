"""Leaderboards: hand-written records -> exact golden Markdown / CSV / JSON; set-ups never mix; statistics over
distinct problems with paired tests against each row's start and base; the HTML and plot."""

import json
import statistics
from pathlib import Path

import pytest

from harness.leaderboard import (
    build_table,
    load_outcomes,
    plot_series,
    render_csv,
    render_html,
    render_json,
    render_markdown,
    write_leaderboard,
)
from harness.records import write_record
from harness.stats import Z95, wilson
from harness.store import RunStore

FIX = Path(__file__).parent / "fixtures" / "records"
GOLDEN = Path(__file__).parent / "golden"
COMMAND = "harness leaderboard --task kk --runs-dir tests/fixtures/records --out tests/golden"


def _records():
    return [json.loads(p.read_text()) for p in sorted(FIX.glob("*.json"))]


@pytest.mark.parametrize(
    "name,render",
    [
        ("leaderboard.md", lambda t: render_markdown(t, COMMAND)),
        ("leaderboard.csv", render_csv),
        ("leaderboard.json", render_json),
    ],
)
def test_golden_tables(name, render, request):
    text = render(build_table(_records()))
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with --update-golden if that is intended"


def test_rows_aggregate_seeds_and_never_mix_setups():
    table = build_table(_records())
    rows = {(r["model"]["value"], r["method"]["value"], r["budget"]["value"]): r for r in table["rows"]}
    sft1k = rows[("tiny", "sft", 1000)]
    assert sft1k["seeds"]["value"] == 2 and sft1k["accuracy"]["value"] == pytest.approx(0.32)
    assert sft1k["runs"]["value"] == ["r-sft-1k-0", "r-sft-1k-1"]
    assert sft1k["per_level"]["value"] == {"2": pytest.approx(0.41), "3": pytest.approx(0.23)}
    # The 1.5B row with another recipe is its own row, not a third seed of the tiny one.
    assert rows[("Qwen/Qwen2.5-1.5B", "sft", 1000)]["seeds"]["value"] == 1
    assert all(r["method"]["value"] != "eval" for r in table["rows"])  # only run records
    # seed 0 of sft@100 was run twice: its latest record counts, once.
    sft100 = rows[("tiny", "sft", 100)]
    assert sft100["runs"]["value"] == ["r-sft-100-0z", "r-sft-100-1"] and sft100["accuracy"]["value"] == pytest.approx(
        0.13
    )


def test_records_without_samples_fall_back_to_unpaired_tests_over_problems():
    table = build_table(_records())
    rows = {(r["model"]["value"], r["method"]["value"], r["budget"]["value"]): r for r in table["rows"]}
    # Two seeds of sft@1k answered the same 100 problems: the interval is over 100 problems, not 200.
    assert rows[("tiny", "sft", 1000)]["ci95"]["value"] == list(wilson(32, 100))
    # rl@1k 0.60 vs sft@1k 0.32 on 100 problems: significant after Holm; redistill@1k 0.58 vs rl@1k: not.
    assert ">sft@1k" in rows[("tiny", "rl", 1000)]["significant"]["value"]
    assert "<rl@1k" in rows[("tiny", "sft", 1000)]["significant"]["value"]
    assert not any("redistill@1k" in m for m in rows[("tiny", "rl", 1000)]["significant"]["value"])
    assert {c["test"] for c in table["comparisons"]} == {"two-proportion z-test (unpaired)"}
    match = {s["method"]: s["display"] for s in table["samples_to_match"] if s["model"] == "tiny"}
    assert match == {"base": "not reached", "sft": "not reached", "rl": "1k", "redistill": "1k"}


def test_write_leaderboard_html_and_plot(tmp_path):
    table = build_table(_records())
    files = {p.name for p in write_leaderboard(table, tmp_path, COMMAND)}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html"} <= files
    page = (tmp_path / "index.html").read_text()
    assert COMMAND in page and "sortBy" in page
    assert page.count("<tr>") == (
        1 + len(table["rows"]) + 1 + len(table["samples_to_match"]) + 1 + len(table["comparisons"])
    )
    assert "Samples to match" in page and "Significance" in page and 'class="hide-cost hide-prov"' in page
    if "accuracy.png" in files:
        assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 'src="accuracy.svg"' in page
        svg = (tmp_path / "accuracy.svg").read_bytes()
        write_leaderboard(table, tmp_path, COMMAND)
        assert (tmp_path / "accuracy.svg").read_bytes() == svg  # the same records give the same bytes


def test_renderers_are_pure():
    table = build_table(_records())
    assert render_markdown(table, COMMAND) == render_markdown(table, COMMAND)
    assert render_html(table, COMMAND, None) == render_html(table, COMMAND, None)


# --- per-problem outcomes: seeds share one test set, rows are paired by problem id --------------------------------


def _outcomes(n: int, correct: set[int]) -> dict[str, float]:
    return {f"kk/test/{i}": float(i in correct) for i in range(n)}


def _rec(run_id: str, method: str, budget: int, outcomes: dict, seed: int = 0, stages=(), init=None, **metrics) -> dict:
    acc = sum(outcomes.values()) / len(outcomes)
    return {
        "kind": "run",
        "run_id": run_id,
        "method": method,
        "budget": budget,
        "config": {"task": "kk", "model": "tiny", "seed": seed, "init": init, "recipe": {"rl": {"init": "sft@1k"}}},
        "provenance": {
            "harness_version": "0.1.0",
            "recipe_hash": "p1",
            "splits": {"test": {"size": len(outcomes)}},
            "task_sha256": "feedc0de00000000",
            "verifier": {"name": "kk_boxed", "params": {}},
        },
        "metrics": {
            "accuracy": acc,
            "n": len(outcomes),
            "truncation_rate": 0.0,
            "mean_response_tokens": 50.0,
            **metrics,
        },
        "counts": {"training_examples": budget},
        "wall_seconds": {"total": 1.0},
        "stages": list(stages),
        "outcomes": outcomes,
    }


def _paired_records() -> list[dict]:
    """200 problems. rl@128 (3 seeds, 0.60) trained from sft@1k's cached stage; sft@1k (3 seeds, 0.585) solves 15
    problems rl does not and misses 16-19 that rl solves; sft@100 (0.52) and redistill@1k (0.45) solve only problems
    rl solves too."""
    n = 200
    sft = [
        _rec(
            f"p-sft-1k-{s}",
            "sft",
            1000,
            _outcomes(n, set(range(105)) | set(range(150, 160 + 2 * s))),
            seed=s,
            stages=[{"stage": "sft", "key": f"sft{s}"}],
            faithful_accuracy=0.4 + 0.1 * s,
            lucky=0.1,
        )
        for s in range(3)
    ]
    rl = [
        _rec(
            f"p-rl-128-{s}",
            "rl",
            128,
            _outcomes(n, set(range(120))),
            seed=s,
            stages=[{"stage": "sft", "key": f"sft{s}"}, {"stage": "rl", "key": f"rl{s}"}],
        )
        for s in range(3)
    ]
    return [
        _rec("p-base", "base", 0, _outcomes(n, set(range(10)))),
        *sft,
        *rl,
        _rec("p-sft-100", "sft", 100, _outcomes(n, set(range(104)))),
        _rec("p-redistill-1k", "redistill", 1000, _outcomes(n, set(range(90)))),
    ]


def test_seeds_that_agree_give_the_single_seed_interval():
    one = _outcomes(300, set(range(0, 300, 3)))
    single = build_table([_rec("s-0", "sft", 1000, one)])["rows"][0]
    three = build_table([_rec(f"t-{s}", "sft", 1000, one, seed=s) for s in range(3)])["rows"][0]
    assert three["seeds"]["value"] == 3 and three["ci95"]["value"] == single["ci95"]["value"] == list(wilson(100, 300))
    assert three["ci95"]["method"] == "Wilson" and three["ci95"]["problems"] == 300
    # Seeds that disagree: per-problem means over 300 problems (normal interval), never 900 pooled outcomes.
    mixed = build_table([_rec(f"m-{s}", "sft", 1000, _outcomes(300, set(range(s, 300, 3))), seed=s) for s in range(3)])[
        "rows"
    ][0]
    lo, hi = mixed["ci95"]["value"]
    assert mixed["ci95"]["method"] == "normal" and mixed["accuracy"]["value"] == pytest.approx(1 / 3)
    assert lo == pytest.approx(hi) == pytest.approx(1 / 3)  # every problem solved by exactly one seed in three


def test_paired_test_finds_what_the_unpaired_one_misses():
    # rl solves every problem sft solves and 12 more, on 100 problems: 0.62 vs 0.50.
    recs = [
        _rec("a-sft", "sft", 1000, _outcomes(100, set(range(50)))),
        _rec("a-rl", "rl", 1000, _outcomes(100, set(range(62))), init="sft@1k"),
    ]
    paired = build_table(recs)
    c = next(c for c in paired["comparisons"] if c["row"] == "rl@1k" and c["against"] == "sft@1k")
    assert c["test"] == "McNemar exact" and c["p"] == pytest.approx(2 / 2**12) and c["significant"]
    unpaired = build_table([{k: v for k, v in r.items() if k != "outcomes"} for r in recs])
    u = next(c for c in unpaired["comparisons"] if c["row"] == "rl@1k")
    assert u["test"] == "two-proportion z-test (unpaired)" and u["p"] > 0.05 and not u["significant"]


def test_each_trained_row_is_tested_against_its_start_and_base():
    table = build_table(_paired_records())
    rows = {(r["method"]["value"], r["budget"]["value"]): r for r in table["rows"]}
    rl = rows[("rl", 128)]
    assert rl["start"]["value"] == "sft@1k"  # found by its cached init stage, not by budget
    assert rl["vs_start"]["value"]["against"] == "sft@1k" and rl["vs_base"]["value"]["against"] == "base"
    assert rows[("redistill", 1000)]["start"]["value"] == "base" and rows[("base", 0)]["start"]["display"] == "-"
    # Family: starts, base, and every row against rl@128 and sft@1k; Holm-adjusted, each test named.
    pairs = {(c["row"], c["against"]) for c in table["comparisons"]}
    assert pairs == {
        ("sft@1k", "base"),
        ("rl@128", "sft@1k"),
        ("rl@128", "base"),
        ("sft@100", "base"),
        ("redistill@1k", "base"),
        ("sft@100", "rl@128"),
        ("redistill@1k", "rl@128"),
        ("sft@100", "sft@1k"),
        ("redistill@1k", "sft@1k"),
    }
    assert all(c["p_holm"] >= c["p"] for c in table["comparisons"])
    # the one-seed rows (sft@100, redistill@1k) meet the three-seed ones on seed 0, which both ran
    on_seed_0 = {(c["row"], c["against"]) for c in table["comparisons"] if c.get("seeds") == [0]}
    assert on_seed_0 == {
        ("sft@100", "rl@128"),
        ("redistill@1k", "rl@128"),
        ("sft@100", "sft@1k"),
        ("redistill@1k", "sft@1k"),
    }
    tests = {"McNemar exact", "paired sign-flip permutation", "McNemar exact, on the seeds both rows ran (0)"}
    assert {c["test"] for c in table["comparisons"]} == tests
    md, csv_text, page = render_markdown(table, COMMAND), render_csv(table), render_html(table, COMMAND, None)
    shown = rl["vs_start"]["display"]
    assert shown.startswith("+0.") and shown in md and shown in csv_text and shown in page
    assert "vs_start" in json.loads(render_json(table))["columns"]


def test_samples_to_match_needs_the_paired_test_not_only_overlapping_intervals():
    table = build_table(_paired_records())
    rows = {(r["method"]["value"], r["budget"]["value"]): r for r in table["rows"]}
    # sft@100 (0.52): its interval overlaps rl@128's (0.60), but on the same problems rl solves all it solves and 16
    # more, so the paired test finds it lower: no match. sft@1k (0.585) is lower too, but not significantly.
    assert rows[("sft", 100)]["ci95"]["value"][1] > rows[("rl", 128)]["ci95"]["value"][0]
    match = {s["method"]: s for s in table["samples_to_match"]}
    assert match["sft"]["display"] == "1k" and "paired sign-flip permutation" in match["sft"]["evidence"]
    assert match["redistill"]["display"] == "not reached" and match["base"]["display"] == "not reached"
    assert match["rl"]["display"] == "128"


def test_new_metrics_are_columns_only_when_present():
    table = build_table(_paired_records())
    assert "faithful_accuracy" in table["columns"] and "lucky" in table["columns"] and "limem" not in table["columns"]
    sft = next(r for r in table["rows"] if r["method"]["value"] == "sft" and r["budget"]["value"] == 1000)
    assert sft["faithful_accuracy"]["value"] == pytest.approx(0.5) and sft["faithful_accuracy"]["display"] == "0.500"
    assert next(r for r in table["rows"] if r["method"]["value"] == "base")["lucky"]["display"] == "-"
    assert "faithful_accuracy" not in build_table(_records())["columns"]


def test_a_chained_method_says_where_it_started_in_the_plot():
    series = {s["label"]: s for s in plot_series(build_table(_paired_records()))}
    rl = series["rl (from sft@1k)"]
    assert rl["chained"] and rl["marker"] != series["sft"]["marker"] and rl["points"] == ["rl@128 (from sft@1k)"]


def test_load_outcomes_reads_samples_and_tolerates_their_absence(tmp_path):
    rec = _rec("w-0", "sft", 100, {"x": 0.0})
    del rec["outcomes"]
    samples = [{"id": "kk/test/0", "scores": [1.0, 0.0]}, {"id": "kk/test/1", "scores": [1.0, 1.0]}]
    write_record(tmp_path, "w-0", rec, samples)
    write_record(tmp_path, "w-1", {**rec, "run_id": "w-1"})
    (tmp_path / "w-1" / "samples.jsonl").unlink()
    got = {
        r["run_id"]: r
        for r in load_outcomes([{**rec, "path": str(tmp_path / "w-0")}, {**rec, "run_id": "w-1"}], runs_root=tmp_path)
    }
    assert got["w-0"]["outcomes"] == {"kk/test/0": 0.5, "kk/test/1": 1.0} and "outcomes" not in got["w-1"]


def test_golden_paired_markdown(request):
    text = render_markdown(build_table(_paired_records()), COMMAND)
    path = GOLDEN / "leaderboard_paired.md"
    if request.config.getoption("--update-golden"):
        path.write_text(text)
    assert text == path.read_text(), "leaderboard_paired.md changed; rerun with --update-golden if that is intended"


def test_sampled_pass_at_1_is_a_column_and_tested_against_the_start(tmp_path):
    n = 100
    sft = _rec("q-sft", "sft", 1000, _outcomes(n, set(range(50))), stages=[{"stage": "sft", "key": "s"}])
    rl = _rec(
        "q-rl",
        "rl",
        128,
        _outcomes(n, set(range(50))),
        stages=[{"stage": "sft", "key": "s"}, {"stage": "rl", "key": "r"}],
    )
    # Greedy: the same 50 problems. Sampled (4 per problem): sft gets 1 of 4 right on 60 problems; rl 3 of 4.
    for rec, right in ((sft, 1), (rl, 3)):
        rec["metrics"]["sampled"] = {"pass_at_1": 0.6 * right / 4, "temperature": 0.7, "samples": 4}
        del rec["outcomes"]
        rows = [
            {
                "id": f"kk/test/{i}",
                "scores": [float(i < 50)],
                "sampled_scores": [1.0] * right + [0.0] * (4 - right) if i < 60 else [0.0] * 4,
            }
            for i in range(n)
        ]
        write_record(tmp_path, rec["run_id"], rec, rows)
    table = build_table(load_outcomes([sft, rl], runs_root=tmp_path))
    row = next(r for r in table["rows"] if r["method"]["value"] == "rl")
    assert row["sampled"]["display"] == "0.450 (T0.7 x4)"
    assert row["vs_start"]["value"]["diff"] == 0 and not row["vs_start"]["value"]["significant"]
    s = row["vs_start_sampled"]["value"]
    assert s["against"] == "sft@1k" and s["diff"] == pytest.approx(0.3) and s["significant"]
    assert s["test"] == "paired sign-flip permutation" and "vs_start_sampled" in table["columns"]
    assert "sampled" not in build_table(_paired_records())["columns"]


def test_measurement_only_recipe_keys_do_not_split_a_setup():
    """eval.samples / eval.temperature / eval.limem add measurements and change neither the model nor its greedy
    accuracy: a run with them is the same set-up (paired with the others); another learning rate is not."""
    recs = [r for r in _paired_records()]
    extra = dict(
        recs[0],
        run_id="r-extra",
        config={
            **recs[0]["config"],
            "seed": 7,
            "recipe": {**recs[0]["config"]["recipe"], "eval": {"samples": 8, "temperature": 0.7, "limem": False}},
        },
    )
    other = dict(
        recs[0],
        run_id="r-other",
        config={
            **recs[0]["config"],
            "seed": 8,
            "recipe": {**recs[0]["config"]["recipe"], "sft": {"learning_rate": 1.0}},
        },
    )
    table = build_table(recs + [extra, other])
    rows = [
        r
        for r in table["rows"]
        if r["method"]["value"] == recs[0]["method"] and r["budget"]["value"] == recs[0]["budget"]
    ]
    assert len(rows) == 2
    assert any("r-extra" in r["runs"]["value"] and recs[0]["run_id"] in r["runs"]["value"] for r in rows)
    assert any(r["runs"]["value"] == ["r-other"] for r in rows)


def test_sampled_pass_at_1_over_the_seeds_that_measured_it(tmp_path):
    """A second seed evaluated greedily only (no eval.samples) joins the row's accuracy; the sampled column and its
    paired test use the one seed that sampled, and say so."""
    n = 100
    recs = []
    for seed, sampled in ((0, True), (1, False)):
        for method, budget, right in (("sft", 1000, 1), ("rl", 128, 3)):
            stages = [{"stage": "sft", "key": f"s{seed}"}] + (
                [{"stage": "rl", "key": f"r{seed}"}] if method == "rl" else []
            )
            rec = _rec(f"p-{method}-{seed}", method, budget, _outcomes(n, set(range(50))), seed=seed, stages=stages)
            del rec["outcomes"]
            rows = [{"id": f"kk/test/{i}", "scores": [float(i < 50)]} for i in range(n)]
            if sampled:
                rec["metrics"]["sampled"] = {"pass_at_1": 0.6 * right / 4, "temperature": 0.7, "samples": 4}
                for i, r in enumerate(rows):
                    r["sampled_scores"] = [1.0] * right + [0.0] * (4 - right) if i < 60 else [0.0] * 4
            write_record(tmp_path, rec["run_id"], rec, rows)
            recs.append(rec)
    table = build_table(load_outcomes(recs, runs_root=tmp_path))
    row = next(r for r in table["rows"] if r["method"]["value"] == "rl")
    assert row["seeds"]["value"] == 2 and row["sampled"]["display"] == "0.450 (T0.7 x4, 1 of 2 seeds)"
    assert row["vs_start_sampled"]["value"]["diff"] == pytest.approx(0.3)


def test_rl_from_base_beside_rl_from_the_cold_start_is_its_own_row():
    """`--init base` next to the recipe's rl.init (sft@1k): two rows, neither counted as a second seed of the other;
    "rl at its largest budget" is the recipe's chain."""
    recs = _paired_records()
    zero = _rec(
        "r-rl-zero", "rl", 128, _outcomes(200, set(range(10))), init="base", stages=[{"stage": "rl", "key": "z"}]
    )
    table = build_table(recs + [zero])
    rl_rows = [r for r in table["rows"] if r["method"]["value"] == "rl" and r["budget"]["value"] == 128]
    assert sorted(r["start"]["display"] for r in rl_rows) == ["base", "sft@1k"]
    chain = next(r for r in rl_rows if r["start"]["display"] == "sft@1k")
    assert chain["seeds"]["value"] == 3 and "r-rl-zero" not in chain["runs"]["value"]
    assert any(c["against"] == "rl@128" and c["row"] == "rl@128 from base" for c in table["comparisons"])


def test_redistill_variants_are_their_own_rows_in_the_same_setup():
    """redistill.filter / redistill.keep off their defaults: own rows, labelled, in the set-up of the rest (so tested
    against base, sft and rl); the default written out is the plain row."""
    recs = _paired_records()
    plain = recs[-1]

    def variant(run_id, **rd):
        rec = _rec(run_id, "redistill", 1000, _outcomes(200, set(range(80))))
        rec["config"]["recipe"] = {**rec["config"]["recipe"], "redistill": rd}
        return rec

    table = build_table(
        recs
        + [
            variant("r-faithful", filter="faithful"),
            variant("r-short", keep="shortest"),
            variant("r-default", filter="correct", keep="random"),
        ]
    )
    rows = {r["method"]["display"]: r for r in table["rows"] if r["method"]["value"] == "redistill"}
    assert set(rows) == {"redistill", "redistill (filter faithful)", "redistill (keep shortest)"}
    assert rows["redistill (filter faithful)"]["runs"]["value"] == ["r-faithful"]
    assert rows["redistill (filter faithful)"]["recipe"]["value"] == rows["redistill"]["recipe"]["value"]
    assert rows["redistill (keep shortest)"]["start"]["display"] == "base"  # base is in its set-up
    assert "redistill@1k (filter faithful)" in {c["row"] for c in table["comparisons"]}
    assert rows["redistill"]["runs"]["value"] == ["r-default"]  # the same cell as plain's seed 0, run again later
    assert plain["run_id"] < "r-default"


def test_redistill_sampling_choices_are_variant_rows_of_one_set_up():
    outcomes = _outcomes(200, set(range(120)))

    def rd(run_id, **section):
        rec = _rec(run_id, "redistill", 1000, outcomes)
        rec["config"]["recipe"] = {
            **rec["config"]["recipe"],
            "redistill": {
                "variant": "B",
                "temperature": 0.7,
                "samples_per_prompt": 1,
                "filter": "correct",
                "keep": "random",
                **section,
            },
        }
        return rec

    recs = [rd("r0"), rd("r1", temperature=0.0), rd("r2", samples_per_prompt=4, keep="shortest")]
    table = build_table(recs)
    labels = [r["method"]["display"] for r in table["rows"]]
    assert labels == ["redistill", "redistill (samples_per_prompt 4, keep shortest)", "redistill (temperature 0.0)"]
    assert len({r["recipe"]["value"] for r in table["rows"]}) == 1  # one set-up: the rows are compared


def test_a_variant_is_tested_against_the_row_it_varies_and_a_method_against_sft_at_its_budget():
    def rec(run_id, method, hits, **section):
        r = _rec(run_id, method, 300, _outcomes(200, set(range(hits))))
        if section:
            r["config"]["recipe"] = {**r["config"]["recipe"], method: section}
        return r

    recs = [
        rec("s", "sft", 60),
        rec("e", "select", 90),
        rec("r", "select", 40, order="random"),
        rec("d", "redistill", 70),
        rec("d4", "redistill", 70, samples_per_prompt=4),
        rec("d4s", "redistill", 80, samples_per_prompt=4, keep="shortest"),
    ]
    got = {(c["row"], c["against"]): c for c in build_table(recs)["comparisons"]}
    assert "variant of" in got[("select@300 (order random)", "select@300")]["roles"]
    assert got[("select@300 (order random)", "select@300")]["diff"] == pytest.approx(-0.25)
    assert (
        "variant of"
        in got[("redistill@300 (samples_per_prompt 4, keep shortest)", "redistill@300 (samples_per_prompt 4)")]["roles"]
    )
    assert "variant of" in got[("redistill@300 (samples_per_prompt 4)", "redistill@300")]["roles"]
    assert "sft at the same budget" in got[("select@300", "sft@300")]["roles"]
    assert "sft at the same budget" in got[("redistill@300", "sft@300")]["roles"]
    assert "sft at the same budget" not in got[("select@300 (order random)", "sft@300")]["roles"]  # through select


def test_mean_length_has_an_interval_over_problems_when_samples_give_token_counts(tmp_path):
    lengths = [100, 120, 140, 160]
    for seed in (0, 1):
        rec = _rec(f"len-{seed}", "sft", 100, {"x": 0.0}, seed=seed)
        del rec["outcomes"]
        rec["metrics"]["mean_response_tokens"] = sum(lengths) / 4 + seed * 10
        samples = [{"id": f"kk/test/{i}", "scores": [1.0], "n_tokens": [n + seed * 10]} for i, n in enumerate(lengths)]
        write_record(tmp_path, rec["run_id"], rec, samples)
    (row,) = build_table(load_outcomes(RunStore(tmp_path).dicts(), tmp_path))["rows"]
    per_problem = [n + 5 for n in lengths]  # averaged over the two seeds
    mean = sum(per_problem) / 4
    half = Z95 * statistics.stdev(per_problem) / 2
    assert row["mean_len"]["value"] == pytest.approx(mean)
    assert row["mean_len"]["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-6)
    assert row["mean_len"]["display"] == f"{mean:.0f} ({mean - half:.0f}-{mean + half:.0f})"


def test_rows_with_different_seeds_are_compared_on_the_seeds_both_ran():
    """redistill on seeds 1-2 against rl on 0-2: rl's seed 0 (weak here) must not count as redistill beating rl. On the
    common seeds the two are equal (no difference); averaged over their own seeds redistill would look 0.2 better."""
    n = 100
    rl = [
        _rec(f"c-rl-{s}", "rl", 128, _outcomes(n, set(range(60 if s else 0))), seed=s, init="sft@1k") for s in range(3)
    ]
    rd = [_rec(f"c-rd-{s}", "redistill", 1000, _outcomes(n, set(range(60))), seed=s) for s in (1, 2)]
    base = _rec("c-base", "base", 0, _outcomes(n, set(range(5))))
    table = build_table([base, *rl, *rd])
    c = next(c for c in table["comparisons"] if {c["row"], c["against"]} == {"redistill@1k", "rl@128"})
    assert c["diff"] == 0 and c["seeds"] == [1, 2] and c["test"].endswith("on the seeds both rows ran (1, 2)")
    assert not c["significant"]
    # the untrained base is the same model under every seed: compared as it is, without a seed note
    b = next(c for c in table["comparisons"] if c["row"] == "rl@128" and c["against"] == "base")
    assert "seeds" not in b and b["diff"] == pytest.approx(0.4 - 0.05)
    # rows on the same seeds: their own averages, no note
    same = build_table(
        [*rl, *[_rec(f"c-rd-{s}", "redistill", 1000, _outcomes(n, set(range(60))), seed=s) for s in range(3)]]
    )
    d = next(c for c in same["comparisons"] if {c["row"], c["against"]} == {"redistill@1k", "rl@128"})
    assert "seeds" not in d and abs(d["diff"]) == pytest.approx(0.2)
