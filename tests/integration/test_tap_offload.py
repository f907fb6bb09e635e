"""TAP with virtio-net offloads against the Linux kernel's TCP, in a namespace.

- A GSO super-frame we write (NEEDS_CSUM + GSO_TCPV4, pseudo-header checksum
  only) is segmented by the kernel, and the kernel's TCP accepts every byte.
- The kernel hands us GSO super-frames (larger than the MTU) with checksums
  offloaded, which we parse.
The TCP here is a scripted exchange built from the codecs; the real TCP comes later.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from ethox_asyncio.device.tap import TapDevice
from ethox_asyncio.device.vnet import GSO_TCPV4
from ethox_asyncio.netns import Topology, topology
from ethox_asyncio.stack.wire.ethernet import EthernetAddress
from ethox_asyncio.stack.wire.tcp import TcpFlags, TcpRepr
from tests.integration.scripted import Received, ScriptedHost, tcp_of

pytestmark = pytest.mark.netns

KERNEL = IPv4Address("198.18.0.1")
STACK = IPv4Address("198.18.0.2")
STACK_MAC = EthernetAddress("02:00:00:00:00:02")
PORT = 5001

# A kernel TCP server: prints "listening", then either receives until EOF and
# prints "<length> <sha256>", or sends SEND_LEN bytes of a pattern and closes.
SERVER = """
import hashlib, socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
server = socket.create_server(("198.18.0.1", port))
server.settimeout(10)
print("listening", flush=True)
conn, _ = server.accept()
conn.settimeout(10)
if mode == "receive":
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
else:
    conn.sendall(bytes(range(256)) * 256)
    conn.close()
    print("sent", flush=True)
"""


@pytest.fixture
def tap_topology() -> Iterator[Topology]:
    with topology("tap") as topo:
        yield topo


def start_server(topo: Topology, mode: str) -> subprocess.Popen[str]:
    server = topo.popen(sys.executable, "-c", SERVER, mode, str(PORT),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "listening"
    return server


def handshake(host: ScriptedHost, client_seq: int) -> TcpRepr:
    """SYN → SYN-ACK → ACK from our side; returns the kernel's SYN-ACK."""
    host.resolve(KERNEL)
    syn = TcpRepr(40000, PORT, seq=client_seq, ack=None, flags=TcpFlags.SYN, window=65535,
                  mss=1460, window_scale=7)
    host.send(host.tcp_frame(KERNEL, syn))

    def is_synack(received: Received) -> bool:
        parsed = tcp_of(received)
        return parsed is not None and parsed[1].flags == TcpFlags.SYN | TcpFlags.ACK

    parsed = tcp_of(host.wait_for(is_synack))
    assert parsed is not None
    synack = parsed[1]
    assert synack.ack == (client_seq + 1) % 2**32
    ack = TcpRepr(40000, PORT, seq=(client_seq + 1) % 2**32, ack=(synack.seq + 1) % 2**32,
                  flags=TcpFlags.ACK, window=65535)
    host.send(host.tcp_frame(KERNEL, ack))
    return synack


def test_kernel_segments_our_super_frame_and_accepts_the_data(tap_topology: Topology) -> None:
    server = start_server(tap_topology, "receive")
    with TapDevice(tap_topology.stack_ifname, netns=tap_topology.netns, offload=True) as device:
        assert device.capabilities.tso and device.capabilities.vnet_header
        host = ScriptedHost(device, STACK_MAC, STACK)
        client_seq = 2**32 - 100  # sequence numbers wrap inside the transfer
        synack = handshake(host, client_seq)
        mss = synack.mss or 536
        payload = bytes(range(256)) * 45 + bytes(range(160))  # 11 680 bytes = 8 x 1460
        seq = (client_seq + 1) % 2**32
        data = TcpRepr(40000, PORT, seq=seq, ack=(synack.seq + 1) % 2**32,
                       flags=TcpFlags.ACK | TcpFlags.PSH, window=65535, payload_len=len(payload))
        host.send_tcp_superframe(KERNEL, data, payload, mss=min(mss, 1460))
        fin = TcpRepr(40000, PORT, seq=(seq + len(payload)) % 2**32,
                      ack=(synack.seq + 1) % 2**32, flags=TcpFlags.FIN | TcpFlags.ACK,
                      window=65535)
        host.send(host.tcp_frame(KERNEL, fin))

        def acks_everything(received: Received) -> bool:
            parsed = tcp_of(received)
            return parsed is not None and parsed[1].ack == (fin.seq + 1) % 2**32

        host.wait_for(acks_everything)
        out, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    length, digest = out.split()
    assert int(length) == len(payload)
    assert digest == hashlib.sha256(payload).hexdigest()


def test_kernel_hands_us_gso_super_frames(tap_topology: Topology) -> None:
    server = start_server(tap_topology, "send")
    with TapDevice(tap_topology.stack_ifname, netns=tap_topology.netns, offload=True) as device:
        host = ScriptedHost(device, STACK_MAC, STACK)
        synack = handshake(host, client_seq=1000)

        def is_super_frame(received: Received) -> bool:
            return (received.vnet is not None and received.vnet.gso_type & ~0x80 == GSO_TCPV4
                    and len(received.frame) > 1514)

        big = host.wait_for(is_super_frame)
        assert big.vnet is not None and big.vnet.needs_csum  # checksum left to us / trusted
        assert 0 < big.vnet.gso_size <= 1460
        parsed = tcp_of(big)
        assert parsed is not None
        ip, tcp = parsed
        offset = (tcp.seq - synack.seq - 1) % 2**32
        data = bytes(ip.payload[tcp.header_len:])
        pattern = bytes(range(256)) * 256
        assert data == pattern[offset:offset + len(data)]
        reset = TcpRepr(40000, PORT, seq=1001, ack=None, flags=TcpFlags.RST, window=0)
        host.send(host.tcp_frame(KERNEL, reset))
    server.communicate(timeout=10)
