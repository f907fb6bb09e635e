"""Idle latency: a kernel ``ping -i 0.2`` to the stack, per engine, and kernel to kernel.

Run (root): .venv/bin/python bench/idle_ping.py [--count 25] [--runs 5] [--engines uring,plain]

An idle server's latency is mostly the cost of waking it: every request finds the
process asleep. For each ``--engines`` entry a stack (``python -m ethox_asyncio echo``,
which answers ICMP echo in the stack) runs on the TAP of a test topology
(``ethox_asyncio.netns``) and the kernel side pings it ``--count`` times, 0.2 s apart;
the same ping goes from that namespace over a veth pair to a second namespace
(kernel to kernel: the floor of the virtual link). Each of ``--runs`` rounds measures
every path once (the order rotated per round); per path the table gives the median of
the rounds' median RTTs and the spread of those medians. Bounded: count x 0.2 s per
measurement, every process started and stopped by pid, namespaces and links removed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time

from _process import ServerProcess, veth_namespace

from ethox_asyncio.netns import topology

STACK_IP = "198.18.0.2"
VETH_CLIENT, VETH_SERVER = "198.18.1.1", "198.18.1.2"
_RTT = re.compile(r"time=([0-9.]+) ms")


def kernel_peer(client_netns: str) -> contextlib.AbstractContextManager[str]:
    """A second namespace at VETH_SERVER, veth-linked to the client's namespace."""
    pid = os.getpid()
    return veth_namespace(client_netns, f"ethox-bench-{pid}-ping", f"epc{pid}", f"eps{pid}",
                          f"{VETH_CLIENT}/24", [f"{VETH_SERVER}/24"])


def ping(netns: str, host: str, count: int) -> list[float]:
    """RTTs in ms of ``count`` pings 0.2 s apart (bounded by -w)."""
    deadline = int(count * 0.2 + 10)
    result = subprocess.run(["ip", "netns", "exec", netns, "ping", "-n", "-i", "0.2", "-c",
                             str(count), "-w", str(deadline), host],
                            capture_output=True, text=True, timeout=deadline + 10, check=False)
    return [float(match) for match in _RTT.findall(result.stdout)]


def stack_server(device: str) -> ServerProcess:
    env_cmd = ["env", f"ETHOX_DEVICE={device}", f"ETHOX_ADDRESS={STACK_IP}/24",
               sys.executable, "-m", "ethox_asyncio", "echo", "--udp"]
    server = ServerProcess(env_cmd, ready_timeout=15, stop_timeout=5)
    if not server.ready_words:
        raise server.not_ready()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=25, help="pings per measurement")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engines", default="uring,plain")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("idle_ping.py needs root (network namespaces)", file=sys.stderr)
        return 2
    engines = [engine for engine in args.engines.split(",") if engine]
    paths = [f"ethox ({engine})" for engine in engines] + ["kernel to kernel (veth)"]
    medians: dict[str, list[float]] = {path: [] for path in paths}
    with topology("tap") as topo, kernel_peer(topo.netns):
        for round_no in range(args.runs):
            order = paths[round_no % len(paths):] + paths[:round_no % len(paths)]
            for path in order:
                if path.startswith("ethox"):
                    engine = path[len("ethox ("):-1]
                    server = stack_server(f"{topo.device_spec},engine={engine}")
                    try:
                        time.sleep(0.3)
                        rtts = ping(topo.netns, STACK_IP, args.count)
                    finally:
                        server.stop()
                else:
                    rtts = ping(topo.netns, VETH_SERVER, args.count)
                if len(rtts) < args.count // 2:
                    print(f"  {path}: only {len(rtts)} replies", file=sys.stderr)
                if rtts:
                    medians[path].append(statistics.median(rtts))
                    print(f"  round {round_no}: {path:26s} median {medians[path][-1]:.3f} ms",
                          file=sys.stderr)
    print("| path | median RTT (ms) | spread of the run medians |")
    print("|---|---|---|")
    for path in paths:
        values = medians[path]
        if values:
            print(f"| {path} | {statistics.median(values):.3f} | "
                  f"{min(values):.3f}–{max(values):.3f} |")
        else:
            print(f"| {path} | no replies | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
