"""Classic pcap: writer, reader (both byte orders, µs and ns), PcapDevice, tshark agreement."""

from __future__ import annotations

import io
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from ethox_asyncio.device.base import DeviceCapabilities, Frame
from ethox_asyncio.device.memory import MemoryLink
from ethox_asyncio.device.pcap import (
    LINKTYPE_ETHERNET,
    PcapDevice,
    PcapFormatError,
    PcapReader,
    PcapRecord,
    PcapWriter,
    read_pcap,
)
from tests import golden

LINKTYPE_RAW = 101
TIMESTAMP = 1_700_000_000.123456


def ethernet_frame(n: int, payload_len: int = 46) -> bytes:
    """A broadcast frame with a local experimental EtherType and a numbered payload."""
    return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes([n]) * payload_len


def hand_built_pcap(
    byte_order: str, magic: int, records: Sequence[tuple[int, int, bytes]]
) -> bytes:
    """A pcap file built field by field, independent of PcapWriter."""
    out = struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
    for seconds, fraction, data in records:
        out += struct.pack(byte_order + "IIII", seconds, fraction, len(data), len(data)) + data
    return out


def tshark(*args: str) -> str:
    result = subprocess.run(
        ["tshark", "-n", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def test_write_then_read_back(tmp_path: Path) -> None:
    path = tmp_path / "frames.pcap"
    frames = [ethernet_frame(n, payload_len=46 + n) for n in range(5)]
    with PcapWriter(path) as writer:
        for n, data in enumerate(frames):
            writer.write(data if n % 2 else memoryview(bytearray(data)), TIMESTAMP + n)
    records = list(read_pcap(path))
    assert [record.data for record in records] == frames
    assert [record.orig_len for record in records] == [len(data) for data in frames]
    assert [record.timestamp for record in records] == pytest.approx(
        [TIMESTAMP + n for n in range(5)], abs=1e-6
    )


def test_global_header_is_little_endian_microsecond_2_4() -> None:
    out = io.BytesIO()
    PcapWriter(out, snaplen=1000, linktype=LINKTYPE_RAW).close()
    assert out.getvalue() == bytes.fromhex("d4c3b2a1 0200 0400 00000000 00000000 e8030000 65000000")


def test_record_timestamp_is_split_into_seconds_and_microseconds() -> None:
    out = io.BytesIO()
    with PcapWriter(out) as writer:
        writer.write(b"abc", 12.9999996)  # rounds up into the next second
    assert out.getvalue()[24:40] == struct.pack("<IIII", 13, 0, 3, 3)


def test_snaplen_cuts_data_and_keeps_the_original_length() -> None:
    out = io.BytesIO()
    with PcapWriter(out, snaplen=20) as writer:
        writer.write(ethernet_frame(7), 1.0)
    out.seek(0)
    reader = PcapReader(out)
    assert reader.snaplen == 20
    assert list(reader) == [PcapRecord(1.0, ethernet_frame(7)[:20], 60)]


def test_writer_leaves_a_caller_file_open_and_closes_its_own(tmp_path: Path) -> None:
    out = io.BytesIO()
    PcapWriter(out).close()
    assert not out.closed
    writer = PcapWriter(tmp_path / "own.pcap")
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"late", 0.0)


def test_negative_timestamp_is_rejected() -> None:
    with PcapWriter(io.BytesIO()) as writer, pytest.raises(ValueError, match="negative"):
        writer.write(b"x", -1.0)


@pytest.mark.parametrize(
    ("byte_order", "magic", "divisor"),
    [
        ("<", 0xA1B2C3D4, 10**6),
        (">", 0xA1B2C3D4, 10**6),
        ("<", 0xA1B23C4D, 10**9),
        (">", 0xA1B23C4D, 10**9),
    ],
    ids=["usec-le", "usec-be", "nsec-le", "nsec-be"],
)
def test_reads_both_byte_orders_and_resolutions(byte_order: str, magic: int, divisor: int) -> None:
    fraction = 123_456 if divisor == 10**6 else 123_456_789
    data = hand_built_pcap(
        byte_order,
        magic,
        [(1_700_000_000, fraction, ethernet_frame(1)), (1_700_000_001, 0, ethernet_frame(2))],
    )
    reader = PcapReader(io.BytesIO(data))
    assert reader.linktype == LINKTYPE_ETHERNET
    assert reader.big_endian is (byte_order == ">")
    assert reader.nanosecond_timestamps is (divisor == 10**9)
    records = list(reader)
    assert [record.data for record in records] == [ethernet_frame(1), ethernet_frame(2)]
    assert records[0].timestamp == pytest.approx(1_700_000_000 + fraction / divisor, abs=1e-6)


def test_garbage_is_not_a_pcap_file() -> None:
    with pytest.raises(PcapFormatError, match="not a pcap file"):
        list(read_pcap(io.BytesIO(b"GIF89a" + bytes(40))))


def test_pcapng_is_named_in_the_error() -> None:
    pcapng_start = bytes.fromhex("0a0d0d0a 1c000000 4d3c2b1a 0100 0000") + bytes(12)
    with pytest.raises(PcapFormatError, match="pcapng"):
        list(read_pcap(io.BytesIO(pcapng_start)))


def test_unsupported_major_version() -> None:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1)
    with pytest.raises(PcapFormatError, match=r"version 3\.0"):
        PcapReader(io.BytesIO(data))


def test_truncated_at_every_offset_raises_or_stops_at_a_record_boundary() -> None:
    records = [(1, 0, ethernet_frame(1)), (2, 0, b""), (3, 0, ethernet_frame(3, 10))]
    data = hand_built_pcap("<", 0xA1B2C3D4, records)
    boundaries = {24: 0, 24 + 16 + 60: 1, 24 + 16 + 60 + 16: 2, len(data): 3}
    for cut in range(len(data) + 1):
        source = io.BytesIO(data[:cut])
        if cut in boundaries:
            assert len(list(read_pcap(source))) == boundaries[cut]
        else:
            with pytest.raises(PcapFormatError, match="truncated"):
                list(read_pcap(source))


@pytest.mark.parametrize(
    ("fraction", "captured_len", "message"),
    [(0, 300_000, "captured bytes"), (1_000_000, 4, "sub-second")],
)
def test_corrupt_record_header(fraction: int, captured_len: int, message: str) -> None:
    data = hand_built_pcap("<", 0xA1B2C3D4, [])
    data += struct.pack("<IIII", 1, fraction, captured_len, captured_len) + bytes(8)
    with pytest.raises(PcapFormatError, match=message):
        list(read_pcap(io.BytesIO(data)))


def test_read_pcap_checks_the_link_type() -> None:
    out = io.BytesIO()
    with PcapWriter(out, linktype=LINKTYPE_RAW) as writer:
        writer.write(b"\x45" + bytes(19), 0.0)
    with pytest.raises(PcapFormatError, match="link type 101"):
        list(read_pcap(io.BytesIO(out.getvalue())))
    assert len(list(read_pcap(io.BytesIO(out.getvalue()), linktype=None))) == 1


class HalfAcceptingDevice:
    """A Device stub whose transmit accepts only the first frame of a batch."""

    capabilities = DeviceCapabilities(mtu=1500, max_batch=8)

    def __init__(self) -> None:
        self.closed = False

    def fileno(self) -> int:
        return -1

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        return []

    def transmit(self, frames: Sequence[Frame]) -> int:
        return min(1, len(frames))

    def close(self) -> None:
        self.closed = True


def test_pcap_device_records_both_directions(tmp_path: Path) -> None:
    path = tmp_path / "device.pcap"
    ticks = iter([100.0, 200.0])
    with MemoryLink() as link:
        a, b = link.endpoints
        device = PcapDevice(a, path, clock=lambda: next(ticks))
        assert device.capabilities is a.capabilities
        assert device.fileno() == a.fileno()
        assert device.transmit([ethernet_frame(1), ethernet_frame(2)]) == 2
        b.transmit([ethernet_frame(3)])
        assert [bytes(view) for view in device.receive(10)] == [ethernet_frame(3)]
        assert device.receive(10) == []  # nothing recorded, no clock read
        device.close()
        assert a.closed
    records = list(read_pcap(path))
    assert [(r.timestamp, r.data) for r in records] == [
        (100.0, ethernet_frame(1)),
        (100.0, ethernet_frame(2)),
        (200.0, ethernet_frame(3)),
    ]


def test_gathered_frames_are_recorded_joined(tmp_path: Path) -> None:
    path = tmp_path / "gathered.pcap"
    one, two = ethernet_frame(1, payload_len=200), ethernet_frame(2)
    with MemoryLink() as link:
        a, b = link.endpoints
        device = PcapDevice(a, path, clock=lambda: 7.0, snaplen=100)
        assert device.transmit([(bytearray(one[:14]), memoryview(one[14:])),
                                (bytearray(two[:6]), b"", memoryview(two[6:]))]) == 2
        device.close()
        assert [bytes(view) for view in b.receive(10)] == [one, two]
    records = list(read_pcap(path))
    assert [(r.data, r.orig_len) for r in records] == [(one[:100], 214), (two, 60)]


def test_pcap_device_records_only_accepted_frames() -> None:
    out = io.BytesIO()
    inner = HalfAcceptingDevice()
    device = PcapDevice(inner, out, clock=lambda: 5.0)
    assert device.transmit([ethernet_frame(1), ethernet_frame(2)]) == 1
    device.close()
    assert inner.closed
    assert [r.data for r in read_pcap(io.BytesIO(out.getvalue()))] == [ethernet_frame(1)]


@pytest.mark.tshark
def test_tshark_reads_what_we_write(tmp_path: Path) -> None:
    path = tmp_path / "ours.pcap"
    with PcapWriter(path) as writer:
        for n in range(7):
            writer.write(ethernet_frame(n), TIMESTAMP + n)
    lines = tshark("-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "frame.time_epoch")
    rows = [line.split("\t") for line in lines.splitlines()]
    assert len(rows) == 7
    assert all(int(length) == 60 for length, _ in rows)
    assert float(rows[3][1]) == pytest.approx(TIMESTAMP + 3, abs=1e-6)


@pytest.mark.tshark
@pytest.mark.parametrize(
    ("byte_order", "magic"), [(">", 0xA1B2C3D4), ("<", 0xA1B23C4D), (">", 0xA1B23C4D)]
)
def test_hand_built_fixtures_agree_with_tshark(tmp_path: Path, byte_order: str, magic: int) -> None:
    """The swapped / nanosecond fixtures above are real pcap files, not our own dialect."""
    path = tmp_path / "fixture.pcap"
    path.write_bytes(hand_built_pcap(byte_order, magic, [(1_700_000_000, 5, ethernet_frame(1))]))
    epoch = tshark("-r", str(path), "-T", "fields", "-e", "frame.time_epoch").strip()
    expected = "1700000000.000005000" if magic == 0xA1B2C3D4 else "1700000000.000000005"
    assert epoch == expected
    assert [record.timestamp for record in read_pcap(path)] == [float(expected)]


@pytest.mark.parametrize("name", golden.names())
def test_golden_captures_load(name: str) -> None:
    frames = golden.load(name)
    assert frames and all(len(frame) >= 14 for frame in frames)
    assert f"## {name}.pcap — {len(frames)} frames" in (golden.GOLDEN_DIR / "README.md").read_text()


@pytest.mark.tshark
@pytest.mark.parametrize("name", golden.names())
def test_golden_frame_counts_agree_with_tshark(name: str) -> None:
    listing = tshark("-r", str(golden.GOLDEN_DIR / f"{name}.pcap"))
    assert len(listing.splitlines()) == len(golden.load(name))


def test_golden_loader_names_missing_captures() -> None:
    with pytest.raises(FileNotFoundError, match="available"):
        golden.load("no_such_capture")
