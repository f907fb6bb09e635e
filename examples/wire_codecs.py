"""Build a UDP-over-IPv4 frame with the codecs, parse it back, and edit it in place.

Run: .venv/bin/python examples/wire_codecs.py
Needs no privileges and no network: it only shows the wire API.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from ethox_asyncio.stack.wire.describe import describe_frame
from ethox_asyncio.stack.wire.ethernet import (
                   EthernetAddress,
                   EthernetFrame,
                   EthernetRepr,
                   EtherType,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv4 import Ipv4Packet, Ipv4Repr
from ethox_asyncio.stack.wire.udp import UdpRepr

src, dst = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
payload = b"hello from user space"

eth = EthernetRepr(EthernetAddress("02:00:00:00:00:01"), EthernetAddress("02:00:00:00:00:02"),
                   EtherType.IPV4)
udp = UdpRepr(src_port=40000, dst_port=7, payload_len=len(payload))
ip = Ipv4Repr(src, dst, IpProtocol.UDP, payload_len=udp.buffer_len)

# One buffer for the whole frame: each layer writes its header at its offset.
frame = bytearray(eth.header_len + ip.buffer_len)
view = memoryview(frame)
eth.emit(view)
ip.emit(view[eth.header_len:])
udp.emit(view[eth.header_len + ip.header_len:], src, dst, payload)
print("built :", describe_frame(frame))

# Parse it back, layer by layer, without copying: every payload is a memoryview.
packet = Ipv4Packet.checked(EthernetFrame.checked(frame).payload)
parsed = UdpRepr.parse(packet.payload, packet.src, packet.dst)
print("parsed:", Ipv4Repr.parse(packet), "/", parsed)
assert parsed == udp

# Edit in place: lower the TTL and fix the header checksum, as a router would.
packet.ttl = packet.ttl - 1
packet.fill_checksum()
print("edited:", describe_frame(frame))
