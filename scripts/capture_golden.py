#!/usr/bin/env python3
"""Regenerate tests/golden/*.pcap: frames the Linux kernel emits, captured with tcpdump.

Usage (root; needs ip, ethtool, tcpdump, tshark, ping):

    sudo .venv/bin/python scripts/capture_golden.py [--out tests/golden]

Topology: two network namespaces made by this script, ``ethox-golden-<pid>-a`` and
``-b``, joined by one veth pair (``veth-a`` 02:00:00:00:00:01, 198.18.0.1/24,
fd00::1/64 — ``veth-b`` 02:00:00:00:00:02, 198.18.0.2/24, fd00::2/64). Checksum,
segmentation and receive offloads are switched off on both ends so every captured
frame carries the checksums the kernel computed in software, as on a real wire.
DAD and router solicitations are off so no unrelated ICMPv6 shows up. tcpdump runs
on ``veth-b`` with a filter per scenario; namespace A is the active side.

Every scenario checks its capture with tshark (expected frames present, no bad
checksum), then README.md is rewritten from the captures. The namespaces (and the
veth pair inside them) are deleted whatever happens, including Ctrl-C and SIGTERM.
Traffic never leaves the two namespaces: only 198.18.0.0/15 and fd00::/8 are used.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "golden"
STEP_TIMEOUT = 10.0  # seconds; bounds every command and peer program

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
IPV4_A, IPV4_B = "198.18.0.1", "198.18.0.2"
IPV6_A, IPV6_B = "fd00::1", "fd00::2"

# Peer programs, run with `ip netns exec <ns> python3 -c PROGRAM ARGS...`. Servers print
# "ready" once bound so the client never races them; every socket call has a timeout.
TCP_SERVER = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as listener:
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    listener.settimeout(5)
    print("ready", flush=True)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(5)
        assert conn.recv(100) == b"hello\\n"
        conn.sendall(b"world\\n")
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(100) == b""
"""
TCP_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=5) as conn:
    conn.sendall(b"hello\\n")
    received = b""
    while chunk := conn.recv(100):
        received += chunk
    assert received == b"world\\n", received
"""
UDP_SERVER = """
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    sock.bind((host, port))
    sock.settimeout(5)
    print("ready", flush=True)
    for _ in range(count):
        data, peer = sock.recvfrom(65535)
        if data.startswith(b"ping"):
            sock.sendto(b"pong" + data[4:], peer)
"""
UDP_ECHO_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    sock.settimeout(5)
    sock.connect((host, port))
    for n in (1, 2):
        sock.send(b"ping %d" % n)
        assert sock.recv(100) == b"pong %d" % n
"""
UDP_CLOSED_PORT_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    sock.settimeout(5)
    sock.connect((host, port))
    sock.send(b"knock knock")
    try:
        sock.recv(100)
    except ConnectionRefusedError:
        pass  # the ICMP port unreachable came back
    else:
        raise SystemExit("expected ICMP port unreachable")
"""
UDP_LARGE_CLIENT = """
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    if family == socket.AF_INET:
        # IP_MTU_DISCOVER (10) = IP_PMTUDISC_DONT (0), from <linux/in.h>: clear DF so
        # the kernel fragments instead of refusing. Python 3.11 lacks the constants.
        sock.setsockopt(socket.IPPROTO_IP, 10, 0)
    payload = bytes(range(256)) * (size // 256 + 1)
    sock.sendto(payload[:size], (host, port))
"""
LARGE_DATAGRAM_LEN = 3000  # > 1500-byte MTU: three fragments


class CaptureFailed(RuntimeError):
    """A scenario did not produce the frames it should have."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    capture_filter: str  # tcpdump (BPF) syntax
    commands: tuple[str, ...]  # for the README: what ran, in which namespace
    run: Callable[[Topology], None]
    expected: tuple[str, ...]  # tshark display filters that must each match a frame


class Topology:
    """The two namespaces and the veth pair; ``close()`` deletes them."""

    def __init__(self) -> None:
        self.ns_a = f"ethox-golden-{os.getpid()}-a"
        self.ns_b = f"ethox-golden-{os.getpid()}-b"
        self._created: list[str] = []
        self._processes: list[subprocess.Popen[str]] = []

    def create(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            run(["ip", "netns", "add", ns])
            self._created.append(ns)
            # Before any link exists, so the veth ends inherit "default".
            for conf in ("all", "default"):
                run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "sysctl",
                        "-q",
                        "-w",
                        f"net.ipv6.conf.{conf}.accept_dad=0",
                        f"net.ipv6.conf.{conf}.router_solicitations=0",
                    ]
                )
        run(
            [
                "ip",
                "-n",
                self.ns_a,
                "link",
                "add",
                "veth-a",
                "address",
                MAC_A,
                "type",
                "veth",
                "peer",
                "name",
                "veth-b",
                "netns",
                self.ns_b,
                "address",
                MAC_B,
            ]
        )
        for ns, link, ipv4, ipv6 in (
            (self.ns_a, "veth-a", IPV4_A, IPV6_A),
            (self.ns_b, "veth-b", IPV4_B, IPV6_B),
        ):
            run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "ethtool",
                    "-K",
                    link,
                    "tx",
                    "off",
                    "rx",
                    "off",
                    "tso",
                    "off",
                    "gso",
                    "off",
                    "gro",
                    "off",
                ]
            )
            run(["ip", "-n", ns, "addr", "add", f"{ipv4}/24", "dev", link])
            run(["ip", "-n", ns, "addr", "add", f"{ipv6}/64", "dev", link, "nodad"])
            run(["ip", "-n", ns, "link", "set", link, "up"])
        time.sleep(1.0)  # let the link-up MLD reports pass before the first capture

    def in_ns(self, ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def start(self, argv: list[str], ready_marker: str) -> subprocess.Popen[str]:
        """Start a background process and wait until it prints ``ready_marker``."""
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._processes.append(process)
        deadline = time.monotonic() + STEP_TIMEOUT
        assert process.stdout is not None
        seen = ""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([process.stdout], [], [], 0.5)
            if readable:
                line = process.stdout.readline()
                seen += line
                if ready_marker in line:
                    return process
                if not line:
                    break
        raise CaptureFailed(f"{argv[4:]} never printed {ready_marker!r}: {seen!r}")

    def finish(self, process: subprocess.Popen[str], interrupt: bool = False) -> None:
        """Wait for a background process (SIGINT first if ``interrupt``), bounded."""
        if interrupt:
            process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise CaptureFailed(f"{process.args!r} did not finish") from None
        self._processes.remove(process)
        if process.returncode != 0:
            raise CaptureFailed(f"{process.args!r} exited {process.returncode}: {output}")

    def close(self) -> None:
        for process in self._processes:
            process.kill()
            try:
                process.wait(timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"warning: pid {process.pid} survived SIGKILL", file=sys.stderr)
        self._processes.clear()
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=STEP_TIMEOUT)
        self._created.clear()


def run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    if result.returncode != 0:
        raise CaptureFailed(f"{argv!r} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def tshark(pcap: Path, *args: str) -> str:
    return run(["tshark", "-n", "-r", str(pcap), *args])


def ping(version: int, target: str) -> Callable[[Topology], None]:
    def run_ping(topo: Topology) -> None:
        flag = "-6" if version == 6 else "-4"
        run(topo.in_ns(topo.ns_a, "ping", flag, "-c", "2", "-i", "0.2", "-W", "2", target))

    return run_ping


def with_server(server: list[str], client: list[str]) -> Callable[[Topology], None]:
    """Start ``server`` in namespace B, run ``client`` in A, wait for both."""

    def run_pair(topo: Topology) -> None:
        process = topo.start(topo.in_ns(topo.ns_b, *server), "ready")
        run(topo.in_ns(topo.ns_a, *client))
        topo.finish(process)

    return run_pair


def client_only(client: list[str]) -> Callable[[Topology], None]:
    def run_client(topo: Topology) -> None:
        run(topo.in_ns(topo.ns_a, *client))

    return run_client


def py(program: str, *args: object) -> list[str]:
    return [sys.executable, "-c", program, *map(str, args)]


def scenarios() -> list[Scenario]:
    # Order matters: the two ping captures come first, while the neighbour caches of
    # the fresh namespaces are empty, so they contain the ARP / NDP resolution.
    ndp_or_echo = "icmp6 and (ip6[40] == 128 or ip6[40] == 129 or ip6[40] == 135 or ip6[40] == 136)"
    result = [
        Scenario(
            "arp_icmpv4_echo",
            "ARP resolution, then two ICMP echo request/reply pairs",
            "arp or icmp",
            (f"A: ping -4 -c 2 -i 0.2 -W 2 {IPV4_B}",),
            ping(4, IPV4_B),
            ("arp.opcode == 1", "arp.opcode == 2", "icmp.type == 8", "icmp.type == 0"),
        ),
        Scenario(
            "ndp_icmpv6_echo",
            "NDP neighbour solicitation/advertisement, then two ICMPv6 echo pairs",
            ndp_or_echo,
            (f"A: ping -6 -c 2 -i 0.2 -W 2 {IPV6_B}",),
            ping(6, IPV6_B),
            (
                "icmpv6.type == 135",
                "icmpv6.type == 136",
                "icmpv6.type == 128",
                "icmpv6.type == 129",
            ),
        ),
    ]
    for version, host in ((4, IPV4_B), (6, IPV6_B)):
        result.append(
            Scenario(
                f"tcp{version}_session",
                "TCP: handshake (Linux SYN options: MSS, SACK-permitted, timestamps, window "
                "scale), `hello\\n` from A, `world\\n` from B, B closes first, then A",
                "tcp",
                (f"B: python3 -c TCP_SERVER {host} 8080", f"A: python3 -c TCP_CLIENT {host} 8080"),
                with_server(py(TCP_SERVER, host, 8080), py(TCP_CLIENT, host, 8080)),
                (
                    "tcp.flags == 0x002",
                    "tcp.flags == 0x012",
                    "tcp.options.sack_perm",
                    "tcp.options.timestamp.tsval",
                    "tcp.options.wscale.shift",
                    "tcp.len == 6",
                    "tcp.flags.fin == 1",
                ),
            )
        )
    for version, host in ((4, IPV4_B), (6, IPV6_B)):
        result.append(
            Scenario(
                f"udp{version}_echo",
                "UDP: `ping 1`, `ping 2` from A, answered `pong 1`, `pong 2`",
                "udp",
                (
                    f"B: python3 -c UDP_SERVER {host} 7007 2",
                    f"A: python3 -c UDP_ECHO_CLIENT {host} 7007",
                ),
                with_server(py(UDP_SERVER, host, 7007, 2), py(UDP_ECHO_CLIENT, host, 7007)),
                ("udp.dstport == 7007", "udp.srcport == 7007"),
            )
        )
    result += [
        Scenario(
            "udp4_port_unreachable",
            "UDP datagram to a closed port, ICMP destination unreachable (port) quoting it",
            "udp or icmp",
            (f"A: python3 -c UDP_CLOSED_PORT_CLIENT {IPV4_B} 9",),
            client_only(py(UDP_CLOSED_PORT_CLIENT, IPV4_B, 9)),
            ("udp.dstport == 9", "icmp.type == 3 and icmp.code == 3"),
        ),
        Scenario(
            "udp6_port_unreachable",
            "UDP datagram to a closed port, ICMPv6 destination unreachable (port) quoting it",
            "udp or (icmp6 and ip6[40] == 1)",
            (f"A: python3 -c UDP_CLOSED_PORT_CLIENT {IPV6_B} 9",),
            client_only(py(UDP_CLOSED_PORT_CLIENT, IPV6_B, 9)),
            ("udp.dstport == 9", "icmpv6.type == 1 and icmpv6.code == 4"),
        ),
    ]
    for version, host, capture_filter, fragment_filter in (
        (4, IPV4_B, "udp", "ip.flags.mf == 1"),
        # Fragments of an IPv6 datagram carry a Fragment header (next header 44).
        (6, IPV6_B, "udp or ip6[6] == 44", "ipv6.fraghdr.more == 1"),
    ):
        result.append(
            Scenario(
                f"udp{version}_fragments",
                f"One {LARGE_DATAGRAM_LEN}-byte UDP datagram (payload bytes 0..255 repeated) "
                "over a 1500-byte MTU: the kernel fragments it",
                capture_filter,
                (
                    f"B: python3 -c UDP_SERVER {host} 9000 1",
                    f"A: python3 -c UDP_LARGE_CLIENT {host} 9000 {LARGE_DATAGRAM_LEN}",
                ),
                with_server(
                    py(UDP_SERVER, host, 9000, 1),
                    py(UDP_LARGE_CLIENT, host, 9000, LARGE_DATAGRAM_LEN),
                ),
                (fragment_filter, f"udp.length == {LARGE_DATAGRAM_LEN + 8}"),
            )
        )
    return result


def capture(topo: Topology, scenario: Scenario, pcap: Path) -> None:
    tcpdump = topo.start(
        topo.in_ns(
            topo.ns_b,
            "tcpdump",
            "-Z",
            "root",
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "65535",
            "-i",
            "veth-b",
            "-w",
            str(pcap),
            scenario.capture_filter,
        ),
        "listening on",
    )
    scenario.run(topo)
    time.sleep(0.3)  # the last reply is in flight when the client returns
    topo.finish(tcpdump, interrupt=True)
    check(scenario, pcap)


BAD_CHECKSUM = " or ".join(
    f"{field}.checksum.status == 0"  # 0 = Bad in tshark's checksum status enum
    for field in ("ip", "tcp", "udp", "icmp", "icmpv6")
)
CHECKSUM_PREFS = [
    arg for proto in ("ip", "tcp", "udp") for arg in ("-o", f"{proto}.check_checksum:TRUE")
]


def check(scenario: Scenario, pcap: Path) -> None:
    for display_filter in scenario.expected:
        if not tshark(pcap, "-Y", display_filter).strip():
            raise CaptureFailed(f"{scenario.name}: no frame matches {display_filter!r}")
    bad = tshark(pcap, *CHECKSUM_PREFS, "-Y", BAD_CHECKSUM).strip()
    if bad:
        raise CaptureFailed(f"{scenario.name}: frames with a bad checksum:\n{bad}")


def render_readme(out: Path, done: list[Scenario]) -> str:
    tool_versions = [
        run(["tcpdump", "--version"]).splitlines()[0],
        run(["tshark", "--version"]).splitlines()[0].rstrip("."),
    ]
    lines = [
        "# Golden frames captured from the Linux kernel",
        "",
        "Generated by `scripts/capture_golden.py` (run it as root to regenerate; it",
        "rewrites this file). Tests load them with `load(name)` from `tests/golden/__init__.py`.",
        "",
        f"- Kernel: `{platform.release()}`; captured on {datetime.date.today().isoformat()}",
        f"- Tools: {'; '.join(tool_versions)}; `ping` from iputils",
        "- Topology: namespaces A and B joined by a veth pair,",
        f"  A = `veth-a` {MAC_A} {IPV4_A}/24 {IPV6_A}/64,",
        f"  B = `veth-b` {MAC_B} {IPV4_B}/24 {IPV6_B}/64 (IPv6 addresses added `nodad`),",
        "  `accept_dad=0`, `router_solicitations=0`, and",
        "  `ethtool -K … tx off rx off tso off gso off gro off` on both ends, so every",
        "  checksum is the one the kernel computed (the script verifies them with tshark).",
        "- Capture: `tcpdump -n -U --immediate-mode -s 65535 -i veth-b -w <name>.pcap '<filter>'`",
        "  in namespace B. Classic pcap, microsecond timestamps, LINKTYPE_ETHERNET.",
        "- Frames are as the kernel put them on the veth: no FCS and no padding to the",
        "  60-byte Ethernet minimum (an ARP frame is 42 bytes), so a parser must not",
        "  assume either.",
        "- `python3 -c NAME` below runs the peer program of that name defined in the script",
        "  (every socket call has a timeout).",
        "",
    ]
    for scenario in done:
        pcap = out / f"{scenario.name}.pcap"
        listing = tshark(pcap).rstrip()
        count = len(listing.splitlines())
        lines += [
            f"## {scenario.name}.pcap — {count} frames",
            "",
            scenario.description + ".",
            "",
            f"Filter: `{scenario.capture_filter}`. Commands:",
            "",
            *(f"- {command}" for command in scenario.commands),
            "",
            f"`tshark -n -r {scenario.name}.pcap`:",
            "",
            "```",
            listing,
            "```",
            "",
        ]
    return "\n".join(lines)


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory for the pcaps and README.md (default {DEFAULT_OUT})",
    )
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("must run as root (network namespaces)")
    for tool in ("ip", "ethtool", "tcpdump", "tshark", "ping"):
        if shutil.which(tool) is None:
            parser.error(f"needs {tool}")
    # SIGTERM / SIGHUP unwind through the finally below like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_system_exit)
    signal.signal(signal.SIGHUP, _raise_system_exit)

    out: Path = options.out
    out.mkdir(parents=True, exist_ok=True)
    topo = Topology()
    done: list[Scenario] = []
    with tempfile.TemporaryDirectory(prefix="ethox-golden-") as scratch:
        try:
            topo.create()
            for scenario in scenarios():
                pcap = Path(scratch) / f"{scenario.name}.pcap"
                capture(topo, scenario, pcap)
                shutil.copyfile(pcap, out / pcap.name)
                done.append(scenario)
                print(f"{scenario.name}: ok", flush=True)
        finally:
            topo.close()
    (out / "README.md").write_text(render_readme(out, done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
