"""``python -m ethox_asyncio demo``: show, without privileges, what works so far.

Contract: builds frames with our codecs on host A, carries them over an
in-memory link to host B, where a *scripted* responder (also built only from the
codecs; it is not the protocol stack, which does not exist yet) answers ARP,
ICMP echo (in place, with the RFC 1624 checksum update), neighbour
solicitation, ICMPv6 echo, a UDP datagram and a TCP SYN. Every frame is printed
decoded by our own codecs, written to a pcap, and — when tshark is installed —
validated by tshark with checksum checks on. Returns 0 when every request got
its answer and tshark (if present) found nothing wrong, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import TextIO

from . import __version__
from .device.memory import MemoryLink
from .device.pcap import PcapWriter
from .stack.wire.arp import ArpOperation, ArpRepr
from .stack.wire.describe import describe_frame
from .stack.wire.ethernet import (
    BROADCAST,
    EthernetAddress,
    EthernetFrame,
    EthernetRepr,
    EtherType,
    ipv6_multicast_mac,
)
from .stack.wire.icmpv4 import Icmpv4EchoRequest, Icmpv4Packet
from .stack.wire.icmpv6 import Icmpv6EchoRequest, Icmpv6Packet, parse_icmpv6
from .stack.wire.ip import IpProtocol
from .stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from .stack.wire.ipv6 import Ipv6Packet, Ipv6Repr
from .stack.wire.ndisc import NeighborAdvert, NeighborSolicit, solicited_node_multicast
from .stack.wire.tcp import TcpFlags, TcpRepr
from .stack.wire.udp import UdpRepr

MAC_A, MAC_B = EthernetAddress("02:00:00:00:00:0a"), EthernetAddress("02:00:00:00:00:0b")
IP4_A, IP4_B = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
IP6_A, IP6_B = IPv6Address("fd00::1"), IPv6Address("fd00::2")

# Writes a transport message into the buffer it is given (sized to the message).
EmitTransport = Callable[[memoryview], None]


def ipv4_frame(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: IPv4Address,
               dst: IPv4Address, protocol: int, length: int, emit: EmitTransport) -> bytes:
    eth = EthernetRepr(src_mac, dst_mac, EtherType.IPV4)
    ip = Ipv4Repr(src, dst, protocol, length)
    buf = memoryview(bytearray(eth.header_len + ip.buffer_len))
    eth.emit(buf)
    ip.emit(buf[eth.header_len:])
    emit(buf[eth.header_len + ip.header_len:])
    return bytes(buf)


def ipv6_frame(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: IPv6Address,
               dst: IPv6Address, length: int, emit: EmitTransport, *, protocol: int = 58,
               hop_limit: int = 64) -> bytes:
    eth = EthernetRepr(src_mac, dst_mac, EtherType.IPV6)
    ip = Ipv6Repr(src, dst, protocol, length, hop_limit=hop_limit)
    buf = memoryview(bytearray(eth.header_len + ip.buffer_len))
    eth.emit(buf)
    ip.emit(buf[eth.header_len:])
    emit(buf[eth.header_len + ip.header_len:])
    return bytes(buf)


def arp_frame(src_mac: EthernetAddress, dst_mac: EthernetAddress, arp: ArpRepr) -> bytes:
    eth = EthernetRepr(src_mac, dst_mac, EtherType.ARP)
    buf = memoryview(bytearray(eth.header_len + arp.buffer_len))
    eth.emit(buf)
    arp.emit(buf[eth.header_len:])
    return bytes(buf)


def requests_from_a() -> list[bytes]:
    """The frames host A sends."""
    echo4 = Icmpv4EchoRequest(ident=7, seq_no=1, data=b"ethox-asyncio ping v4")
    echo6 = Icmpv6EchoRequest(ident=7, seq_no=1, data=b"ethox-asyncio ping v6")
    solicit = NeighborSolicit(IP6_B, source_lladdr=MAC_A)
    group = solicited_node_multicast(IP6_B)
    udp = UdpRepr(40001, 7, len(b"hello"))
    syn = TcpRepr(40000, 7, seq=0xFFFFFFF0, ack=None, flags=TcpFlags.SYN, window=64240,
                  mss=1460, sack_permitted=True, timestamp=(1, 0), window_scale=7)
    return [
        arp_frame(MAC_A, BROADCAST, ArpRepr(ArpOperation.REQUEST, MAC_A, IP4_A,
                                            EthernetAddress(bytes(6)), IP4_B)),
        ipv4_frame(MAC_A, MAC_B, IP4_A, IP4_B, IpProtocol.ICMP, echo4.buffer_len, echo4.emit),
        ipv6_frame(MAC_A, ipv6_multicast_mac(group), IP6_A, group, solicit.buffer_len,
                   lambda buf: solicit.emit(buf, IP6_A, group), hop_limit=255),
        ipv6_frame(MAC_A, MAC_B, IP6_A, IP6_B, echo6.buffer_len,
                   lambda buf: echo6.emit(buf, IP6_A, IP6_B)),
        ipv4_frame(MAC_A, MAC_B, IP4_A, IP4_B, IpProtocol.UDP, udp.buffer_len,
                   lambda buf: udp.emit(buf, IP4_A, IP4_B, b"hello")),
        ipv4_frame(MAC_A, MAC_B, IP4_A, IP4_B, IpProtocol.TCP, syn.buffer_len,
                   lambda buf: syn.emit(buf, IP4_A, IP4_B)),
    ]


def answer_from_b(frame: memoryview) -> bytes | None:
    """Host B's scripted answer to one of A's frames (None: nothing to say)."""
    eth = EthernetFrame.checked(frame)
    if eth.ethertype == EtherType.ARP:
        arp = ArpRepr.parse(eth.payload)
        if arp.operation != ArpOperation.REQUEST or arp.target_protocol_addr != IP4_B:
            return None
        return arp_frame(MAC_B, eth.src, ArpRepr(ArpOperation.REPLY, MAC_B, IP4_B,
                                                 arp.source_hardware_addr,
                                                 arp.source_protocol_addr))
    if eth.ethertype == EtherType.IPV4:
        return _answer_ipv4(frame, eth)
    if eth.ethertype == EtherType.IPV6:
        return _answer_ipv6(frame, eth)
    return None


def _answer_ipv4(frame: memoryview, eth: EthernetFrame) -> bytes | None:
    ip = Ipv4Packet.checked(eth.payload)
    src, dst = ip.src, ip.dst
    if ip.protocol == IpProtocol.ICMP:
        # Answer in the received buffer: swap addresses, turn request into reply.
        Icmpv4Packet.checked(ip.payload).echo_request_to_reply()
        ip.src, ip.dst = dst, src
        ip.fill_checksum()
        eth.src, eth.dst = MAC_B, eth.src
        return bytes(frame[: eth.header_len + ip.total_len])
    if ip.protocol == IpProtocol.UDP:
        request = UdpRepr.parse(ip.payload, src, dst)
        payload = bytes(ip.payload[8:8 + request.payload_len]).upper()
        reply = UdpRepr(request.dst_port, request.src_port, len(payload))
        return ipv4_frame(MAC_B, eth.src, dst, src, IpProtocol.UDP, reply.buffer_len,
                          lambda buf: reply.emit(buf, dst, src, payload))
    if ip.protocol == IpProtocol.TCP:
        syn = TcpRepr.parse(ip.payload, src, dst)
        echoed_ts = syn.timestamp[0] if syn.timestamp else 0
        synack = TcpRepr(syn.dst_port, syn.src_port, seq=1000, ack=(syn.seq + 1) % 2**32,
                         flags=TcpFlags.SYN | TcpFlags.ACK, window=65535, mss=1460,
                         sack_permitted=True, timestamp=(5, echoed_ts), window_scale=7)
        return ipv4_frame(MAC_B, eth.src, dst, src, IpProtocol.TCP, synack.buffer_len,
                          lambda buf: synack.emit(buf, dst, src))
    return None


def _answer_ipv6(frame: memoryview, eth: EthernetFrame) -> bytes | None:
    ip = Ipv6Packet.checked(eth.payload)
    if ip.next_header != IpProtocol.ICMPV6:
        return None
    src, dst = ip.src, ip.dst
    message = parse_icmpv6(ip.payload, src, dst)
    if isinstance(message, NeighborSolicit) and message.target_addr == IP6_B:
        advert = NeighborAdvert(IP6_B, target_lladdr=MAC_B, solicited=True, override=True)
        return ipv6_frame(MAC_B, eth.src, IP6_B, src, advert.buffer_len,
                          lambda buf: advert.emit(buf, IP6_B, src), hop_limit=255)
    if isinstance(message, Icmpv6EchoRequest):
        # Swapping source and destination leaves the pseudo-header sum unchanged.
        Icmpv6Packet.checked(ip.payload).echo_request_to_reply()
        ip.src, ip.dst = dst, src
        eth.src, eth.dst = MAC_B, eth.src
        return bytes(frame[: eth.header_len + ip.header_len + ip.payload_len])
    return None


def _tshark_verdict(pcap_path: str) -> tuple[bool, str]:
    """Run tshark with checksum validation; (ok, summary)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        return True, "tshark not installed: skipped the independent check"
    command = [tshark, "-n", "-r", pcap_path,
               "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
               "-o", "udp.check_checksum:TRUE",
               "-Y", "_ws.malformed || _ws.expert.severity >= \"Warning\""
                     " || ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\""
                     " || udp.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\""
                     " || icmpv6.checksum.status == \"Bad\""]
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

    say(f"ethox_asyncio {__version__} — foundation demo (no privileges needed)")
    say("Works today: wire codecs for Ethernet/802.1Q, ARP, IPv4, IPv6 (+ extension headers),")
    say("ICMPv4, ICMPv6/NDP, UDP and TCP (with options); pcap capture; an in-memory link;")
    say("devices: TAP (io_uring or plain) and AF_PACKET with virtio-net offloads (need root).")
    say("Not yet: the event loop and the ARP/NDP/TCP state machines.")
    say("Host B below is a scripted responder built from the codecs, not the stack.\n")

    own_file = pcap_path is None
    if pcap_path is None:
        handle, pcap_path = tempfile.mkstemp(prefix="ethox-demo-", suffix=".pcap")
        os.close(handle)
    answered = 0
    requests = requests_from_a()
    with MemoryLink(2) as link, PcapWriter(pcap_path) as pcap:
        host_a, host_b = link.endpoints
        for request in requests:
            host_a.transmit([request])
            pcap.write(request, time.time())
            say(f"A → B  {describe_frame(request)}")
            for received in host_b.receive(8):
                reply = answer_from_b(received)
                if reply is None:
                    continue
                host_b.transmit([reply])
                pcap.write(reply, time.time())
            for frame in host_a.receive(8):
                answered += 1
                say(f"B → A  {describe_frame(frame)}")
    ok, verdict = _tshark_verdict(pcap_path)
    say(f"\n{answered}/{len(requests)} requests answered; {verdict}")
    if own_file:
        os.unlink(pcap_path)
    else:
        say(f"capture written to {pcap_path} (open it with wireshark or tcpdump -r)")
    return 0 if ok and answered == len(requests) else 1
