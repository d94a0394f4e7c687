"""Procedural splits hold no puzzle twice: duplicates are redrawn at the same index (level balance kept), reads at
an offset equal the full split's tail, and a split too small for its params is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import data, recipes
from harness.data import load_split, puzzle_key
from harness.errors import HarnessError
from harness.generators import GENERATORS
from harness.tasks import builtin_dir, get_task

FIRST = 2000  # of big splits, to keep the test fast; repeats show up well before that in a small puzzle space
RECIPES = recipes.RECIPES_DIR


def _procedural_cases():
    cases = []
    for task_file in sorted(builtin_dir().glob("*.yaml")):
        spec = get_task(task_file.stem)
        if spec.source.generator is None:
            continue
        variants = [("task", spec)]
        tiny = RECIPES / f"{spec.id}-tiny.yaml"
        if tiny.is_file():  # read at test time: recipes change their splits
            overrides = (yaml.safe_load(tiny.read_text()) or {}).get("task")
            variants.append((tiny.stem, recipes.apply_task_overrides(spec, overrides)))
        for label, s in variants:
            cases += [
                pytest.param(s, split, id=f"{spec.id}-{label}-{split}")
                for split, sp in s.splits.items()
                if sp.source is None
            ]
    return cases


@pytest.mark.parametrize("spec,split", _procedural_cases())
def test_builtin_procedural_splits_have_no_repeated_puzzle(spec, split):
    rows = load_split(spec, split, limit=FIRST)
    keys = [r["metadata"]["key"] for r in rows]  # the generator's canonical form (renamings are the same puzzle)
    assert len(set(keys)) == len(keys)
    assert len({r["question"] for r in rows}) == len(rows)


def _tiny_space_task(tmp_path: Path, size: int, values: int) -> object:
    (tmp_path / "tiny_space.yaml").write_text(
        yaml.safe_dump(
            {
                "description": "a generator with few distinct puzzles per level",
                "source": {"generator": {"name": "tiny_space", "params": {"values": values}}},
                "splits": {"train": {"size": size, "seed": 0}},
                "prompt": {"template": "{question}"},
                "answer_field": "answer",
                "level_field": "level",
                "verifier": {"name": "exact"},
            }
        )
    )
    return get_task(str(tmp_path / "tiny_space.yaml"))


@pytest.fixture
def tiny_space(monkeypatch):
    def generate(*, seed, split, index, partition=(0, 1), values=3):
        from harness.generators import seeded_rng

        level = 1 + index % 2
        x = seeded_rng(seed, split, index).randrange(values)
        return {"question": f"level {level}: {x}?", "answer": str(x), "level": level}  # no metadata.key: hashed

    monkeypatch.setitem(GENERATORS._items, "tiny_space", generate)
    monkeypatch.setattr(data, "_PREFIX", {})


def test_repeats_are_redrawn_at_the_same_index_and_offsets_read_the_tail(tiny_space, tmp_path):
    spec = _tiny_space_task(tmp_path, size=12, values=6)
    full = load_split(spec, "train")
    assert len({r["question"] for r in full}) == 12
    assert [r["level"] for r in full] == [1, 2] * 6  # level balance: index % levels
    data._PREFIX.clear()  # a fresh process reading only the tail sees the same samples
    assert load_split(spec, "train", offset=7) == full[7:]
    assert load_split(spec, "train", limit=9, offset=3) == full[3:9]
    assert load_split(spec, "train", limit=5) == full[:5]


def test_a_split_too_small_for_its_params_is_one_clear_error(tiny_space, tmp_path):
    spec = _tiny_space_task(tmp_path, size=12, values=3)  # 3 distinct puzzles per level, 6 in all
    assert len(load_split(spec, "train", limit=6)) == 6  # a prefix that fits still loads
    with pytest.raises(HarnessError) as e:
        load_split(spec, "train")
    msg = str(e.value)
    assert "cannot hold 12 distinct puzzles: only 6 were found" in msg
    assert "lower splits.train.size or widen splits.train.params" in msg


def test_kk_uses_the_generators_canonical_key():
    spec = get_task("kk")
    row = load_split(spec, "val", limit=1)[0]
    assert puzzle_key(row) == row["metadata"]["key"]
