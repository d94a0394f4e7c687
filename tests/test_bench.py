"""The prepared GPU check runs end to end on a CPU with --smoke: every stage measured, one table."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_smoke_runs_every_stage(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "HARNESS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "rows.json"
    res = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--smoke", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["stage"] for r in rows] == ["generation", "grpo", "sft", "effect"]
    assert all(r["rate"] > 0 and r["seconds"] > 0 and r["peak_gb"] > 0 for r in rows)
    assert "gpu_check:" in res.stdout and "tokens/s" in res.stdout and "samples/s" in res.stdout
