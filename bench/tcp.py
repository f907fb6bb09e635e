"""TCP benchmark: one asyncio application on the ethox stack and on kernel sockets.

Run (root): .venv/bin/python bench/tcp.py [--runs 3] [--quick] [--engines uring,plain]
            [--pin 0/1,0/0,none] [--phases pp1,pp10,pp100,conn,up,down,loss,idle]
            [--idle 10000] [--loss-pcap DIR] [--markdown FILE] [--json FILE]
            .venv/bin/python bench/tcp.py --profile [--profile-phase pp1|...|idle]
            [--engines plain]

The application is the same on every path: an echo server (``Echo``, an
``asyncio.Protocol``), a sink that counts what it receives and answers the count at
EOF (``Sink``) and a source that sends as many bytes as it is asked for
(``Source``, flow-controlled by ``pause_writing``/``resume_writing``); every listener
has a backlog of 1024. It runs, each time in a subprocess of its own started and
stopped by pid (RLIMIT_NOFILE raised to its hard limit), on:

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

- ``pp1``/``pp10``/``pp100``: 64-byte ping-pong, 1, 10 and 100 connections (one
  request in flight on each), req/s, p50/p99 µs;
- ``conn``: connect + 1 B echo + close, ``--conn-concurrency`` (8) at a time, conn/s
  (the client's namespace gets ``tcp_tw_reuse=1`` and a wide port range, and the
  runs rotate over eight echo ports, so TIME-WAIT never runs out of ports);
- ``up``: the client sends ``--bulk-mb`` MB (or what ``--bulk-seconds`` allows) to
  the sink; Gbit/s of what the sink counted, up to its answer;
- ``down``: the source sends ``--bulk-mb`` MB; Gbit/s up to EOF;
- ``loss``: ``up`` and ``down`` under 1 % random loss, each also without it (*no
  loss*, the same route and settings), on fresh servers pinned by ``--loss-pin``
  (default ``0/0``), after the phases above. The client runs in a third namespace
  (``...-tcp-loss``, 198.18.30.2) behind a veth to the client's namespace
  (198.18.30.1), which forwards between it and every server: the TAPs and the
  kernel servers' veth. The drop rule is an nftables table in the client's
  namespace, hook ``forward``, so both paths meet the same hook and the same match:
  ``iifname`` / ``oifname`` the lossy client's veth, ``tcp flags & (fin|syn|rst) ==
  0`` (the transfer's data segments and ACKs, not its handshake or close),
  ``numgen random mod 100 < 1 drop``, each direction counted; added right before each
  lossy run and deleted right after it. A drop there is a real loss: neither sender
  sees it (a rule on ``output`` in a sender's own namespace returns an error to its
  TCP, which just sends the segment again). Every sender toward the rule sends one
  segment per packet, so it drops segments, not GSO super-packets of up to 64 KB:
  ``gso_max_segs 1`` on the lossy client's veth and the kernel servers' veth, and the
  stack with ``offload=off`` (no TSO; a default gateway toward the lossy client);
  the table's byte counters show ~1500 B per data packet. ``--loss-gso`` keeps the
  super-packets instead. The kernel endpoints use ``--loss-cc`` (default cubic,
  Linux's default and the stack's congestion control, per socket with
  TCP_CONGESTION: this machine defaults to bbr, which a namespace cannot change to
  cubic). Pinned ``0/0`` because single-segment packets sent from two CPUs arrive
  reordered (hundreds of spurious retransmissions per run at ``0/1`` without any
  rule). Linux-to-Linux is the kernel servers over the veth with the same rule; the
  ratio ours ÷ Linux-to-Linux is in the table, with the drop rate per direction, the
  bytes per data packet, the kernel senders' retransmissions and, with
  ``--loss-pcap DIR``, a header capture per lossy run on the lossy client's link and
  its stalls (no data segment for 50 ms: retransmission timeouts);
- ``idle``: memory and scale: a *fresh* server (warmed lightly) per run, its RSS
  before and while the client holds ``--idle`` connections (default 1000; 10 000 is
  fine: the client and servers raise RLIMIT_NOFILE, the client's namespace has ports
  10000-65000; each opened and echoed 1 B, 32 handshakes at a time): KB per
  connection. For a kernel server also its sockets' memory as ``ss -tm`` shows it in
  the server's namespace (the established sockets on its echo port, summed, per
  connection): skmem ``r+t+f+w+o+bl``, the bytes allocated, and, apart, ``rb+tb``, the
  buffer limits (not memory in use). The table sums RSS + ss -m per connection and
  checks the bar (the stack's RSS per connection at most stock asyncio's cost) against
  three readings of that cost: RSS + ss -m allocated, RSS + ss -m limits, and RSS +
  ss -m allocated + the kernel's own objects per socket (tcp_sock, inode, file,
  dentry, epoll item: in neither RSS nor ss -m; /proc/slabinfo object sizes; the stack
  has no kernel socket per connection). Then *served*: the client
  sends 1 B on every held connection (at most 256 outstanding) and checks each echo;
  the table gives the echoes, the round's seconds, the server CPU per connection
  while opening and echoing, the server's CPU while the connections sit idle, and the
  link drops (TAP/veth) in the client's namespace.

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
not in it) and the client's CPU % (getrusage). The idle phase runs unpinned.

``--profile`` measures where the stack's time goes instead: per ethox engine, a
warmed server runs one phase (``--profile-phase``, default the 1-connection
ping-pong) once plain (CPU µs per request from /proc/PID/stat), once under cProfile
(started and stopped by SIGUSR1/SIGUSR2) with the top functions by cumulative and by
own time per request, and, with ``py-spy`` on PATH (``pip install py-spy``) or given
by ``--py-spy``, once under py-spy's native sampler (C and kernel-call frames too),
and, with ``strace`` on PATH, once under ``strace -c -f`` for the system calls per
operation, and, with ``perf`` on PATH, once under ``perf record`` (CPU by object and
symbol, the kernel's share included); context switches per operation (wake-ups) come
from /proc/PID/task/*/status. The asyncio and uvloop servers of ``--kernel`` run the
same phase plain and under ``perf`` too, so the kernel's share per operation can be
compared path against path.
``--profile-phase idle`` profiles the idle phase per ethox engine instead: cProfile
from right before the client opens ``--idle`` connections to after the echo round,
per connection, then a fresh server's event-loop waits under ``strace -f -T``
(epoll/io_uring/read/write: count, wall time inside, the epoll timeouts asked for and
how many ran out).

The header names the ``ethox_asyncio`` measured and its commit (a ``SNAPSHOT_COMMIT``
file beside the package, as a ``git archive`` snapshot run with PYTHONPATH has, or
``git describe``).

Everything this creates (namespaces ``ethox-bench-<pid>-*``, veths ``etc<pid>``/
``ets<pid>`` and ``elr<pid>``/``elc<pid>``, TAPs ``ethox-t1``..., the nftables table
``ethox_bench_loss``, processes) is removed on exit, errors included.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
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
BACKLOG = 1024  # listen backlog of every server (asyncio's default is 100)

# The loss phase: a third namespace, the lossy client's, behind the client's namespace,
# which forwards (and drops) between it and the TAPs / the kernel servers' veth.
LOSS_ROUTER = IPv4Interface("198.18.30.1/24")  # in the client's namespace
LOSS_CLIENT = IPv4Interface("198.18.30.2/24")  # in the lossy client's namespace
LOSS_PERCENT = 1
LOSS_TABLE = "ethox_bench_loss"


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


async def serve(host: str, profile_out: str | None, cc: str | None = None,
                memory_out: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Echo, host, port, backlog=BACKLOG)
               for port in (PORT_ECHO, *CONN_PORTS)]
    servers.append(await loop.create_server(Sink, host, PORT_SINK, backlog=BACKLOG))
    servers.append(await loop.create_server(Source, host, PORT_SOURCE, backlog=BACKLOG))
    if cc:  # kernel sockets only: accepted connections inherit the listener's
        import socket

        for server in servers:
            for sock in server.sockets:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()

        def stop() -> None:
            profiler.disable()
            profiler.dump_stats(profile_out + ".tmp")
            os.replace(profile_out + ".tmp", profile_out)

        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, stop)
    if memory_out:  # tracemalloc: the allocations made between SIGUSR1 and SIGUSR2
        import tracemalloc

        snapshots: list[Any] = []

        def snapshot() -> None:
            snapshots.append(tracemalloc.take_snapshot())
            if len(snapshots) == 2:
                diff = snapshots[1].compare_to(snapshots[0], "lineno")
                with open(memory_out + ".tmp", "w") as f:
                    for stat in diff:
                        frame = stat.traceback[0]
                        f.write(f"{stat.size_diff} {stat.count_diff} "
                                f"{frame.filename}:{frame.lineno}\n")
                os.replace(memory_out + ".tmp", memory_out)

        tracemalloc.start()
        loop.add_signal_handler(signal.SIGUSR1, snapshot)
        loop.add_signal_handler(signal.SIGUSR2, snapshot)
    print(f"ready {os.getpid()}", flush=True)
    await asyncio.sleep(SERVER_LIFETIME)  # stopped by SIGTERM long before


def server_main(kind: str, host: str, device: str | None, address: str | None,
                gateway: str | None, profile_out: str | None, cc: str | None,
                memory_out: str | None = None) -> int:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if kind == "ethox":
        import ethox_asyncio
        from ethox_asyncio import StackConfig

        assert device and address
        config = StackConfig(device=device, addresses=(IPv4Interface(address),),
                             gateways=(IPv4Address(gateway),) if gateway else ())
        ethox_asyncio.run(serve(host, profile_out, memory_out=memory_out), config=config)
        return 0
    if kind == "uvloop":
        import uvloop

        factory: Any = uvloop.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:  # asyncio.run's loop_factory: 3.12+
        runner.run(serve(host, profile_out, cc, memory_out))
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
    gateway: str | None = None  # the stack's default gateway (the loss phase's servers)


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
    extra: dict[str, Any] = field(default_factory=dict)  # loss counters, idle accounting


@dataclass
class Bench:
    args: argparse.Namespace
    client_bin: str  # the C client binary
    client_netns: str
    server_netns: str
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    phases: tuple[str, ...] = ()  # what run_benchmark measures per pin (--phases)
    sections: tuple[str, ...] = ()  # "loss", "idle" (--phases)
    threads: dict[str, int] = field(default_factory=dict)

    def server_command(self, path: Path, cpus: str | None, profile_out: str | None = None,
                       cc: str | None = None, memory_out: str | None = None) -> list[str]:
        """``cc``: the kernel servers' listeners (and so their connections) use that
        congestion control; the stack keeps its own."""
        if path.kind == "c":
            env = ["env", f"EPOLL_CC={cc}"] if cc else []
            return ["ip", "netns", "exec", self.server_netns, *env, *taskset(cpus),
                    self.client_bin, "serve", path.host, str(SERVER_LIFETIME)]
        script = [sys.executable, os.path.abspath(__file__), "--serve", path.kind,
                  "--host", path.host]
        if profile_out:
            script += ["--profile-out", profile_out]
        if cc and path.kind != "ethox":
            script += ["--cc", cc]
        if memory_out:
            script += ["--memory-out", memory_out]
        if path.kind == "ethox":
            assert path.device and path.address
            # The device string names the namespace; the process itself needs none.
            gateway = ["--gateway", path.gateway] if path.gateway else []
            return [*taskset(cpus), *script, "--device", path.device, "--address", path.address,
                    *gateway]
        return ["ip", "netns", "exec", self.server_netns, *taskset(cpus), *script]

    def client_cmd(self, cpus: str | None, *args: Any, netns: str | None = None,
                   cc: str | None = None) -> list[str]:
        env = ["env", f"EPOLL_CC={cc}"] if cc else []
        return ["ip", "netns", "exec", netns or self.client_netns, *env, *taskset(cpus),
                self.client_bin, *map(str, args)]

    def run_client(self, cpus: str | None, *args: Any, timeout: float,
                   netns: str | None = None, cc: str | None = None) -> dict[str, Any]:
        cmd = self.client_cmd(cpus, *args, netns=netns, cc=cc)
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
        if phase == "pp100":
            return ["pingpong", path.host, PORT_ECHO, 100, PAYLOAD, a.seconds, 5_000_000,
                    2000], a.seconds
        if phase == "conn":
            port = CONN_PORTS[round_no % len(CONN_PORTS)]
            return ["connrate", path.host, port, a.conn_concurrency, a.seconds, 2_000_000], \
                a.seconds
        size = a.bulk_mb * 1_000_000
        if phase in ("up", "loss-up", "ref-up"):
            return ["send", path.host, PORT_SINK, size, a.bulk_seconds], a.bulk_seconds
        if phase in ("down", "loss-down", "ref-down"):
            return ["recv", path.host, PORT_SOURCE, size, a.bulk_seconds], a.bulk_seconds
        raise ValueError(phase)

    def measure(self, phase: str, path: Path, server: Server, pin: str, round_no: int,
                record_as: str | None = None, netns: str | None = None,
                cc: str | None = None) -> Sample | None:
        _, client_cpus = parse_pin(pin)
        args, seconds = self.phase_args(phase, path, round_no)
        wall0, cpu0 = time.monotonic(), server.cpu_seconds()
        try:
            data = self.run_client(client_cpus, *args, timeout=seconds + 60, netns=netns,
                                   cc=cc)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            self.failures.append(f"{record_as or phase} {path.name} ({pin_label(pin)}): {exc}")
            print(f"  FAILED {record_as or phase} {path.name}: {exc}", file=sys.stderr)
            return None
        wall, cpu = time.monotonic() - wall0, server.cpu_seconds() - cpu0
        key = f"{path.name} ({pin_label(pin)})"  # io_uring workers come and go: the most
        self.threads[key] = max(self.threads.get(key, 0), server.threads())
        if phase.startswith("pp"):  # pp1, pp10, pp100
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
        per_op = phase in PER_OP
        sample = Sample(record_as or phase, path.name, pin, value, data["cpu_pct"],
                        100 * cpu / wall, 1e6 * cpu / ops if per_op and ops else 0.0,
                        data.get("p50_us", 0.0), data.get("p99_us", 0.0), note, ops)
        self.samples.append(sample)
        unit = {"pp1": "req/s", "pp10": "req/s", "pp100": "req/s",
                "conn": "conn/s"}.get(phase, "Gbit/s")
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

    def idle_memory(self, path: Path, server: Server,
                    on_start: Callable[[], None] | None = None,
                    on_done: Callable[[], None] | None = None) -> Sample | None:
        """RSS growth (and, for a kernel server, its sockets' ``ss -m`` memory) while the
        client holds ``--idle`` connections; then an echo round on every one of them.
        ``on_start``/``on_done`` run right before the client starts / after its echo
        round (the profile's SIGUSR1/SIGUSR2)."""
        count = self.args.idle
        self.warm_light(path, server)
        time.sleep(0.3)
        rss0 = server.rss_kb()
        seconds = 60 + count / 50  # the client's own bound: 260 s for 10 000
        cmd = self.client_cmd(None, "idle", path.host, PORT_ECHO, count, seconds)
        link = self.link_of(path)
        drops0 = link_drops(self.client_netns, link)
        if on_start:
            on_start()
        cpu_open = server.cpu_seconds()
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        lines = LineReader(process)
        extra: dict[str, Any] = {}
        try:
            held = lines.expect("held", seconds + 5)
            extra["open_seconds"] = held["open_seconds"]
            extra["open_cpu_us"] = 1e6 * (server.cpu_seconds() - cpu_open) / count
            cpu0, wall0 = server.cpu_seconds(), time.monotonic()
            time.sleep(IDLE_HOLD)
            extra["idle_cpu_pct"] = 100 * (server.cpu_seconds() - cpu0) / (
                time.monotonic() - wall0)
            rss1 = server.rss_kb()
            if path.kind != "ethox":
                sockets, allocated, limits = socket_memory(self.server_netns, path.host,
                                                           PORT_ECHO)
                extra.update(sockets=sockets, skmem_kb=allocated / 1024 / count,
                             skmem_limits_kb=limits / 1024 / count)
            cpu_echo = server.cpu_seconds()
            lines.send()
            echoed = lines.expect("echoed", seconds + 5)
            extra.update(echoed=echoed["echoed"], missing=echoed["missing"],
                         echo_seconds=echoed["echo_seconds"], rss_after_echo=server.rss_kb(),
                         echo_cpu_us=1e6 * (server.cpu_seconds() - cpu_echo) / count)
            if on_done:
                on_done()
            drops1 = link_drops(self.client_netns, link)
            extra.update({f"{link} {k}": drops1[k] - drops0[k] for k in drops0})
            lines.send()
            lines.expect("released", 60)
            process.wait(timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            self.failures.append(f"idle {path.name}: {exc}")
            print(f"  FAILED idle {path.name}: {exc} {extra}", file=sys.stderr)
            return None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for stream in (process.stdout, process.stdin, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if extra["missing"]:
            self.failures.append(f"idle {path.name}: {extra['missing']} of {count} "
                                 f"connections did not echo")
        if path.kind != "ethox" and extra["sockets"] != count:
            self.failures.append(f"idle {path.name}: ss -m saw {extra['sockets']} sockets, "
                                 f"not {count}")
        extra.update(rss0=rss0, rss1=rss1)
        sample = Sample("idle", path.name, "none", (rss1 - rss0) / count,
                        note=f"{rss0} → {rss1} KB", extra=extra)
        self.samples.append(sample)
        print(f"  idle  {path.name:20s} {sample.value:8.2f} KB/conn  (RSS {rss0} → {rss1} KB"
              + (f", ss -m {extra['skmem_kb']:.2f} KB/conn allocated, "
                 f"{extra['skmem_limits_kb']:.1f} KB/conn limits, {extra['sockets']} sockets"
                 if "skmem_kb" in extra else "")
              + f"; opened in {extra['open_seconds']:.1f} s ({extra['open_cpu_us']:.0f} µs "
              f"server CPU each), idle CPU {extra['idle_cpu_pct']:.1f} %, echoed "
              f"{extra['echoed']}/{count} in {extra['echo_seconds']:.2f} s "
              f"({extra['echo_cpu_us']:.0f} µs server CPU each); {link} drops "
              + ", ".join(f"{k.split()[-1]} {v}" for k, v in extra.items()
                          if k.startswith(link + " ")) + ")", file=sys.stderr)
        return sample

    def link_of(self, path: Path) -> str:
        """The client namespace's link toward ``path``: its TAP, or the servers' veth."""
        if path.kind == "ethox":
            assert path.device
            return path.device.partition(":")[2].partition(",")[0]
        return f"etc{os.getpid()}"

    def warm_light(self, path: Path, server: Server) -> None:
        size = min(self.args.warm_mb, 8) * 1_000_000
        for step in (["send", path.host, PORT_SINK, size, 20],
                     ["recv", path.host, PORT_SOURCE, size, 20],
                     ["pingpong", path.host, PORT_ECHO, 1, PAYLOAD, 0.2, 100_000, 50]):
            try:
                self.run_client(None, *step, timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                print(f"  light warm-up {step[0]} {path.name} FAILED: {exc}", file=sys.stderr)


PHASES = ("pp1", "pp10", "pp100", "conn", "up", "down")  # on the servers of each pin setting
SECTIONS = ("loss", "idle")  # with servers of their own, after the phases
PER_OP = ("cold", "pp1", "pp10", "pp100", "conn")  # figures per request / connection
PHASE_TITLES = {
    "cold": "64 B ping-pong, 1 conn, **cold** server (req/s)",
    "pp1": "64 B ping-pong, 1 conn (req/s)",
    "pp10": "64 B ping-pong, 10 conns (req/s)",
    "pp100": "64 B ping-pong, 100 conns (req/s)",
    "conn": "connect + 1 B echo + close (conn/s)",
    "up": "bulk client → server (Gbit/s)",
    "down": "bulk server → client (Gbit/s)",
    "idle": "RSS per idle connection (KB)",
}
IDLE_HOLD = 2.0  # seconds the idle connections are held before the RSS is read


class LineReader:
    """JSON lines from a client process's stdout, each awaited with a deadline (os.read,
    so that no line waits in a buffer select cannot see); lines to its stdin."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None and process.stdin is not None
        self.process = process
        self.fd = process.stdout.fileno()
        self.buffer = b""

    def expect(self, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not readable:
                raise RuntimeError(f"idle client: no {key!r} line in {timeout:.0f} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"idle client ended before {key!r}: {error.strip()[-500:]}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        data: dict[str, Any] = json.loads(line)
        if key not in data:
            raise RuntimeError(f"idle client: {line.decode()!r}, expected {key!r}")
        return data

    def send(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"\n")
        self.process.stdin.flush()


def socket_memory(netns: str, host: str, port: int) -> tuple[int, int, int]:
    """The established TCP sockets on ``host``:``port`` in ``netns`` as ``ss -m`` shows
    them: (count, allocated bytes: r + t + f + w + o + bl summed, limits: rb + tb summed)."""
    import re

    result = subprocess.run(["ip", "netns", "exec", netns, "ss", "-tmnH", "state",
                             "established", "src", f"{host}:{port}"],
                            capture_output=True, text=True, timeout=60, check=True)
    count = allocated = limits = 0
    for match in re.finditer(r"skmem:\(([^)]*)\)", result.stdout):
        fields: dict[str, int] = {}
        for item in match.group(1).split(","):
            parts = re.fullmatch(r"([a-z]+)(\d+)", item)
            if parts:
                fields[parts.group(1)] = int(parts.group(2))
        count += 1
        allocated += sum(fields.get(k, 0) for k in ("r", "t", "f", "w", "o", "bl"))
        limits += fields.get("rb", 0) + fields.get("tb", 0)
    return count, allocated, limits


def kernel_socket_objects() -> dict[str, int]:
    """Object sizes (bytes) of the slab caches one accepted, epoll-watched kernel TCP
    socket takes, which neither ``ss -m`` nor RSS shows (/proc/slabinfo; {} unreadable)."""
    wanted = ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi")
    sizes: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/slabinfo") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] in wanted:
                sizes[fields[0]] = int(fields[3])
    return sizes


def run_benchmark(bench: Bench, paths: list[Path], pins: list[str]) -> None:
    args = bench.args
    for pin in pins if bench.phases else []:
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
    if "loss" in bench.sections:
        run_loss(bench, paths)
    if "idle" in bench.sections:
        print(f"== idle memory: {args.idle} connections, a fresh server per run",
              file=sys.stderr)
        for _ in range(args.runs):
            for path in paths:
                server = Server(bench.server_command(path, None))
                try:
                    bench.idle_memory(path, server)
                finally:
                    server.stop()
                    if server.error_text and "Traceback" in server.error_text:
                        print(server.error_text, file=sys.stderr)


# --- the loss phase -------------------------------------------------------------------------

def loss_rules(router_if: str) -> str:
    """The drop rule (``nft -f`` text): in the client's namespace, which forwards every
    packet between the lossy client and any server, ``LOSS_PERCENT`` % of the forwarded
    TCP segments without SYN/FIN/RST are dropped at random, each direction counted."""
    rules = []
    for match, comment in (("iifname", "to-server"), ("oifname", "to-client")):
        rules.append(f'    {match} "{router_if}" tcp flags & (fin | syn | rst) == 0 counter '
                     f"numgen random mod 100 < {LOSS_PERCENT} counter drop "
                     f'comment "{comment}"')
    return (f"table inet {LOSS_TABLE} {{\n  chain forward {{\n"
            "    type filter hook forward priority filter; policy accept;\n"
            + "\n".join(rules) + "\n  }\n}\n")


def nft(netns: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(["ip", "netns", "exec", netns, "nft", *args], input=stdin,
                            capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def loss_counters(netns: str) -> dict[str, float]:
    """Per direction: packets matched, dropped, and mean bytes (IP length) per packet."""
    data = json.loads(nft(netns, "-j", "list", "table", "inet", LOSS_TABLE))
    out: dict[str, float] = {}
    for item in data["nftables"]:
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        counters = [e["counter"] for e in rule["expr"] if "counter" in e]
        seen, dropped = counters[0], counters[1]
        key = rule["comment"]
        out[f"{key} packets"] = seen["packets"]
        out[f"{key} dropped"] = dropped["packets"]
        out[f"{key} bytes/packet"] = seen["bytes"] / seen["packets"] if seen["packets"] else 0
    return out


def sysctl(netns: str, setting: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", setting],
                   check=True, timeout=30, capture_output=True)


def tcp_counters(netns: str) -> dict[str, int]:
    """The namespace's TCP counters (/proc/net/snmp ``Tcp:``, /proc/net/netstat ``TcpExt:``)."""
    result = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp",
                             "/proc/net/netstat"], capture_output=True, text=True, timeout=30,
                            check=True)
    out: dict[str, int] = {}
    lines = result.stdout.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        prefix, _, keys = names.partition(":")
        if prefix in ("Tcp", "TcpExt") and values.startswith(prefix + ":"):
            for key, value in zip(keys.split(), values.partition(":")[2].split(),
                                  strict=False):
                out[key] = int(value)
    return out


LOSS_TCP_COUNTERS = ("RetransSegs", "TCPOFOQueue", "TCPSACKReorder", "TCPDSACKRecvSegs")


def link_drops(netns: str, device: str) -> dict[str, int]:
    """The link's dropped counters: ``tx_dropped`` (toward the stack or the servers; a
    TAP drops what its reader does not take in time), ``rx_dropped``."""
    data = json.loads(ip("-n", netns, "-s", "-j", "link", "show", "dev", device).stdout)
    stats = data[0].get("stats64", data[0].get("stats", {}))
    return {"tx_dropped": int(stats["tx"]["dropped"]), "rx_dropped": int(stats["rx"]["dropped"])}


def start_capture(netns: str, device: str, out_file: str) -> subprocess.Popen[bytes]:
    """tcpdump of the TCP headers on ``device`` into ``out_file`` (bounded: 2 million
    packets), once it is listening."""
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    process = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-i", device, "-s",
                                "96", "-c", "2000000", "-U", "-n", "tcp", "-w", out_file],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    readable, _, _ = select.select([process.stderr], [], [], 10)  # "listening on ..."
    if readable:
        process.stderr.readline()
    return process


def interrupt(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGINT (tcpdump and strace write what they have), then kill after ``timeout``."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def stop_capture(process: subprocess.Popen[bytes]) -> None:
    time.sleep(0.2)
    if process.poll() is None:
        interrupt(process, 10)
    if process.stderr is not None:
        process.stderr.close()


def pcap_stalls(pcap_file: str, client: str, gap: float = 0.05) -> dict[str, float]:
    """From a capture on the lossy client's link (after the drop rule): the data
    direction's segments, those seen twice (a retransmission of a segment that got
    through), those first seen behind the highest sequence already seen (a
    retransmission of a dropped one or, without the rule, a segment sent or delivered
    out of order) and stalls (no data segment for ``gap`` s or more): count, seconds."""
    import struct

    with open(pcap_file, "rb") as f:
        raw = f.read()
    if len(raw) < 24:
        return {}
    endian = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = raw[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    flows: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
    offset = 24
    while offset + 16 <= len(raw):
        sec, frac, caplen, _length = struct.unpack_from(endian + "IIII", raw, offset)
        frame = raw[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 54 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        total = int.from_bytes(frame[16:18], "big")
        src = ".".join(str(b) for b in frame[26:30])
        tcp = frame[14 + ihl:]
        if len(tcp) < 20:
            continue
        seq = int.from_bytes(tcp[4:8], "big")
        payload = total - ihl - (tcp[12] >> 4) * 4
        if payload > 0:
            flows[src == client].append((sec + frac / (1e9 if nano else 1e6), seq, payload))
    data = max(flows.values(), key=len)  # the direction that carried the bulk
    if not data:
        return {}
    again = late = stalls = 0
    stalled = 0.0
    highest = None
    seen: set[int] = set()
    for i, (t, seq, length) in enumerate(data):
        end = seq + length
        ahead = None if highest is None else (end - highest) % 2**32  # seq wraps
        if seq in seen:
            again += 1
        elif ahead is not None and (ahead == 0 or ahead > 2**31):
            late += 1  # first seen, ending at or before the highest end seen
        else:
            highest = end
        seen.add(seq)
        if i and t - data[i - 1][0] >= gap:
            stalls += 1
            stalled += t - data[i - 1][0]
    return {"pcap data segments": len(data), "pcap seen twice": again, "pcap late": late,
            f"pcap stalls >= {gap * 1000:.0f} ms": stalls, "pcap stalled s": stalled,
            "pcap span s": data[-1][0] - data[0][0]}


def gso_max_segs(netns: str, device: str) -> int:
    data = json.loads(ip("-n", netns, "-d", "-j", "link", "show", "dev", device).stdout)
    return int(data[0].get("gso_max_segs", 65535))


def run_loss(bench: Bench, paths: list[Path]) -> None:
    """Bulk both ways from a lossy client namespace routed through the client's namespace,
    with and without the drop rule, on fresh servers (see the module docstring)."""
    args = bench.args
    pin = args.loss_pin
    pid = os.getpid()
    router_if, client_if, server_if = f"elr{pid}", f"elc{pid}", f"ets{pid}"
    server_cpus, _ = parse_pin(pin)
    print(f"== loss: {LOSS_PERCENT} % random drop in the client namespace's forward hook "
          f"({pin_label(pin)})", file=sys.stderr)
    loss_paths = []
    for path in paths:
        if path.kind == "ethox":
            assert path.device and path.address
            gateway = str(next(IPv4Interface(path.address).network.hosts()))
            device, name = path.device, path.name
            if not args.loss_gso:
                device, name = device + ",offload=off", name[:-1] + ", offload=off)"
            loss_paths.append(Path(name, "ethox", path.host, device, path.address, gateway))
        else:
            loss_paths.append(path)
    servers: dict[str, Server] = {}
    with veth_namespace(bench.client_netns, f"ethox-bench-{pid}-tcp-loss", router_if,
                        client_if, str(LOSS_ROUTER), [str(LOSS_CLIENT)],
                        txqueuelen=10000) as loss_netns:
        saved_segs = gso_max_segs(bench.server_netns, server_if)
        try:
            ip("-n", loss_netns, "route", "add", "198.18.0.0/15", "via", str(LOSS_ROUTER.ip))
            ip("-n", bench.server_netns, "route", "add", str(LOSS_ROUTER.network), "via",
               str(CLIENT_VETH.ip))
            sysctl(bench.client_netns, "net.ipv4.ip_forward=1")
            if not args.loss_gso:
                # Every sender toward the drop rule sends one segment per packet (no GSO
                # super-packet is dropped whole): the lossy client, the kernel servers,
                # the stack (offload=off); the veths do no GRO.
                ip("-n", loss_netns, "link", "set", "dev", client_if, "gso_max_segs", "1")
                ip("-n", bench.server_netns, "link", "set", "dev", server_if,
                   "gso_max_segs", "1")
            for path in loss_paths:
                servers[path.name] = Server(bench.server_command(path, server_cpus,
                                                                 cc=args.loss_cc or None))
            for path in loss_paths:
                bench.warm(path, servers[path.name], pin)
            for round_no in range(args.runs):
                print(f"-- loss round {round_no + 1}/{args.runs}", file=sys.stderr)
                shift = round_no % len(loss_paths)
                order = loss_paths[shift:] + loss_paths[:shift]
                for direction in ("up", "down"):
                    for path in order:
                        server = servers[path.name]
                        if not server.alive():
                            bench.failures.append(f"loss {path.name}: server died: "
                                                  f"{server.error_text}")
                            continue
                        for lossy in (False, True):
                            if lossy:
                                nft(bench.client_netns, "-f", "-", stdin=loss_rules(router_if))
                            try:
                                before = {ns: tcp_counters(ns)
                                          for ns in (loss_netns, bench.server_netns)}
                                link = bench.link_of(path)
                                drops0 = link_drops(bench.client_netns, link)
                                capture = None
                                kind = "loss" if lossy else "ref"
                                capture_file = os.path.join(
                                    args.loss_pcap or ".",
                                    f"{path.name}-{kind}-{direction}-{round_no}.pcap"
                                    .replace(" ", "_"))
                                if args.loss_pcap:
                                    capture = start_capture(loss_netns, client_if, capture_file)
                                try:
                                    sample = bench.measure(
                                        f"{'loss' if lossy else 'ref'}-{direction}", path,
                                        server, pin, round_no, netns=loss_netns,
                                        cc=args.loss_cc or None)
                                finally:
                                    if capture is not None:
                                        stop_capture(capture)
                                if sample is None:
                                    continue
                                if capture is not None:
                                    sample.extra.update(pcap_stalls(capture_file,
                                                                    str(LOSS_CLIENT.ip)))
                                for ns, label in ((loss_netns, "client"),
                                                  (bench.server_netns, "kernel server")):
                                    if ns == bench.server_netns and path.kind == "ethox":
                                        continue
                                    after = tcp_counters(ns)
                                    for key in LOSS_TCP_COUNTERS:
                                        sample.extra[f"{label} {key}"] = \
                                            after.get(key, 0) - before[ns].get(key, 0)
                                drops1 = link_drops(bench.client_netns, link)
                                sample.extra.update({f"link {k}": drops1[k] - drops0[k]
                                                     for k in drops0})
                                if lossy:
                                    sample.extra.update(loss_counters(bench.client_netns))
                                print("        " + ", ".join(
                                    f"{k} {v:,.0f}" for k, v in sample.extra.items()),
                                    file=sys.stderr)
                            finally:
                                if lossy:
                                    nft(bench.client_netns, "delete", "table", "inet",
                                        LOSS_TABLE, check=False)
        finally:
            for server in servers.values():
                server.stop()
                if server.error_text and "Traceback" in server.error_text:
                    print(server.error_text, file=sys.stderr)
            nft(bench.client_netns, "delete", "table", "inet", LOSS_TABLE, check=False)
            sysctl(bench.client_netns, "net.ipv4.ip_forward=0")
            ip("-n", bench.server_netns, "link", "set", "dev", server_if, "gso_max_segs",
               str(saved_segs), check=False)
            ip("-n", bench.server_netns, "route", "del", str(LOSS_ROUTER.network), check=False)


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
                          spread if spread else group[0].note,
                          extra={k: statistics.median(s.extra[k] for s in group)
                                 for k in group[0].extra
                                 if all(isinstance(s.extra.get(k), int | float)
                                        for s in group)})
    return out


def fmt(value: float, phase: str) -> str:
    if phase in ("up", "down") or phase.startswith(("loss-", "ref-")):
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
    out: list[str] = []
    if bench.phases:
        render_phases(bench, m, [p.name for p in paths], pins, out)
    if "loss" in bench.sections:
        render_loss(bench, m, bench.args.loss_pin, out)
    if "idle" in bench.sections:
        render_idle(bench, m, [p.name for p in paths], out)
    if bench.threads:
        out.append("")
        out.append("Most threads seen in a server process right after a phase: " + ", ".join(
            f"{k}: {v}" for k, v in bench.threads.items()))
    if bench.failures:
        out.append("")
        out.append("Failures:")
        out.extend(f"- {f}" for f in bench.failures)
    return "\n".join(out) + "\n"


def render_phases(bench: Bench, m: dict[tuple[str, str, str], Sample], names: list[str],
                  pins: list[str], out: list[str]) -> None:
    phases = bench.phases
    short = {"pp1": "1 conn req/s", "pp10": "10 conns req/s", "pp100": "100 conns req/s",
             "conn": "conn/s", "up": "up Gbit/s", "down": "down Gbit/s"}
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
                per_op = phase in PER_OP
                out.append(
                    f"| {phase} | {pin_label(pin)} | {name} | {fmt(s.value, phase)} | {s.note} "
                    f"| {ratio(m, phase, pin, name, 'kernel asyncio')} "
                    f"| {ratio(m, phase, pin, name, 'kernel uvloop')} "
                    f"| {f'{s.p50_us:.1f}' if per_op else ''} "
                    f"| {f'{s.p99_us:.1f}' if per_op else ''} "
                    f"| {f'{s.server_us_per_op:.1f}' if per_op else ''} | {s.server_cpu:.0f} "
                    f"| {s.client_cpu:.0f} |")


def render_loss(bench: Bench, m: dict[tuple[str, str, str], Sample], pin: str,
                out: list[str]) -> None:
    args = bench.args
    names: list[str] = []
    for s in bench.samples:
        if s.phase.startswith(("loss-", "ref-")) and s.path not in names:
            names.append(s.path)
    segments = ("whole GSO/TSO super-packets (--loss-gso)" if args.loss_gso else
                "every sender one segment per packet (stack offload=off, gso_max_segs 1)")
    out.append("")
    out.append(f"Bulk under {LOSS_PERCENT} % random loss ({pin_label(pin)}; Gbit/s, medians; "
               f"kernel endpoints' congestion control {args.loss_cc or 'as configured'}): the "
               "client in a namespace of its own, routed through the client's namespace, whose "
               f"forward hook drops {LOSS_PERCENT} % of the TCP segments (no SYN/FIN/RST) each "
               f"way at random; {segments}. *no loss*: the same route without the rule. "
               "Linux-to-Linux = the kernel servers over the veth:")
    out.append("")
    out.append("| path | up, no loss | **up, 1 % loss** | ÷ asyncio | ÷ uvloop | ÷ C "
               "| down, no loss | **down, 1 % loss** | ÷ asyncio | ÷ uvloop | ÷ C "
               "| dropped to server / to client (up; down) | B/packet, data direction "
               "| kernel sender's retransmissions, no loss / loss (up; down) "
               "| receiver's out-of-order queueings, no loss / loss (up; down) "
               "| pcap: stalls ≥ 50 ms (s) in the loss run; segments first seen late without "
               "loss (up; down) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        cells, drops, sizes, retrans, ofo, pcap = [], [], [], [], [], []
        for direction in ("up", "down"):
            ref = m.get((f"ref-{direction}", pin, name))
            loss = m.get((f"loss-{direction}", pin, name))
            cells.append(fmt(ref.value, "up") if ref else "failed")
            cells.append(f"**{fmt(loss.value, 'up')}**" if loss else "failed")
            cells += [ratio(m, f"loss-{direction}", pin, name, base)
                      for base in ("kernel asyncio", "kernel uvloop", "kernel C epoll")]
            if loss and loss.extra:
                e = loss.extra
                parts = []
                for key in ("to-server", "to-client"):
                    packets = e.get(f"{key} packets", 0)
                    parts.append(f"{100 * e.get(f'{key} dropped', 0) / packets:.2f} %"
                                 if packets else "–")
                drops.append(" / ".join(parts))
                data_dir = "to-server" if direction == "up" else "to-client"
                sizes.append(f"{e.get(f'{data_dir} bytes/packet', 0):.0f}")
            sender = "client" if direction == "up" else "kernel server"
            key = f"{sender} RetransSegs"
            if ref and loss and key in ref.extra and key in loss.extra:
                retrans.append(f"{ref.extra[key]:.0f} / {loss.extra[key]:.0f}")
            else:
                retrans.append("– (the stack)")
            receiver = "kernel server" if direction == "up" else "client"
            key = f"{receiver} TCPOFOQueue"
            if ref and loss and key in ref.extra and key in loss.extra:
                ofo.append(f"{ref.extra[key]:.0f} / {loss.extra[key]:.0f}")
            else:
                ofo.append("– (the stack)")
            stall_key = "pcap stalls >= 50 ms"
            if loss and ref and stall_key in loss.extra and "pcap late" in ref.extra:
                pcap.append(f"{loss.extra[stall_key]:.0f} ({loss.extra['pcap stalled s']:.2f} s)"
                            f", {ref.extra['pcap late']:.0f}")
            else:
                pcap.append("–")
        out.append(f"| {name} | " + " | ".join(cells) + f" | {'; '.join(drops)} "
                   f"| {'; '.join(sizes)} | {'; '.join(retrans)} | {'; '.join(ofo)} "
                   f"| {'; '.join(pcap)} |")


def render_idle(bench: Bench, m: dict[tuple[str, str, str], Sample], names: list[str],
                out: list[str]) -> None:
    count = bench.args.idle
    out.append("")
    out.append(f"Memory per idle established connection, {count} held (medians): RSS growth of "
               "a fresh, lightly warmed server while the client holds them; for a kernel "
               "server also its sockets' memory as `ss -m` shows it in the server's namespace "
               "(skmem r+t+f+w+o+bl allocated; rb+tb are the buffer limits, not memory in "
               "use); then every connection echoes 1 B (served):")
    out.append("")
    out.append("| path | RSS KB/conn | ss -m KB/conn | **RSS + ss -m** | ÷ asyncio "
               "| ss -m limits KB/conn | sockets | opened in s | idle CPU % | echoed "
               "| echo round s | RSS after the echo round | RSS before → with (one run) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    raw_idle = {s.path: s.note for s in bench.samples if s.phase == "idle"}
    totals: dict[str, float] = {}
    for name in names:
        s = m.get(("idle", "none", name))
        if s is not None:
            totals[name] = s.value + s.extra.get("skmem_kb", 0.0)
    for name in names:
        s = m.get(("idle", "none", name))
        if s is None:
            out.append(f"| {name} | failed |" + " |" * 11)
            continue
        e = s.extra
        base = totals.get("kernel asyncio")
        skmem = f"{e['skmem_kb']:.2f}" if "skmem_kb" in e else "– (none)"
        limits = f"{e['skmem_limits_kb']:.1f}" if "skmem_limits_kb" in e else "–"
        rss_after = (e.get("rss_after_echo", 0) - e.get("rss0", 0)) / count
        out.append(f"| {name} | {s.value:.1f} | {skmem} | **{totals[name]:.1f}** "
                   f"| {f'{totals[name] / base:.2f}' if base else '–'} | {limits} "
                   f"| {e.get('sockets', '–')} | {e.get('open_seconds', 0):.1f} "
                   f"| {e.get('idle_cpu_pct', 0):.1f} | {e.get('echoed', 0):.0f}/{count} "
                   f"| {e.get('echo_seconds', 0):.2f} | {rss_after:.1f} KB/conn "
                   f"| {raw_idle.get(name, '')} |")
    objects = kernel_socket_objects()
    if objects:
        out.append("")
        out.append("Not in `ss -m` nor in any RSS: the kernel's own objects per accepted, "
                   "epoll-watched TCP socket (/proc/slabinfo object sizes): " + ", ".join(
                       f"{k} {v} B" for k, v in objects.items())
                   + f" = {sum(objects.values()) / 1024:.1f} KB.")
    base = totals.get("kernel asyncio")
    asyncio_idle = m.get(("idle", "none", "kernel asyncio"))
    if base and asyncio_idle is not None:
        readings = [("transport + ss -m allocated", base)]
        if "skmem_limits_kb" in asyncio_idle.extra:
            readings.append(("transport + ss -m buffer limits rb+tb",
                             asyncio_idle.value + asyncio_idle.extra["skmem_limits_kb"]))
        if objects:
            readings.append(("transport + ss -m allocated + the kernel's socket objects",
                             base + sum(objects.values()) / 1024))
        for name in names:
            if name.startswith("ethox") and name in totals:
                out.append("")
                out.append(f"Bar (stack + transport ≤ stock asyncio's per-connection cost), "
                           f"{name} {totals[name]:.1f} KB vs asyncio's " + "; ".join(
                               f"{label} {cost:.1f} KB: "
                               f"{'met' if totals[name] <= cost else 'NOT met'}"
                               for label, cost in readings) + ".")


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
    if phase == "idle":
        return run_idle_profile(bench, paths, workdir)
    pin = args.pin.split(",")[0]
    server_cpus, _ = parse_pin(pin)
    py_spy = args.py_spy or shutil.which("py-spy")
    per_op = phase in PER_OP
    unit = "request" if phase.startswith("pp") else ("connection" if per_op else "MB")
    out: list[str] = []
    for path in paths:
        if path.kind in ("asyncio", "uvloop"):
            out.append(profile_kernel_server(bench, path, pin, workdir))
            continue
        if path.kind != "ethox":
            continue
        profile_out = os.path.join(workdir, f"{path.name.replace(' ', '_')}.prof")
        server = Server(bench.server_command(path, server_cpus, profile_out))
        spy_text = perf_text = ""
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
            perf_text = measure_perf(bench, phase, path, server, pin, workdir, args.top) \
                if shutil.which("perf") else ""
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
        if perf_text:
            out.append(perf_text)
        out.extend(profile_tables(rows, total_tt, ops, unit, args.top))
        if spy_text:
            out.append(spy_text)
    return "\n".join(out) + "\n"


def profile_kernel_server(bench: Bench, path: Path, pin: str, workdir: str) -> str:
    """The same phase on a kernel-socket server, for comparison: CPU per operation split
    into user and system, and perf's split by object (what the stack's own rows are
    read against: the kernel's share of a request on each path)."""
    args = bench.args
    phase = args.profile_phase
    server_cpus, _ = parse_pin(pin)
    per_op = phase in PER_OP
    unit = "request" if phase.startswith("pp") else ("connection" if per_op else "MB")
    server = Server(bench.server_command(path, server_cpus))
    try:
        print(f"== profile {phase} {path.name} ({pin_label(pin)})", file=sys.stderr)
        bench.warm(path, server, pin)
        split0 = server.cpu_split()
        plain = bench.measure(phase, path, server, pin, 0, record_as="profile-plain")
        split = [b - a for a, b in zip(split0, server.cpu_split(), strict=True)]
        perf_text = measure_perf(bench, phase, path, server, pin, workdir, args.top) \
            if shutil.which("perf") else ""
    finally:
        server.stop()
    if plain is None or not plain.ops:
        return f"### {path.name}: profile failed\n"
    per_unit = plain.ops if per_op else plain.ops / 1e6
    return "\n".join([
        f"### {path.name}: {PHASE_TITLES[phase]}, {pin_label(pin)}\n",
        f"- without profiler: {fmt(plain.value, phase)}, server CPU "
        + (f"{plain.server_us_per_op:.1f} µs per {unit} " if per_op else "")
        + f"({plain.server_cpu:.0f} % of a CPU)",
        f"- server CPU per {unit}: user {1e6 * split[0] / per_unit:.1f} µs, "
        f"system {1e6 * split[1] / per_unit:.1f} µs", "", perf_text]) + "\n"


def profile_tables(rows: list[tuple[str, int, float, float]], total_tt: float, ops: float,
                   unit: str, top: int) -> list[str]:
    """Own time by module, then the top functions by cumulative and by own time."""
    out: list[str] = []
    modules: dict[str, float] = {}
    for where, _nc, tt, _ct in rows:
        module = where.split(":")[0] if ":" in where and not where.startswith("<") else \
            "C functions and methods (builtins, syscalls, liburing)"
        modules[module] = modules.get(module, 0.0) + tt
    out.append(f"Own time by module, per {unit} (of {1e6 * total_tt / ops:,.1f} µs):")
    out.append("")
    out.append("| module | own µs | share |")
    out.append("|---|---|---|")
    for module, tt in sorted(modules.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"| `{module}` | {1e6 * tt / ops:.1f} | {100 * tt / total_tt:.0f} % |")
    out.append("")
    for title, own in (("cumulative", False), ("own (total)", True)):
        out.append(f"Top {top} by {title} time, per {unit}:")
        out.append("")
        out.append(f"| function | calls/{unit} | own µs | cumulative µs |")
        out.append("|---|---|---|---|")
        for where, nc, tt, ct in sorted(rows, key=lambda r: -(r[2] if own else r[3]))[:top]:
            out.append(f"| `{where}` | {nc / ops:.2f} | {1e6 * tt / ops:.2f} "
                       f"| {1e6 * ct / ops:.2f} |")
        out.append("")
    return out


def signaller(pid: int, signum: int) -> Callable[[], None]:
    """A callable that sends ``signum`` to ``pid``."""
    def send() -> None:
        os.kill(pid, signum)
    return send


def idle_under_signals(bench: Bench, path: Path, output: str,
                       **server_options: Any) -> Sample | None:
    """The idle phase on a fresh server that records between SIGUSR1 (connections about
    to open) and SIGUSR2 (echo round done) into ``output``; waits (60 s at most) for
    the file, stops the server. The idle sample, or None."""
    server = Server(bench.server_command(path, None, **server_options))
    try:
        sample = bench.idle_memory(path, server, on_start=signaller(server.pid, signal.SIGUSR1),
                                   on_done=signaller(server.pid, signal.SIGUSR2))
        deadline = time.monotonic() + 60
        while not os.path.exists(output) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    return sample if os.path.exists(output) else None


def run_idle_profile(bench: Bench, paths: list[Path], workdir: str) -> str:
    """Per ethox path: the idle phase (open ``--idle`` connections, hold, echo round on
    each) with cProfile on from right before the client starts to after the echo round,
    per connection."""
    count = bench.args.idle
    out: list[str] = []
    for path in paths:
        if path.kind != "ethox":
            continue
        profile_out = os.path.join(workdir, f"{path.name.replace(' ', '_')}-idle.prof")
        print(f"== profile idle {path.name}: {count} connections", file=sys.stderr)
        sample = idle_under_signals(bench, path, profile_out, profile_out=profile_out)
        if sample is None:
            out.append(f"### {path.name}: idle profile failed\n")
            continue
        e = sample.extra
        total_calls, total_tt, rows = profile_rows(profile_out)
        out.append(f"### {path.name}: {count} idle connections under cProfile\n")
        out.append(f"- opened in {e['open_seconds']:.1f} s ({e['open_cpu_us']:.0f} µs server "
                   f"CPU per connection), echo round {e['echo_seconds']:.2f} s "
                   f"({e['echo_cpu_us']:.0f} µs per connection), idle CPU "
                   f"{e['idle_cpu_pct']:.1f} %, RSS {sample.value:.1f} KB per connection")
        out.append(f"- {total_calls / count:,.0f} Python function calls per connection; "
                   f"profiled time {1e6 * total_tt / count:,.1f} µs per connection "
                   "(open + hold + echo round)")
        out.append("")
        out.extend(profile_tables(rows, total_tt, count, "connection", bench.args.top))
        out.extend(idle_allocations(bench, path, workdir))
        if shutil.which("strace"):
            out.extend(idle_waits(bench, path, workdir))
    return "\n".join(out) + "\n"


def idle_allocations(bench: Bench, path: Path, workdir: str) -> list[str]:
    """A fresh server under tracemalloc: the Python allocations alive after the idle
    phase (connections held, echo round done) that were not before it, by source line,
    per connection."""
    memory_out = os.path.join(workdir, f"{path.name.replace(' ', '_')}-idle.mem")
    sample = idle_under_signals(bench, path, memory_out, memory_out=memory_out)
    if sample is None:
        return ["tracemalloc of the idle phase failed", ""]
    count = bench.args.idle
    rows = []
    with open(memory_out) as f:
        for line in f:
            size_text, number_text, where_text = line.split(maxsplit=2)
            rows.append((int(size_text), int(number_text), where_text.strip()))
    root = os.path.dirname(HERE)
    total = sum(r[0] for r in rows)
    out = [f"Python allocations alive with the {count} connections (tracemalloc, its own run: "
           f"RSS {sample.value:.2f} KB per connection under tracemalloc): "
           f"{total / 1024 / count:.2f} KB per connection in all; by source line:", "",
           "| where | bytes per connection | objects per connection |", "|---|---|---|"]
    for size, number, where in sorted(rows, key=lambda r: -r[0])[:bench.args.top]:
        where = os.path.relpath(where, root) if where.startswith(root) else \
            os.path.basename(where)
        out.append(f"| `{where}` | {size / count:.0f} | {number / count:.2f} |")
    out.append("")
    return out


def idle_waits(bench: Bench, path: Path, workdir: str) -> list[str]:
    """A fresh server's waits during the idle phase: ``strace -f -tt -T`` of its event
    loop's waiting and device calls from right before the client starts to after the echo
    round; per call: count, wall time inside, and the timeouts asked for."""
    import re

    trace = os.path.join(workdir, f"{path.name.replace(' ', '_')}-idle.strace")
    calls = "epoll_wait,epoll_pwait,epoll_pwait2,io_uring_enter,read,write,readv,writev"
    server = Server(bench.server_command(path, None))
    tracer: subprocess.Popen[bytes] | None = None

    def start() -> None:
        nonlocal tracer
        tracer = subprocess.Popen(["strace", "-f", "-tt", "-T", "--seccomp-bpf", "-e",
                                   f"trace={calls}", "-p", str(server.pid), "-o", trace],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # strace attaches

    def stop() -> None:
        if tracer is not None:
            interrupt(tracer, 30)

    try:
        sample = bench.idle_memory(path, server, on_start=start, on_done=stop)
    finally:
        stop()
        server.stop()
    if sample is None or not os.path.exists(trace):
        return ["strace of the idle phase failed", ""]
    stats: dict[str, list[float]] = {}
    timeouts: dict[str, int] = {}
    timed_out = [0, 0.0]  # epoll calls that returned 0 (their timeout ran out), wall s
    pattern = re.compile(r"^\d+\s+\S+ (\w+)\((.*)\) += (-?\d+).*<([\d.]+)>$")
    with open(trace) as f:
        for line in f:
            match = pattern.match(line.strip())
            if not match:
                continue
            name, arguments, result, seconds = match.groups()
            entry = stats.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += float(seconds)
            if name.startswith("epoll"):
                timeout = arguments.rsplit(",", 1)[-1].strip()
                timeouts[timeout] = timeouts.get(timeout, 0) + 1
                if result == "0":
                    timed_out[0] += 1
                    timed_out[1] += float(seconds)
    e = sample.extra
    wall = e["open_seconds"] + IDLE_HOLD + e["echo_seconds"]
    out = [f"Waits under `strace -f -T` (its own run: opened in {e['open_seconds']:.1f} s, "
           f"echo round {e['echo_seconds']:.2f} s; ~{wall:.1f} s traced):", "",
           "| call | count | per connection | wall s inside | mean µs |", "|---|---|---|---|---|"]
    for name, (number, seconds) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
        out.append(f"| {name} | {number:.0f} | {number / bench.args.idle:.2f} | {seconds:.2f} "
                   f"| {1e6 * seconds / number:.0f} |")
    out.append("")
    out.append("epoll timeouts asked for (ms: count): " + ", ".join(
        f"{k}: {v}" for k, v in sorted(timeouts.items(), key=lambda kv: -kv[1])[:10])
        + f"; {timed_out[0]:.0f} waits ran out their timeout ({timed_out[1]:.2f} s), the "
        "others were woken by an event")
    out.append("")
    return out


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
        interrupt(tracer, 30)  # detach: strace writes its summary
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


def measure_perf(bench: Bench, phase: str, path: Path, server: Server, pin: str,
                 workdir: str, top: int) -> str:
    """Where the server's CPU goes, kernel included, during one run of ``phase``:
    ``perf record`` (cycles sampled at 4 kHz, every thread of ``server``), summarised
    by object (the kernel, the interpreter, uvloop, our compiled helpers, libc) and by
    symbol. Python functions all show as the interpreter's C (3.11 has no perf
    trampoline); cProfile's tables split that part."""
    data = os.path.join(workdir, f"{path.name.replace(' ', '_')}.perf")
    recorder = subprocess.Popen(["perf", "record", "-q", "-F", "4000", "-p", str(server.pid),
                                 "-o", data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # perf attaches
        sample = bench.measure(phase, path, server, pin, 4, record_as="profile-perf")
    finally:
        interrupt(recorder, 30)  # perf writes its file on SIGINT
    if sample is None or not os.path.exists(data):
        return "perf record failed\n"
    out = ["Server CPU by object and by symbol (perf record, its own run; % of samples):", ""]
    for sort, rows in (("dso", 8), ("dso,sym", top)):
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                 "--sort", sort, "--percent-limit", "0.5"],
                                capture_output=True, text=True, timeout=120, check=False)
        lines = [line.rstrip() for line in report.stdout.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        out.append("```")
        out.extend(lines[:rows])
        out.append("```")
    return "\n".join(out) + "\n"


def stack_origin() -> str:
    """Where the measured ``ethox_asyncio`` was imported from, and its commit: a
    ``SNAPSHOT_COMMIT`` file beside the package (a ``git archive`` snapshot), else git."""
    import ethox_asyncio

    root = os.path.dirname(os.path.dirname(os.path.abspath(ethox_asyncio.__file__)))
    marker = os.path.join(root, "SNAPSHOT_COMMIT")
    if os.path.exists(marker):
        with open(marker) as f:
            return f"{root} (snapshot of {f.read().strip()[:12]})"
    result = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                            capture_output=True, text=True, timeout=30, check=False)
    return f"{root} ({result.stdout.strip() or 'no git'})"


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
    parser.add_argument("--loss-pin", default="0/0",
                        help="pin setting of the loss phase (default 0/0: single-segment "
                             "packets split over two CPUs arrive reordered)")
    parser.add_argument("--loss-cc", default="cubic",
                        help="congestion control of the kernel endpoints in the loss phase, "
                             "set per socket (TCP_CONGESTION; default cubic, Linux's default "
                             "and the stack's; '' keeps the machine's default)")
    parser.add_argument("--loss-gso", action="store_true",
                        help="loss phase: keep GSO/TSO super-packets (the rule then drops "
                             "whole super-packets of up to 64 KB)")
    parser.add_argument("--loss-pcap", metavar="DIR",
                        help="loss phase: capture each lossy run's headers on the lossy "
                             "client's link (tcpdump -s 96) into DIR and count its stalls")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--json", help="write every sample to this file")
    parser.add_argument("--profile", action="store_true",
                        help="profile the stack servers under 1-connection ping-pong")
    parser.add_argument("--phases", default=",".join(PHASES + SECTIONS),
                        help="the phases to measure (default all: "
                             f"{','.join(PHASES + SECTIONS)})")
    parser.add_argument("--profile-phase", default="pp1", choices=(*PHASES, "idle"),
                        help="the phase --profile runs (default pp1; idle: --idle "
                             "connections opened, held and echoed under cProfile)")
    parser.add_argument("--py-spy", help="py-spy binary for --profile (default: on PATH)")
    parser.add_argument("--top", type=int, default=20, help="rows per profile table")
    parser.add_argument("--serve", choices=("ethox", "asyncio", "uvloop"), help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--gateway", help=argparse.SUPPRESS)
    parser.add_argument("--cc", help=argparse.SUPPRESS)
    parser.add_argument("--memory-out", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return server_main(args.serve, args.host, args.device, args.address, args.gateway,
                           args.profile_out, args.cc, args.memory_out)
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
    chosen = [p for p in args.phases.split(",") if p]
    if not chosen or any(p not in PHASES + SECTIONS for p in chosen):
        parser.error(f"--phases: a comma-separated subset of {','.join(PHASES + SECTIONS)}")
    phases = tuple(p for p in PHASES if p in chosen)
    sections = tuple(p for p in SECTIONS if p in chosen)

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
            bench = Bench(args, client, topo.netns, server_netns, phases=phases,
                          sections=sections)
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
              f"conn concurrency {args.conn_concurrency}; stack {stack_origin()}\n\n")
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
