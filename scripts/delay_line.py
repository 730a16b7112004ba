#!/usr/bin/env python3
"""A one-way delay on every packet between two network namespaces, in user space: for
kernels without tc's netem qdisc (CONFIG_NET_SCH_NETEM unset), where
`tc qdisc add dev X root netem delay 0.2ms` fails.

    delay_line.py NS_A ADDR_A NS_B ADDR_B DELAY_MS [--name PREFIX]

makes a tun device in each namespace (PREFIX-a in NS_A with ADDR_A/24, PREFIX-b in NS_B with
ADDR_B/24; MTU 65000), then carries every IP packet read from one to the other DELAY_MS
later, in both directions, until SIGTERM/SIGINT. Traffic between ADDR_A and ADDR_B then
crosses one process that holds each packet for the delay: the latency of a real link, and a
bandwidth limited by this process's copying (measure it; it is not a property of the
namespaces). tun devices get no offloads, so the kernel hands over whole, checksummed
packets, each at most the MTU. Prints "ready" on stdout once the devices are up. Needs root.
"""
import ctypes
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000
MTU = 65000
SPIN = 300e-6


def open_tun_in(ns, name):
    """A tun device named `name` in namespace `ns`; its fd stays tied to that namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        if libc.setns(here, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(here)
        os.close(there)
    os.set_blocking(fd, False)
    return fd


def main():
    args = sys.argv[1:]
    prefix = "dl"
    if "--name" in args:
        i = args.index("--name")
        prefix = args[i + 1]
        del args[i:i + 2]
    if len(args) != 5:
        sys.exit(__doc__)
    ns_a, addr_a, ns_b, addr_b, delay_ms = args
    delay = float(delay_ms) / 1e3
    fds = {}
    for ns, addr, side in ((ns_a, addr_a, "a"), (ns_b, addr_b, "b")):
        dev = f"{prefix}-{side}"
        fds[side] = open_tun_in(ns, dev)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "mtu", str(MTU), "up"], check=True)
    a, b = fds["a"], fds["b"]
    other = {a: b, b: a}
    queue = deque()  # (due time, out fd, packet), in arrival order: one delay, so due order
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        # A sleeping select() wakes up to ~100 us late (timer slack, wake-up on a busy
        # machine): within SPIN of the next packet's time it polls instead of sleeping.
        timeout = max(0.0, queue[0][0] - time.monotonic() - SPIN) if queue else 0.5
        try:
            readable, _, _ = select.select([a, b], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            while True:  # drain: packets that arrive together leave together
                try:
                    pkt = os.read(fd, MTU + 64)
                except BlockingIOError:
                    break
                queue.append((now + delay, other[fd], pkt))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, fd, pkt = queue.popleft()
            try:
                os.write(fd, pkt)
            except (BlockingIOError, OSError):
                pass  # a full device queue drops the packet, as a link would; TCP resends


if __name__ == "__main__":
    main()
