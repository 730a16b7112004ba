#!/usr/bin/env bash
# Structured output cost: `tessera bench serve` on /v1/chat/completions at concurrency 1
# and 32, unconstrained vs a nested JSON Schema (response_format), same server, same run;
# then bench_grammar's compile and mask timings for the conformance suite's schemas.
# With LLAMA_SERVER=/path/to/llama-server, the same load against llama-server with the
# schema in its `json_schema` field, for comparison. Prefix caching is off: both runs send
# the same prompts, and the second must not find them cached.
#
#   bench/structured_output_bench.sh [MODEL.gguf] [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/SmolLM2-135M-Instruct-Q4_1.gguf}
PORT=${2:-22100}
BUILD=${BUILD:-build}
N1=${N1:-8}
N32=${N32:-64}
OUT_LEN=${OUT_LEN:-96}
THREADS=${THREADS:-$(nproc)}

SCHEMA='{"type":"object","properties":{"order_id":{"type":"string","maxLength":12},
"customer":{"type":"object","properties":{"name":{"type":"string","maxLength":40},
"email":{"type":"string","format":"email"}},"required":["name","email"],"additionalProperties":false},
"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string","maxLength":16},
"qty":{"type":"integer","minimum":1,"maximum":100},"price":{"type":"number","minimum":0}},
"required":["sku","qty","price"],"additionalProperties":false}}},
"required":["order_id","customer","items"],"additionalProperties":false}'
SCHEMA=$(echo "$SCHEMA" | tr -d '\n')
RF="{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"order\",\"schema\":$SCHEMA}}}"

run_bench() {  # port label concurrency n extra-body
  local args=(bench serve --port "$1" --endpoint /v1/chat/completions -n "$4" --max-concurrency "$3"
              --output-len "$OUT_LEN" --input-len 32 -q --json "/tmp/so_bench_$2_c$3.json")
  [ -n "$5" ] && args+=(--extra-body "$5")
  echo "== $2, concurrency $3"
  "$BUILD/tessera" "${args[@]}" | grep -Ei "output token throughput|mean tpot|completed|total generated"
}

"$BUILD/tessera" serve -m "$MODEL" --host 127.0.0.1 --port "$PORT" -t "$THREADS" \
  --max-num-seqs 32 --no-prefix-caching >/tmp/so_bench_server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done

for c in 1 32; do
  n=$([ "$c" = 1 ] && echo "$N1" || echo "$N32")
  run_bench "$PORT" unconstrained "$c" "$n" ""
  run_bench "$PORT" json_schema "$c" "$n" "$RF"
done

if [ -n "${LLAMA_SERVER:-}" ]; then
  LPORT=$((PORT + 1))
  "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$LPORT" -t "$THREADS" -np 32 \
    -c $((32 * 512)) >/tmp/so_bench_llama.log 2>&1 &
  LLAMA=$!
  trap 'kill $SERVER $LLAMA 2>/dev/null || true' EXIT
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$LPORT/health" >/dev/null && break; sleep 0.2; done
  for c in 1 32; do
    n=$([ "$c" = 1 ] && echo "$N1" || echo "$N32")
    run_bench "$LPORT" llama_unconstrained "$c" "$n" ""
    run_bench "$LPORT" llama_json_schema "$c" "$n" "{\"json_schema\":$SCHEMA}"
  done
fi

echo "== grammar compile and mask timings (conformance suite)"
(cd tests/e2e && python3 -c 'import json, structured_schemas as s
print(json.dumps([[n, x] for n, x, _ in s.SCHEMAS]))') >/tmp/so_bench_schemas.json
"$BUILD/bench_grammar" "$MODEL" /tmp/so_bench_schemas.json 64 | tail -1
