"""The interface's hot path for TCP (interface.py contract): a frame of a connection
that has heard from its peer goes from the Ethernet header straight to the TCP host,
and everything the general path would judge differently still gets the general path.

Each case starts from a real data frame of an established connection (A to B, both
families), changes one thing, and checks what B makes of it: the same as the general
path does (tests/stack/test_drop_counters.py, test_answers.py hold the general rules).
"""

from __future__ import annotations

from typing import Any

import pytest

from ethox_asyncio.device.base import frame_bytes
from ethox_asyncio.stack.interface import Interface
from ethox_asyncio.stack.tcp.connection import EV_DATA, TcpConnection
from ethox_asyncio.stack.tcp.host import TcpHost
from ethox_asyncio.stack.wire.checksum import checksum

from .tcp.test_host import established_wire

L4 = {4: 34, 6: 54}


@pytest.fixture
def fast_results(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What TcpHost.ingress_known answered, in order (True: it took the segment)."""
    results: list[bool] = []
    original = TcpHost.ingress_known

    def recording(self: TcpHost, *args: Any) -> bool:
        taken = original(self, *args)
        results.append(taken)
        return taken

    monkeypatch.setattr(TcpHost, "ingress_known", recording)
    return results


def data_frame(family: int, payload: bytes = b"hello") -> tuple[Any, TcpConnection,
                                                                 Interface, bytes]:
    wire, client, server = established_wire(family)
    client.send(payload)
    wire.a.tcp.touch(client)
    [frame] = wire.a.egress(wire.now, 8)
    wire.b.events.clear()
    return wire, server, wire.b, frame_bytes(frame)


def delivered(iface: Interface, conn: TcpConnection) -> bytes:
    return b"".join(bytes(e[2]) for e in iface.events
                    if isinstance(e, tuple) and e[0] == EV_DATA and e[1] is conn)


@pytest.mark.parametrize("family", [4, 6])
def test_a_data_frame_of_an_established_connection_takes_the_hot_path(
        family: int, fast_results: list[bool]) -> None:
    wire, server, b, frame = data_frame(family)
    fast_results.clear()  # (the handshake's)
    b.ingress(frame, wire.now)
    assert fast_results == [True]
    assert delivered(b, server) == b"hello"
    [(_, _, payload)] = [e for e in b.events if isinstance(e, tuple)]
    assert isinstance(payload, memoryview)  # a view of the frame, no copy


@pytest.mark.parametrize("family", [4, 6])
def test_a_bad_tcp_checksum_is_dropped_on_the_hot_path_too(family: int,
                                                           fast_results: list[bool]) -> None:
    wire, server, b, frame = data_frame(family)
    fast_results.clear()  # (the handshake's)
    bad = bytearray(frame)
    bad[-1] ^= 0xFF  # the payload: the TCP checksum no longer matches (RFC 9293 §3.1)
    b.ingress(bytes(bad), wire.now)
    assert fast_results == [True] and b.stats["tcp_drop_bad_checksum"] == 1
    assert delivered(b, server) == b""
    b.ingress(bytes(bad), wire.now, checksum_verified=True)  # the device vouched for it
    assert delivered(b, server) == bytes(bad[-5:])


def test_a_bad_ipv4_header_checksum_is_left_to_the_general_path(
        fast_results: list[bool]) -> None:
    wire, server, b, frame = data_frame(4)
    fast_results.clear()  # (the handshake's)
    bad = bytearray(frame)
    bad[24] ^= 0x01  # the header checksum (RFC 791 §3.1)
    b.ingress(bytes(bad), wire.now)
    assert fast_results == [] and b.stats["drop_BadChecksum"] == 1
    assert delivered(b, server) == b""


@pytest.mark.parametrize("family", [4, 6])
def test_another_mac_is_left_to_the_general_path(family: int,
                                                 fast_results: list[bool]) -> None:
    wire, server, b, frame = data_frame(family)
    fast_results.clear()  # (the handshake's)
    other = b"\x02\x00\x00\x00\x00\x99" + frame[6:]
    b.ingress(other, wire.now)
    assert fast_results == [] and b.stats["drop_not_our_mac"] == 1
    assert delivered(b, server) == b""


def test_ipv4_options_and_fragments_are_left_to_the_general_path(
        fast_results: list[bool]) -> None:
    """IHL > 5 (RFC 791 §3.1 options: here one NOP word) and a fragment (MF set,
    RFC 791 §2.3) are not the hot path's; the general path delivers the first and
    holds the second for reassembly."""
    wire, server, b, frame = data_frame(4)
    fast_results.clear()  # (the handshake's)
    header = bytearray(frame[14:34])
    header[0] = 0x46
    header[2:4] = (len(frame) - 14 + 4).to_bytes(2, "big")
    header[10:12] = b"\0\0"
    with_options = header + b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    with_options[10:12] = checksum(bytes(with_options)).to_bytes(2, "big")
    b.ingress(frame[:14] + bytes(with_options) + frame[34:], wire.now)
    assert fast_results == [] and delivered(b, server) == b"hello"
    wire, server, b, frame = data_frame(4, b"eight by")  # 40 bytes of TCP: 8n, a fragment
    fast_results.clear()
    fragment = bytearray(frame)
    fragment[20] |= 0x20  # MF
    fragment[24:26] = b"\0\0"
    fragment[24:26] = checksum(bytes(fragment[14:34])).to_bytes(2, "big")
    b.ingress(bytes(fragment), wire.now)
    assert fast_results == [] and delivered(b, server) == b""
    assert b.ipv4.reassembly.poll_at() is not None  # held for its other fragments


@pytest.mark.parametrize("family", [4, 6])
def test_a_segment_for_no_connection_goes_back_to_the_general_path(
        family: int, fast_results: list[bool]) -> None:
    """Another port: the TCP host declines at once, the general path answers with a
    RST (RFC 9293 §3.10.7.1)."""
    wire, _, b, frame = data_frame(family)
    fast_results.clear()  # (the handshake's)
    other = bytearray(frame)
    l4 = L4[family]
    other[l4 + 2:l4 + 4] = (9999).to_bytes(2, "big")  # destination port: nothing there
    b.ingress(bytes(other), wire.now, checksum_verified=True)
    assert fast_results == [False]
    assert b.stats["tcp_no_socket"] == 1 and b.stats["tcp_rst_sent"] == 1
