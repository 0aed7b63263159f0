#!/usr/bin/env bash
# The GPU checks in one call, for a machine with a CUDA device: the `gpu`-marked tests, then the memory-estimate and
# throughput benchmarks. Writes logs and JSON results to the folder given (default out/gpu).
#
# On a developer machine with the README's environment: bash scripts/gpu_checks.sh
# On a bare GPU machine with torch/transformers/peft/accelerate installed and no network, point the helpers at
# carried copies of the models and data (see tests/gpu_helpers.py):
#   NBTUNE_MINILM=... NBTUNE_SMOLLM2_CONFIG=... NBTUNE_DATA=... PYTHON=python3 bash scripts/gpu_checks.sh OUT
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/gpu}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi; "$PY" -c 'import torch, transformers, peft, accelerate; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "accelerate", accelerate.__version__)'; } > "$OUT/machine.txt" 2>&1
status=0
timeout 300 "$PY" -m pytest -m gpu tests/test_gpu.py -v -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log" || status=1
timeout 120 "$PY" bench/gpu_memory.py --precision auto --out "$OUT/memory_auto.json" > "$OUT/memory.log" 2>&1 || status=1
timeout 120 "$PY" bench/gpu_memory.py --precision no --out "$OUT/memory_fp32.json" >> "$OUT/memory.log" 2>&1 || status=1
timeout 300 "$PY" bench/gpu_throughput.py --out "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.log" || status=1
exit $status
