"""A user-space stand-in for `tc netem` delay, jitter and reordering (stdlib only).

scripts/netfault.sh uses `tc qdisc ... netem` where the kernel has it
(CONFIG_NET_SCH_NETEM). Some kernels (this project's CI machine among them)
are built without it; there the script sends a namespace's outgoing packets
to an NFQUEUE (`iptables -j NFQUEUE --queue-bypass`) and this program, run in
that namespace, holds each packet for `delay +/- jitter` ms before accepting
it. Verdicts are given by packet id, out of order when their times say so, so
jitter larger than the gap between packets reorders them, as netem does; with
`--reorder P`, a share P of the packets goes at once and overtakes the held
ones (netem's `reorder`). Loss is left to the kernel (`-m statistic`).

It speaks the nfnetlink_queue protocol directly over an AF_NETLINK socket
(what libnetfilter_queue does), copying packet metadata only. With
`--queue-bypass` on the rule, packets flow normally once it exits.

Usage: nfq.py --queue N --delay-ms D [--jitter-ms J] [--reorder P] [--ready FILE]
"""

import argparse
import errno
import heapq
import itertools
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_ACCEPT = 1

seq = itertools.count(1)


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(msg, queue, attrs, flags=NLM_F_REQUEST):
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + b"".join(attrs)
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg
    return struct.pack("=IHHII", 16 + len(body), kind, flags, next(seq), 0) + body


def configure(sock, queue, attrs):
    """Sends one config message and waits for its acknowledgement."""
    sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
    data = sock.recv(65536)
    _, kind, _, _, _ = struct.unpack_from("=IHHII", data)
    if kind == NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", data, 16)
        if code != 0:
            raise OSError(-code, "nfqueue config: " + os.strerror(-code))


def packet_ids(data):
    """The ids of the queued packets in one netlink datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at, end = offset + 20, offset + length
            while at + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, at)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", data, at + 4)[0]
                at += (alen + 3) & ~3
        offset += (length + 3) & ~3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0)
    parser.add_argument("--reorder", type=float, default=0, help="share sent at once (0..1)")
    parser.add_argument("--ready", help="file created once the queue is bound")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    configure(sock, args.queue, [attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0))])
    configure(sock, args.queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))])
    flag = struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)
    configure(sock, args.queue, [attr(NFQA_CFG_MASK, flag), attr(NFQA_CFG_FLAGS, flag)])
    sock.setblocking(False)
    if args.ready:
        open(args.ready, "w").close()

    held = []  # (due, tie, packet id)
    tie = itertools.count()
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            while True:
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as e:  # ENOBUFS: the kernel dropped notifications
                    if e.errno == errno.ENOBUFS:
                        continue
                    raise
                now = time.monotonic()
                for pid in packet_ids(data):
                    if random.random() < args.reorder:
                        wait = 0.0
                    else:
                        wait = max(0.0, args.delay_ms + random.uniform(-args.jitter_ms, args.jitter_ms))
                    heapq.heappush(held, (now + wait / 1000, next(tie), pid))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, pid = heapq.heappop(held)
            verdict = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))
            sock.send(message(NFQNL_MSG_VERDICT, args.queue, [verdict]))


if __name__ == "__main__":
    main()
