"""The multi-process path (`accelerate launch`, DDP) on CPU: 2 processes train one stage, rank 0 writes one record."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_accelerate_run(tiny_kk, tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is part of the train extra"
    # `--multi_gpu` is accelerate's torchrun launcher; with no GPU the processes train DDP on the CPU (gloo).
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "harness.cli",
        "run",
        "--task",
        "kk",
        "--method",
        "sft",
        "--budget",
        "16",
        "--runs-dir",
        str(tmp_path),
    ]
    for s in ["sft.max_steps=2", "sft.batch_size=2", "eval.limit=2", "eval.max_new_tokens=8"]:
        cmd += ["--set", s]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [p for p in tmp_path.iterdir() if (p / "record.json").is_file()]
    assert len(records) == 1  # rank 0 alone evaluates and writes
    rec = json.loads((records[0] / "record.json").read_text())
    stage = json.loads((next((tmp_path / "_stages").glob("sft-*")) / "stage.json").read_text())
    assert stage["world_size"] == 2
    # 2 steps x 2 sequences per device x 2 processes, counted over both ranks.
    assert rec["counts"]["sequences_trained"] == 8
    assert rec["counts"]["optimizer_steps"] == 2
