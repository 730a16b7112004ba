#!/usr/bin/env bash
# Side-by-side serving benchmark: `tessera serve` and llama.cpp's `llama-server` on the same
# GGUF, same machine, driven by the same `tessera bench serve` at several concurrencies.
#
#   bench/serve_compare.sh MODEL.gguf [LLAMA_SERVER_BINARY]
#
# Env: CONCURRENCY="1 8 32"  INPUT_LEN=256  OUTPUT_LEN=128  THREADS=2  OUT=bench/results
# Each run sends 2 x concurrency requests (at least 4), its prompts drawn with the seed of its
# concurrency, so no run meets prompts an earlier run left in a prefix cache (Tessera's
# automatic one, llama-server's slot caches). llama-server runs with one slot per
# client (-np = max concurrency, continuous batching on) and a context of np x (in + out).
# Results: $OUT/serve_<engine>_c<N>.json plus a summary table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/serve_compare.sh MODEL.gguf [LLAMA_SERVER_BINARY]}
LLAMA_SERVER=${2:-}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
INPUT_LEN=${INPUT_LEN:-256}
OUTPUT_LEN=${OUTPUT_LEN:-128}
THREADS=${THREADS:-2}
OUT=${OUT:-bench/results}
TESSERA=${TESSERA:-build/tessera}
mkdir -p "$OUT"
max_c=0; for c in $CONCURRENCY; do (( c > max_c )) && max_c=$c; done

wait_healthy() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server on port $1 did not become healthy" >&2; return 1
}

run_bench() {  # engine port
  for c in $CONCURRENCY; do
    n=$(( 2 * c < 4 ? 4 : 2 * c ))
    "$TESSERA" bench serve --port "$2" --num-prompts "$n" --max-concurrency "$c" --seed "$c" \
      --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --timeout 1200 -q \
      --json "$OUT/serve_$1_c$c.json" > "$OUT/serve_$1_c$c.txt"
  done
}

port=18300
"$TESSERA" serve -m "$MODEL" --host 127.0.0.1 --port $port -t "$THREADS" \
  --max-num-seqs "$max_c" --max-model-len $(( INPUT_LEN + OUTPUT_LEN + 16 )) \
  > "$OUT/serve_tessera.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_healthy $port
run_bench tessera $port
kill $pid; wait $pid 2>/dev/null || true

if [ -n "$LLAMA_SERVER" ]; then
  port=18301
  "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port $port -t "$THREADS" -np "$max_c" \
    -c $(( max_c * (INPUT_LEN + OUTPUT_LEN + 16) )) -cb > "$OUT/serve_llamacpp.log" 2>&1 &
  pid=$!
  wait_healthy $port
  run_bench llamacpp $port
  kill $pid; wait $pid 2>/dev/null || true
fi

python3 - "$OUT" $CONCURRENCY <<'PY'
import json, os, sys
out, cs = sys.argv[1], sys.argv[2:]
print(f"{'engine':10} {'conc':>4} {'ok':>4} {'out tok/s':>10} {'req/s':>7} {'TTFT p50':>9} {'TPOT p50':>9} {'ITL p50':>8} {'E2E p50':>9}")
for eng in ("tessera", "llamacpp"):
    for c in cs:
        p = f"{out}/serve_{eng}_c{c}.json"
        if not os.path.exists(p): continue
        r = json.load(open(p))
        print(f"{eng:10} {c:>4} {r['completed']:>4} {r['output_throughput']:>10.1f} {r['request_throughput']:>7.2f} "
              f"{r['median_ttft_ms']:>9.0f} {r['median_tpot_ms']:>9.1f} {r['median_itl_ms']:>8.1f} {r['median_e2el_ms']:>9.0f}")
PY
