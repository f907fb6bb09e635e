"""UDP echo benchmark: one asyncio echo application on the ethox stack and on the kernel.

Run (root): .venv/bin/python bench/udp_echo.py [--requests 20000] [--runs 5] [--payload 64]
            [--engines uring,plain] [--pin 0,none] [--markdown FILE]

The application is the same everywhere: a ``DatagramProtocol`` that sends every
datagram back (``Echo`` below). It runs, each time in its own subprocess started
and stopped by pid (so its loop is not this script's), on three server paths:

1. ethox: ``ethox_asyncio.run(...)`` (uvloop base) on the TAP of a test topology
   (``ethox_asyncio.netns``), at 198.18.0.2, once per ``--engines`` entry
   (device option ``engine=``);
2. kernel asyncio: stock ``asyncio`` (SelectorEventLoop) with a kernel socket;
3. kernel uvloop: the same on uvloop.

The kernel servers run in a second namespace, joined to the client's namespace by a
veth pair (198.18.1.1/24 on the client's side, 198.18.1.2/24 on the server's), so
the kernel path crosses a (virtual) link as the ethox path crosses the TAP.

The client is a bounded Python loop with a connected kernel UDP socket in the
client's namespace (the topology's, where the kernel side of the TAP is
198.18.0.1): one outstanding request at a time (ping-pong), a sequence number in
each payload, a lost reply is counted and the next request sent after 0.5 s. It
prints requests/s and p50/p99 round-trip latency in µs as JSON.

Pinning (``--pin``, default ``0,none``): ``taskset -c 0`` puts client and server on
the same CPU. On this 2-vCPU machine a one-request-at-a-time exchange across the
two vCPUs is capped near 9k req/s by vCPU wake-up latency (~100 µs), whatever the
software (/work/shared/PLATFORM.md); pinned, the figure measures the software path.
``none`` reports the unpinned figure too.

Medians of --runs runs; every run is bounded by --requests and a 20 s deadline.
Writes a Markdown table to stdout (and --markdown FILE). Everything it creates
(namespaces ``ethox-bench-<pid>-*``, a veth pair, processes) is removed on exit,
errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import IO, Any

DEADLINE = 20.0  # seconds per client run
READY_TIMEOUT = 20.0  # seconds for a server to print its ready line
STOP_TIMEOUT = 5.0
WARMUP = 100  # requests before each measured run (ARP, caches), not counted
PORT = 7
READY = "ready"
STACK_ADDRESS = IPv4Interface("198.18.0.2/24")  # the topology's stack address
CLIENT_VETH = IPv4Interface("198.18.1.1/24")
SERVER_VETH = IPv4Interface("198.18.1.2/24")

CLIENT = """
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
    kind: str  # "ethox" | "asyncio" | "uvloop"
    engine: str | None = None


@dataclass
class Result:
    path: str
    pin: str
    rps: float
    p50_us: float
    p99_us: float
    lost: int


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@contextmanager
def server_namespace(client_netns: str) -> Iterator[str]:
    """A second namespace for the kernel servers, veth-linked to the client's."""
    pid = os.getpid()
    netns = f"ethox-bench-{pid}-server"
    client_if, server_if = f"ebc{pid}", f"ebs{pid}"  # IFNAMSIZ: at most 15 characters
    ip("netns", "add", netns)
    try:
        ip("-n", netns, "link", "set", "dev", "lo", "up")
        ip("-n", client_netns, "link", "add", client_if, "type", "veth",
           "peer", "name", server_if, "netns", netns)
        ip("-n", client_netns, "address", "add", str(CLIENT_VETH), "dev", client_if)
        ip("-n", netns, "address", "add", str(SERVER_VETH), "dev", server_if)
        ip("-n", client_netns, "link", "set", "dev", client_if, "up")
        ip("-n", netns, "link", "set", "dev", server_if, "up")
        yield netns
    finally:
        ip("-n", client_netns, "link", "del", "dev", client_if, check=False)
        ip("netns", "del", netns, check=False)


def pinned(pin: str) -> list[str]:
    return [] if pin == "none" else ["taskset", "-c", pin]


class Server:
    """One echo server subprocess, started and stopped by pid."""

    def __init__(self, cmd: list[str]) -> None:
        self.error_text = ""
        self.errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errors,
                                        stdin=subprocess.DEVNULL)
        assert self.process.stdout is not None
        stdout = self.process.stdout
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        while time.monotonic() < deadline and self.process.poll() is None:
            readable, _, _ = select.select([stdout], [], [], 0.2)
            if readable:
                line = stdout.readline()
                break
        if line.strip() != READY.encode():
            self.stop()
            raise RuntimeError(f"server {' '.join(cmd)} did not get ready: {self.stderr()}")

    def stderr(self) -> str:
        return self.error_text

    def stop(self) -> None:
        pid = self.process.pid
        if self.process.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not self.errors.closed:
            self.errors.seek(0)
            self.error_text = self.errors.read().decode(errors="replace").strip()[-2000:]
            self.errors.close()


def server_command(path: Path, pin: str, device_spec: str, server_netns: str) -> list[str]:
    script = [sys.executable, os.path.abspath(__file__), "--serve", path.kind]
    if path.kind == "ethox":
        spec = device_spec + (f",engine={path.engine}" if path.engine else "")
        # The device string names the namespace; the process itself needs none.
        return [*pinned(pin), *script, "--host", str(STACK_ADDRESS.ip), "--device", spec]
    return ["ip", "netns", "exec", server_netns, *pinned(pin), *script,
            "--host", str(SERVER_VETH.ip)]


def client_run(client_netns: str, pin: str, host: str, requests: int,
               payload: int) -> dict[str, Any]:
    cmd = ["ip", "netns", "exec", client_netns, *pinned(pin), sys.executable, "-c", CLIENT,
           host, str(PORT), str(requests), str(payload), str(DEADLINE), str(WARMUP)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * DEADLINE + 10,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"client failed: {result.stderr.strip()[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout)
    if data["answered"] == 0:
        raise RuntimeError(f"no request to {host} was answered: {data}")
    return data


def measure(path: Path, pin: str, args: argparse.Namespace, device_spec: str,
            client_netns: str, server_netns: str) -> Result:
    host = str(STACK_ADDRESS.ip) if path.kind == "ethox" else str(SERVER_VETH.ip)
    server = Server(server_command(path, pin, device_spec, server_netns))
    try:
        runs = [client_run(client_netns, pin, host, args.requests, args.payload)
                for _ in range(args.runs)]
    finally:
        server.stop()
    result = Result(path.name, pin, statistics.median(r["rps"] for r in runs),
                    statistics.median(r["p50_us"] for r in runs),
                    statistics.median(r["p99_us"] for r in runs),
                    sum(r["lost"] for r in runs))
    note = f"  lost {result.lost}" if result.lost else ""
    print(f"{path.name:24s} pin {pin:4s} {result.rps:10,.0f} req/s  p50 {result.p50_us:7.1f} µs"
          f"  p99 {result.p99_us:7.1f} µs{note}", file=sys.stderr)
    return result


def render(results: list[Result], paths: list[Path], pins: list[str], payload: int) -> str:
    lines = [f"| path ({payload} B UDP ping-pong) | pin | req/s | p50 µs | p99 µs "
             "| req/s ÷ kernel asyncio | req/s ÷ kernel uvloop |",
             "|---|---|---|---|---|---|---|"]
    for pin in pins:
        by_path = {r.path: r for r in results if r.pin == pin}
        base_asyncio, base_uvloop = by_path["kernel asyncio"].rps, by_path["kernel uvloop"].rps
        for path in paths:
            r = by_path[path.name]
            pin_text = "none" if pin == "none" else f"cpu {pin}"
            lines.append(f"| {r.path} | {pin_text} | {r.rps:,.0f} | {r.p50_us:.1f} "
                         f"| {r.p99_us:.1f} | {r.rps / base_asyncio:.2f} "
                         f"| {r.rps / base_uvloop:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="per run (default 20000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--payload", type=int, default=64, help="UDP payload bytes, 8..1472")
    parser.add_argument("--engines", default="uring,plain",
                        help="ethox TAP engines, comma-separated (auto, uring, plain)")
    parser.add_argument("--pin", default="0,none",
                        help="CPU for client and server, or none; comma-separated list")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--serve", choices=("ethox", "asyncio", "uvloop"), help=argparse.SUPPRESS)
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
    paths += [Path("kernel asyncio", "asyncio"), Path("kernel uvloop", "uvloop")]

    from ethox_asyncio.netns import topology

    # A SIGTERM unwinds through the finally clauses below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: list[Result] = []
    with topology("tap", name=f"ethox-bench-{os.getpid()}-client") as topo:
        assert topo.stack_ipv4 == STACK_ADDRESS
        with server_namespace(topo.netns) as server_netns:
            for pin in pins:
                for path in paths:
                    results.append(measure(path, pin, args, topo.device_spec, topo.netns,
                                           server_netns))
    table = render(results, paths, pins, args.payload)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
