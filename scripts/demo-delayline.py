#!/usr/bin/env python3
"""A delay line for the latency demo and its namespace test.

Opens one TUN device per argument NAME:MS (in the network namespace it
runs in) and writes every packet the kernel routes out of a device back
into the same device MS milliseconds later, so the packet arrives again on
that device and is forwarded on. Policy routing in the demo's router
namespace sends each client's packets for a region through the device with
that client-region delay. With MS 0 it only echoes: the delay then comes
from `tc qdisc ... netem` on the device, when the kernel has sch_netem.

It prints "ready" once every device exists, and runs until killed. The
devices are not persistent: they go away with the process.
"""

import fcntl
import heapq
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main(args):
    if not args:
        sys.exit("usage: demo-delayline.py NAME:MS ...")
    delay = {}
    for arg in args:
        name, _, ms = arg.partition(":")
        delay[open_tun(name)] = float(ms or 0) / 1000.0
    print("ready", flush=True)
    due = []  # (time, seq, fd, packet)
    seq = 0
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select(list(delay), [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                seq += 1
                heapq.heappush(due, (now + delay[fd], seq, fd, packet))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, fd, packet = heapq.heappop(due)
            try:
                os.write(fd, packet)
            except OSError:
                pass  # a full queue drops the packet, as a link would


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        pass
