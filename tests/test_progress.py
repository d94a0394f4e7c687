"""Plain progress lines where no terminal shows a bar: a log file gets a line per interval and one at the end."""

import json

from typer.testing import CliRunner

from harness.cli import app
from harness.progress import Lines


def test_lines_print_at_the_interval_with_eta_and_a_final_line():
    now = [100.0]
    out: list[str] = []
    with Lines("train sft", out.append, every=30, clock=lambda: now[0]) as bar:
        tid = bar.add_task("train sft", total=None, metric="")
        for step in range(1, 11):
            now[0] += 10  # 10 s per step: a line every third step
            bar.update(tid, completed=step, total=10, metric=f"loss {1 / step:.2f}")
    assert out == [
        "[train sft] 3/10  loss 0.33  elapsed 0:30  ETA 1:10",
        "[train sft] 6/10  loss 0.17  elapsed 1:00  ETA 0:40",
        "[train sft] 9/10  loss 0.11  elapsed 1:30  ETA 0:10",
        "[train sft] 10/10  loss 0.10  elapsed 1:40  done",
    ]


def test_a_run_written_to_a_log_shows_progress_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_PROGRESS_INTERVAL", "0")
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--task",
            "kk",
            "--model",
            "tiny",
            "--limit",
            "3",
            "--max-new-tokens",
            "8",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("[")]
    assert lines and lines[-1].endswith("done") and "3/3" in lines[-1], r.output
    assert "\x1b[" not in r.output  # no terminal escapes in a log
    (record,) = tmp_path.glob("*/record.json")
    assert json.loads(record.read_text())["metrics"]["n"] == 3
