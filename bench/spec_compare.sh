#!/usr/bin/env bash
# Speculative decoding speed: Tessera with and without speculation, alternated run by run
# on the same machine, and llama.cpp's speculative decoding on the same pairs when its
# binaries are given.
#
#   bench/spec_compare.sh [draft|ngram|serve|all]
#
#   draft  single stream, quantized self-draft: target SmolLM2 F16 (convert
#          --allow-requantize of the Q4_1 file), draft the Q4_1 file
#   ngram  single stream, n-gram lookup on input-grounded prompts (edit / summarize a
#          ~300-word text, a code edit), targets SmolLM2 Q4_1 and F16 (ChatML) and Gemma 3
#          270M Q4_K_M (Gemma's turns); llama-lookup beside
#   serve  `tessera bench serve` at concurrency 1, 8, 32 with and without n-gram
#          speculation (grounded prompts from a file)
#
# Env: REPS=3 N=128 K=5 THREADS=2 OUT=/tmp/tessera-spec-bench LLAMA_BIN=/work/ref/build/bin
#      CONCURRENCY="1 8 32" PORT=24200 SERVE_SPEC="--speculative-method ngram"
#      SERVE_MODEL=<target for serve; default the Q4_1 file, "f16" for the F16 conversion>
#      MODES="off on" (serve: the order of the runs without and with speculation)
#      NGRAM_TARGETS="smollm2 gemma3" (ngram: which targets)
# Prints one line per configuration: median generation tok/s over REPS (each rep runs every
# configuration once, in turn), acceptance; results also in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
REPS=${REPS:-3}
N=${N:-128}
K=${K:-5}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/tessera-spec-bench}
LLAMA_BIN=${LLAMA_BIN:-/work/ref/build/bin}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
PORT=${PORT:-24200}
SERVE_SPEC=${SERVE_SPEC:-"--speculative-method ngram"}
TESSERA=${TESSERA:-build/tessera}
Q41=models/SmolLM2-135M-Instruct-Q4_1.gguf
GEMMA=${GEMMA:-models/gemma-3-270m-q4_k_m.gguf}
F16=${F16:-$OUT/smollm2-f16.gguf}
mkdir -p "$OUT"
[[ -f $F16 ]] || "$TESSERA" convert -m "$Q41" -o "$F16" --type f16 --allow-requantize --no-progress
export LD_LIBRARY_PATH="$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

TEXT="The town of Millbrook sits in a narrow valley between two ridges of old pine forest. \
For most of its history it was a logging town: the mill on the river cut timber from the \
hills, and the trains carried the boards to the cities on the coast. When the mill closed \
thirty years ago, half of the families left. The ones who stayed opened small shops, a \
bakery, a bicycle repair place and a bookstore that also served coffee. Tourists began to \
come in the summer to walk the trails along the ridges and to swim in the cold river. The \
town council repaired the old railway bridge and turned it into a path for walkers and \
cyclists. Every autumn there is a festival with music in the square, where farmers from the \
valley sell apples, honey and cheese. The school, which nearly closed, now has more children \
than it did twenty years ago, because young families from the city have moved here to work \
from home. Not everyone is happy about the change. Some older residents say that house \
prices have risen so much that their own children cannot afford to live in the town where \
they grew up. Others worry that the quiet streets will fill with cars. The council has \
promised to build twenty new homes for local families and to keep the centre free of \
traffic on weekends. Whether these plans will work is not yet clear, but most people agree \
that Millbrook is more alive today than it has been for a long time, and that the valley \
is still one of the most beautiful places in the region."
CODE="def load_users(path):\n    f = open(path)\n    data = f.read()\n    f.close()\n    users = []\n    for line in data.split('\\\\n'):\n        if line.strip() == '':\n            continue\n        parts = line.split(',')\n        users.append({'name': parts[0], 'email': parts[1], 'age': int(parts[2])})\n    return users\n"
chat() { printf '<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n' "$1"; }
gemma_chat() { printf '<start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n' "$1"; }
TASKS=(
  "Correct the spelling and keep everything else exactly as it is:
$TEXT"
  "Summarize this text:
$TEXT"
  "$(printf "In this code, rename the function load_users to read_users and the variable data to text; output the whole code:\n$CODE")"
)
GROUNDED=() GEMMA_GROUNDED=()
for t in "${TASKS[@]}"; do
  GROUNDED+=("$(chat "$t")")
  GEMMA_GROUNDED+=("$(gemma_chat "$t")")
done
FREE="$(chat "Write a short story about a robot who learns to paint.")"

# tessera run: generation tok/s and the speculative line.
tessera_run() {  # model prompt extra...
  local m=$1 p=$2; shift 2
  "$TESSERA" run -m "$m" -p "$p" -n "$N" --temp 0 -t "$THREADS" --ignore-eos "$@" 2>&1 >/dev/null |
    awk '/generation:/ { for (i = 1; i <= NF; ++i) if ($i ~ /^\(/) { gsub(/\(/, "", $i); tps = $i } }
         /^speculative \(/ { sub(/^speculative \([a-z]+\): /, ""); acc = $0 }
         END { printf "%s\t%s\n", tps, acc }'
}
# llama-speculative: decoded tok/s and acceptance.
llama_spec() {  # target draft prompt
  "$LLAMA_BIN/llama-speculative" -m "$1" -md "$2" -p "$3" -n "$N" --temp 0 -t "$THREADS" \
    -td "$THREADS" --spec-draft-n-max "$K" -c 4096 --ignore-eos 2>&1 |
    awk '/decoded/ { for (i = 1; i <= NF; ++i) if ($i == "speed:") tps = $(i + 1) }
         /accept *=/ { acc = $NF } END { printf "%s\taccept %s\n", tps, acc }'
}
# llama-lookup (prompt-lookup decoding, llama.cpp's n-gram method): decoded tok/s, acceptance.
llama_lookup() {  # model prompt
  "$LLAMA_BIN/llama-lookup" -m "$1" -p "$2" -n "$N" --temp 0 -t "$THREADS" \
    --spec-draft-n-max "$K" -c 4096 --ignore-eos 2>&1 |
    awk '/decoded/ { for (i = 1; i <= NF; ++i) if ($i == "speed:") tps = $(i + 1) }
         /accept *=/ { acc = $NF } END { printf "%s\taccept %s\n", tps, acc }'
}
llama_tg() {  # model: llama-bench tg N
  "$LLAMA_BIN/llama-bench" -m "$1" -p 0 -n "$N" -t "$THREADS" -r 1 -o csv 2>/dev/null |
    awk -F, 'NR > 1 { gsub(/"/, "", $0); print $(NF - 1) }' | tail -1
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# Runs the named configurations REPS times in turn; prints median tok/s per configuration.
compare() {  # label; then config names in CONFIGS (functions cfg_<name> printing "tps\tacc")
  local label=$1; shift
  local -A vals acc
  for r in $(seq 1 "$REPS"); do
    for c in "$@"; do
      local line; line=$("cfg_$c")
      vals[$c]+="$(cut -f1 <<<"$line") "
      acc[$c]=$(cut -f2- <<<"$line")
    done
  done
  local base=""
  for c in "$@"; do
    local med; med=$(tr ' ' '\n' <<<"${vals[$c]}" | grep -v '^$' | median)
    [[ -z $base ]] && base=$med
    printf '%-28s %-30s %8.2f tok/s  x%.2f  [%s] %s\n' "$label" "$c" "$med" \
      "$(awk -v a="$med" -v b="$base" 'BEGIN { print (b > 0 ? a / b : 0) }')" "${vals[$c]% }" \
      "${acc[$c]}" | tee -a "$OUT/summary.txt"
  done
}

if [[ $WHAT == draft || $WHAT == all ]]; then
  PROMPT=$FREE
  cfg_f16_alone() { tessera_run "$F16" "$PROMPT"; }
  cfg_f16_draft_q41() { tessera_run "$F16" "$PROMPT" --speculative-method draft --speculative-model "$Q41" --num-speculative-tokens "$K"; }
  cfg_llama_f16_alone() { printf '%s\t\n' "$(llama_tg "$F16")"; }
  cfg_llama_f16_draft_q41() { llama_spec "$F16" "$Q41" "$PROMPT"; }
  CFGS=(f16_alone f16_draft_q41)
  [[ -x $LLAMA_BIN/llama-bench ]] && CFGS+=(llama_f16_alone)
  [[ -x $LLAMA_BIN/llama-speculative ]] && CFGS+=(llama_f16_draft_q41)
  compare "draft (free-form prompt)" "${CFGS[@]}"
  PROMPT=${GROUNDED[1]}
  compare "draft (summary prompt)" "${CFGS[@]}"
fi

NGRAM_TARGETS=${NGRAM_TARGETS:-"smollm2 gemma3"}
if [[ ($WHAT == ngram || $WHAT == all) && $NGRAM_TARGETS == *smollm2* ]]; then
  for i in 0 1 2; do
    PROMPT=${GROUNDED[$i]}
    cfg_q41_alone() { tessera_run "$Q41" "$PROMPT"; }
    cfg_q41_ngram() { tessera_run "$Q41" "$PROMPT" --speculative-method ngram --num-speculative-tokens "$K"; }
    cfg_f16_alone() { tessera_run "$F16" "$PROMPT"; }
    cfg_f16_ngram() { tessera_run "$F16" "$PROMPT" --speculative-method ngram --num-speculative-tokens "$K"; }
    cfg_llama_q41_alone() { printf '%s\t\n' "$(llama_tg "$Q41")"; }
    cfg_llama_q41_lookup() { llama_lookup "$Q41" "$PROMPT"; }
    cfg_llama_f16_alone() { printf '%s\t\n' "$(llama_tg "$F16")"; }
    cfg_llama_f16_lookup() { llama_lookup "$F16" "$PROMPT"; }
    CFGS=(q41_alone q41_ngram f16_alone f16_ngram)
    [[ -x $LLAMA_BIN/llama-lookup ]] &&
      CFGS+=(llama_q41_alone llama_q41_lookup llama_f16_alone llama_f16_lookup)
    compare "ngram (grounded prompt $i)" "${CFGS[@]}"
  done
fi
# Gemma 3 270M (the base model: it copies the given text or code, where SmolLM2 rewrites it,
# so nearly every proposal is accepted).
if [[ ($WHAT == ngram || $WHAT == all) && $NGRAM_TARGETS == *gemma3* && -f $GEMMA ]]; then
  for i in 0 1 2; do
    PROMPT=${GEMMA_GROUNDED[$i]}
    cfg_gemma_alone() { tessera_run "$GEMMA" "$PROMPT"; }
    cfg_gemma_ngram() { tessera_run "$GEMMA" "$PROMPT" --speculative-method ngram --num-speculative-tokens "$K"; }
    cfg_llama_gemma_alone() { printf '%s\t\n' "$(llama_tg "$GEMMA")"; }
    cfg_llama_gemma_lookup() { llama_lookup "$GEMMA" "$PROMPT"; }
    CFGS=(gemma_alone gemma_ngram)
    [[ -x $LLAMA_BIN/llama-lookup ]] && CFGS+=(llama_gemma_alone llama_gemma_lookup)
    compare "ngram gemma3 (grounded prompt $i, K=$K)" "${CFGS[@]}"
  done
fi

if [[ $WHAT == serve || $WHAT == all ]]; then
  SERVE_TARGET=${SERVE_MODEL:-$Q41}
  [[ $SERVE_TARGET == f16 ]] && SERVE_TARGET=$F16
  PF=$OUT/grounded_prompts.txt
  : > "$PF"
  for p in "${GROUNDED[@]}"; do tr '\n' ' ' <<<"$p" >> "$PF"; echo >> "$PF"; done
  wait_healthy() {
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
  }
  for mode in ${MODES:-off on}; do
    extra=(); [[ $mode == on ]] && read -ra extra <<<"$SERVE_SPEC"
    "$TESSERA" serve -m "$SERVE_TARGET" --port "$PORT" -t "$THREADS" --max-model-len 2048 \
      --kv-cache-memory 512MiB "${extra[@]}" > "$OUT/serve_$mode.log" 2>&1 &
    pid=$!
    wait_healthy "$PORT"
    for c in $CONCURRENCY; do
      n=$(( 2 * c < 4 ? 4 : 2 * c ))
      "$TESSERA" bench serve --port "$PORT" --num-prompts "$n" --max-concurrency "$c" \
        --prompt-file "$PF" --output-len "$N" --ignore-eos --timeout 1200 -q \
        --json "$OUT/serve_${mode}_c$c.json" > "$OUT/serve_${mode}_c$c.txt"
      printf 'serve %-3s c=%-3s %s | %s\n' "$mode" "$c" \
        "$(grep -i 'output token throughput' "$OUT/serve_${mode}_c$c.txt" | head -1)" \
        "$(grep '^Speculative' "$OUT/serve_${mode}_c$c.txt" || true)" | tee -a "$OUT/summary.txt"
    done
    kill "$pid"; wait "$pid" || true
  done
fi
