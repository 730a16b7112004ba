#!/usr/bin/env bash
# LLM.generate (the tessera package) beside llama-cpp-python on the same model, prompts and
# greedy settings (bench/python_generate.py), one engine after the other on an idle machine.
#
#   make python                                   # the tessera package in build/pyvenv
#   python3 -m venv ~/llamacpp-py-venv && ~/llamacpp-py-venv/bin/pip install llama-cpp-python
#   bench/python_compare.sh ~/llamacpp-py-venv [MODEL] [THREADS] [PROMPTS] [MAX_TOKENS]
#
# llama-cpp-python builds llama.cpp from its source distribution (CPU, the default flags).
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_VENV=${1:?usage: $0 LLAMA_CPP_PYTHON_VENV [MODEL] [THREADS] [PROMPTS] [MAX_TOKENS]}
MODEL=${2:-models/SmolLM2-135M-Instruct-Q4_1.gguf}
THREADS=${3:-$(nproc)}
PROMPTS=${4:-64}
MAX_TOKENS=${5:-64}
TESSERA_PY=${TESSERA_PY:-build/pyvenv/bin/python}
args=(--model "$MODEL" --threads "$THREADS" --prompts "$PROMPTS" --max-tokens "$MAX_TOKENS")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$TESSERA_PY" bench/python_generate.py --engine tessera "${args[@]}" 2>/dev/null | tee -a "$out"
"$LLAMA_VENV/bin/python" bench/python_generate.py --engine llama-cpp "${args[@]}" 2>/dev/null |
  tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"\n{'engine':18} {'mode':6} {'prompts':>7} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
for r in rows:
    print(f"{r['engine']:18} {r['mode']:6} {r['prompts']:7} {r['generated_tokens']:7} "
          f"{r['seconds']:8.2f} {r['tokens_per_second']:9.1f}")
PY
