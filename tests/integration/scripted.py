"""A scripted host for device integration tests: just enough ARP and TCP, from the codecs.

It is *not* the stack (which comes with the event-loop issue): it answers ARP for
its address and lets a test send hand-built TCP segments — including GSO
super-frames through the virtio-net header — and wait for the kernel's answers.
Every wait is bounded by a deadline.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from ethox_asyncio.device.base import Device
from ethox_asyncio.device.vnet import (
    FLAG_NEEDS_CSUM,
    GSO_TCPV4,
    NO_OFFLOAD,
    VNET_HDR_LEN,
    VnetHeader,
)
from ethox_asyncio.stack.wire.arp import ArpOperation, ArpRepr
from ethox_asyncio.stack.wire.checksum import ChecksumCaps, TxChecksum
from ethox_asyncio.stack.wire.ethernet import (
    EthernetAddress,
    EthernetFrame,
    EthernetRepr,
    EtherType,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from ethox_asyncio.stack.wire.tcp import TcpRepr

ETH_LEN, IP_LEN, TCP_LEN = 14, 20, 20


@dataclass(frozen=True)
class Received:
    """One frame the kernel sent, decoded as far as a test needs."""

    vnet: VnetHeader | None
    frame: bytes  # the Ethernet frame (vnet header removed)

    @property
    def eth(self) -> EthernetFrame:
        return EthernetFrame(self.frame)


class ScriptedHost:
    def __init__(self, device: Device, mac: EthernetAddress, ip: IPv4Address) -> None:
        self.device = device
        self.mac = mac
        self.ip = ip
        self.vnet = device.capabilities.vnet_header
        self.peer_mac: EthernetAddress | None = None
        self.received: list[Received] = []

    # --- sending -------------------------------------------------------------------

    def send(self, frame: bytes, vnet: VnetHeader | None = None) -> None:
        if self.vnet:
            frame = (vnet.pack() if vnet else NO_OFFLOAD) + frame
        assert self.device.transmit([frame]) == 1

    def tcp_frame(self, dst: IPv4Address, tcp: TcpRepr, payload: bytes = b"",
                  caps: ChecksumCaps | None = None) -> bytes:
        assert self.peer_mac is not None, "peer MAC unknown: no ARP seen yet"
        ip = Ipv4Repr(self.ip, dst, IpProtocol.TCP, tcp.buffer_len)
        buf = memoryview(bytearray(ETH_LEN + ip.buffer_len))
        EthernetRepr(self.mac, self.peer_mac, EtherType.IPV4).emit(buf)
        ip.emit(buf[ETH_LEN:])
        segment = buf[ETH_LEN + IP_LEN:]
        segment[tcp.header_len:] = payload
        tcp.emit(segment, self.ip, dst, caps or ChecksumCaps())
        return bytes(buf)

    def send_tcp_superframe(self, dst: IPv4Address, tcp: TcpRepr, payload: bytes,
                            mss: int) -> None:
        """One frame larger than the MTU; the kernel segments it (GSO) and finishes checksums."""
        frame = self.tcp_frame(dst, tcp, payload, ChecksumCaps(tx=TxChecksum.PARTIAL))
        header = VnetHeader(flags=FLAG_NEEDS_CSUM, gso_type=GSO_TCPV4,
                            hdr_len=ETH_LEN + IP_LEN + tcp.header_len, gso_size=mss,
                            csum_start=ETH_LEN + IP_LEN, csum_offset=16)
        self.send(frame, header)

    def resolve(self, ip: IPv4Address, timeout: float = 5.0) -> EthernetAddress:
        """ARP for ``ip``, repeating the request every 0.3 s, and remember the answer.

        Repeating matters: right after a TAP gets its carrier the kernel drops its
        own transmissions until link-watch activates the queue (up to about a second).
        """
        request = ArpRepr(ArpOperation.REQUEST, self.mac, self.ip, EthernetAddress(bytes(6)), ip)
        buf = bytearray(ETH_LEN + request.buffer_len)
        EthernetRepr(self.mac, EthernetAddress(b"\xff" * 6), EtherType.ARP).emit(buf)
        request.emit(memoryview(buf)[ETH_LEN:])

        def is_reply(received: Received) -> bool:
            if received.eth.ethertype != EtherType.ARP:
                return False
            arp = ArpRepr.parse(received.eth.payload)
            return arp.operation == ArpOperation.REPLY and arp.source_protocol_addr == ip

        deadline = time.monotonic() + timeout
        while True:
            self.send(bytes(buf))
            try:
                found = self.wait_for(is_reply, min(0.3, deadline - time.monotonic()))
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
        reply = ArpRepr.parse(found.eth.payload)
        self.peer_mac = EthernetAddress(reply.source_hardware_addr)
        return self.peer_mac

    # --- receiving -----------------------------------------------------------------

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 5.0) -> Received:
        """Pump the device (answering ARP) until a frame matches ``predicate``."""
        deadline = time.monotonic() + timeout
        for seen in self.received:
            if predicate(seen):
                return seen
        while (left := deadline - time.monotonic()) > 0:
            select.select([self.device.fileno()], [], [], min(left, 0.05))
            for view in self.device.receive(64):
                received = self._decode(view)
                self._answer_arp(received)
                self.received.append(received)
                if predicate(received):
                    return received
        raise TimeoutError("the kernel did not send the expected frame in time")

    def _decode(self, view: memoryview) -> Received:
        if self.vnet:
            return Received(VnetHeader.parse(view), bytes(view[VNET_HDR_LEN:]))
        return Received(None, bytes(view))

    def _answer_arp(self, received: Received) -> None:
        eth = received.eth
        if eth.ethertype != EtherType.ARP:
            return
        arp = ArpRepr.parse(eth.payload)
        if arp.operation == ArpOperation.REQUEST and arp.target_protocol_addr == self.ip:
            self.peer_mac = EthernetAddress(arp.source_hardware_addr)
            reply = ArpRepr(ArpOperation.REPLY, self.mac, self.ip, arp.source_hardware_addr,
                            arp.source_protocol_addr)
            buf = bytearray(ETH_LEN + reply.buffer_len)
            EthernetRepr(self.mac, eth.src, EtherType.ARP).emit(buf)
            reply.emit(memoryview(buf)[ETH_LEN:])
            self.send(bytes(buf))


def tcp_of(received: Received, verify: bool = True) -> tuple[Ipv4Packet, TcpRepr] | None:
    """The IPv4 packet and TCP header in a received frame, or None if it is not TCP/IPv4.

    A frame with NEEDS_CSUM carries only a partial checksum (the kernel trusts
    its own sender), so it is not verified.
    """
    eth = received.eth
    if eth.ethertype != EtherType.IPV4:
        return None
    ip = Ipv4Packet.checked(eth.payload)
    if ip.protocol != IpProtocol.TCP:
        return None
    partial = received.vnet is not None and received.vnet.needs_csum
    caps = ChecksumCaps(verify=verify and not partial)
    return ip, TcpRepr.parse(ip.payload, ip.src, ip.dst, caps)
