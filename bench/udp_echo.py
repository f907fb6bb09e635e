"""UDP echo benchmark: one asyncio echo application on the ethox stack and on the kernel.

Run (root): .venv/bin/python bench/udp_echo.py [--requests 20000] [--runs 5] [--payload 64]
            [--engines uring,plain] [--kernel asyncio,uvloop] [--pin 0,none]
            [--client c|python] [--warm 2000] [--markdown FILE]
   the figures in docs/performance.md:
            .venv/bin/python bench/udp_echo.py --runs 5 --pin 0/1,0/0,none \
                --kernel asyncio,asyncio-warm,uvloop,c

The application is the same everywhere: a ``DatagramProtocol`` that sends every
datagram back (``Echo`` below). It runs, each time in its own subprocess started
and stopped by pid (so its loop is not this script's), on these server paths
(``--kernel`` picks the kernel-socket ones; default ``asyncio,uvloop``):

1. ethox: ``ethox_asyncio.run(...)`` (uvloop base) on the TAP of a test topology
   (``ethox_asyncio.netns``), at 198.18.0.2, once per ``--engines`` entry
   (device option ``engine=``);
2. kernel asyncio: stock ``asyncio`` (SelectorEventLoop) with a kernel socket;
3. kernel asyncio, malloc warmed (``asyncio-warm``): the same, but the process
   frees one 1 MiB buffer at start. CPython's datagram transport calls
   ``recvfrom(256 KiB)``; above glibc's initial 128 KiB mmap threshold every
   datagram then costs an mmap + mremap + munmap (strace), and UDP traffic never
   frees a chunk large enough to raise the threshold (a TCP server's bulk reads do:
   bench/tcp.py warms that way). A pure UDP asyncio server stays on the slow path
   for ever; any process that once freed a large buffer does not;
4. kernel uvloop: the same app on uvloop;
5. kernel C epoll (``c``): ``bench/epoll_client.c serve``, a trivial C server: the
   ceiling of the client and the kernel path, so a reader can see the client is not
   what limits the Python rows.

The kernel servers run in a second namespace, joined to the client's namespace by a
veth pair (198.18.1.1/24 on the client's side, 198.18.1.2/24 on the server's), so
the kernel path crosses a (virtual) link as the ethox path crosses the TAP.

The client (``--client c``, default) is ``bench/epoll_client.c``'s ``udp`` mode,
built with ``cc -O2`` (see bench/tcp.py), run in the client's namespace (the
topology's, where the kernel side of the TAP is 198.18.0.1): a connected UDP socket,
one outstanding request at a time (ping-pong), a sequence number in each payload, a
lost reply counted and the next request sent after 0.5 s; it reports requests/s,
p50/p99 round-trip latency in µs and its own CPU %. ``--client python`` (also the
fallback without a C compiler) is the earlier Python loop, whose own ceiling is the
``kernel C epoll`` row measured with it.

Pinning (``--pin``, default ``0,none``): ``S/C`` puts the server on CPU S and the
client on CPU C (``taskset``), ``N`` both on N, ``none`` neither. Across the two
vCPUs a one-request-at-a-time exchange pays the vCPU wake-up latency, which on this
VM changes between sessions (~100 µs, or ~25 µs with guest halt-polling:
/work/shared/PLATFORM.md); ``0`` measures the software path without it.

Every server is warmed with ``--warm`` requests after it starts; then --runs runs of
--requests each (each after 100 uncounted requests), each bounded by a 20 s deadline;
medians. Writes a Markdown table to stdout (with the date and loadavg) and to
--markdown FILE (the table only). Everything it
creates (namespaces ``ethox-bench-<pid>-*``, a veth pair, processes) is removed on
exit, errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Any

from _process import ServerProcess, veth_namespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp import build_c_client, parse_pin, pin_label, taskset  # bench/tcp.py

DEADLINE = 20.0  # seconds per client run
READY_TIMEOUT = 20.0  # seconds for a server to print its ready line
STOP_TIMEOUT = 5.0
WARMUP = 100  # requests before each measured run (ARP, caches), not counted
SERVER_LIFETIME = 3600.0  # the C server ends by itself after this
PORT = 7
READY = "ready"
STACK_ADDRESS = IPv4Interface("198.18.0.2/24")  # the topology's stack address
CLIENT_VETH = IPv4Interface("198.18.1.1/24")
SERVER_VETH = IPv4Interface("198.18.1.2/24")

PYTHON_CLIENT = """
import json, socket, sys, time
host, port, count, size, deadline_s, warmup = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                               int(sys.argv[4]), float(sys.argv[5]),
                                               int(sys.argv[6]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.connect((host, port))
pad = bytes(size - 8)
buf = bytearray(65536)
clock = time.perf_counter_ns

def exchange(seq):
    expected = seq.to_bytes(8, "big")
    s.send(expected + pad)
    try:
        while True:
            n = s.recv_into(buf)
            if buf[:8] == expected:
                return n == size
    except TimeoutError:
        return False

seq = lost = bad = 0
stop = time.monotonic() + deadline_s
while seq < warmup and time.monotonic() < stop:
    seq += 1
    exchange(seq)
samples = []
start = clock()
done = 0
while done < count and time.monotonic() < stop:
    seq += 1
    t0 = clock()
    ok = exchange(seq)
    t1 = clock()
    done += 1
    if ok:
        samples.append(t1 - t0)
    else:
        lost += 1
elapsed = (clock() - start) / 1e9
samples.sort()
def pct(p):
    return samples[min(len(samples) - 1, int(p * len(samples)))] / 1e3 if samples else 0.0
print(json.dumps({"requests": done, "answered": len(samples), "lost": lost,
                  "seconds": elapsed, "rps": len(samples) / elapsed if elapsed else 0.0,
                  "p50_us": pct(0.50), "p99_us": pct(0.99)}))
"""


# --- the application (server side) -----------------------------------------------------

class Echo(asyncio.DatagramProtocol):
    """Send every datagram back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(host, port))
    print(READY, flush=True)
    await asyncio.sleep(3600)  # stopped by SIGTERM long before


def server_main(kind: str, host: str, port: int, device: str | None) -> int:
    if kind == "asyncio-warm":
        # glibc raises its mmap threshold to the size of a freed mmapped chunk.
        buffer = bytearray(1 << 20)
        del buffer
    if kind == "ethox":
        import ethox_asyncio
        from ethox_asyncio import StackConfig

        config = StackConfig(device=device, addresses=(STACK_ADDRESS,))
        ethox_asyncio.run(serve(host, port), config=config)
    elif kind == "uvloop":
        import uvloop

        factory: Any = uvloop.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:  # asyncio.run's loop_factory: 3.12+
        runner.run(serve(host, port))
    return 0


# --- the benchmark ---------------------------------------------------------------------

@dataclass
class Path:
    name: str
    kind: str  # "ethox" | "asyncio" | "asyncio-warm" | "uvloop" | "c"
    engine: str | None = None


@dataclass
class Result:
    path: str
    pin: str
    rps: float
    p50_us: float
    p99_us: float
    lost: int
    client_cpu: float | None  # %, from the C client's getrusage


def server_namespace(client_netns: str) -> contextlib.AbstractContextManager[str]:
    """A second namespace for the kernel servers, veth-linked to the client's."""
    pid = os.getpid()
    return veth_namespace(client_netns, f"ethox-bench-{pid}-server", f"ebc{pid}",
                          f"ebs{pid}", str(CLIENT_VETH), [str(SERVER_VETH)])


class Server(ServerProcess):
    """One echo server subprocess, started and stopped by pid."""

    def __init__(self, cmd: list[str]) -> None:
        super().__init__(cmd, ready_timeout=READY_TIMEOUT, stop_timeout=STOP_TIMEOUT)
        if self.ready_words[:1] != [READY.encode()]:  # "ready" or "ready PID" (C server)
            raise self.not_ready()

    def stderr(self) -> str:
        return self.error_text


def server_command(path: Path, pin: str, device_spec: str, server_netns: str,
                   server_binary: str | None) -> list[str]:
    cpus, _ = parse_pin(pin)
    if path.kind == "c":
        assert server_binary
        return ["ip", "netns", "exec", server_netns, *taskset(cpus), server_binary, "serve",
                str(SERVER_VETH.ip), str(SERVER_LIFETIME)]
    script = [sys.executable, os.path.abspath(__file__), "--serve", path.kind]
    if path.kind == "ethox":
        spec = device_spec + (f",engine={path.engine}" if path.engine else "")
        # The device string names the namespace; the process itself needs none.
        return [*taskset(cpus), *script, "--host", str(STACK_ADDRESS.ip), "--device", spec]
    return ["ip", "netns", "exec", server_netns, *taskset(cpus), *script,
            "--host", str(SERVER_VETH.ip)]


def client_run(client_netns: str, pin: str, host: str, requests: int, payload: int,
               client_binary: str | None, warmup: int = WARMUP) -> dict[str, Any]:
    _, cpus = parse_pin(pin)
    prefix = ["ip", "netns", "exec", client_netns, *taskset(cpus)]
    if client_binary:
        cmd = [*prefix, client_binary, "udp", host, str(PORT), str(payload), str(DEADLINE),
               str(requests), str(warmup)]
    else:
        cmd = [*prefix, sys.executable, "-c", PYTHON_CLIENT, host, str(PORT), str(requests),
               str(payload), str(DEADLINE), str(warmup)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * DEADLINE + 10,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"client failed: {result.stderr.strip()[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout)
    if data["answered"] == 0:
        raise RuntimeError(f"no request to {host} was answered: {data}")
    return data


def measure(path: Path, pin: str, args: argparse.Namespace, device_spec: str,
            client_netns: str, server_netns: str, client_binary: str | None,
            server_binary: str | None) -> Result:
    host = str(STACK_ADDRESS.ip) if path.kind == "ethox" else str(SERVER_VETH.ip)
    server = Server(server_command(path, pin, device_spec, server_netns, server_binary))
    try:
        if args.warm:  # a steady state first (ARP, caches, allocator), not counted
            client_run(client_netns, pin, host, args.warm, args.payload, client_binary)
        runs = [client_run(client_netns, pin, host, args.requests, args.payload, client_binary)
                for _ in range(args.runs)]
    finally:
        server.stop()
    cpu = [r["cpu_pct"] for r in runs if "cpu_pct" in r]
    result = Result(path.name, pin, statistics.median(r["rps"] for r in runs),
                    statistics.median(r["p50_us"] for r in runs),
                    statistics.median(r["p99_us"] for r in runs),
                    sum(r["lost"] for r in runs), statistics.median(cpu) if cpu else None)
    note = f"  lost {result.lost}" if result.lost else ""
    client_cpu = f"  client {result.client_cpu:5.1f} %" if result.client_cpu is not None else ""
    print(f"{path.name:34s} pin {pin:5s} {result.rps:10,.0f} req/s  p50 {result.p50_us:7.1f} µs"
          f"  p99 {result.p99_us:7.1f} µs{client_cpu}{note}", file=sys.stderr)
    return result


def render(results: list[Result], paths: list[Path], pins: list[str], payload: int,
           client: str) -> str:
    lines = [f"| path ({payload} B UDP ping-pong, {client} client) | pin | req/s | p50 µs "
             "| p99 µs | ÷ kernel asyncio | ÷ kernel uvloop | client CPU % |",
             "|---|---|---|---|---|---|---|---|"]
    for pin in pins:
        by_path = {r.path: r for r in results if r.pin == pin}
        bases = [by_path.get("kernel asyncio"), by_path.get("kernel uvloop")]
        for path in paths:
            r = by_path[path.name]
            cpu = f"{r.client_cpu:.0f}" if r.client_cpu is not None else "–"
            ratios = [f"{r.rps / b.rps:.2f}" if b else "–" for b in bases]
            lines.append(f"| {r.path} | {pin_label(pin)} | {r.rps:,.0f} | {r.p50_us:.1f} "
                         f"| {r.p99_us:.1f} | {ratios[0]} | {ratios[1]} | {cpu} |")
    return "\n".join(lines) + "\n"


def _loadavg() -> list[str]:
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="per run (default 20000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--payload", type=int, default=64, help="UDP payload bytes, 8..1472")
    parser.add_argument("--engines", default="uring,plain",
                        help="ethox TAP engines, comma-separated (auto, uring, plain)")
    parser.add_argument("--pin", default="0,none",
                        help="SERVER/CLIENT CPUs, N (both), or none; comma-separated list")
    parser.add_argument("--kernel", default="asyncio,uvloop",
                        help="kernel-socket servers, comma-separated: asyncio, asyncio-warm "
                             "(malloc threshold raised), uvloop, c (the C ceiling)")
    parser.add_argument("--client", choices=("c", "python"), default="c",
                        help="the C epoll client (default) or the Python loop")
    parser.add_argument("--warm", type=int, default=2000,
                        help="requests to warm each server before its runs (2000)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--serve", choices=("ethox", "asyncio", "asyncio-warm", "uvloop"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return server_main(args.serve, args.host, PORT, args.device)
    if os.geteuid() != 0:
        print("bench/udp_echo.py needs root (network namespaces, TAP)", file=sys.stderr)
        return 2
    if not 8 <= args.payload <= 1472 or args.requests < 1 or args.runs < 1:
        parser.error("--payload must be 8..1472, --requests and --runs positive")
    engines = [e for e in args.engines.split(",") if e]
    pins = [p for p in args.pin.split(",") if p]
    paths = [Path(f"ethox ({engine})", "ethox", engine) for engine in engines]
    names = {"asyncio": "kernel asyncio", "asyncio-warm": "kernel asyncio, malloc warmed",
             "uvloop": "kernel uvloop", "c": "kernel C epoll"}
    kernels = [k for k in args.kernel.split(",") if k]
    if any(k not in names for k in kernels):
        parser.error(f"--kernel takes {', '.join(names)}")
    paths += [Path(names[k], k) for k in kernels]

    from ethox_asyncio.netns import topology

    # A SIGTERM unwinds through the finally clauses below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: list[Result] = []
    workdir = tempfile.mkdtemp(prefix="ethox-bench-udp-")
    try:
        binary: str | None = None
        try:
            binary = build_c_client(workdir)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"{exc}; the Python client, no C server", file=sys.stderr)
            args.client = "python"
            paths = [p for p in paths if p.kind != "c"]
        client_binary = binary if args.client == "c" else None
        load_before = _loadavg()
        with topology("tap", name=f"ethox-bench-{os.getpid()}-client") as topo:
            assert topo.stack_ipv4 == STACK_ADDRESS
            with server_namespace(topo.netns) as server_netns:
                for pin in pins:
                    for path in paths:
                        results.append(measure(path, pin, args, topo.device_spec, topo.netns,
                                               server_netns, client_binary, binary))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = render(results, paths, pins, args.payload, args.client)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; loadavg before "
          f"{' '.join(load_before)}, after {' '.join(_loadavg())}; {args.runs} runs of "
          f"{args.requests} requests, medians\n\n{table}")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
