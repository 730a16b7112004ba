#!/usr/bin/env bash
# Tessera's `bench` against llama.cpp's llama-bench on the same models, same thread count,
# one after the other per model. Writes every output to OUT_DIR (default
# /tmp/tessera-latency-<date>); bench/summarize_latency.py OUT_DIR makes the tables.
#   bench/compare_llama_bench.sh MODEL...
# Environment: THREADS (2), P (512), N (128), R (3), BUILD (build),
# LLAMA_BENCH (/work/ref/build/bin/llama-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_BENCH=${LLAMA_BENCH:-/work/ref/build/bin/llama-bench}
THREADS=${THREADS:-2} P=${P:-512} N=${N:-128} R=${R:-3} BUILD=${BUILD:-build}
OUT=${OUT_DIR:-/tmp/tessera-latency-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
log() { echo "$(date +%T) $*" | tee -a "$OUT/log.txt"; }
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/tessera" bench bandwidth -t "$THREADS" --json > "$OUT/bandwidth.json"
log "bandwidth: $(grep best_gbs "$OUT/bandwidth.json")"
for m in "$@"; do
  name=$(basename "$m" .gguf)
  log "tessera $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -v "$BUILD/tessera" bench -m "$m" -t "$THREADS" -p "$P" -n "$N" -r "$R" --json \
      > "$OUT/$name.tessera.json" 2> "$OUT/$name.tessera.stderr"
  log "llama-bench $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -v "$LLAMA_BENCH" -m "$m" -t "$THREADS" -p "$P" -n "$N" -r "$R" -o json \
      > "$OUT/$name.llama.json" 2> "$OUT/$name.llama.stderr"
done
log "done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
