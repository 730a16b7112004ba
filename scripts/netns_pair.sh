#!/bin/sh
# Two "hosts" on one machine: network namespaces NAME-a and NAME-b joined by a veth pair
# (NAME-a0 in NAME-a at SUBNET.1, NAME-b0 in NAME-b at SUBNET.2), for multi-host runs of
# mpirun over Open MPI's TCP transport without a second machine. Needs root and iproute2.
#
#   netns_pair.sh up NAME SUBNET [DELAY_MS]  create them; with DELAY_MS, a tc netem delay
#                                            on each end (each direction), when the kernel
#                                            has netem (exit 3 and say so when it has not;
#                                            what was made stays: call down)
#   netns_pair.sh down NAME                  remove them (whatever part exists)
#   netns_pair.sh agent [opts] HOST CMD...   mpirun's rsh agent (--mca plm_rsh_agent): runs
#                                            CMD in the namespace that has address HOST,
#                                            as ssh would run it on that host
#
# With a hostfile naming SUBNET.1 and SUBNET.2, mpirun started inside NAME-a finds SUBNET.1
# to be its own and starts one Open MPI daemon in NAME-b through the agent, so the ranks
# really are on two "hosts" that only the veth joins.
set -eu

die() {
  echo "netns_pair.sh: $*" >&2
  exit 1
}

case "${1:-}" in
  up)
    [ $# -ge 3 ] || die "usage: netns_pair.sh up NAME SUBNET [DELAY_MS]"
    name=$2 subnet=$3 delay=${4:-}
    ip netns add "$name-a"
    ip netns add "$name-b"
    ip link add "$name-a0" type veth peer name "$name-b0"
    for side in a b; do
      ip link set "$name-${side}0" netns "$name-$side"
      ip -n "$name-$side" link set lo up
      ip -n "$name-$side" link set "$name-${side}0" up
    done
    ip -n "$name-a" addr add "$subnet.1/24" dev "$name-a0"
    ip -n "$name-b" addr add "$subnet.2/24" dev "$name-b0"
    if [ -n "$delay" ]; then
      for side in a b; do
        if ! ip netns exec "$name-$side" tc qdisc add dev "$name-${side}0" root netem \
          delay "${delay}ms" 2>/dev/null; then
          echo "netns_pair.sh: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)" >&2
          exit 3
        fi
      done
    fi
    ;;
  down)
    [ $# -ge 2 ] || die "usage: netns_pair.sh down NAME"
    # Deleting a namespace deletes the veth end in it, and with it the peer.
    for side in a b; do ip netns del "$2-$side" 2>/dev/null || true; done
    ip link del "$2-a0" 2>/dev/null || true
    ;;
  agent)
    shift
    while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done  # ssh options (-x)
    [ $# -ge 2 ] || die "usage: netns_pair.sh agent HOST CMD..."
    host=$1
    shift
    for ns in $(ip netns list | cut -d' ' -f1); do
      if ip -n "$ns" -o -4 addr show | grep -q " inet $host/"; then
        # ssh hands the command to a shell on the host; so does this.
        exec ip netns exec "$ns" sh -c "$*"
      fi
    done
    die "no network namespace has the address $host"
    ;;
  *)
    die "usage: netns_pair.sh up NAME SUBNET [DELAY_MS] | down NAME | agent HOST CMD..."
    ;;
esac
