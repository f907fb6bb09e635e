"""MLDv2 report codec (RFC 3810 §5.2): kernel frames, emit, round trips, truncation, fuzz.

The ``KERNEL_*`` frames were captured from Linux 6.18 (tcpdump 4.99.3; tcpdump and
tshark 4.0.17 both report the ICMPv6 checksum correct) in a throwaway network
namespace holding a veth pair ``mlda`` (02:00:00:00:00:01) / ``mldb``
(02:00:00:00:00:02), with ``accept_dad=0`` and ``router_solicitations=0`` on
``mlda``, captured on ``mldb`` with
``tcpdump -n -U --immediate-mode -s 65535 -i mldb -w mld.pcap ip6``:

- ``KERNEL_TO_EX``: after ``ip addr add fd00::1/64`` and ``fd00::abcd/64 ... nodad``
  on ``mlda`` and ``ip link set mlda up``, the kernel joins both solicited-node
  groups in one report.
- ``KERNEL_ALLOW`` / ``KERNEL_BLOCK``: a process in the namespace joined
  ff3e::1234 from sources fd00::99 and fd00::98 (``MCAST_JOIN_SOURCE_GROUP`` on
  ``mlda``), then closed its sockets.
- ``KERNEL_FROM_UNSPECIFIED``: ``mldb``'s own report while its link-local address
  was still tentative (duplicate address detection), so from ``::`` (§5.2.13).
"""

from __future__ import annotations

import struct
import subprocess
from ipaddress import IPv6Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.device.pcap import PcapWriter
from ethox_asyncio.stack.wire.checksum import (
    CHECKSUM_SOFTWARE,
    ChecksumCaps,
    TxChecksum,
    fold,
)
from ethox_asyncio.stack.wire.errors import (
    BadChecksum,
    Malformed,
    Truncated,
    Unsupported,
    WireError,
)
from ethox_asyncio.stack.wire.ethernet import (
    EthernetAddress,
    EthernetFrame,
    EthernetRepr,
    EtherType,
    ipv6_multicast_mac,
)
from ethox_asyncio.stack.wire.icmpv6 import (
    Icmpv6Packet,
    Icmpv6Type,
    parse_icmpv6,
    pseudo_header_sum,
)
from ethox_asyncio.stack.wire.ip import IpProtocol
from ethox_asyncio.stack.wire.ipv6 import Ipv6Packet, Ipv6Repr
from ethox_asyncio.stack.wire.mld import (
    MLDV2_ROUTERS,
    Mldv2AddressRecord,
    Mldv2RecordType,
    Mldv2Report,
)

KERNEL_TO_EX = bytes.fromhex(
    "33330000001602000000000186dd6000000000380001fe80000000000000000000fffe000001"
    "ff0200000000000000000000000000163a000502000001008f00c41f0000000204000000ff02"
    "00000000000000000001ff00abcd04000000ff0200000000000000000001ff000001"
)
KERNEL_ALLOW = bytes.fromhex(
    "33330000001602000000000186dd6000000000440001fe80000000000000000000fffe000001"
    "ff0200000000000000000000000000163a000502000001008f0062450000000105000002ff3e"
    "0000000000000000000000001234fd000000000000000000000000000099fd00000000000000"
    "0000000000000098"
)
KERNEL_BLOCK = bytes.fromhex(
    "33330000001602000000000186dd6000000000440001fe80000000000000000000fffe000001"
    "ff0200000000000000000000000000163a000502000001008f0061450000000106000002ff3e"
    "0000000000000000000000001234fd000000000000000000000000000098fd00000000000000"
    "0000000000000099"
)
KERNEL_FROM_UNSPECIFIED = bytes.fromhex(
    "33330000001602000000000286dd60000000002400010000000000000000000000000000000"
    "0ff0200000000000000000000000000163a000502000001008f006f880000000104000000ff"
    "0200000000000000000001ff000002"
)
KERNEL_FRAMES = [KERNEL_TO_EX, KERNEL_ALLOW, KERNEL_BLOCK, KERNEL_FROM_UNSPECIFIED]

LINK_LOCAL = IPv6Address("fe80::ff:fe00:1")
NO_VERIFY = ChecksumCaps(verify=False)
_HBH_LEN = 8  # the kernel's hop-by-hop header: Router Alert (MLD) and a PadN


def message_of(frame: bytes) -> tuple[bytes, IPv6Address, IPv6Address]:
    """The ICMPv6 message of a kernel frame, with the IPv6 source and destination."""
    ip = Ipv6Packet.checked(EthernetFrame.checked(frame).payload)
    chain = ip.header_chain()
    assert chain.protocol == IpProtocol.ICMPV6 and chain.offset == _HBH_LEN
    return bytes(ip.payload[chain.offset :]), ip.src, ip.dst


def with_checksum(message: bytes, src: IPv6Address = LINK_LOCAL,
                  dst: IPv6Address = MLDV2_ROUTERS) -> bytes:
    view = bytearray(message)
    Icmpv6Packet(view).fill_checksum(src, dst)
    return bytes(view)


def emitted(report: Mldv2Report, src: IPv6Address = LINK_LOCAL,
            dst: IPv6Address = MLDV2_ROUTERS, caps: ChecksumCaps = CHECKSUM_SOFTWARE) -> bytes:
    buf = bytearray(b"\xa5" * report.buffer_len)
    report.emit(buf, src, dst, caps)
    return bytes(buf)


TO_EX = Mldv2Report((
    Mldv2AddressRecord(Mldv2RecordType.CHANGE_TO_EXCLUDE_MODE, IPv6Address("ff02::1:ff00:abcd")),
    Mldv2AddressRecord(Mldv2RecordType.CHANGE_TO_EXCLUDE_MODE, IPv6Address("ff02::1:ff00:1")),
))
SOURCES = (IPv6Address("fd00::99"), IPv6Address("fd00::98"))
ALLOW = Mldv2Report((
    Mldv2AddressRecord(Mldv2RecordType.ALLOW_NEW_SOURCES, IPv6Address("ff3e::1234"), SOURCES),
))
BLOCK = Mldv2Report((
    Mldv2AddressRecord(Mldv2RecordType.BLOCK_OLD_SOURCES, IPv6Address("ff3e::1234"),
                       SOURCES[::-1]),
))
FROM_UNSPECIFIED = Mldv2Report((
    Mldv2AddressRecord(Mldv2RecordType.CHANGE_TO_EXCLUDE_MODE, IPv6Address("ff02::1:ff00:2")),
))
EXPECTED = [TO_EX, ALLOW, BLOCK, FROM_UNSPECIFIED]


@pytest.mark.parametrize(("frame", "expected"), list(zip(KERNEL_FRAMES, EXPECTED, strict=True)))
def test_kernel_reports_parse(frame: bytes, expected: Mldv2Report) -> None:
    message, src, dst = message_of(frame)
    assert dst == MLDV2_ROUTERS
    assert Mldv2Report.parse(message, src, dst) == expected
    assert Mldv2Report.parse(Icmpv6Packet(message), src, dst) == expected  # a view works too


@pytest.mark.parametrize(("frame", "expected"), list(zip(KERNEL_FRAMES, EXPECTED, strict=True)))
def test_emit_reproduces_the_kernel_bytes(frame: bytes, expected: Mldv2Report) -> None:
    message, src, dst = message_of(frame)
    assert expected.buffer_len == len(message)
    assert emitted(expected, src, dst) == message  # every octet written, checksum included


def test_str_is_tcpdump_verbose_style() -> None:
    assert str(TO_EX) == (
        "ICMP6, multicast listener report v2, 2 group record(s)"
        " [gaddr ff02::1:ff00:abcd to_ex, 0 source(s)] [gaddr ff02::1:ff00:1 to_ex, 0 source(s)]"
        ", length 48"
    )
    assert str(ALLOW) == ("ICMP6, multicast listener report v2, 1 group record(s)"
                          " [gaddr ff3e::1234 allow, 2 source(s)], length 60")
    assert str(Mldv2Report()) == "ICMP6, multicast listener report v2, 0 group record(s), length 8"


@pytest.mark.parametrize(("record_type", "name"), [
    (1, "is_in"), (2, "is_ex"), (3, "to_in"), (4, "to_ex"), (5, "allow"), (6, "block"),
    (0, "type 0"), (200, "type 200"),
])
def test_record_type_names(record_type: int, name: str) -> None:
    message = bytearray(message_of(KERNEL_FROM_UNSPECIFIED)[0])
    message[8] = record_type
    report = Mldv2Report.parse(message, IPv6Address("::"), MLDV2_ROUTERS, NO_VERIFY)
    record = report.records[0]
    assert str(record) == f"gaddr ff02::1:ff00:2 {name}, 0 source(s)"
    known = record_type in range(1, 7)
    assert isinstance(record.record_type, Mldv2RecordType) is known
    assert record.record_type == record_type


def test_parse_icmpv6_still_leaves_mld_to_this_codec() -> None:
    message, src, dst = message_of(KERNEL_TO_EX)
    with pytest.raises(Unsupported):
        parse_icmpv6(message, src, dst)  # the stack drops MLD; only describe decodes it
    assert Icmpv6Type.MLDV2_REPORT == 143


def test_bad_checksum() -> None:
    message, src, dst = message_of(KERNEL_ALLOW)
    corrupted = bytearray(message)
    corrupted[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        Mldv2Report.parse(corrupted, src, dst)
    assert Mldv2Report.parse(corrupted, src, dst, NO_VERIFY).records[0].sources[1] == (
        IPv6Address("fd00::99")
    )
    with pytest.raises(BadChecksum):  # the pseudo-header counts: another source address
        Mldv2Report.parse(message, IPv6Address("fe80::1"), dst)


@pytest.mark.parametrize("msg_type", [128, 130, 131, 132, 135, 142, 144])
def test_other_icmpv6_types_are_malformed(msg_type: int) -> None:
    message = bytearray(message_of(KERNEL_TO_EX)[0])
    message[0] = msg_type
    with pytest.raises(Malformed, match="not an MLDv2 report"):
        Mldv2Report.parse(with_checksum(bytes(message)), LINK_LOCAL, MLDV2_ROUTERS)


@pytest.mark.parametrize("frame", KERNEL_FRAMES)
def test_truncated_at_every_offset(frame: bytes) -> None:
    message, src, dst = message_of(frame)
    for length in range(len(message)):
        prefix = message[:length]
        with pytest.raises(Truncated):
            Mldv2Report.parse(prefix, src, dst, NO_VERIFY)
        if length >= 8:  # a prefix with a correct checksum gets past verification
            with pytest.raises(Truncated):
                Mldv2Report.parse(with_checksum(prefix, src, dst), src, dst)


def test_reserved_fields_and_code_are_ignored_on_receive_and_sent_as_zero() -> None:
    message = bytearray(message_of(KERNEL_ALLOW)[0])
    message[1] = 0x7F  # code (RFC 3810 §5.2: "Reserved")
    message[4:6] = b"\xff\xff"  # §5.2.1 Reserved
    report = Mldv2Report.parse(with_checksum(bytes(message)), LINK_LOCAL, MLDV2_ROUTERS)
    assert report == ALLOW
    assert emitted(report) == message_of(KERNEL_ALLOW)[0]


def test_additional_data_is_checksummed_then_ignored() -> None:
    # RFC 3810 §5.2.11: octets past the last record count in the checksum only.
    message = with_checksum(message_of(KERNEL_TO_EX)[0] + b"trailing", LINK_LOCAL)
    report = Mldv2Report.parse(message, LINK_LOCAL, MLDV2_ROUTERS)
    assert report == TO_EX
    assert report.buffer_len == len(message) - len(b"trailing")


def test_auxiliary_data_is_kept_in_32_bit_words() -> None:
    record = Mldv2AddressRecord(Mldv2RecordType.MODE_IS_INCLUDE, IPv6Address("ff05::1:3"),
                                (IPv6Address("fd00::1"),), aux_data=b"\x01\x02\x03\x04" * 2)
    wire = emitted(Mldv2Report((record,)))
    assert wire[8:12] == bytes((1, 2, 0, 1))  # record type, aux data len 2 words, N = 1
    assert wire[-8:] == b"\x01\x02\x03\x04" * 2
    assert Mldv2Report.parse(wire, LINK_LOCAL, MLDV2_ROUTERS).records == (record,)
    with pytest.raises(Truncated):  # the aux data length reaches past the message
        Mldv2Report.parse(with_checksum(wire[:-4]), LINK_LOCAL, MLDV2_ROUTERS)


def test_a_forged_record_count_is_refused_before_any_record_is_parsed() -> None:
    message = bytearray(message_of(KERNEL_TO_EX)[0])
    message[6:8] = b"\xff\xff"
    with pytest.raises(Truncated, match="cannot hold 65535 record"):
        Mldv2Report.parse(message, LINK_LOCAL, MLDV2_ROUTERS, NO_VERIFY)


def test_a_forged_source_count_is_truncated() -> None:
    message = bytearray(message_of(KERNEL_ALLOW)[0])
    message[10:12] = b"\xff\xff"
    with pytest.raises(Truncated, match="65535 sources"):
        Mldv2Report.parse(message, LINK_LOCAL, MLDV2_ROUTERS, NO_VERIFY)


def test_checksum_offload_modes() -> None:
    length = ALLOW.buffer_len
    none = emitted(ALLOW, caps=ChecksumCaps(tx=TxChecksum.NONE))
    assert none[2:4] == b"\0\0"
    partial = emitted(ALLOW, caps=ChecksumCaps(tx=TxChecksum.PARTIAL))
    expected = fold(pseudo_header_sum(LINK_LOCAL, MLDV2_ROUTERS, length))
    assert struct.unpack("!H", partial[2:4])[0] == expected
    assert none[4:] == partial[4:] == emitted(ALLOW)[4:]


def test_emit_refuses_what_the_fields_cannot_hold() -> None:
    group = IPv6Address("ff02::1:3")
    with pytest.raises(ValueError, match="auxiliary data"):
        emitted(Mldv2Report((Mldv2AddressRecord(1, group, aux_data=b"abc"),)))
    with pytest.raises(ValueError, match="auxiliary data"):
        emitted(Mldv2Report((Mldv2AddressRecord(1, group, aux_data=b"\0" * 1024),)))
    with pytest.raises(ValueError, match="sources"):
        emitted(Mldv2Report((Mldv2AddressRecord(1, group, (group,) * 0x10000),)))


addresses = st.integers(0, 2**128 - 1).map(IPv6Address)
records = st.builds(
    Mldv2AddressRecord,
    record_type=st.one_of(st.sampled_from(Mldv2RecordType), st.integers(7, 255)),
    address=addresses,
    sources=st.lists(addresses, max_size=4).map(tuple),
    aux_data=st.lists(st.binary(min_size=4, max_size=4), max_size=3).map(b"".join),
)
reports = st.builds(Mldv2Report, st.lists(records, max_size=5).map(tuple))


@settings(max_examples=200)
@given(reports, addresses, addresses)
def test_round_trip(report: Mldv2Report, src: IPv6Address, dst: IPv6Address) -> None:
    wire = emitted(report, src, dst)
    assert len(wire) == report.buffer_len
    assert Mldv2Report.parse(wire, src, dst) == report


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    message = bytes((Icmpv6Type.MLDV2_REPORT,)) + data
    for candidate in (data, message):
        try:
            Mldv2Report.parse(candidate, LINK_LOCAL, MLDV2_ROUTERS, NO_VERIFY)
        except WireError:
            pass


@settings(max_examples=300)
@given(st.sampled_from(KERNEL_FRAMES), st.integers(0, 200), st.integers(0, 255))
def test_mutated_kernel_reports_raise_only_wire_errors(frame: bytes, position: int,
                                                       value: int) -> None:
    message, src, dst = message_of(frame)
    mutated = bytearray(message)
    mutated[position % len(mutated)] = value
    try:
        Mldv2Report.parse(mutated, src, dst, NO_VERIFY)
    except WireError:
        pass


@pytest.mark.tshark
def test_tshark_reads_an_emitted_report_as_we_meant_it(tmp_path: Path) -> None:
    """A report built by our emitters only: tshark finds the checksum Good and our fields."""
    report = Mldv2Report((
        Mldv2AddressRecord(Mldv2RecordType.MODE_IS_INCLUDE, IPv6Address("ff05::1:3"), SOURCES,
                           aux_data=b"\x01\x02\x03\x04"),
        Mldv2AddressRecord(Mldv2RecordType.MODE_IS_EXCLUDE, IPv6Address("ff02::fb")),
    ))
    hop_by_hop = bytes((IpProtocol.ICMPV6, 0, 5, 2, 0, 0, 1, 0))  # Router Alert MLD, PadN
    ip = Ipv6Repr(LINK_LOCAL, MLDV2_ROUTERS, IpProtocol.HOPOPT,
                  len(hop_by_hop) + report.buffer_len, hop_limit=1)
    eth = EthernetRepr(EthernetAddress("02:00:00:00:00:01"), ipv6_multicast_mac(MLDV2_ROUTERS),
                       EtherType.IPV6)
    frame = bytearray(b"\xa5" * (eth.header_len + ip.buffer_len))
    eth.emit(frame)
    ip.emit(memoryview(frame)[eth.header_len :])
    at = eth.header_len + ip.header_len
    frame[at : at + len(hop_by_hop)] = hop_by_hop
    report.emit(memoryview(frame)[at + len(hop_by_hop) :], LINK_LOCAL, MLDV2_ROUTERS)
    path = tmp_path / "mld.pcap"
    with PcapWriter(path) as writer:
        writer.write(bytes(frame), 1_700_000_000)
    fields = ["_ws.malformed", "_ws.expert.message", "icmpv6.checksum.status",
              "ipv6.opt.router_alert", "icmpv6.mldr.nb_mcast_records",
              "icmpv6.mldr.mar.record_type", "icmpv6.mldr.mar.aux_data_len",
              "icmpv6.mldr.mar.nb_sources", "icmpv6.mldr.mar.multicast_address",
              "icmpv6.mldr.mar.source_address"]
    command = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=|"]
    for name in fields:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    row = dict(zip(fields, result.stdout.rstrip("\n").split("\t"), strict=True))
    assert row == {
        "_ws.malformed": "",
        "_ws.expert.message": "",
        "icmpv6.checksum.status": "1",  # Good
        "ipv6.opt.router_alert": "0",  # MLD
        "icmpv6.mldr.nb_mcast_records": "2",
        "icmpv6.mldr.mar.record_type": "1|2",
        "icmpv6.mldr.mar.aux_data_len": "1|0",
        "icmpv6.mldr.mar.nb_sources": "2|0",
        "icmpv6.mldr.mar.multicast_address": "ff05::1:3|ff02::fb",
        "icmpv6.mldr.mar.source_address": "fd00::99|fd00::98",
    }
