"""TCP benchmark: one asyncio application on the ethox stack and on kernel sockets.

Run (root): .venv/bin/python bench/tcp.py [--runs 3] [--quick] [--engines uring,plain]
            [--pin 0/1,0/0,none] [--markdown FILE] [--json FILE]
            .venv/bin/python bench/tcp.py --profile [--profile-phase pp1] [--engines plain]

The application is the same on every path: an echo server (``Echo``, an
``asyncio.Protocol``), a sink that counts what it receives and answers the count at
EOF (``Sink``) and a source that sends as many bytes as it is asked for
(``Source``, flow-controlled by ``pause_writing``/``resume_writing``). It runs, each
time in a subprocess of its own started and stopped by pid, on:

1. ethox: ``ethox_asyncio.run(...)`` (uvloop base) on a TAP, once per ``--engines``
   entry, each on a TAP of its own in the client's namespace (``ethox-t0`` at
   198.18.0.2, ``ethox-t1`` at 198.18.2.2, ...), so all stack servers live at once
   and the runs interleave; ``uring+rx_buffers=8`` adds device options;
2. kernel asyncio: stock ``asyncio`` (SelectorEventLoop) on kernel sockets;
3. kernel uvloop: the same on uvloop;
4. kernel C epoll: ``epoll_client serve``, a trivial single-threaded C server. It
   is not a competitor: it is the ceiling of the client and the kernel path, so a
   reader can see that the client is not what limits the Python rows.

Kernel servers run in a second namespace joined to the client's by a veth pair
(198.18.1.1/24 on the client's side; 198.18.1.2 asyncio, .3 uvloop, .4 C), so the
kernel path crosses a (virtual) link as the ethox path crosses the TAP.

The client is ``bench/epoll_client.c``, built here with ``cc -O2`` into a temporary
directory, run inside the client namespace. Phases (each a separate client run,
bounded by a count and a deadline):

- ``pp1``/``pp10``: 64-byte ping-pong, 1 and 10 connections, req/s, p50/p99 µs;
- ``conn``: connect + 1 B echo + close, ``--conn-concurrency`` (8) at a time, conn/s
  (the client's namespace gets ``tcp_tw_reuse=1`` and a wide port range, and the
  runs rotate over eight echo ports, so TIME-WAIT never runs out of ports);
- ``up``: the client sends ``--bulk-mb`` MB (or what ``--bulk-seconds`` allows) to
  the sink; Gbit/s of what the sink counted, up to its answer;
- ``down``: the source sends ``--bulk-mb`` MB; Gbit/s up to EOF;
- ``idle``: memory: a *fresh* server (warmed lightly), its RSS before and while the
  client holds ``--idle`` connections (each echoed 1 B): KB per connection. Kernel
  socket memory is not in the RSS of the kernel servers.

Pinning (``--pin``, default ``0/1,0/0,none``): ``0/1`` runs the servers under
``taskset -c 0`` and the client under ``taskset -c 1``; ``0/0`` both on CPU 0 (the
software path without cross-vCPU wake-ups, which on this VM can cost ~100 µs each:
/work/shared/PLATFORM.md); ``none`` pins nothing. All servers of one pin setting are
started, measured once *cold* (a short 1-connection ping-pong straight after start)
and then **warmed** (bulk both ways, ping-pong, connection churn: a fresh CPython
asyncio server is 2-3x slower until a large free raises glibc's mmap threshold,
PLATFORM.md) before anything is measured. Each of ``--runs`` rounds measures every
phase on every server (path order rotated per round); the tables give medians and
the spread. Beside each figure: the server's CPU time per operation and CPU % (from
/proc/PID/stat, all threads; kernel work done in softirq on the client's CPU is
not in it) and the client's CPU % (getrusage).

``--profile`` measures where the stack's time goes instead: per ethox engine, a
warmed server runs one phase (``--profile-phase``, default the 1-connection
ping-pong) once plain (CPU µs per request from /proc/PID/stat), once under cProfile
(started and stopped by SIGUSR1/SIGUSR2) with the top functions by cumulative and by
own time per request, and, with ``py-spy`` on PATH (``pip install py-spy``) or given
by ``--py-spy``, once under py-spy's native sampler (C and kernel-call frames too),
and, with ``strace`` on PATH, once under ``strace -c -f`` for the system calls per
operation; context switches per operation (wake-ups) come from /proc/PID/task/*/status.

Everything this creates (namespaces ``ethox-bench-<pid>-*``, veth ``etc<pid>``/
``ets<pid>``, TAPs ``ethox-t1``..., processes) is removed on exit, errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from typing import Any

from _process import ServerProcess, ip, veth_namespace

HERE = os.path.dirname(os.path.abspath(__file__))
C_SOURCE = os.path.join(HERE, "epoll_client.c")

PORT_ECHO = 7
CONN_PORTS = tuple(range(7001, 7009))  # connection-rate runs rotate over these
PORT_SINK = 9
PORT_SOURCE = 19
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SERVER_LIFETIME = 3600.0  # a server left behind ends by itself
PAYLOAD = 64

CLIENT_VETH = IPv4Interface("198.18.1.1/24")
KERNEL_HOSTS = {"asyncio": "198.18.1.2", "uvloop": "198.18.1.3", "c": "198.18.1.4"}


# --- the application (server side) -----------------------------------------------------

class Echo(asyncio.Protocol):
    """Send every byte back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Sink(asyncio.Protocol):
    """Count the bytes; at EOF answer the count (ASCII, newline) and close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.count = 0

    def data_received(self, data: bytes) -> None:
        self.count += len(data)

    def eof_received(self) -> bool | None:
        self.transport.write(b"%d\n" % self.count)
        return None  # the transport closes after the write buffer


class Source(asyncio.Protocol):
    """Read an 8-byte big-endian count, send that many bytes, close."""

    BLOCK = bytes(256 * 1024)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.header = b""
        self.left = 0
        self.paused = False
        self.done = False

    def data_received(self, data: bytes) -> None:
        if len(self.header) >= 8:
            return
        self.header += data
        if len(self.header) >= 8:
            self.left = int.from_bytes(self.header[:8], "big")
            self.fill()

    def connection_lost(self, exc: Exception | None) -> None:
        self.left = 0  # the client went away (a bulk run cut at its deadline)
        self.done = True

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.fill()

    def fill(self) -> None:
        block = memoryview(self.BLOCK)
        while self.left > 0 and not self.paused:
            n = min(self.left, len(block))
            self.transport.write(block[:n] if n < len(block) else self.BLOCK)
            self.left -= n
        if self.left == 0 and not self.done:
            self.done = True
            # Not close() at once: called from resume_writing, CPython 3.11's
            # _write_ready would then run connection_lost twice (AttributeError).
            asyncio.get_running_loop().call_soon(self.transport.close)


async def serve(host: str, profile_out: str | None) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Echo, host, port) for port in (PORT_ECHO, *CONN_PORTS)]
    servers.append(await loop.create_server(Sink, host, PORT_SINK))
    servers.append(await loop.create_server(Source, host, PORT_SOURCE))
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()

        def stop() -> None:
            profiler.disable()
            profiler.dump_stats(profile_out + ".tmp")
            os.replace(profile_out + ".tmp", profile_out)

        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, stop)
    print(f"ready {os.getpid()}", flush=True)
    await asyncio.sleep(SERVER_LIFETIME)  # stopped by SIGTERM long before


def server_main(kind: str, host: str, device: str | None, address: str | None,
                profile_out: str | None) -> int:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if kind == "ethox":
        import ethox_asyncio
        from ethox_asyncio import StackConfig

        assert device and address
        config = StackConfig(device=device, addresses=(IPv4Interface(address),))
        ethox_asyncio.run(serve(host, profile_out), config=config)
        return 0
    if kind == "uvloop":
        import uvloop

        factory: Any = uvloop.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:  # asyncio.run's loop_factory: 3.12+
        runner.run(serve(host, profile_out))
    return 0


# --- processes, namespaces, the client ---------------------------------------------------

def build_c_client(directory: str) -> str:
    """Compile bench/epoll_client.c into ``directory``; the binary's path."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc) on PATH: the C client cannot be built")
    binary = os.path.join(directory, "epoll_client")
    subprocess.run([cc, "-O2", "-Wall", "-o", binary, C_SOURCE], check=True, timeout=120)
    return binary


def taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def parse_pin(text: str) -> tuple[str | None, str | None]:
    """``S/C`` (server CPUs / client CPUs), ``N`` (both on N) or ``none``."""
    if text == "none":
        return None, None
    server, _, client = text.partition("/")
    return server, client or server


def pin_label(text: str) -> str:
    """``cpu S / cpu C`` (server / client), ``cpu N`` (both, given as ``N``), ``none``."""
    server, client = parse_pin(text)
    if server is None:
        return "none"
    return f"cpu {server} / cpu {client}" if "/" in text else f"cpu {server}"


def server_namespace(client_netns: str) -> contextlib.AbstractContextManager[str]:
    """A namespace for the kernel servers, veth-linked to the client's namespace."""
    pid = os.getpid()
    return veth_namespace(client_netns, f"ethox-bench-{pid}-tcp-server", f"etc{pid}",
                          f"ets{pid}", str(CLIENT_VETH),
                          [f"{host}/24" for host in KERNEL_HOSTS.values()], txqueuelen=10000)


@contextmanager
def extra_taps(client_netns: str, count: int) -> Iterator[list[tuple[str, IPv4Interface]]]:
    """TAPs ``ethox-t1``... in the client's namespace, TAP k on 198.18.(k+1).0/24 (kernel
    .1, stack .2); (device string, stack address) for each."""
    made: list[str] = []
    try:
        out = []
        for k in range(1, count + 1):
            name = f"ethox-t{k}"
            ip("-n", client_netns, "tuntap", "add", "dev", name, "mode", "tap")
            made.append(name)
            ip("-n", client_netns, "link", "set", "dev", name, "txqueuelen", "10000", "up")
            ip("-n", client_netns, "address", "add", f"198.18.{k + 1}.1/24", "dev", name)
            out.append((f"tap:{name},netns={client_netns}", IPv4Interface(f"198.18.{k + 1}.2/24")))
        yield out
    finally:
        for name in made:
            ip("-n", client_netns, "link", "del", "dev", name, check=False)


def tune_client_namespace(netns: str) -> None:
    """Connection churn: reuse TIME-WAIT ports (timestamps on both sides), wide range."""
    for setting in ("net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=10000 65000"):
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", setting],
                       check=True, timeout=30, capture_output=True)


class Server(ServerProcess):
    """One server subprocess, started and stopped by pid; ``pid`` from its ready line."""

    def __init__(self, cmd: list[str]) -> None:
        super().__init__(cmd, ready_timeout=READY_TIMEOUT, stop_timeout=STOP_TIMEOUT)
        words = self.ready_words
        if len(words) != 2 or words[0] != b"ready":
            raise self.not_ready()
        self.pid = int(words[1])  # `ip netns exec` and `taskset` exec: the same process

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process (all threads, io_uring workers too)."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the whole process."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def context_switches(self) -> tuple[int, int]:
        """(voluntary, involuntary) context switches of every thread alive now: a
        voluntary one is a sleep, so per request it counts wake-ups."""
        voluntary = involuntary = 0
        for task in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            involuntary += int(line.split()[1])
            except OSError:  # the thread ended meanwhile
                pass
        return voluntary, involuntary


@dataclass
class Path:
    name: str
    kind: str  # "ethox" | "asyncio" | "uvloop" | "c"
    host: str
    device: str | None = None
    address: str | None = None


@dataclass
class Sample:
    phase: str
    path: str
    pin: str
    value: float  # req/s, conn/s, Gbit/s, KB per connection
    client_cpu: float = 0.0  # %
    server_cpu: float = 0.0  # %
    server_us_per_op: float = 0.0
    p50_us: float = 0.0
    p99_us: float = 0.0
    note: str = ""
    ops: int = 0  # requests/connections the server handled (warm-up included), or bytes


@dataclass
class Bench:
    args: argparse.Namespace
    client_bin: str  # the C client binary
    client_netns: str
    server_netns: str
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    phases: tuple[str, ...] = ()  # what run_benchmark measures (--phases)
    threads: dict[str, int] = field(default_factory=dict)

    def server_command(self, path: Path, cpus: str | None, profile_out: str | None = None
                       ) -> list[str]:
        if path.kind == "c":
            return ["ip", "netns", "exec", self.server_netns, *taskset(cpus), self.client_bin,
                    "serve", path.host, str(SERVER_LIFETIME)]
        script = [sys.executable, os.path.abspath(__file__), "--serve", path.kind,
                  "--host", path.host]
        if profile_out:
            script += ["--profile-out", profile_out]
        if path.kind == "ethox":
            assert path.device and path.address
            # The device string names the namespace; the process itself needs none.
            return [*taskset(cpus), *script, "--device", path.device, "--address", path.address]
        return ["ip", "netns", "exec", self.server_netns, *taskset(cpus), *script]

    def client_cmd(self, cpus: str | None, *args: Any) -> list[str]:
        return ["ip", "netns", "exec", self.client_netns, *taskset(cpus), self.client_bin,
                *map(str, args)]

    def run_client(self, cpus: str | None, *args: Any, timeout: float) -> dict[str, Any]:
        cmd = self.client_cmd(cpus, *args)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"client {' '.join(map(str, args))}: "
                               f"{result.stderr.strip()[-500:]}")
        data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return data

    def phase_args(self, phase: str, path: Path, round_no: int) -> tuple[list[Any], float]:
        a = self.args
        if phase == "pp1":
            return ["pingpong", path.host, PORT_ECHO, 1, PAYLOAD, a.seconds, 5_000_000, 200], \
                a.seconds
        if phase == "pp10":
            return ["pingpong", path.host, PORT_ECHO, 10, PAYLOAD, a.seconds, 5_000_000, 1000], \
                a.seconds
        if phase == "conn":
            port = CONN_PORTS[round_no % len(CONN_PORTS)]
            return ["connrate", path.host, port, a.conn_concurrency, a.seconds, 2_000_000], \
                a.seconds
        size = a.bulk_mb * 1_000_000
        if phase == "up":
            return ["send", path.host, PORT_SINK, size, a.bulk_seconds], a.bulk_seconds
        if phase == "down":
            return ["recv", path.host, PORT_SOURCE, size, a.bulk_seconds], a.bulk_seconds
        raise ValueError(phase)

    def measure(self, phase: str, path: Path, server: Server, pin: str, round_no: int,
                record_as: str | None = None) -> Sample | None:
        _, client_cpus = parse_pin(pin)
        args, seconds = self.phase_args(phase, path, round_no)
        wall0, cpu0 = time.monotonic(), server.cpu_seconds()
        try:
            data = self.run_client(client_cpus, *args, timeout=seconds + 60)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            self.failures.append(f"{record_as or phase} {path.name} ({pin_label(pin)}): {exc}")
            print(f"  FAILED {record_as or phase} {path.name}: {exc}", file=sys.stderr)
            return None
        wall, cpu = time.monotonic() - wall0, server.cpu_seconds() - cpu0
        key = f"{path.name} ({pin_label(pin)})"  # io_uring workers come and go: the most
        self.threads[key] = max(self.threads.get(key, 0), server.threads())
        if phase.startswith("pp"):
            value, ops = data["rps"], data["total"]
        elif phase == "conn":
            value, ops = data["cps"], data["total"]
        else:
            value, ops = data["gbps"], data.get("server_bytes", data["bytes"])
        note = ""
        if data.get("errors"):
            note = f"{data['errors']} errors"
        if data.get("truncated"):
            note = f"deadline: {data['bytes'] / 1e6:.0f} MB"
        per_op = phase in ("pp1", "pp10", "conn")
        sample = Sample(record_as or phase, path.name, pin, value, data["cpu_pct"],
                        100 * cpu / wall, 1e6 * cpu / ops if per_op and ops else 0.0,
                        data.get("p50_us", 0.0), data.get("p99_us", 0.0), note, ops)
        self.samples.append(sample)
        unit = {"pp1": "req/s", "pp10": "req/s", "conn": "conn/s"}.get(phase, "Gbit/s")
        print(f"  {sample.phase:5s} {path.name:20s} {value:12,.2f} {unit:6s} "
              f"client {sample.client_cpu:5.1f} %  server {sample.server_cpu:5.1f} %"
              + (f"  {sample.server_us_per_op:7.1f} µs/op" if per_op else "")
              + (f"  ({note})" if note else ""), file=sys.stderr)
        return sample

    def warm(self, path: Path, server: Server, pin: str) -> None:
        """Traffic enough to reach the steady state (bulk frees raise glibc's mmap
        threshold; connections, timers and caches get made once)."""
        _, cpus = parse_pin(pin)
        a = self.args
        size = a.warm_mb * 1_000_000
        steps = [["send", path.host, PORT_SINK, size, 20],
                 ["recv", path.host, PORT_SOURCE, size, 20],
                 ["pingpong", path.host, PORT_ECHO, 1, PAYLOAD, a.warm_seconds, 5_000_000, 100],
                 ["pingpong", path.host, PORT_ECHO, 10, PAYLOAD, a.warm_seconds, 5_000_000, 100],
                 ["connrate", path.host, CONN_PORTS[-1], a.conn_concurrency, a.warm_seconds,
                  2_000_000]]
        for step in steps:
            try:
                self.run_client(cpus, *step, timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                self.failures.append(f"warm-up {step[0]} {path.name} ({pin_label(pin)}): {exc}")
                print(f"  warm-up {step[0]} {path.name} FAILED: {exc}", file=sys.stderr)

    def idle_memory(self, path: Path, server: Server) -> Sample | None:
        count = self.args.idle
        self.warm_light(path, server)
        time.sleep(0.3)
        rss0 = server.rss_kb()
        cmd = self.client_cmd(None, "idle", path.host, PORT_ECHO, count, 60)
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdin is not None
        try:
            readable, _, _ = select.select([process.stdout], [], [], 60)
            line = process.stdout.readline() if readable else ""
            if '"held"' not in line:
                raise RuntimeError(f"idle client: {line.strip()} "
                                   f"{process.stderr.read() if process.stderr else ''}")
            time.sleep(0.5)
            rss1 = server.rss_kb()
            process.stdin.write("\n")
            process.stdin.flush()
            process.wait(timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            self.failures.append(f"idle {path.name}: {exc}")
            print(f"  FAILED idle {path.name}: {exc}", file=sys.stderr)
            return None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for stream in (process.stdout, process.stdin, process.stderr):
                if stream is not None:
                    stream.close()
        sample = Sample("idle", path.name, "none", (rss1 - rss0) / count,
                        note=f"{rss0} → {rss1} KB")
        self.samples.append(sample)
        print(f"  idle  {path.name:20s} {sample.value:8.2f} KB/conn  (RSS {rss0} → {rss1} KB)",
              file=sys.stderr)
        return sample

    def warm_light(self, path: Path, server: Server) -> None:
        size = min(self.args.warm_mb, 8) * 1_000_000
        for step in (["send", path.host, PORT_SINK, size, 20],
                     ["recv", path.host, PORT_SOURCE, size, 20],
                     ["pingpong", path.host, PORT_ECHO, 1, PAYLOAD, 0.2, 100_000, 50]):
            try:
                self.run_client(None, *step, timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                print(f"  light warm-up {step[0]} {path.name} FAILED: {exc}", file=sys.stderr)


PHASES = ("pp1", "pp10", "conn", "up", "down")
PHASE_TITLES = {
    "cold": "64 B ping-pong, 1 conn, **cold** server (req/s)",
    "pp1": "64 B ping-pong, 1 conn (req/s)",
    "pp10": "64 B ping-pong, 10 conns (req/s)",
    "conn": "connect + 1 B echo + close (conn/s)",
    "up": "bulk client → server (Gbit/s)",
    "down": "bulk server → client (Gbit/s)",
    "idle": "RSS per idle connection (KB)",
}


def run_benchmark(bench: Bench, paths: list[Path], pins: list[str]) -> None:
    args = bench.args
    for pin in pins:
        server_cpus, _ = parse_pin(pin)
        print(f"== pin: {pin_label(pin)}", file=sys.stderr)
        servers: dict[str, Server] = {}
        try:
            for path in paths:
                servers[path.name] = Server(bench.server_command(path, server_cpus))
            for path in paths:
                bench.measure("pp1", path, servers[path.name], pin, 0, record_as="cold")
                bench.warm(path, servers[path.name], pin)
            for round_no in range(args.runs):
                print(f"-- round {round_no + 1}/{args.runs}", file=sys.stderr)
                order = paths[round_no % len(paths):] + paths[:round_no % len(paths)]
                for phase in bench.phases:
                    for path in order:
                        server = servers[path.name]
                        if not server.alive():
                            bench.failures.append(f"{phase} {path.name}: server died: "
                                                  f"{server.error_text}")
                            continue
                        bench.measure(phase, path, server, pin, round_no)
        finally:
            for server in servers.values():
                server.stop()
                if server.error_text and "Traceback" in server.error_text:
                    print(server.error_text, file=sys.stderr)
    print(f"== idle memory: {args.idle} connections, a fresh server per run", file=sys.stderr)
    for _ in range(args.runs):
        for path in paths:
            server = Server(bench.server_command(path, None))
            try:
                bench.idle_memory(path, server)
            finally:
                server.stop()


# --- tables ---------------------------------------------------------------------------------

def medians(samples: list[Sample]) -> dict[tuple[str, str, str], Sample]:
    """(phase, pin, path) → a Sample whose fields are medians over the runs."""
    groups: dict[tuple[str, str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.phase, s.pin, s.path), []).append(s)
    out = {}
    for key, group in groups.items():
        values = sorted(s.value for s in group)
        spread = f"{values[0]:,.2f}–{values[-1]:,.2f}" if len(values) > 1 else ""
        out[key] = Sample(key[0], key[2], key[1], statistics.median(values),
                          statistics.median(s.client_cpu for s in group),
                          statistics.median(s.server_cpu for s in group),
                          statistics.median(s.server_us_per_op for s in group),
                          statistics.median(s.p50_us for s in group),
                          statistics.median(s.p99_us for s in group),
                          spread if spread else group[0].note)
    return out


def fmt(value: float, phase: str) -> str:
    if phase in ("up", "down"):
        return f"{value:.2f}"
    if phase == "idle":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def ratio(m: dict[tuple[str, str, str], Sample], phase: str, pin: str, path: str,
          base: str) -> str:
    a, b = m.get((phase, pin, path)), m.get((phase, pin, base))
    if a is None or b is None or b.value == 0:
        return "–"
    return f"{a.value / b.value:.2f}"


def render(bench: Bench, paths: list[Path], pins: list[str]) -> str:
    m = medians(bench.samples)
    phases = bench.phases
    names = [p.name for p in paths]
    out: list[str] = []
    short = {"pp1": "1 conn req/s", "pp10": "10 conns req/s", "conn": "conn/s",
             "up": "up Gbit/s", "down": "down Gbit/s"}
    out.append("| path | pin (server / client) | " + " | ".join(short[p] for p in phases) + " |")
    out.append("|---|---|" + "---|" * len(phases))
    for pin in pins:
        for name in names:
            cells = []
            for phase in phases:
                s = m.get((phase, pin, name))
                cells.append("failed" if s is None else fmt(s.value, phase))
            out.append(f"| {name} | {pin_label(pin)} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Ratios, **÷ warm kernel asyncio / ÷ kernel uvloop** (same pin setting):")
    out.append("")
    out.append("| path | pin | " + " | ".join(short[p] for p in phases) + " |")
    out.append("|---|---|" + "---|" * len(phases))
    for pin in pins:
        for name in names:
            cells = [f"{ratio(m, phase, pin, name, 'kernel asyncio')} / "
                     f"{ratio(m, phase, pin, name, 'kernel uvloop')}" for phase in phases]
            out.append(f"| {name} | {pin_label(pin)} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Per phase (medians; spread = min–max of the runs; server CPU from "
               "/proc/PID/stat, all threads; client CPU from getrusage; 100 % = one CPU):")
    out.append("")
    out.append("| phase | pin | path | median | spread | ÷ asyncio | ÷ uvloop | p50 µs | p99 µs "
               "| server CPU µs/op | server CPU % | client CPU % |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for phase in ("cold", *phases):
        for pin in pins:
            for name in names:
                s = m.get((phase, pin, name))
                if s is None:
                    out.append(f"| {phase} | {pin_label(pin)} | {name} | failed | | | | | | | | |")
                    continue
                lat = phase in ("cold", "pp1", "pp10", "conn")
                per_op = phase in ("cold", "pp1", "pp10", "conn")
                out.append(
                    f"| {phase} | {pin_label(pin)} | {name} | {fmt(s.value, phase)} | {s.note} "
                    f"| {ratio(m, phase, pin, name, 'kernel asyncio')} "
                    f"| {ratio(m, phase, pin, name, 'kernel uvloop')} "
                    f"| {f'{s.p50_us:.1f}' if lat else ''} | {f'{s.p99_us:.1f}' if lat else ''} "
                    f"| {f'{s.server_us_per_op:.1f}' if per_op else ''} | {s.server_cpu:.0f} "
                    f"| {s.client_cpu:.0f} |")
    out.append("")
    out.append(f"Memory: RSS growth of a fresh, lightly warmed server while the client holds "
               f"{bench.args.idle} idle connections (each echoed 1 B); kernel socket memory is "
               "not in a kernel server's RSS:")
    out.append("")
    out.append("| path | KB per connection | RSS before → with the connections (one run) "
               "| ÷ asyncio | ÷ uvloop |")
    out.append("|---|---|---|---|---|")
    raw_idle = {s.path: s.note for s in bench.samples if s.phase == "idle"}
    for name in names:
        s = m.get(("idle", "none", name))
        if s is None:
            out.append(f"| {name} | failed | | | |")
            continue
        out.append(f"| {name} | {s.value:.1f} | {raw_idle.get(name, '')} "
                   f"| {ratio(m, 'idle', 'none', name, 'kernel asyncio')} "
                   f"| {ratio(m, 'idle', 'none', name, 'kernel uvloop')} |")
    if bench.threads:
        out.append("")
        out.append("Most threads seen in a server process right after a phase: " + ", ".join(
            f"{k}: {v}" for k, v in bench.threads.items()))
    if bench.failures:
        out.append("")
        out.append("Failures:")
        out.extend(f"- {f}" for f in bench.failures)
    return "\n".join(out) + "\n"


# --- the profile ------------------------------------------------------------------------------

def summarize_pyspy(raw: str, top: int) -> str:
    """Self (leaf) and inclusive sample shares per function (line numbers merged) from
    py-spy's raw (collapsed-stack) output; inclusive only for the stack's functions."""
    import re

    def function(frame: str) -> str:
        return re.sub(r":\d+\)$", ")", frame.strip())

    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [function(f) for f in stack.split(";")]
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            if "ethox_asyncio/" in frame:
                incl_counts[frame] = incl_counts.get(frame, 0) + count
    if not total:
        return "py-spy: no samples\n"
    lines = [f"py-spy --native ({total} samples at 200/s; the server is paused per sample):",
             "", "| self % | function (leaf frame, native included) |", "|---|---|"]
    for frame, count in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {100 * count / total:.1f} | `{frame}` |")
    lines += ["", "| inclusive % | stack function |", "|---|---|"]
    for frame, count in sorted(incl_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {100 * count / total:.1f} | `{frame}` |")
    return "\n".join(lines) + "\n"


def profile_rows(profile_file: str) -> tuple[int, float, list[tuple[str, int, float, float]]]:
    """Total calls, total own time and (function, calls, own s, cumulative s) rows."""
    import pstats

    stats: Any = pstats.Stats(profile_file)
    rows: list[tuple[str, int, float, float]] = []
    root = os.path.dirname(HERE)
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        if filename.startswith(root):
            where = f"{os.path.relpath(filename, root)}:{line}({name})"
        elif line:
            where = f"{os.path.basename(filename)}:{line}({name})"
        else:
            where = name
        rows.append((where, nc, tt, ct))
    return stats.total_calls, stats.total_tt, rows


def run_profile(bench: Bench, paths: list[Path], workdir: str) -> str:
    """Per ethox path: the phase without profiler, under cProfile, under py-spy."""
    args = bench.args
    phase = args.profile_phase
    pin = args.pin.split(",")[0]
    server_cpus, _ = parse_pin(pin)
    py_spy = args.py_spy or shutil.which("py-spy")
    per_op = phase in ("pp1", "pp10", "conn")
    unit = "request" if phase.startswith("pp") else ("connection" if per_op else "MB")
    out: list[str] = []
    for path in paths:
        if path.kind != "ethox":
            continue
        profile_out = os.path.join(workdir, f"{path.name.replace(' ', '_')}.prof")
        server = Server(bench.server_command(path, server_cpus, profile_out))
        spy_text = ""
        try:
            print(f"== profile {phase} {path.name} ({pin_label(pin)})", file=sys.stderr)
            bench.warm(path, server, pin)
            switches0, split0 = server.context_switches(), server.cpu_split()
            plain = bench.measure(phase, path, server, pin, 0, record_as="profile-plain")
            switches = [b - a for a, b in zip(switches0, server.context_switches(),
                                              strict=True)]
            split = [b - a for a, b in zip(split0, server.cpu_split(), strict=True)]
            syscalls = measure_syscalls(bench, phase, path, server, pin, workdir) \
                if shutil.which("strace") else None
            os.kill(server.pid, signal.SIGUSR1)
            time.sleep(0.2)
            profiled = bench.measure(phase, path, server, pin, 1, record_as="profile-cprofile")
            os.kill(server.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not os.path.exists(profile_out) and time.monotonic() < deadline:
                time.sleep(0.1)
            if py_spy:
                spy_file = os.path.join(workdir, f"{path.name.replace(' ', '_')}.pyspy")
                length = args.seconds if per_op else args.bulk_seconds
                # --native pauses the process per sample: a low rate keeps that small.
                spy = subprocess.Popen([py_spy, "record", "--pid", str(server.pid), "--native",
                                        "--rate", "200", "--duration", str(max(1, int(length))),
                                        "--format", "raw", "--output", spy_file],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(0.5)  # py-spy attaches
                spied = bench.measure(phase, path, server, pin, 2, record_as="profile-pyspy")
                try:
                    spy.wait(timeout=length + 30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait(timeout=10)
                if spied and os.path.exists(spy_file):
                    with open(spy_file) as f:
                        spy_text = summarize_pyspy(f.read(), args.top)
                elif spy.stderr:
                    spy_text = f"py-spy failed: {spy.stderr.read().decode()[-500:]}\n"
                if spy.stderr:
                    spy.stderr.close()
        finally:
            server.stop()
        if plain is None or profiled is None or not os.path.exists(profile_out):
            out.append(f"### {path.name}: profile failed\n")
            continue
        total_calls, total_tt, rows = profile_rows(profile_out)
        ops = profiled.ops if per_op else profiled.ops / 1e6  # requests, connections or MB
        out.append(f"### {path.name}: {PHASE_TITLES[phase]}, {pin_label(pin)}\n")
        out.append(f"- without profiler: {fmt(plain.value, phase)}, server CPU "
                   + (f"{plain.server_us_per_op:.1f} µs per {unit} " if per_op else "")
                   + f"({plain.server_cpu:.0f} % of a CPU)")
        if plain.ops:
            per_unit = plain.ops if per_op else plain.ops / 1e6
            out.append(f"- server CPU per {unit}: user {1e6 * split[0] / per_unit:.1f} µs, "
                       f"system {1e6 * split[1] / per_unit:.1f} µs")
            out.append(f"- context switches per {unit} (all threads): "
                       f"{switches[0] / (plain.ops if per_op else plain.ops / 1e6):.2f} "
                       f"voluntary (sleeps: wake-ups), "
                       f"{switches[1] / (plain.ops if per_op else plain.ops / 1e6):.2f} "
                       f"involuntary")
        if syscalls is not None:
            calls, sampled = syscalls
            per = sampled if per_op else sampled / 1e6
            total = sum(calls.values())
            top = ", ".join(f"{name} {count / per:.2f}" for name, count in
                            sorted(calls.items(), key=lambda kv: -kv[1])[:8])
            out.append(f"- system calls per {unit} (strace -c -f, its own run): "
                       f"{total / per:.2f}: {top}")
        out.append(f"- under cProfile: {fmt(profiled.value, phase)}; {profiled.ops:,} "
                   f"{'ops' if per_op else 'bytes'} in the profiled window; "
                   f"{total_calls / ops:,.0f} Python function calls per {unit}; "
                   f"profiled time {1e6 * total_tt / ops:,.1f} µs per {unit}")
        out.append("")
        modules: dict[str, float] = {}
        for where, _nc, tt, _ct in rows:
            module = where.split(":")[0] if ":" in where and not where.startswith("<") else \
                "C functions and methods (builtins, syscalls, liburing)"
            modules[module] = modules.get(module, 0.0) + tt
        out.append(f"Own time by module, per {unit} (of {1e6 * total_tt / ops:,.1f} µs):")
        out.append("")
        out.append("| module | own µs | share |")
        out.append("|---|---|---|")
        for module, tt in sorted(modules.items(), key=lambda kv: -kv[1])[:args.top]:
            out.append(f"| `{module}` | {1e6 * tt / ops:.1f} | {100 * tt / total_tt:.0f} % |")
        out.append("")
        for title, own in (("cumulative", False), ("own (total)", True)):
            out.append(f"Top {args.top} by {title} time, per {unit}:")
            out.append("")
            out.append(f"| function | calls/{unit} | own µs | cumulative µs |")
            out.append("|---|---|---|---|")
            for where, nc, tt, ct in sorted(rows, key=lambda r: -(r[2] if own else r[3])
                                            )[:args.top]:
                out.append(f"| `{where}` | {nc / ops:.2f} | {1e6 * tt / ops:.2f} "
                           f"| {1e6 * ct / ops:.2f} |")
            out.append("")
        if spy_text:
            out.append(spy_text)
    return "\n".join(out) + "\n"


def measure_syscalls(bench: Bench, phase: str, path: Path, server: Server, pin: str,
                     workdir: str) -> tuple[dict[str, int], int] | None:
    """System calls of every thread of ``server`` during one run of ``phase``, counted
    by ``strace -c -f`` (slower under strace, but the count per operation is what
    matters), and the operations of that run."""
    out_file = os.path.join(workdir, f"{path.name.replace(' ', '_')}.strace")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(server.pid), "-o", out_file],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # strace attaches
        sample = bench.measure(phase, path, server, pin, 3, record_as="profile-strace")
    finally:
        tracer.send_signal(signal.SIGINT)  # detach: strace writes its summary
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(timeout=10)
    if sample is None or not os.path.exists(out_file):
        return None
    calls: dict[str, int] = {}
    with open(out_file) as f:
        for line in f:
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    return calls, sample.ops


def loadavg() -> list[str]:
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


# --- main -------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians (default 3)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 2 min)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="per ping-pong / connection-rate run (default 2)")
    parser.add_argument("--bulk-mb", type=int, default=1000, help="MB per bulk run (1000)")
    parser.add_argument("--bulk-seconds", type=float, default=4.0,
                        help="deadline per bulk run (default 4; the figure counts what got "
                             "through)")
    parser.add_argument("--conn-concurrency", type=int, default=8)
    parser.add_argument("--idle", type=int, default=1000, help="idle connections (1000)")
    parser.add_argument("--warm-mb", type=int, default=32, help="MB each way to warm a server")
    parser.add_argument("--warm-seconds", type=float, default=0.5)
    parser.add_argument("--engines", default="uring,plain",
                        help="ethox TAP engines, comma-separated; more device options after "
                             "'+', e.g. uring+rx_buffers=8 (each gets a TAP of its own)")
    parser.add_argument("--kernel", default="asyncio,uvloop,c",
                        help="kernel-socket servers: asyncio, uvloop, c (the C ceiling)")
    parser.add_argument("--pin", default="0/1,0/0,none",
                        help="server CPUs/client CPUs, or none; comma-separated "
                             "(default 0/1,0/0,none)")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--json", help="write every sample to this file")
    parser.add_argument("--profile", action="store_true",
                        help="profile the stack servers under 1-connection ping-pong")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"the phases to measure (default all: {','.join(PHASES)})")
    parser.add_argument("--profile-phase", default="pp1", choices=PHASES,
                        help="the phase --profile runs (default pp1)")
    parser.add_argument("--py-spy", help="py-spy binary for --profile (default: on PATH)")
    parser.add_argument("--top", type=int, default=20, help="rows per profile table")
    parser.add_argument("--serve", choices=("ethox", "asyncio", "uvloop"), help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return server_main(args.serve, args.host, args.device, args.address, args.profile_out)
    if os.geteuid() != 0:
        print("bench/tcp.py needs root (network namespaces, TAP)", file=sys.stderr)
        return 2
    if args.quick:
        args.runs, args.seconds, args.bulk_mb, args.bulk_seconds = 1, 0.5, 100, 1.5
        args.idle, args.warm_mb, args.warm_seconds = 300, 16, 0.3
    engines = [e for e in args.engines.split(",") if e]
    kernels = [k for k in args.kernel.split(",") if k]
    pins = [p for p in args.pin.split(",") if p]
    if len(engines) > 8 or args.runs < 1 or args.seconds <= 0 or args.idle < 1:
        parser.error("at most eight engines; --runs, --seconds, --idle positive")
    phases = tuple(p for p in args.phases.split(",") if p)
    if not phases or any(p not in PHASES for p in phases):
        parser.error(f"--phases: a comma-separated subset of {','.join(PHASES)}")

    from ethox_asyncio.netns import STACK_IPV4, topology

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load_before = loadavg()
    workdir = tempfile.mkdtemp(prefix="ethox-bench-tcp-")
    try:
        client = build_c_client(workdir)
        with topology("tap", name=f"ethox-bench-{os.getpid()}-tcp") as topo, \
                extra_taps(topo.netns, len(engines) - 1) as taps, \
                server_namespace(topo.netns) as server_netns:
            tune_client_namespace(topo.netns)
            devices = [(topo.device_spec, STACK_IPV4), *taps]
            paths = [Path(f"ethox ({engine.replace('+', ', ')})", "ethox", str(address.ip),
                          f"{spec},engine={engine.replace('+', ',')}", str(address))
                     for engine, (spec, address) in zip(engines, devices, strict=True)]
            names = {"asyncio": "kernel asyncio", "uvloop": "kernel uvloop",
                     "c": "kernel C epoll"}
            paths += [Path(names[k], k, KERNEL_HOSTS[k]) for k in kernels]
            bench = Bench(args, client, topo.netns, server_netns, phases=phases)
            if args.profile:
                text = run_profile(bench, paths, workdir)
            else:
                run_benchmark(bench, paths, pins)
                text = render(bench, paths, pins)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = loadavg()
    header = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{time.monotonic() - started:.0f} s; loadavg before {' '.join(load_before)}, "
              f"after {' '.join(load_after)}; runs {args.runs}; ping-pong/conn {args.seconds} s, "
              f"bulk {args.bulk_mb} MB or {args.bulk_seconds} s, "
              f"conn concurrency {args.conn_concurrency}\n\n")
    print(header + text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + text)
    if args.json and not args.profile:
        with open(args.json, "w") as f:
            json.dump([s.__dict__ for s in bench.samples], f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
