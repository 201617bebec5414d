#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py; README "A prepared GPU check"): on one CUDA GPU,
# in about 8 minutes, the CUDA tests, one paper-suite step of every method in bf16 and fp32 with its
# peak memory, BasicSR's step beside gankd's, and a 2-process torchrun smoke, in one JSON
# (default results/gpu_check.json). --dry runs the same on the CPU at the smallest sizes.
# Needs no network: the venv (.venv, else $PYTHON or python3 with torch, basicsr and the
# requirements) and the converted weights in $GANKD_CACHE (`gankd assets`; copy them to a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
