import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from the current output")
    parser.addoption("--heavy", action="store_true", help="also run the tests marked heavy (minutes each; not in CI)")


def pytest_collection_modifyitems(config, items):
    """`heavy` tests (real pretrained models trained for a few steps) run only with --heavy."""
    if config.getoption("--heavy"):
        return
    skip = pytest.mark.skip(reason="heavy: run with --heavy")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Tiny models and runs go to a per-session folder, never the user's cache."""
    home = tmp_path_factory.mktemp("harness_home")
    old = {k: os.environ.get(k) for k in ("HARNESS_HOME", "HARNESS_RUNS_DIR", "HARNESS_TASKS_PATH", "HARNESS_DATA_DIR")}
    os.environ["HARNESS_HOME"] = str(home)
    os.environ["HARNESS_RUNS_DIR"] = str(home / "runs")
    # Hub tasks (math, gsm8k) read the small samples shipped in each dataset's format: tests never need the hub.
    os.environ["HARNESS_DATA_DIR"] = os.path.join(os.path.dirname(__file__), "fixtures", "data")
    os.environ.pop("HARNESS_TASKS_PATH", None)
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny_kk(_isolated_home):
    from harness.models import build_tiny
    from harness.tasks import get_task

    return build_tiny(get_task("kk"))
