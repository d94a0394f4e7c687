"""Leaderboards: hand-written records -> exact golden Markdown / CSV / JSON; set-ups never mix; the HTML and plot."""

import json
from pathlib import Path

import pytest

from harness.leaderboard import build_table, render_csv, render_html, render_json, render_markdown, write_leaderboard

FIX = Path(__file__).parent / "fixtures" / "records"
GOLDEN = Path(__file__).parent / "golden"
COMMAND = "harness leaderboard --task kk --runs-dir tests/fixtures/records --out tests/golden"


def _records():
    return [json.loads(p.read_text()) for p in sorted(FIX.glob("*.json"))]


@pytest.mark.parametrize("name,render", [("leaderboard.md", lambda t: render_markdown(t, COMMAND)),
                                         ("leaderboard.csv", render_csv), ("leaderboard.json", render_json)])
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
    assert sft100["runs"]["value"] == ["r-sft-100-0z", "r-sft-100-1"] and sft100["accuracy"]["value"] == pytest.approx(0.13)


def test_significance_marker_and_samples_to_match():
    table = build_table(_records())
    rows = {(r["model"]["value"], r["method"]["value"], r["budget"]["value"]): r for r in table["rows"]}
    # rl@1k 0.60 (n=100) vs sft@1k 0.32 (n=200): z-test p << 0.05; redistill@1k 0.58 vs rl@1k: not significant.
    assert ">sft" in rows[("tiny", "rl", 1000)]["significant"]["value"]
    assert "<rl" in rows[("tiny", "sft", 1000)]["significant"]["value"]
    assert not any("redistill" in m for m in rows[("tiny", "rl", 1000)]["significant"]["value"])
    match = {s["method"]: s["display"] for s in table["samples_to_match"] if s["model"] == "tiny"}
    assert match == {"base": "not reached", "sft": "not reached", "rl": "1k", "redistill": "1k"}


def test_write_leaderboard_html_and_plot(tmp_path):
    table = build_table(_records())
    files = {p.name for p in write_leaderboard(table, tmp_path, COMMAND)}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html"} <= files
    page = (tmp_path / "index.html").read_text()
    assert COMMAND in page and "sortBy" in page and page.count("<tr>") == len(table["rows"]) + 1
    if "accuracy.png" in files:
        assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 'src="accuracy.svg"' in page


def test_renderers_are_pure():
    table = build_table(_records())
    assert render_markdown(table, COMMAND) == render_markdown(table, COMMAND)
    assert render_html(table, COMMAND, None) == render_html(table, COMMAND, None)
