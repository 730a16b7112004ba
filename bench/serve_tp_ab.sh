#!/usr/bin/env bash
# Serving throughput of one process against a tensor-parallel server on the same cores:
# A = `tessera serve -t THREADS`, B = `mpirun -np TP tessera serve -t THREADS/TP
# --tensor-parallel-size TP` (the same threads in all), alternated A B A B (ROUNDS times),
# each on a fresh server, driven by `tessera bench serve` at each concurrency. Prints output
# tokens/s and the TTFT / TPOT / ITL / end-to-end latency (mean, median, p99) per run.
#
#   bench/serve_tp_ab.sh BINARY MODEL.gguf
#
# Env: CONCURRENCY="8"  TP=2  THREADS=2  INPUT_LEN=64  OUTPUT_LEN=64  NUM_PROMPTS=(4 x c)
#      ROUNDS=2  PORT=22500  TP_FLAGS="" (e.g. --tp-exact)  EXTRA_BODY="" (bench serve's
#      --extra-body). A synthetic model (make bench-models) has text only for its byte
#      tokens: EXTRA_BODY='{"logit_bias": {"65": 100, ..., "90": 100}}' keeps its output to
#      the letters A-Z, so every token streams text (the work per token is the same).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: bench/serve_tp_ab.sh BINARY MODEL.gguf}
MODEL=${2:?usage}
CONCURRENCY=${CONCURRENCY:-8}
TP=${TP:-2}
THREADS=${THREADS:-2}
INPUT_LEN=${INPUT_LEN:-64}
OUTPUT_LEN=${OUTPUT_LEN:-64}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-22500}
TP_FLAGS=${TP_FLAGS:-}
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

RUN=0
run_one() {  # label concurrency
  RUN=$((RUN + 1)); local port=$((PORT + RUN)) pid
  local serve=("$BIN" serve -m "$MODEL" --port "$port" --max-model-len 512)
  if [ "$1" = A ]; then
    "${serve[@]}" -t "$THREADS" >"$OUT/server.log" 2>&1 &
  else
    # shellcheck disable=SC2086
    mpirun --allow-run-as-root --oversubscribe -np "$TP" "${serve[@]}" -t $((THREADS / TP)) \
      --tensor-parallel-size "$TP" $TP_FLAGS >"$OUT/server.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local n=${NUM_PROMPTS:-$((4 * $2))}
  "$BIN" bench serve --port "$port" --num-prompts "$n" --max-concurrency "$2" --seed "$2" \
    --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --token-id-max 500 -q \
    ${EXTRA_BODY:+--extra-body "$EXTRA_BODY"} --json "$OUT/r.json" >"$OUT/bench.txt" 2>&1 || { tail -n 5 "$OUT/bench.txt" "$OUT/server.log" >&2; }
  # Rank 0 drains and stops the other ranks; mpirun then exits 0.
  if [ "$1" = A ]; then kill -TERM "$pid"; else pkill -TERM -P "$pid" -f "serve -m" || true; fi
  wait "$pid" || true
  python3 - "$1" "$2" "$OUT/r.json" <<'EOF'
import json, sys
label, c, path = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
name = "TP=1" if label == "A" else "TP>1"
print(f"{label} {name} c={c:>3}  output tok/s {r['output_throughput']:8.2f}  req/s "
      f"{r['request_throughput']:6.3f}  completed {r['completed']}  failed {r['failed']}")
for m in ("ttft", "tpot", "itl", "e2el"):
    print(f"      {m:5} ms  mean {r[f'mean_{m}_ms']:9.1f}  median {r[f'median_{m}_ms']:9.1f}  "
          f"p99 {r[f'p99_{m}_ms']:9.1f}")
EOF
}

for c in $CONCURRENCY; do
  for _ in $(seq 1 "$ROUNDS"); do
    run_one A "$c"
    run_one B "$c"
  done
done
