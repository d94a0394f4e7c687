#!/usr/bin/env bash
# The prepared GPU check (bench/gpu_check.py): run from the repository root on a GPU machine with the project's
# packages installed (`pip install -e '.[train]'` over the machine's own torch build). About 8 minutes on one H200;
# `--smoke` runs it on a CPU in seconds (tests/test_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HARNESS_HOME="${HARNESS_HOME:-$(mktemp -d)}"   # the tiny tokenizer is built here; nothing else is written
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" bench/gpu_check.py "$@"
