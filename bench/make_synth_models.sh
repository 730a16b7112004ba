#!/usr/bin/env bash
# Writes random-weight GGUF models of real architectures' shapes (bench/configs/*/config.json)
# to models/, for speed tests: synth-<shape>-<type>.gguf. Both Tessera and llama.cpp load them.
#   bench/make_synth_models.sh [BUILD_DIR] [TYPES...]   (default: build q4_0 q8_0)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
TYPES=("$@")
[ ${#TYPES[@]} -gt 0 ] || TYPES=(q4_0 q8_0)
mkdir -p models
for cfg in bench/configs/*/config.json; do
  shape=$(basename "$(dirname "$cfg")")
  for t in "${TYPES[@]}"; do
    out="models/synth-$shape-$t.gguf"
    if [ -f "$out" ] && [ "$out" -nt "$cfg" ]; then echo "$out: up to date"; continue; fi
    "$BUILD/tessera" convert --load-format dummy -m "$cfg" --type "$t" -o "$out"
  done
done
