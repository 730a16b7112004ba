#!/bin/sh
# The measurements behind docs/scale-out.md: collective latency/bandwidth (tessera
# bench-comm) and `tessera run` speed of the Llama-3.2-1B-shaped synthetic model at TP=2 vs
# TP=1, over three links between the two ranks:
#   shm    one host, Open MPI's shared-memory transport (vader)
#   veth   two network namespaces joined by a veth pair, Open MPI's TCP transport
#   delay  the same namespaces, TCP over scripts/delay_line.py (0.2 ms each direction;
#          tc netem where the kernel has it is the usual tool: this kernel has not)
# Rounds alternate the configurations (A B C D, A B C D, ...). Results (JSON, one file per
# measurement, and run.log) go to OUT. Needs root, iproute2, mpirun, build/tessera.
#
#   bench/scale_measure.sh [OUT] [ROUNDS]      (default bench/results/scale-out, 2)
#   FIRST=3 bench/scale_measure.sh OUT 1        one more round, numbered 3
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/scale-out}
ROUNDS=${2:-2}
FIRST=${FIRST:-1}
DELAY_MS=${DELAY_MS:-0.2}
MODEL=${MODEL:-models/synth-Llama-3.2-1B-q4_0.gguf}
BIN=$PWD/build/tessera
NAME=tsm
VETH=10.234.0  # veth addresses (and Open MPI's daemons' connections)
TUN=10.234.1   # the delay line's addresses
mkdir -p "$OUT"
LOG=$OUT/run.log
export OMPI_MCA_btl_vader_single_copy_mechanism=none

cleanup() {
  [ -n "${DL_PID:-}" ] && kill "$DL_PID" 2>/dev/null && wait "$DL_PID" 2>/dev/null
  sh scripts/netns_pair.sh down "$NAME"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
sh scripts/netns_pair.sh down "$NAME"
sh scripts/netns_pair.sh up "$NAME" "$VETH"
# Real-time priority: the ranks busy-poll every core, and a delay line that waits for a core
# adds its wait to every packet.
$(command -v chrt >/dev/null && echo chrt -f 10) python3 scripts/delay_line.py "$NAME-a" "$TUN.1" "$NAME-b" "$TUN.2" "$DELAY_MS" \
  --name "$NAME-d" >"$OUT/delay_line.log" 2>&1 &
DL_PID=$!
sleep 2
grep -q ready "$OUT/delay_line.log"
printf '%s.1 slots=1\n%s.2 slots=1\n' "$VETH" "$VETH" >"$OUT/hostfile"

# mpirun for a configuration: $1 = shm | veth | delay; the rest: the command for each rank.
launch() {
  link=$1
  shift
  case $link in
    shm) mpirun --allow-run-as-root --oversubscribe -np 2 "$@" ;;
    veth | delay)
      subnet=$VETH
      [ "$link" = delay ] && subnet=$TUN
      # --bind-to none: each "host" would pin its rank to core 0, the same core.
      ip netns exec "$NAME-a" mpirun --allow-run-as-root --bind-to none \
        --hostfile "$OUT/hostfile" -np 2 \
        --mca plm_rsh_agent "sh $PWD/scripts/netns_pair.sh agent" \
        --mca oob_tcp_if_include "$VETH.0/24" --mca btl tcp,self \
        --mca btl_tcp_if_include "$subnet.0/24" "$@"
      ;;
  esac
}

head -c 515 /usr/share/common-licenses/GPL-3 >"$OUT/prompt.txt"
RUN="run -m $PWD/$MODEL -f $PWD/$OUT/prompt.txt -n 128 --ignore-eos --temp 0 -c 1024 --json"

for round in $(seq "$FIRST" $((FIRST + ROUNDS - 1))); do
  for link in shm veth delay; do
    echo "== round $round bench-comm $link" | tee -a "$LOG"
    launch "$link" "$BIN" bench-comm --factor 4 --reps 15 \
      >"$OUT/comm_${link}_r$round.json" 2>>"$LOG"
  done
  echo "== round $round run tp1 -t 2" | tee -a "$LOG"
  # shellcheck disable=SC2086
  "$BIN" $RUN -t 2 >"$OUT/run_tp1_r$round.json" 2>>"$LOG"
  for link in shm veth delay; do
    echo "== round $round run tp2 $link -t 1" | tee -a "$LOG"
    # shellcheck disable=SC2086
    launch "$link" "$BIN" $RUN -t 1 --tensor-parallel-size 2 \
      >"$OUT/run_tp2_${link}_r$round.json" 2>>"$LOG"
  done
done
echo "done: $OUT" | tee -a "$LOG"
