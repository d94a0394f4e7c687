"""`harness compare`: a grid reuses finished cells, so adding a budget trains only the new cells."""

import pytest

from harness.compare import compare
from harness.errors import HarnessError
from harness.leaderboard import build_table

FAST = ["sft.max_steps=1", "sft.batch_size=2", "eval.limit=2", "eval.max_new_tokens=4", "eval.dtype=float32"]


def test_grid_reuses_cells_and_adds_only_new_ones(tiny_kk, tmp_path):
    logs = []
    first = compare(task="kk", methods="sft", budgets="8,16", seeds="0", sets=FAST, runs_dir=tmp_path, log=logs.append)
    assert len(first) == 2 and sum("running" in x for x in logs) == 2
    logs.clear()
    second = compare(
        task="kk", methods="sft", budgets="8,16,32", seeds="0", sets=FAST, runs_dir=tmp_path, log=logs.append
    )
    assert sum("reusing" in x for x in logs) == 2 and sum(": running" in x for x in logs) == 1
    assert [r["run_id"] for r in second[:2]] == [r["run_id"] for r in first]
    table = build_table(second)
    assert [r["budget"]["value"] for r in table["rows"]] == [8, 16, 32]


def test_grid_rejects_bad_lists(tmp_path):
    with pytest.raises(HarnessError, match="did you mean 'redistill'"):
        compare(task="kk", methods="sft,redistil", budgets="8", seeds="0", runs_dir=tmp_path)
    with pytest.raises(HarnessError, match="invalid budget '1kk'"):
        compare(task="kk", methods="sft", budgets="8,1kk", seeds="0", runs_dir=tmp_path)
    with pytest.raises(HarnessError, match="--seeds must be integers"):
        compare(task="kk", methods="sft", budgets="8", seeds="0,x", runs_dir=tmp_path)
