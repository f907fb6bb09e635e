"""MemoryLink: hub delivery, bounded queues, MTU check, copy semantics, readiness fd."""

from __future__ import annotations

import asyncio
import errno
import select
from typing import Any

import pytest

from ethox_asyncio.device.base import (
    Device,
    DeviceClosed,
    DeviceError,
    Frame,
    FrameTooLarge,
    frame_len,
)
from ethox_asyncio.device.memory import MemoryEndpoint, MemoryLink

BROADCAST = b"\xff" * 6
MAC_A = b"\x02\x00\x00\x00\x00\x01"


def frame(payload: bytes, ethertype: bytes = b"\x88\xb5") -> bytes:
    """An Ethernet frame (local experimental EtherType) carrying ``payload``."""
    return BROADCAST + MAC_A + ethertype + payload


def vlan_frame(payload: bytes) -> bytes:
    return BROADCAST + MAC_A + b"\x81\x00\x00\x05" + b"\x88\xb5" + payload


def received(endpoint: MemoryEndpoint, max_frames: int = 1000) -> list[bytes]:
    return [bytes(view) for view in endpoint.receive(max_frames)]


def is_readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def test_endpoints_are_devices() -> None:
    with MemoryLink() as link:
        assert len(link.endpoints) == 2
        assert all(isinstance(endpoint, Device) for endpoint in link.endpoints)
        capabilities = link.endpoints[0].capabilities
        assert (capabilities.mtu, capabilities.max_batch) == (1500, 64)
        assert not capabilities.checksum_offload and not capabilities.tso


def test_frame_reaches_the_peer_in_order_and_not_the_sender() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        frames = [frame(b"one"), frame(b"two"), frame(b"three")]
        assert a.transmit(frames) == 3
        assert b.pending() == 3
        assert a.pending() == 0
        assert received(b) == frames
        assert received(b) == []
        assert received(a) == []


def test_hub_delivers_to_every_other_endpoint() -> None:
    with MemoryLink(n_endpoints=4) as link:
        sender, *others = link.endpoints
        sender.transmit([frame(b"to all")])
        for endpoint in others:
            assert received(endpoint) == [frame(b"to all")]
        assert sender.pending() == 0


def test_transmit_copies_the_frame() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        buffer = bytearray(frame(b"original"))
        a.transmit([memoryview(buffer)])
        buffer[-8:] = b"REUSED!!"
        assert received(b) == [frame(b"original")]


def test_gathered_frames_arrive_joined_and_count_their_full_length() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        payload = bytes(range(256)) * 4
        headers = bytearray(frame(b"")[:14])
        three = frame(b"udp-ish" + payload)
        frames: list[Frame] = [
            (headers, memoryview(payload)),
            (bytearray(three[:6]), bytearray(three[6:21]), memoryview(three[21:])),
            frame(b"contiguous"),
        ]
        assert a.transmit(frames) == 3
        headers[:] = bytes(14)  # the caller reuses its header buffer at once
        assert received(b) == [frame(payload), three, frame(b"contiguous")]
        assert (a.stats.tx_frames, a.stats.tx_bytes) == (3, sum(map(frame_len, frames)))
        assert a.stats.tx_bytes == 14 + 1024 + len(three) + 24


def test_a_gathered_frame_beyond_the_mtu_sends_nothing() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        too_large = frame(bytes(1501))
        pieces = (bytearray(too_large[:14]), bytearray(too_large[14:800]),
                  memoryview(too_large[800:]))
        with pytest.raises(FrameTooLarge, match="1515 bytes"):
            a.transmit([(bytearray(frame(b"")), memoryview(b"fine")), pieces])
        assert b.pending() == 0
        assert (a.stats.tx_frames, a.stats.tx_bytes) == (0, 0)
        # The VLAN tag, split across two pieces, still allows its 4 bytes.
        tagged = vlan_frame(bytes(1500))
        assert a.transmit([(bytearray(tagged[:13]), memoryview(tagged[13:]))]) == 1
        assert received(b) == [tagged]


def test_received_views_are_writable_and_private_to_each_receiver() -> None:
    with MemoryLink(n_endpoints=3) as link:
        a, b, c = link.endpoints
        a.transmit([frame(b"ping")])
        (view_b,) = b.receive(1)
        assert not view_b.readonly
        view_b[-4:] = b"pong"  # answering in place, as the stack does for ICMP echo
        assert received(c) == [frame(b"ping")]


def test_receive_is_bounded_by_max_frames_and_max_batch() -> None:
    with MemoryLink(max_batch=4) as link:
        a, b = link.endpoints
        a.transmit([frame(bytes([n])) for n in range(10)])
        assert len(b.receive(2)) == 2
        assert len(b.receive(100)) == 4
        assert b.receive(0) == []
        assert b.pending() == 4


def test_full_queue_drops_new_frames_and_counts_them() -> None:
    with MemoryLink(rx_queue_len=3) as link:
        a, b = link.endpoints
        frames = [frame(bytes([n])) for n in range(5)]
        assert a.transmit(frames) == 5  # the wire takes everything; the receiver drops
        assert b.pending() == 3
        assert b.stats.rx_dropped == 2
        assert received(b) == frames[:3]  # tail drop: the oldest frames survive


def test_stats_count_frames_and_bytes() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        a.transmit([frame(b"x"), frame(b"yy")])
        assert (a.stats.tx_frames, a.stats.tx_bytes) == (2, 31)
        assert (b.stats.rx_frames, b.stats.rx_bytes) == (0, 0)  # counted when received
        b.receive(1)
        assert (b.stats.rx_frames, b.stats.rx_bytes) == (1, 15)


@pytest.mark.parametrize(
    ("mtu", "good", "too_large"),
    [
        (1500, frame(bytes(1500)), frame(bytes(1501))),
        (1500, vlan_frame(bytes(1500)), vlan_frame(bytes(1501))),
        (9000, frame(bytes(9000)), frame(bytes(9001))),
    ],
    ids=["untagged", "vlan-tagged", "jumbo"],
)
def test_frames_beyond_the_mtu_are_rejected(mtu: int, good: bytes, too_large: bytes) -> None:
    with MemoryLink(mtu=mtu) as link:
        a, b = link.endpoints
        assert a.transmit([good]) == 1
        with pytest.raises(FrameTooLarge, match=f"{len(too_large)} bytes") as caught:
            a.transmit([too_large])
        assert isinstance(caught.value, DeviceError)
        assert caught.value.errno == errno.EMSGSIZE
        assert received(b) == [good]


def test_a_batch_with_an_oversized_frame_sends_nothing() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        with pytest.raises(FrameTooLarge):
            a.transmit([frame(b"fine"), frame(bytes(1501))])
        assert b.pending() == 0
        assert a.stats.tx_frames == 0


def test_fileno_is_readable_exactly_while_frames_are_queued() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        fd = b.fileno()
        assert b.fileno() == fd
        assert not is_readable(fd)
        a.transmit([frame(b"1"), frame(b"2")])
        assert is_readable(fd)
        b.receive(1)
        assert is_readable(fd)  # one frame still queued
        b.receive(1)
        assert not is_readable(fd)  # drained: the notification is cleared
        a.transmit([frame(b"3")])
        assert is_readable(fd)


def test_fileno_created_late_is_readable_if_frames_wait() -> None:
    with MemoryLink() as link:
        a, b = link.endpoints
        a.transmit([frame(b"early")])
        assert is_readable(b.fileno())


def test_fileno_drives_an_asyncio_reader() -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = loop.create_future()

        def on_readable() -> None:
            got.extend(received(b))
            if len(got) == 3:
                done.set_result(None)

        loop.add_reader(b.fileno(), on_readable)
        try:
            for n in range(3):
                loop.call_later(0.01 * n, a.transmit, [frame(bytes([n]))])
            await asyncio.wait_for(done, timeout=5)
        finally:
            loop.remove_reader(b.fileno())
        return got

    with MemoryLink() as link:
        a, b = link.endpoints
        assert asyncio.run(main()) == [frame(bytes([n])) for n in range(3)]


def test_closed_endpoint_refuses_calls_and_stops_receiving() -> None:
    with MemoryLink(n_endpoints=3) as link:
        a, b, c = link.endpoints
        a.transmit([frame(b"before")])
        b.close()
        b.close()  # idempotent
        assert b.closed
        for call in (lambda: b.receive(1), lambda: b.transmit([frame(b"x")]), b.fileno):
            with pytest.raises(DeviceClosed):
                call()
        a.transmit([frame(b"after")])
        assert received(c) == [frame(b"before"), frame(b"after")]


def test_close_releases_the_eventfd() -> None:
    link = MemoryLink()
    fd = link.endpoints[0].fileno()
    link.close()
    with pytest.raises(OSError):
        select.select([fd], [], [], 0)


@pytest.mark.parametrize(
    "arguments",
    [{"n_endpoints": 0}, {"mtu": 0}, {"rx_queue_len": 0}, {"max_batch": 0}],
)
def test_invalid_link_parameters_are_rejected(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(arguments))):
        MemoryLink(**arguments)
