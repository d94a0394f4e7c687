"""RunStore and the typed records (harness/store.py): the committed records read and write back unchanged, the
schema version, the runs folder's layout in one place, and the leaderboard regenerated from its records."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import harness
from harness import pipeline
from harness.cli import app
from harness.store import SCHEMA_VERSION, RunRecord, RunStore, StageInfo
from harness.tasks import get_task

REPO = Path(harness.__file__).resolve().parent.parent
COMMITTED = sorted(REPO.glob("leaderboards/*/records"))


def test_committed_records_read_typed_and_write_back_unchanged():
    assert COMMITTED
    n = 0
    for root in COMMITTED:
        for rec in RunStore(root).list():
            raw = json.loads((rec.path / "record.json").read_text())
            assert rec.schema == raw.get("schema", 1) and rec.run_id == raw["run_id"]
            if rec.kind == "run":
                assert isinstance(rec.stages, list) and all(isinstance(s, StageInfo) for s in rec.stages)
                assert rec.task == raw["config"]["task"] and rec.budget == raw["budget"]
            back = rec.to_dict()
            assert back.pop("schema") == rec.schema
            if "schema" not in raw:  # written before the field: the same keys and values otherwise
                assert back == raw
            n += 1
    assert n >= 30


def test_a_new_record_carries_the_schema_and_reads_back(tmp_path):
    store = RunStore(tmp_path)
    rec = RunRecord(
        kind="run",
        method="sft",
        budget=100,
        config={"task": "kk", "seed": 3},
        metrics={"accuracy": 0.5},
        stages=[StageInfo(stage="sft", key="abc", cached=False, wall_seconds=2.0)],
        run_id="r1",
        other={"note": "kept"},
    )
    path = store.write(rec, [{"id": "a", "score": 1.0}])
    raw = json.loads((path / "record.json").read_text())
    assert raw["schema"] == SCHEMA_VERSION and raw["note"] == "kept" and raw["stages"][0]["key"] == "abc"
    got = store.find("r1")
    assert got.path == path and got.seed == 3 and got.stages[0].name == "sft-abc" and got.other == {"note": "kept"}
    assert store.find("r1", kind="eval") is None and store.find("nope") is None
    assert store.stage_dir(got.stages[0]) == tmp_path / "_stages" / "sft-abc" == store.stage_dir("sft", "abc")
    with pytest.raises(FileExistsError):
        store.write(rec)


def test_find_reads_the_runs_own_folder_and_still_finds_a_renamed_one(tmp_path, capsys):
    """A run is looked up in <root>/<run_id> without reading every record (a damaged other record is not even
    opened, so it warns nothing); a record whose folder was renamed is still found by its id."""
    store = RunStore(tmp_path)
    for rid in ("r1", "r2"):
        store.write(RunRecord(kind="run", method="sft", budget=1, config={"task": "kk"}, run_id=rid))
    (tmp_path / "r0-broken").mkdir()
    (tmp_path / "r0-broken" / "record.json").write_text("{not json")
    assert store.find("r2").run_id == "r2" and capsys.readouterr().err == ""
    (tmp_path / "r2").rename(tmp_path / "renamed")
    assert store.find("r2").path == tmp_path / "renamed"
    assert store.find("../r1") is None and store.find("") is None
    capsys.readouterr()
    (tmp_path / "r1" / "record.json").write_text(json.dumps({"kind": "run", "run_id": "r1", "schema": 99}))
    assert store.find("r1") is None
    assert len(capsys.readouterr().err.strip().splitlines()) == 1  # warned once, not again by a scan of all


def test_a_record_from_a_newer_harness_is_skipped_with_one_warning(tmp_path, capsys):
    for name, schema in (("a-old", None), ("b-new", SCHEMA_VERSION + 1), ("c-odd", "2"), ("d-now", SCHEMA_VERSION)):
        (tmp_path / name).mkdir()
        rec = {"kind": "run", "run_id": name, **({} if schema is None else {"schema": schema})}
        (tmp_path / name / "record.json").write_text(json.dumps(rec))
    assert [r.run_id for r in RunStore(tmp_path).list()] == ["a-old", "d-now"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("newer than this harness reads" in e for e in err)
    assert "b-new" in err[0] and "upgrade the harness" in err[0]


def test_the_pipeline_caches_stages_where_the_store_says(tmp_path):
    ctx = pipeline.Context(
        task=get_task("kk"), recipe_name="t", recipe={}, base_model="x", base_ref="x", seed=0, root=tmp_path
    )
    info = pipeline.cached_stage(ctx, "sample", {"a": 1}, lambda d: {"made": str(d)})
    assert Path(info["made"]) == RunStore(tmp_path).stage_dir("sample", info["key"])
    assert [s["name"] for s in RunStore(tmp_path).stages()] == [f"sample-{info['key']}"]


def test_inherited_stages_name_the_run_they_came_from(tmp_path):
    # real records list every StageInfo field, inherited_from included (None for a stage the run trained itself)
    st = StageInfo(stage="rl", key="k", counts={"tokens_trained": 5}).to_dict()
    RunStore(tmp_path).write(RunRecord(kind="run", method="rl", stages=[StageInfo.from_dict(st)], run_id="r1"))
    ctx = pipeline.Context(
        task=get_task("kk"), recipe_name="t", recipe={}, base_model="x", base_ref="x", seed=0, root=tmp_path
    )
    pipeline.inherit_stages(ctx, "r1")
    assert ctx.stages[0]["inherited_from"] == "r1" and ctx.stages[0]["cached"] is True


@pytest.mark.parametrize("root", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_leaderboards_regenerate_byte_identical(tmp_path, root):
    task = root.parent.name
    r = CliRunner().invoke(app, ["leaderboard", "--task", task, "--runs-dir", str(root), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    made = sorted(p.name for p in (tmp_path / task).iterdir())
    assert made and set(made) <= {p.name for p in root.parent.iterdir()}
    for name in made:
        new, old = (tmp_path / task / name).read_bytes(), (root.parent / name).read_bytes()
        if name in ("leaderboard.md", "index.html"):  # they print the command that made them, --out included
            new = new.replace(str(tmp_path).encode(), b"leaderboards")
            new = new.replace(str(root).encode(), f"leaderboards/{task}/records".encode())
        assert new == old, name
