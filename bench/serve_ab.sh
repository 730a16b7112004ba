#!/usr/bin/env bash
# A/B serving throughput of two `tessera` binaries on one model, same machine, back to back:
# for each concurrency, A then B then A then B (ROUNDS times), each on a fresh server, driven by
# the same `tessera bench serve` (B's). Prints output tokens/s and request latency per run.
#
#   bench/serve_ab.sh A_BINARY B_BINARY MODEL.gguf
#
# Env: CONCURRENCY="1 8 32"  INPUT_LEN=64  OUTPUT_LEN=64  THREADS=2  ROUNDS=2  PORT=21500
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/serve_ab.sh A_BINARY B_BINARY MODEL.gguf}
B=${2:?usage}
MODEL=${3:?usage}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
INPUT_LEN=${INPUT_LEN:-64}
OUTPUT_LEN=${OUTPUT_LEN:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-21500}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

RUN=0
run_one() {  # label binary concurrency
  # A fresh port per run: sockets of the previous server may still hold its port.
  RUN=$((RUN + 1)); local port=$((PORT + RUN))
  "$2" serve -m "$MODEL" --port "$port" -t "$THREADS" --max-model-len 512 >"$OUT/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local n=$(( 4 * $3 < 8 ? 8 : 4 * $3 ))
  "$B" bench serve --port "$port" --num-prompts "$n" --max-concurrency "$3" --seed "$3" \
    --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --token-id-max 500 -q \
    --json "$OUT/r.json" >"$OUT/bench.txt" 2>&1 || { tail -n 5 "$OUT/bench.txt" "$OUT/server.log" >&2; }
  kill -TERM "$pid"; wait "$pid" || true
  python3 -c "import json,sys; r=json.load(open('$OUT/r.json')); \
print(f\"{sys.argv[1]:2} c={sys.argv[2]:>3}  output tok/s {r['output_throughput']:9.1f}  \
req/s {r['request_throughput']:7.2f}  completed {r['completed']}  failed {r['failed']}\")" "$1" "$3"
}

for c in $CONCURRENCY; do
  for _ in $(seq 1 "$ROUNDS"); do
    run_one A "$A" "$c"
    run_one B "$B" "$c"
  done
done
