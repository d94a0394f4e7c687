"""Task registry and YAML schema: every built-in task loads and scores its own reference; bad files get exact
messages."""

from pathlib import Path

import pytest

from harness.data import load_split, render_prompt
from harness.errors import HarnessError
from harness.tasks import builtin_dir, discover, get_task
from harness.taskspec import validate_file
from harness.verifiers import get_verifier

FIX = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("tid", sorted(discover()))
def test_every_builtin_task_loads_and_scores_its_reference(tid):
    spec = get_task(tid)
    verifier = get_verifier(spec.verifier.name, spec.verifier.params)
    loaded = {split: load_split(spec, split, limit=3, partial=True) for split in spec.splits}
    # a hub task's shipped sample (tests/fixtures/data) is shorter than its val / rl windows
    assert loaded.get("test") and sum(map(bool, loaded.values())) >= 2, {k: len(v) for k, v in loaded.items()}
    for split, samples in loaded.items():
        for s in samples:
            render_prompt(spec, s)
            assert verifier(f"The answer is \\boxed{{{s['answer']}}}", s["answer"]).score == 1.0
            for trace in s["traces"].values():
                assert verifier(trace, s["answer"]).score == 1.0
            assert verifier("I do not know.", s["answer"]).score == 0.0


def test_kk_default_splits_match_the_paper():
    spec = get_task("kk")
    assert {k: v.size for k, v in spec.splits.items()} == {"sft": 1000, "val": 100, "rl": 10000, "test": 500}
    test = load_split(spec, "test")
    assert sorted({s["level"] for s in test}) == [4, 5, 6, 7, 8]
    assert all(sum(s["level"] == lv for s in test) == 100 for lv in range(4, 9))


def test_kk_splits_share_no_puzzle():
    spec = get_task("kk")
    keys = {split: {s["metadata"]["key"] for s in load_split(spec, split, limit=400)} for split in spec.splits}
    names = sorted(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not keys[a] & keys[b], (a, b)


def test_sample_is_pure_function_of_seed_split_index():
    spec = get_task("kk")
    a = load_split(spec, "rl", limit=20)
    b = load_split(spec, "rl", limit=20)
    assert a == b
    assert load_split(spec, "rl", limit=25)[:20] == a


EXPECTED_ERRORS = {
    "typo_keys.yaml": [
        "typo_keys.yaml:5: splits.test.sise: Extra inputs are not permitted; did you mean 'size'?",
        "typo_keys.yaml:8: verifer: Extra inputs are not permitted; did you mean 'verifier'?",
        "typo_keys.yaml:1: verifier: Field required; add the key 'verifier'",
    ],
    "unknown_names.yaml": [
        "unknown_names.yaml:8: verifier: unknown verifier 'kk_boxd': did you mean 'kk_boxed'?",
        "unknown_names.yaml:3: source.generator.name: unknown generator 'kkk'; did you mean 'kk'?",
    ],
    "two_sources.yaml": [
        "two_sources.yaml:2: source: give exactly one of 'generator', 'file', 'hf' or 'reasoning_gym' "
        "(found: generator, file)",
        "two_sources.yaml:6: splits.test.size: Input should be greater than or equal to 1; fix the value",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_bad_yaml_reports_every_error_with_line_and_fix(name):
    spec, errors = validate_file(FIX / "bad_tasks" / name)
    assert spec is None
    got = [e.replace(str(FIX / "bad_tasks") + "/", "") for e in errors]
    for want in EXPECTED_ERRORS[name]:
        assert want in got, f"missing {want!r} in {got}"
    assert len(got) >= len(EXPECTED_ERRORS[name])


def test_template_syntax_error_is_reported():
    _, errors = validate_file(FIX / "bad_tasks" / "two_sources.yaml")
    assert any(
        "two_sources.yaml:7: prompt: template is not a valid format string" in e and "'{{'" in e for e in errors
    ), errors


def test_invalid_yaml_syntax_names_the_line():
    _, errors = validate_file(FIX / "bad_tasks" / "bad_yaml.yaml")
    assert len(errors) == 1 and "bad_yaml.yaml:" in errors[0] and "invalid YAML" in errors[0]


def test_missing_data_file_is_named():
    _, errors = validate_file(FIX / "bad_tasks" / "missing_file.yaml")
    assert any("does_not_exist.jsonl does not exist" in e for e in errors), errors


def test_user_task_folder_and_file_source():
    spec = get_task("arith", [FIX / "user_tasks"])
    rows = load_split(spec, "test")
    assert [r["question"] for r in rows] == ["2 + 3", "10 - 4", "3 * 7"]
    assert [r["answer"] for r in rows] == ["5", "6", "21"]
    assert render_prompt(spec, rows[0]) == "Q: 2 + 3\nA:"
    assert len(load_split(spec, "train")) == 2


def test_user_task_may_not_shadow_builtin():
    with pytest.raises(HarnessError, match="already defined by"):
        discover([FIX / "shadow"])


def test_env_var_adds_task_folders(monkeypatch):
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(FIX / "user_tasks"))
    assert "arith" in discover()


def test_unknown_task_and_split_say_did_you_mean():
    with pytest.raises(HarnessError, match="did you mean 'kk'"):
        get_task("kkk")
    with pytest.raises(HarnessError, match="did you mean 'test'"):
        get_task("kk").split("tset")


def test_builtin_dir_holds_kk():
    assert (builtin_dir() / "kk.yaml").is_file()


def test_offset_reads_a_window_without_changing_samples():
    spec = get_task("kk")
    assert load_split(spec, "rl", limit=12, offset=5) == load_split(spec, "rl", limit=12)[5:]
    user = get_task("arith", [FIX / "user_tasks"])
    assert load_split(user, "test", offset=1) == load_split(user, "test")[1:]
