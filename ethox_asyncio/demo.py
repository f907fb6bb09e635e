"""``python -m ethox_asyncio demo``: the stack at work, with no privileges needed.

Contract: runs an ordinary asyncio application on the ethox event loop (uvloop
base) whose device is one end of an in-memory link; on the other end a second,
independent instance of our sans-IO stack (a peer ``Interface``, pumped by a timer
in the same loop) answers ARP and ping and echoes UDP and TCP upper-cased. The demo
pings the peer, exchanges UDP datagrams (one large enough to be fragmented),
triggers an ICMP port unreachable, echoes a stream over TCP
(``asyncio.open_connection``, a half-close, both families), is refused on a closed
TCP port, then prints every frame of the capture decoded by our own codecs and —
when tshark is installed — has tshark check it with checksum validation on. Returns
0 when every step worked, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from typing import Any, TextIO, cast

from . import __version__
from .config import StackConfig
from .device.base import Frame
from .device.memory import MemoryEndpoint, MemoryLink
from .device.pcap import read_pcap
from .loop import run
from .stack.interface import Interface, InterfaceConfig, UdpDatagram
from .stack.tcp.connection import EV_ACCEPT, EV_DATA, EV_EOF
from .stack.wire.describe import describe_frame
from .stack.wire.ethernet import EthernetAddress

PEER_IP = IPv4Address("198.18.0.1")
PEER_IP6 = IPv6Address("fd00::1")
OUR_IP = "198.18.0.2"
OUR_IP6 = "fd00::2"
ECHO_PORT = 7


class EchoPeer:
    """A second stack on the link: answers ARP/NDP and ping, echoes UDP and TCP port 7
    upper-cased on 198.18.0.1 and fd00::1 (TCP: until the client's FIN, then FIN)."""

    def __init__(self, device: MemoryEndpoint) -> None:
        self.device = device
        self.stack = Interface(InterfaceConfig(mac=EthernetAddress("02:00:00:00:00:01"),
                                               addresses=(IPv4Interface(f"{PEER_IP}/24"),
                                                          IPv6Interface(f"{PEER_IP6}/64"))))
        self.echo = (self.stack.udp.bind(PEER_IP, ECHO_PORT, family=4),
                     self.stack.udp.bind(PEER_IP6, ECHO_PORT, family=6))
        self.tcp_echo = (self.stack.tcp.listen(4, int(PEER_IP), ECHO_PORT, backlog=8),
                         self.stack.tcp.listen(6, int(PEER_IP6), ECHO_PORT, backlog=8))

    def pump(self, now: float) -> None:
        for frame in self.device.receive(64):
            self.stack.ingress(frame, now)
            # TCP data may point into the frame: answer it before the next receive.
            self._answer(now)
        frames = self.stack.egress(now, 64)
        if frames:  # a memory link does no TSO, so the stack makes no super-segment
            self.device.transmit(cast("list[Frame]", frames))

    def _answer(self, now: float) -> None:
        tcp = self.stack.tcp
        while self.stack.events:
            event = self.stack.events.popleft()
            if isinstance(event, UdpDatagram) and event.endpoint in self.echo:
                host, port = event.src[:2]
                self.stack.send_udp(event.endpoint, event.data.upper(), ip_address(host), port,
                                    now)
            elif isinstance(event, tuple):
                kind, owner, arg = event
                if kind == EV_ACCEPT and owner in self.tcp_echo:
                    conn = owner.accept()
                    if conn is not None:
                        conn.set_reading(True)
                elif kind == EV_DATA:
                    owner.send(bytes(arg).upper())
                    owner.consumed(len(arg))
                elif kind == EV_EOF:
                    owner.shutdown(now)
                if kind in (EV_DATA, EV_EOF, EV_ACCEPT):
                    tcp.touch(owner if kind != EV_ACCEPT else arg)

    def run_every(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        def tick() -> None:
            self.pump(loop.time())
            loop.call_later(interval, tick)
        loop.call_soon(tick)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.replies.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


async def _application(peer: EchoPeer, say: Any) -> bool:
    """An ordinary asyncio datagram application; only the loop is ours."""
    loop = asyncio.get_running_loop()
    peer.run_every(loop, 0.001)
    ok = True
    for seq_no, host in enumerate((PEER_IP, PEER_IP, PEER_IP6, PEER_IP6), start=1):
        rtt = await loop.ping(str(host), seq_no=seq_no, timeout=1)  # type: ignore[attr-defined]
        say(f"  ping {host}: icmp_seq={seq_no} time={rtt * 1000:.3f} ms")
    transport, client = await loop.create_datagram_endpoint(
        _Client, remote_addr=(str(PEER_IP), ECHO_PORT))
    for message in (b"hello from asyncio", b"x" * 3000):
        transport.sendto(message)
        reply = await asyncio.wait_for(client.replies.get(), 2)
        ok &= reply == message.upper()
        say(f"  UDP {len(message)} bytes to {PEER_IP}:{ECHO_PORT} -> {len(reply)} bytes back"
            f"{' (fragmented both ways)' if len(message) > 1472 else ''}: "
            f"{'ok' if reply == message.upper() else 'WRONG'}")
    transport.close()
    closed, closed_client = await loop.create_datagram_endpoint(
        _Client, remote_addr=(str(PEER_IP), 9))
    closed.sendto(b"anyone on port 9?")
    error = await asyncio.wait_for(closed_client.errors.get(), 2)
    ok &= isinstance(error, ConnectionRefusedError)
    say(f"  UDP to closed port 9 -> error_received({type(error).__name__})")
    closed.close()
    for host in (PEER_IP, PEER_IP6):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(str(host), ECHO_PORT), 5)
        message = b"hello over the user-space TCP\n" * 200
        writer.write(message)
        writer.write_eof()  # half-close: the peer echoes everything, then closes
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
        ok &= reply == message.upper()
        say(f"  TCP {len(message)} bytes to {host}:{ECHO_PORT} (open_connection, write_eof)"
            f" -> {len(reply)} bytes back: {'ok' if reply == message.upper() else 'WRONG'}")
    try:
        await asyncio.wait_for(asyncio.open_connection(str(PEER_IP), 9), 5)
        say("  TCP to closed port 9 -> connected?! WRONG")
        ok = False
    except ConnectionRefusedError as exc:
        say(f"  TCP to closed port 9 -> {type(exc).__name__} (the peer answered with RST)")
    return ok


def _tshark_verdict(pcap_path: str) -> tuple[bool, str]:
    """Run tshark with checksum validation; (ok, summary)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        return True, "tshark not installed: skipped the independent check"
    command = [tshark, "-n", "-r", pcap_path,
               "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
               "-o", "tcp.check_checksum:TRUE",
               "-Y", "_ws.malformed || ip.checksum.status == \"Bad\""
                     " || udp.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\""
                     " || tcp.checksum.status == \"Bad\""]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        return False, f"tshark failed: {result.stderr.strip()}"
    flagged = [line for line in result.stdout.splitlines() if line.strip()]
    if flagged:
        return False, "tshark flagged:\n    " + "\n    ".join(flagged)
    return True, "tshark: every frame decodes, no malformed packets, no bad checksums"


def run_demo(pcap_path: str | None = None, out: TextIO | None = None) -> int:
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say(f"ethox_asyncio {__version__} — demo (no privileges needed)")
    say("An asyncio application on the ethox loop (uvloop) talks over an in-memory link")
    say(f"to a second instance of our stack at {PEER_IP}. Nothing goes through the kernel.")
    say("Works today: codecs, devices (TAP/io_uring, AF_PACKET), ARP/NDP, IPv4/IPv6 with")
    say("fragments, ICMP, UDP datagram endpoints, TCP (create_connection/create_server,")
    say("streams, TLS; SACK/RACK-TLP/PRR recovery, CUBIC, HyStart++, TSO, PMTU). Next: a")
    say("compiled established-state path, to beat asyncio on kernel sockets.\n")
    own_file = pcap_path is None
    if pcap_path is None:
        handle, pcap_path = tempfile.mkstemp(prefix="ethox-demo-", suffix=".pcap")
        os.close(handle)
    with MemoryLink(2) as link:
        peer = EchoPeer(link.endpoints[1])
        config = StackConfig(addresses=(IPv4Interface(f"{OUR_IP}/24"),
                                        IPv6Interface(f"{OUR_IP6}/64")),
                             mac=EthernetAddress("02:00:00:00:00:02"), pcap=pcap_path)
        try:
            ok = run(_application(peer, say), config=config, device=link.endpoints[0])
        except (OSError, TimeoutError) as exc:
            say(f"  FAILED: {exc!r}")
            ok = False
    say("\nEvery frame our loop saw or sent, decoded by our own codecs:")
    for index, record in enumerate(read_pcap(pcap_path), start=1):
        say(f"  {index:3d} {describe_frame(record.data)}")
    tshark_ok, verdict = _tshark_verdict(pcap_path)
    say(f"\n{verdict}")
    if own_file:
        os.unlink(pcap_path)
    else:
        say(f"capture written to {pcap_path} (open it with wireshark or tcpdump -r)")
    say("\nWith root: `python -m ethox_asyncio netns up`, then `python -m ethox_asyncio ping "
        "--device ... --address 198.18.0.2/24 198.18.0.1` pings the Linux kernel.")
    return 0 if ok and tshark_ok else 1
