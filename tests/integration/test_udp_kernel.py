"""The stack on our loop against the Linux kernel over a TAP in a namespace (IPv4, IPv6).

The application side is an ordinary asyncio datagram application running on the
ethox loop; the peer is the kernel (ping, Python sockets, ip neigh), and the
capture we write is checked by tshark with checksum validation.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any

import pytest

import ethox_asyncio
from ethox_asyncio.config import StackConfig
from ethox_asyncio.netns import Topology, topology
from ethox_asyncio.stack.wire.ethernet import EthernetAddress

pytestmark = pytest.mark.netns

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
KERNEL6 = "fd00::1"
STACK6 = "fd00::2"

ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 7007))
s.settimeout(10)
print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    data, addr = s.recvfrom(65535)
    s.sendto(data, addr)
"""

CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect(("198.18.0.2", int(sys.argv[1])))
payload = bytes(range(256)) * (int(sys.argv[2]) // 256)
s.send(payload)
try:
    print("echo-ok" if s.recv(65535) == payload[::-1] else "echo-wrong")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
"""

ECHO_SERVER6 = ECHO_SERVER.replace("AF_INET", "AF_INET6").replace('"198.18.0.1"', '"fd00::1"')
CLIENT6 = CLIENT.replace("AF_INET", "AF_INET6").replace('"198.18.0.2"', '"fd00::2"')


@pytest.fixture
def topo() -> Iterator[Topology]:
    with topology("tap") as made:
        yield made


def run_on_stack(topo: Topology, main: Callable[[], Awaitable[Any]], *, base: str = "uvloop",
                 pcap: Path | None = None) -> Any:
    config = StackConfig(device=topo.device_spec,
                         addresses=(IPv4Interface(f"{STACK}/24"), IPv6Interface(f"{STACK6}/64")),
                         mac=EthernetAddress("02:00:00:00:00:02"),
                         pcap=str(pcap) if pcap else None)
    return ethox_asyncio.run(main(), config=config, base=base)  # type: ignore[arg-type]


async def in_namespace(topo: Topology, *cmd: str, timeout: float = 15) -> str:
    """Run a kernel-side command without blocking the loop; its stdout."""
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, lambda: topo.run(
        *cmd, capture_output=True, text=True, timeout=timeout))
    return result.stdout + result.stderr


class Reverser(asyncio.DatagramProtocol):
    """Our UDP server: answers every datagram with its bytes reversed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data[::-1], addr)  # type: ignore[attr-defined]


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


@pytest.mark.parametrize("base", ["uvloop", "asyncio"])
def test_kernel_pings_the_stack_and_the_stack_pings_the_kernel(topo: Topology, base: str) -> None:
    async def main() -> tuple[str, float, str]:
        output = await in_namespace(topo, "ping", "-c", "3", "-i", "0.2", "-W", "2", STACK)
        loop = asyncio.get_running_loop()
        rtt = await loop.ping(KERNEL, timeout=2)  # type: ignore[attr-defined]
        neighbours = await in_namespace(topo, "ip", "neigh", "show", STACK)
        return output, rtt, neighbours

    output, rtt, neighbours = run_on_stack(topo, main, base=base)
    assert " 0% packet loss" in output, output
    assert 0 < rtt < 2
    assert "lladdr 02:00:00:00:00:02" in neighbours and "REACHABLE" in neighbours, neighbours


# (kernel address, our address, kernel echo server, kernel client) per family
FAMILIES = {
    "ipv4": (KERNEL, STACK, ECHO_SERVER, CLIENT),
    "ipv6": (KERNEL6, STACK6, ECHO_SERVER6, CLIENT6),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [100, 4000])  # 4000 bytes: fragmented both ways
def test_datagrams_to_a_kernel_socket_and_back(topo: Topology, family: str, size: int) -> None:
    kernel, _, echo_server, _ = FAMILIES[family]
    server = topo.popen(sys.executable, "-c", echo_server, "1", stdout=subprocess.PIPE,
                        text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            Collector, remote_addr=(kernel, 7007))
        transport.sendto(payload)
        try:
            return await asyncio.wait_for(protocol.queue.get(), 5)
        finally:
            transport.close()

    assert run_on_stack(topo, main) == payload
    server.wait(timeout=5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [512, 3072])
def test_kernel_client_talks_to_our_server(topo: Topology, family: str, size: int) -> None:
    _, ours, _, client = FAMILIES[family]

    async def main() -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Reverser, local_addr=(ours, 9000))
        try:
            return await in_namespace(topo, sys.executable, "-c", client, "9000", str(size))
        finally:
            transport.close()

    assert run_on_stack(topo, main).strip() == "echo-ok"


@pytest.mark.parametrize("family", FAMILIES)
def test_closed_port_is_refused_to_a_connected_kernel_socket(topo: Topology,
                                                             family: str) -> None:
    client = FAMILIES[family][3]

    async def main() -> str:
        return await in_namespace(topo, sys.executable, "-c", client, "9", "256")

    assert run_on_stack(topo, main).strip() == "refused"


@pytest.mark.parametrize("base", ["uvloop", "asyncio"])
def test_ipv6_ping_both_ways_and_ndp(topo: Topology, base: str) -> None:
    async def main() -> tuple[str, float, str]:
        output = await in_namespace(topo, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2",
                                    STACK6)
        loop = asyncio.get_running_loop()
        rtt = await loop.ping(KERNEL6, timeout=2)  # type: ignore[attr-defined]
        neighbours = ""
        for _ in range(30):  # bounded: the kernel confirms reachability with a probe
            neighbours = await in_namespace(topo, "ip", "-6", "neigh", "show", STACK6)
            if "REACHABLE" in neighbours:
                break
            await asyncio.sleep(0.2)
        return output, rtt, neighbours

    output, rtt, neighbours = run_on_stack(topo, main, base=base)
    assert " 0% packet loss" in output, output
    assert 0 < rtt < 2
    assert "lladdr 02:00:00:00:00:02" in neighbours and "REACHABLE" in neighbours, neighbours


@pytest.mark.tshark
def test_everything_we_emit_passes_tshark(topo: Topology, tmp_path: Path) -> None:
    capture = tmp_path / "stack.pcap"

    async def main() -> None:
        await in_namespace(topo, "ping", "-c", "2", "-i", "0.2", "-s", "3000", "-W", "2", STACK)
        await in_namespace(topo, sys.executable, "-c", CLIENT, "9", "256")
        loop = asyncio.get_running_loop()
        await loop.ping(KERNEL, timeout=2)  # type: ignore[attr-defined]
        await in_namespace(topo, "ping", "-6", "-c", "2", "-i", "0.2", "-s", "3000", "-W", "2",
                           STACK6)
        await in_namespace(topo, sys.executable, "-c", CLIENT6, "9", "256")
        await in_namespace(topo, sys.executable, "-c", CLIENT6, "9000", "3072")
        await loop.ping(KERNEL6, timeout=2)  # type: ignore[attr-defined]

    run_on_stack(topo, main, pcap=capture)
    check = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-o", "ip.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-T", "fields", "-e", "frame.number",
         "-e", "eth.src", "-e", "_ws.malformed", "-e", "ip.checksum.status",
         "-e", "udp.checksum.status", "-e", "icmp.checksum.status",
         "-e", "icmpv6.checksum.status", "-e", "_ws.col.Info"],
        capture_output=True, text=True, timeout=60, check=True)
    ours = [line.split("\t") for line in check.stdout.splitlines()
            if "\t02:00:00:00:00:02\t" in line]
    assert len(ours) >= 12, check.stdout  # ARP, NDP, echo replies (fragmented), unreachables
    assert any("Neighbor Advertisement" in line[-1] for line in ours), check.stdout
    assert any(line[6] == "1" for line in ours), check.stdout  # ICMPv6 checksums verified
    for fields in ours:
        _, _, malformed, ip_status, udp_status, icmp_status, icmpv6_status, _ = fields
        assert not malformed, fields
        for status in (ip_status, udp_status, icmp_status, icmpv6_status):
            assert all(value in ("", "1", "2") for value in status.split(",")), fields
