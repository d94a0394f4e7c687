"""Plugins (harness/plugins.py): user code from outside the repository registers verifiers and generators, loaded by
--plugin, $HARNESS_PLUGINS or an installed entry point. The CLI tests run `python -m harness.cli` in a subprocess, in
a folder outside the repository, so that nothing registered here leaks into the other tests' process."""

import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness import plugins
from harness.errors import HarnessError
from harness.generators import GENERATORS
from harness.verifiers import VERIFIERS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugins"
CODE_ROOT = Path(harness.__file__).resolve().parent.parent  # the harness under test, also in the subprocesses
PLUGIN_REASONS = {"correct", "wrong", "no_parity"}  # the example verifier's reasons; no built-in gives no_parity


@pytest.fixture
def outside(tmp_path):
    """The example plugin, its tasks and data, copied to a folder outside the repository."""
    folder = tmp_path / "my_plugins"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    return folder


def cli(*args, cwd, env=None):
    """`harness ARGS` as a user runs it: a fresh process, in `cwd`, with $HARNESS_PLUGINS only when given."""
    environ = {k: v for k, v in os.environ.items() if k != plugins.ENV_VAR}
    environ["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT), environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def only_record(runs: Path) -> dict:
    (folder,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    rows = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
    return {**json.loads((folder / "record.json").read_text()), "samples": rows}


def assert_scored_by_the_plugin(record: dict, plugin_file: Path, n: int) -> None:
    prov = record["provenance"]
    assert prov["verifier"]["name"] == "parity"
    assert [(p["file"], p["sha256"], p["source"]) for p in prov["plugins"]] == [
        (str(plugin_file), hashlib.sha256(plugin_file.read_bytes()).hexdigest(), "--plugin")
    ]
    assert record["metrics"]["n"] == n and len(record["samples"]) == n
    assert all(v["reason"] in PLUGIN_REASONS for s in record["samples"] for v in s["verdicts"])


# ------------------------------------------------------------------------------------------------ through the CLI


def test_score_uses_a_plugin_verifier_from_outside_the_repository(outside):
    rows = [
        {"id": "a", "response": "1 0 1: two ones, so even", "answer": "even"},
        {"id": "b", "response": "EVEN... no wait, odd", "answer": "odd"},
        {"id": "c", "response": "it is even", "answer": "odd"},
        {"id": "d", "response": "no idea", "answer": "even"},
    ]
    (outside / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli(
        "score",
        "--plugin",
        "parity_plugin.py",
        "--task",
        "parity.yaml",
        "--input",
        "responses.jsonl",
        "--output",
        "verdicts.jsonl",
        cwd=outside,
    )
    assert r.returncode == 0, r.stderr
    assert "parity: accuracy 0.500" in r.stdout and "over 4 responses" in r.stdout
    got = [json.loads(x) for x in (outside / "verdicts.jsonl").read_text().splitlines()]
    assert [(g["score"], g["extracted"], g["reason"]) for g in got] == [
        (1.0, "even", "correct"),
        (1.0, "odd", "correct"),
        (0.0, "even", "wrong"),
        (0.0, None, "no_parity"),
    ]


def test_without_the_plugin_the_verifier_is_unknown_and_the_message_says_how_to_load_it(outside):
    r = cli("tasks", "show", "parity.yaml", cwd=outside)
    assert r.returncode == 2 and "unknown verifier 'parity'" in r.stderr, r.stderr
    assert "--plugin MODULE_OR_FILE or $HARNESS_PLUGINS" in r.stderr and "Traceback" not in r.stderr


def test_eval_on_the_tiny_model_scores_with_the_plugin_and_records_it_once(outside):
    # named twice, by two spellings of one path and by $HARNESS_PLUGINS: one plugin, loaded once
    r = cli(
        "eval",
        "--plugin",
        "parity_plugin.py",
        "--plugin",
        outside / "parity_plugin.py",
        "--task",
        "parity.yaml",
        "--model",
        "tiny",
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "--runs-dir",
        "runs",
        cwd=outside,
        env={plugins.ENV_VAR: str(outside / "parity_plugin.py")},
    )
    assert r.returncode == 0, r.stderr
    record = only_record(outside / "runs")
    assert record["kind"] == "eval" and record["config"]["task"] == "parity"
    assert_scored_by_the_plugin(record, outside / "parity_plugin.py", n=2)


def test_compare_gives_each_cell_its_plugins_so_the_cells_harness_run_works_anywhere(outside, tmp_path):
    task = outside / "parity.yaml"
    r = cli(
        "compare",
        "--plugin",
        "parity_plugin.py",
        "--task",
        task,
        "--methods",
        "base",
        "--budgets",
        "1",
        "--set",
        "eval.limit=2",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "eval.limem=false",
        "--runs-dir",
        tmp_path / "runs",
        "--emit-commands",
        cwd=outside,
    )
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("harness run")]
    args = shlex.split(line)[1:]
    assert args[args.index("--plugin") + 1] == str(outside / "parity_plugin.py")  # absolute: runs from any folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli(*args, cwd=elsewhere)  # another folder, no $HARNESS_PLUGINS: only the forwarded --plugin
    assert r.returncode == 0, r.stderr
    record = only_record(tmp_path / "runs")
    assert record["kind"] == "run" and record["method"] == "base"
    assert_scored_by_the_plugin(record, outside / "parity_plugin.py", n=2)


def test_harness_plugins_loads_a_file_and_a_module_for_tasks_and_data_commands(outside):
    (outside / "pkg").mkdir()
    (outside / "pkg" / "extra_rules.py").write_text(
        "from harness.verifiers import VERIFIERS\nfrom harness.verifiers.builtin import Exact\n\n\n"
        "@VERIFIERS.register('exact_copy')\nclass ExactCopy(Exact):\n    name = 'exact_copy'\n"
    )
    env = {
        plugins.ENV_VAR: os.pathsep.join([str(outside / "parity_plugin.py"), "", "extra_rules"]),
        "PYTHONPATH": os.pathsep.join([str(CODE_ROOT), str(outside / "pkg")]),
    }
    copied = (outside / "parity.yaml").read_text().replace("name: parity", "name: exact_copy")
    (outside / "copied.yaml").write_text(copied)
    r = cli("tasks", "validate", outside, cwd=outside, env=env)  # the names from both plugins resolve
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{outside / n}.yaml: ok" for n in ("copied", "parity", "parity_generated")]
    r = cli(
        "data",
        "export",
        "--task",
        "parity_generated.yaml",
        "--split",
        "test",
        "--limit",
        "5",
        "--out",
        "test.jsonl",
        cwd=outside,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (outside / "test.jsonl").read_text().splitlines()]
    assert [row["level"] for row in rows] == [10, 11, 12, 13, 14]  # the plugin generator's lengths
    for row in rows:
        ones = row["question"].split().count("1")
        assert row["answer"] == ("even", "odd")[ones % 2] and row["metadata"]["ones"] == ones


BROKEN = {
    "syntax.py": ("def verify(:\n", "has a syntax error at {file}:1"),
    "raises.py": (
        "import os\nraise RuntimeError('no licence key found')\n",
        "failed while loading: RuntimeError: no licence key found (at {file}:2)",
    ),
    "duplicate.py": (
        "from harness.verifiers import VERIFIERS\nVERIFIERS.register('exact')(object)\n",
        "registers verifier 'exact', which the harness (harness.verifiers.builtin, a built-in) already "
        "registered; give it another name",
    ),
    "needs_dep.py": ("import surely_not_installed_xyz\n", "needs the module 'surely_not_installed_xyz'"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_plugin_is_one_message_and_exit_2(tmp_path, name):
    code, needle = BROKEN[name]
    (tmp_path / name).write_text(code)
    r = cli("tasks", "show", "kk", "--plugin", name, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: plugin '{name}' (from --plugin) ")
    assert needle.format(file=tmp_path / name) in r.stderr and f"drop --plugin {name}" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("missing.py", "plugin file missing.py (from $HARNESS_PLUGINS) does not exist; check the path"),
        (
            "no_such_module",
            "plugin 'no_such_module' (from $HARNESS_PLUGINS) cannot be imported: there is no module named "
            "'no_such_module'; install the package",
        ),
    ],
)
def test_a_plugin_that_is_not_there_is_one_message_and_exit_2(tmp_path, spec, needle):
    r = cli("score", "--task", "kk", "--input", "x.jsonl", cwd=tmp_path, env={plugins.ENV_VAR: spec})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert needle in r.stderr


def test_a_second_plugin_with_the_same_name_is_refused_naming_the_first(outside):
    shutil.copy(outside / "parity_plugin.py", outside / "parity_copy.py")
    r = cli("tasks", "show", "parity.yaml", "--plugin", "parity_plugin.py", "--plugin", "parity_copy.py", cwd=outside)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        "plugin 'parity_copy.py' (from --plugin) registers verifier 'parity', which plugin 'parity_plugin.py' "
        "(from --plugin) already registered"
    ) in r.stderr


# ------------------------------------------------------------------------------------------------ in-process


@pytest.fixture
def fresh(monkeypatch):
    """Registries, loaded plugins, sys.path and the installed entry points as if no plugin had been loaded; every
    module imported meanwhile is forgotten afterwards."""
    monkeypatch.setattr(VERIFIERS, "_items", dict(VERIFIERS._items))
    monkeypatch.setattr(GENERATORS, "_items", dict(GENERATORS._items))
    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    before = set(sys.modules)
    yield monkeypatch
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_loading_the_same_plugin_again_does_nothing(fresh, outside):
    from harness import records

    fresh.setattr(records, "hardware", dict)  # not what is tested here, and it imports torch
    provenance = records.provenance
    assert "plugins" not in provenance(0)  # records made without plugins stay as they were
    first = plugins.load_plugins([str(outside / "parity_plugin.py")])
    fresh.chdir(outside)
    fresh.setenv(plugins.ENV_VAR, "parity_plugin.py")
    again = plugins.load_plugins(["parity_plugin.py", "./parity_plugin.py"])
    assert again == first and plugins.loaded() == first and len(first) == 1
    assert "parity" in VERIFIERS and "bit_parity" in GENERATORS
    assert [p["file"] for p in provenance(0)["plugins"]] == [str(outside / "parity_plugin.py")]


def test_a_file_plugin_can_import_the_modules_beside_it(fresh, tmp_path):
    (tmp_path / "rules_helpers.py").write_text("NAME = 'sibling_rule'\n")
    (tmp_path / "rules.py").write_text(
        "from rules_helpers import NAME\nfrom harness.generators import GENERATORS\n"
        "GENERATORS.register(NAME)(lambda **kw: {})\n"
    )
    plugins.load_plugins([str(tmp_path / "rules.py")])
    assert "sibling_rule" in GENERATORS


def test_installed_entry_points_are_loaded_and_named_in_errors(fresh, outside):
    fresh.syspath_prepend(str(outside))
    (outside / "broken_rules.py").write_text("raise ValueError('bad config')\n")
    eps = [
        importlib.metadata.EntryPoint("parity", "parity_plugin", plugins.GROUP),
        importlib.metadata.EntryPoint("parity_again", "parity_plugin", plugins.GROUP),
    ]  # one module: loaded once
    seen = []
    fresh.setattr(importlib.metadata, "entry_points", lambda group=None: seen.append(group) or eps)
    (p,) = plugins.load_plugins()
    assert seen == [plugins.GROUP] and "parity" in VERIFIERS
    assert (p.source, p.module, p.file) == ("entry point", "parity_plugin", str(outside / "parity_plugin.py"))
    assert plugins.child_specs([p]) == []  # a child harness finds the installed entry point by itself
    eps.append(importlib.metadata.EntryPoint("broken", "broken_rules", plugins.GROUP))
    with pytest.raises(
        HarnessError,
        match=r"plugin 'broken = broken_rules' \(from entry point\) failed while "
        r"loading: ValueError: bad config .*uninstall the package",
    ):
        plugins.load_plugins()


def test_child_specs_name_files_by_absolute_path_and_modules_by_name(fresh, outside):
    fresh.syspath_prepend(str(outside))
    fresh.chdir(outside)
    loaded = plugins.load_plugins(["parity_plugin.py"])
    (outside / "other_rules.py").write_text("")
    loaded += plugins.load_plugins(["other_rules"])
    assert plugins.child_specs(loaded) == [str(outside / "parity_plugin.py"), "other_rules"]


def test_an_exported_lm_eval_task_scores_with_its_plugin_verifier(outside, tmp_path):
    out = tmp_path / "export"
    r = cli("tasks", "export-lm-eval", "parity.yaml", "--out", out, "--plugin", "parity_plugin.py", cwd=outside)
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads((out / "harness_export.json").read_text()).values()
    assert entry["plugins"] == [str(outside / "parity_plugin.py")]
    # lm-eval imports utils.py in its own process, where nothing loaded the plugin: the sidecar makes it load it
    check = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('utils', {str(out / 'utils.py')!r})\n"
        "u = importlib.util.module_from_spec(spec); spec.loader.exec_module(u)\n"
        f"doc = {{'harness_task': {next(iter(json.loads((out / 'harness_export.json').read_text())))!r}, "
        "'answer': 'odd'}\n"
        "print(json.dumps([u.process_results(doc, [r]) for r in ('so it is odd', 'even', 'no idea')]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV_VAR}
    env["PYTHONPATH"] = str(CODE_ROOT)
    p = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert [g["acc"] for g in got] == [1.0, 0.0, 0.0] and {g["reason"] for g in got} <= PLUGIN_REASONS
    assert got[2]["reason"] == "no_parity"  # only the plugin's verifier says this
