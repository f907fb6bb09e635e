"""describe_frame: one line per frame, every layer decoded, never an exception."""

from __future__ import annotations

import re
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.wire.describe import describe_frame
from ethox_asyncio.stack.wire.ethernet import (
    EthernetAddress,
    EthernetFrame,
    EthernetRepr,
    EtherType,
    ipv6_multicast_mac,
)
from ethox_asyncio.stack.wire.icmpv6 import Icmpv6Packet, Icmpv6Type
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv6 import Ipv6Packet, Ipv6Repr
from ethox_asyncio.stack.wire.mld import MLDV2_ROUTERS
from tests import golden
from tests.wire.test_mld import (
    KERNEL_ALLOW,
    KERNEL_BLOCK,
    KERNEL_FRAMES,
    KERNEL_FROM_UNSPECIFIED,
    KERNEL_TO_EX,
)


@pytest.mark.parametrize("name", golden.names())
def test_every_golden_frame_decodes_without_error(name: str) -> None:
    for frame in golden.load(name):
        line = describe_frame(frame)
        assert re.search(r"\[\w+: \w+: ", line) is None, line  # no "[layer: Error: ...]"


def test_layers_are_joined_in_order() -> None:
    syn = golden.load("tcp4_session")[0]
    layers = describe_frame(syn).split(" | ")
    assert layers[0].endswith("ethertype IPv4 (0x0800)")
    assert layers[1].startswith("IP 198.18.0.1 > 198.18.0.2: proto tcp (6)")
    assert layers[2].startswith("TCP ") and "[S]" in layers[2] and "mss 1460" in layers[2]


def test_bad_checksum_is_named() -> None:
    frame = bytearray(golden.load("udp4_echo")[0])
    frame[-1] ^= 0xFF
    assert describe_frame(frame).endswith("]")
    assert "BadChecksum" in describe_frame(frame)


def test_truncated_frame_is_named() -> None:
    frame = golden.load("tcp6_session")[0]
    assert "[ipv6: Truncated" in describe_frame(frame[:40])


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(describe_frame(data), str)


@settings(max_examples=300)
@given(st.sampled_from([f for n in golden.names() for f in golden.load(n)]),
       st.integers(0, 1500), st.integers(0, 255))
def test_never_raises_on_mutated_golden_frames(frame: bytes, position: int, value: int) -> None:
    mutated = bytearray(frame)
    mutated[position % len(mutated)] = value
    assert isinstance(describe_frame(mutated), str)


# --- IPv6 options headers and MLDv2 reports ------------------------------------------

LINK_LOCAL = IPv6Address("fe80::ff:fe00:1")
MLD_FRAMES = KERNEL_FRAMES  # Linux's MLDv2 reports, each behind a hop-by-hop header
KERNEL_TO_EX_LINE = (
    "02:00:00:00:00:01 > 33:33:00:00:00:16, ethertype IPv6 (0x86dd)"
    " | IP6 fe80::ff:fe00:1 > ff02::16: next-header hopopt (0), payload length 56, hlim 1"
    " | HBH RouterAlert: MLD, PadN len 0, next-header icmpv6 (58)"
    " | ICMP6, multicast listener report v2, 2 group record(s)"
    " [gaddr ff02::1:ff00:abcd to_ex, 0 source(s)] [gaddr ff02::1:ff00:1 to_ex, 0 source(s)]"
    ", length 48"
)


def ipv6_frame(next_header: int, payload: bytes, src: IPv6Address = LINK_LOCAL,
               dst: IPv6Address = MLDV2_ROUTERS) -> bytes:
    eth = EthernetRepr(EthernetAddress("02:00:00:00:00:01"), ipv6_multicast_mac(dst),
                       EtherType.IPV6)
    ip = Ipv6Repr(src, dst, next_header, len(payload), hop_limit=1)
    frame = bytearray(b"\xa5" * (eth.header_len + ip.header_len)) + payload
    eth.emit(frame)
    ip.emit(memoryview(frame)[eth.header_len :])
    return bytes(frame)


def layers(frame: bytes) -> list[str]:
    return describe_frame(frame).split(" | ")


def test_kernel_mld_report_line() -> None:
    # Captured from Linux on link-up: see tests/wire/test_mld.py for how.
    assert describe_frame(KERNEL_TO_EX) == KERNEL_TO_EX_LINE


@pytest.mark.parametrize(("frame", "report"), [
    (KERNEL_ALLOW, "ICMP6, multicast listener report v2, 1 group record(s)"
                   " [gaddr ff3e::1234 allow, 2 source(s)], length 60"),
    (KERNEL_BLOCK, "ICMP6, multicast listener report v2, 1 group record(s)"
                   " [gaddr ff3e::1234 block, 2 source(s)], length 60"),
    (KERNEL_FROM_UNSPECIFIED, "ICMP6, multicast listener report v2, 1 group record(s)"
                              " [gaddr ff02::1:ff00:2 to_ex, 0 source(s)], length 28"),
])
def test_every_kernel_mld_report_decodes(frame: bytes, report: str) -> None:
    parts = layers(frame)
    assert parts[2] == "HBH RouterAlert: MLD, PadN len 0, next-header icmpv6 (58)"
    assert parts[3] == report


@pytest.mark.parametrize(("options", "text"), [
    (bytes((5, 2, 0, 1, 0, 0)), "RouterAlert: RSVP, Pad1, Pad1"),
    (bytes((5, 2, 0, 2, 1, 0)), "RouterAlert: Active Networks, PadN len 0"),
    (bytes((5, 2, 0x12, 0x34, 1, 0)), "RouterAlert: value 4660, PadN len 0"),
    (bytes((1, 4, 0, 0, 0, 0)), "PadN len 4"),
    (bytes((0x1E, 2, 0xAB, 0xCD, 0, 0)), "unknown type 0x1e len 2, Pad1, Pad1"),
    (bytes((0xC2, 4, 0, 1, 0, 0)), "unknown type 0xc2 len 4"),  # a jumbo payload option
])
def test_hop_by_hop_options_are_named(options: bytes, text: str) -> None:
    frame = ipv6_frame(IpProtocol.HOPOPT, bytes((IpProtocol.IPV6_NONXT, 0)) + options)
    assert layers(frame)[2:] == [f"HBH {text}, next-header ipv6_nonxt (59)"]


def test_destination_options_and_routing_headers_are_described_in_order() -> None:
    hop_by_hop = bytes((IpProtocol.IPV6_ROUTE, 0, 1, 4, 0, 0, 0, 0))
    routing = bytes((IpProtocol.IPV6_OPTS, 0, 4, 1)) + bytes(4)
    destination = bytes((IpProtocol.IPV6_NONXT, 1, 0x3E, 10)) + bytes(10) + bytes((1, 0))
    frame = ipv6_frame(IpProtocol.HOPOPT, hop_by_hop + routing + destination)
    assert layers(frame)[2:] == [
        "HBH PadN len 4, next-header ipv6_route (43)",
        "RT type 4, segments left 1, next-header ipv6_opts (60)",
        "DSTOPT unknown type 0x3e len 10, PadN len 0, next-header ipv6_nonxt (59)",
    ]


def test_router_alert_of_the_wrong_length_is_malformed() -> None:
    # RFC 2711 §2.1: the option carries exactly 2 octets (Linux drops other lengths).
    frame = ipv6_frame(IpProtocol.HOPOPT, bytes((IpProtocol.IPV6_NONXT, 0, 5, 3, 0, 0, 0, 0)))
    assert layers(frame)[2:] == ["[ipv6: Malformed: IPv6 Router Alert option of 3 octets, not 2]"]


def test_option_overrunning_its_header_is_malformed() -> None:
    frame = ipv6_frame(IpProtocol.HOPOPT, bytes((IpProtocol.IPV6_NONXT, 0, 5, 5, 0, 0, 0, 0)))
    assert layers(frame)[2].startswith("[ipv6: Malformed: IPv6 option at payload offset 2")


def _with_payload(frame: bytes, payload: bytes) -> bytes:
    """``frame`` (Ethernet + IPv6) with another IPv6 payload, its length field updated."""
    ip = Ipv6Repr.parse(EthernetFrame.checked(frame).payload)
    return ipv6_frame(ip.next_header, payload, ip.src, ip.dst)


@pytest.mark.parametrize("frame", MLD_FRAMES)
def test_mld_frame_truncated_at_every_offset(frame: bytes) -> None:
    for length in range(len(frame)):  # the IPv6 payload length then overruns the frame
        line = describe_frame(frame[:length])
        assert re.search(r"\[(ethernet|ipv6): Truncated: ", line), (length, line)
    ip = Ipv6Packet.checked(EthernetFrame.checked(frame).payload)
    payload = bytes(ip.payload)
    for length in range(len(payload)):  # a shorter packet, consistent at the IPv6 layer
        prefix = bytearray(payload[:length])
        if length >= 8 + 4:  # give the cut MLD message a correct checksum: no BadChecksum
            Icmpv6Packet(memoryview(prefix)[8:]).fill_checksum(ip.src, ip.dst)
        line = describe_frame(_with_payload(frame, bytes(prefix)))
        assert line.endswith("]") and "[ipv6: Truncated: " in line, (length, line)
        assert ("HBH RouterAlert: MLD" in line) is (length >= 8), (length, line)


@settings(max_examples=300)
@given(st.sampled_from(MLD_FRAMES), st.integers(14, 200), st.integers(0, 255))
def test_never_raises_on_mutated_mld_frames(frame: bytes, position: int, value: int) -> None:
    mutated = bytearray(frame)
    mutated[position % len(mutated)] = value
    assert isinstance(describe_frame(mutated), str)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_never_raises_on_arbitrary_hop_by_hop_and_icmpv6(data: bytes) -> None:
    line = describe_frame(ipv6_frame(IpProtocol.HOPOPT, data))
    assert line.startswith("02:00:00:00:00:01 > 33:33:00:00:00:16")
    mld = bytes((IpProtocol.ICMPV6, 0, 5, 2, 0, 0, 1, 0, Icmpv6Type.MLDV2_REPORT)) + data
    assert isinstance(describe_frame(ipv6_frame(IpProtocol.HOPOPT, mld)), str)
