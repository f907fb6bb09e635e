"""The compiled twins (ethox_asyncio/stack/wire/_speedups.c) against their pure-Python
references, on the same inputs: checksums, the ingress parse of the hot branch, the
timestamped frame header, the IPv4 length/identification/checksum fill.

Every comparison needs the extension: without it these tests skip, unless
``ETHOX_REQUIRE_SPEEDUPS=1`` (CI sets it), which turns a missing extension into a
failure. Under ``ETHOX_NO_EXTENSIONS=1`` (CI's second run, the pure-Python reference)
the extension must refuse to load and every selected name must be the Python one.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ethox_asyncio.stack import interface, ipv4
from ethox_asyncio.stack.path import FramePath
from ethox_asyncio.stack.tcp import host
from ethox_asyncio.stack.tcp.segment import Segment
from ethox_asyncio.stack.wire import checksum, speedups

REQUIRED = os.environ.get("ETHOX_REQUIRE_SPEEDUPS") == "1"
DISABLED = os.environ.get("ETHOX_NO_EXTENSIONS", "") not in ("", "0")
SOURCE = Path(__file__).resolve().parents[2] / "ethox_asyncio/stack/wire/_speedups.c"

try:
    from ethox_asyncio.stack.wire import _speedups
except ImportError as error:
    _speedups = None  # type: ignore[assignment,unused-ignore]
    IMPORT_ERROR: str | None = str(error)
else:
    IMPORT_ERROR = None

#: (selected name's module, public name, pure-Python reference, compiled name)
TWINS = [(checksum, "ones_sum", "_py_ones_sum", "ones_sum"),
         (checksum, "checksum", "_py_checksum", "checksum"),
         (checksum, "verify", "_py_verify", "verify"),
         (interface, "parse_tcp_frame", "_py_parse_tcp_frame", "parse_tcp_frame"),
         (interface, "parse_tcp_segment", "_py_parse_tcp_segment", "parse_tcp_segment"),
         (host, "ts_frame", "_py_ts_frame", "ts_frame"),
         (ipv4, "fill_ipv4", "_py_fill_ipv4", "fill_ipv4")]


@pytest.fixture
def c() -> Any:
    """The extension, or a skip (a failure under ETHOX_REQUIRE_SPEEDUPS=1)."""
    if _speedups is None:
        if REQUIRED and not DISABLED:
            pytest.fail(f"ETHOX_REQUIRE_SPEEDUPS=1 but the extension does not import: "
                        f"{IMPORT_ERROR}")
        pytest.skip(f"ethox_asyncio.stack.wire._speedups is not available ({IMPORT_ERROR})")
    return _speedups


# --- which one runs -------------------------------------------------------------------


def test_the_selected_implementation_is_the_one_reported() -> None:
    if DISABLED:
        assert _speedups is None, "ETHOX_NO_EXTENSIONS must keep the extension out"
        assert not speedups.speedups_active()
        assert "ETHOX_NO_EXTENSIONS" in speedups.REASON
    elif _speedups is None:
        if REQUIRED:
            pytest.fail(f"ETHOX_REQUIRE_SPEEDUPS=1 but the extension does not import: "
                        f"{IMPORT_ERROR}")
        pytest.skip(f"the extension is not built ({IMPORT_ERROR})")
    else:
        assert speedups.speedups_active()
        assert speedups.compiled is _speedups
    for module, name, reference, compiled_name in TWINS:
        selected = getattr(module, name)
        if _speedups is None:
            assert selected is getattr(module, reference), name
        else:
            assert selected is getattr(_speedups, compiled_name), name


@pytest.mark.parametrize(("value", "active"), [("1", False), ("yes", False), ("0", True),
                                               ("", True)])
def test_ethox_no_extensions_forces_the_reference(c: Any, value: str, active: bool) -> None:
    env = dict(os.environ, ETHOX_NO_EXTENSIONS=value)
    code = ("from ethox_asyncio.stack.wire import checksum, speedups\n"
            "print(speedups.speedups_active(), checksum.ones_sum.__name__)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.split() == ([str(active), "ones_sum" if active else "_py_ones_sum"])


def test_the_extension_compiles_without_a_warning() -> None:
    """Built without -Werror (optional = true: a new compiler's warning must not drop it
    silently for users); warnings are caught here instead, as for _uring_batch."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    result = subprocess.run([compiler, "-fsyntax-only", "-O2", "-Wall", "-Wextra", "-Werror",
                             f"-I{sysconfig.get_paths()['include']}", str(SOURCE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


# --- comparing twins ------------------------------------------------------------------


def _normal(value: Any) -> Any:
    """Outputs made comparable: a view as its type and bytes (tuples element-wise)."""
    if isinstance(value, tuple):
        return tuple(_normal(item) for item in value)
    if isinstance(value, memoryview | bytearray):
        return (type(value).__name__, bytes(value))
    return (type(value).__name__, value)


def _outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return _normal(function(*args, **kwargs))
    except Exception as error:  # the same exception type, whatever the message
        return ("raises", type(error))


def same(reference: Callable[..., Any], compiled: Callable[..., Any], *args: Any,
         **kwargs: Any) -> Any:
    expected = _outcome(reference, *args, **kwargs)
    got = _outcome(compiled, *args, **kwargs)
    assert got == expected, (args, kwargs)
    return expected


# --- checksums ------------------------------------------------------------------------

INITIALS = [0, 1, 2, 0xFFFE, 0xFFFF, 0x10000, 0x1FFFE, 2**31, 2**32 - 1, 2**63 - 1, 2**63,
            2**64 - 1, 2**64, 2**129 + 12345, 0xFFFF * 2**100, 3 * 0xFFFF, True]


def _buffers(data: bytes) -> list[Any]:
    backing = bytearray(b"\x00" + data + b"\x00")
    return [data, bytearray(data), memoryview(data), memoryview(backing)[1:-1]]


@pytest.mark.parametrize("name", ["ones_sum", "checksum", "verify"])
def test_checksums_match_the_reference(c: Any, name: str) -> None:
    reference, compiled = getattr(checksum, f"_py_{name}"), getattr(c, name)
    rng = random.Random(1071)
    samples = [b"", b"\x00", b"\x00\x00", b"\xff", b"\xff\xff", b"\xff" * 7, b"\x00" * 9,
               b"\x01\x02\x03", bytes(range(256)) * 6]
    samples += [rng.randbytes(rng.randrange(0, 1600)) for _ in range(300)]
    samples += [b"\xff" * rng.randrange(0, 40) for _ in range(20)]
    for data in samples:
        for buffer in _buffers(data):
            same(reference, compiled, buffer)
            for initial in INITIALS if len(data) < 16 else INITIALS[::3]:
                same(reference, compiled, buffer, initial)
                same(reference, compiled, buffer, initial=initial)
        same(reference, compiled, data, rng.randrange(0, 2**140))


@pytest.mark.parametrize("name", ["ones_sum", "checksum", "verify"])
def test_checksums_hand_odd_inputs_to_the_reference(c: Any, name: str) -> None:
    """What the C code does not sum itself gives the reference's result or exception."""
    reference, compiled = getattr(checksum, f"_py_{name}"), getattr(c, name)
    data = bytes(range(1, 40))
    for initial in (-1, -0x1F3, -(2**70), -int.from_bytes(data[:4], "big") * 256):
        same(reference, compiled, data[:4], initial)
        same(reference, compiled, data, initial)
    same(reference, compiled, data[:4], -int.from_bytes(data[:4], "big"))  # sums to 0
    same(reference, compiled, b"\x00\x01", -1)  # sums to 0
    same(reference, compiled, b"\x00\x02", -1)
    same(reference, compiled, b"", -5)
    strided = memoryview(bytearray(data))[::2]  # not contiguous
    same(reference, compiled, strided)
    same(reference, compiled, strided, 7)
    words = memoryview(bytearray(data[:6])).cast("H")  # 2-byte items: len() counts 3
    same(reference, compiled, words)
    same(reference, compiled, [1, 2, 3])  # int.from_bytes takes an iterable of ints
    for bad in ((data, 1.5), (data, "1"), (data, None), ("text",), (None,), (data, 0, 1),
                ()):
        same(reference, compiled, *bad)
    same(reference, compiled, data, start=1)  # an unknown keyword
    same(reference, compiled, data=data)  # data by keyword


def test_checksum_and_verify_agree_on_real_packets(c: Any) -> None:
    """Not only twins: a filled-in checksum verifies and a flipped bit does not."""
    rng = random.Random(791)
    for _ in range(200):
        data = bytearray(rng.randbytes(rng.randrange(2, 200) & ~1))
        data[0:2] = b"\x00\x00"
        initial = rng.randrange(0, 2**33)
        data[0:2] = c.checksum(data, initial).to_bytes(2, "big")
        assert c.verify(data, initial) and checksum._py_verify(data, initial)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        assert not c.verify(data, initial)


# --- ingress parse --------------------------------------------------------------------

MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
TS_OPTION = b"\x01\x01\x08\x0a"


def _tcp(rng: random.Random, options: bytes, payload: bytes) -> bytearray:
    doff = (20 + len(options)) // 4
    flags = rng.randrange(256)
    header = struct.pack("!HHIIBBHHH", rng.randrange(65536), rng.randrange(65536),
                         rng.randrange(2**32), rng.randrange(2**32), doff << 4, flags,
                         rng.randrange(65536), 0, rng.randrange(65536))
    return bytearray(header + options + payload)


OPTION_LAYOUTS: list[Callable[[random.Random], bytes]] = [
    lambda rng: b"",
    lambda rng: TS_OPTION + rng.randbytes(8),  # the aligned timestamp
    lambda rng: b"\x08\x0a" + rng.randbytes(8) + b"\x01\x01",  # TS, unaligned
    lambda rng: b"\x02\x04\x05\xb4",  # MSS
    lambda rng: b"\x02\x04\x05\xb4\x04\x02" + b"\x08\x0a" + rng.randbytes(8)
    + b"\x01\x03\x03\x07",  # a SYN's MSS, SACK-permitted, TS, window scale
    lambda rng: TS_OPTION + rng.randbytes(8) + b"\x01\x01\x05\x0a" + rng.randbytes(8),  # SACK
    lambda rng: rng.randbytes(12),  # data offset 8, anything in the option word
    lambda rng: rng.randbytes(4 * rng.randrange(0, 11)),
]


def _ipv4_frame(rng: random.Random, tcp: bytearray, *, src: int, dst: int,
                good_checksum: bool = True) -> bytearray:
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), rng.randrange(65536),
                               0x4000, 64, 6, 0, src, dst))
    ip[10:12] = checksum._py_checksum(ip).to_bytes(2, "big")
    pseudo = checksum.pseudo_header(src, dst, 6, len(tcp))
    tcp[16:18] = (checksum._py_checksum(tcp, pseudo) ^ (0 if good_checksum else 1)
                  ).to_bytes(2, "big")
    return bytearray(MAC + PEER_MAC + b"\x08\x00") + ip + tcp


def _ipv6_frame(rng: random.Random, tcp: bytearray, *, src: int, dst: int,
                good_checksum: bool = True) -> bytearray:
    ip = struct.pack("!IHBB", 0x60000000 | rng.randrange(2**20), len(tcp), 6, 64) \
        + src.to_bytes(16, "big") + dst.to_bytes(16, "big")
    pseudo = checksum.pseudo_header(src, dst, 6, len(tcp))
    tcp[16:18] = (checksum._py_checksum(tcp, pseudo) ^ (0 if good_checksum else 1)
                  ).to_bytes(2, "big")
    return bytearray(MAC + PEER_MAC + b"\x86\xdd") + ip + tcp


def _mutate(rng: random.Random, frame: bytearray) -> bytearray:
    """One of the things that send a frame to the general path (or not: some are
    harmless, e.g. trailing Ethernet padding)."""
    frame = bytearray(frame)
    ipv6 = frame[12] == 0x86
    kind = rng.randrange(14)
    if kind == 0:
        frame[rng.randrange(6)] ^= 1 << rng.randrange(8)  # not our MAC
    elif kind == 1:
        del frame[rng.randrange(len(frame) + 1):]  # truncated
    elif kind == 2:
        frame += rng.randbytes(rng.randrange(1, 30))  # Ethernet padding
    elif kind == 3:
        frame[rng.randrange(12, min(len(frame), 60))] = rng.randrange(256)  # any header byte
    elif kind == 4 and not ipv6:
        frame[14] = 0x46  # IP options
    elif kind == 5 and not ipv6:
        mf, offset = rng.choice([(0x2000, 0), (0, rng.randrange(1, 0x2000)),
                                 (0x2000, rng.randrange(1, 0x2000)), (0x8000, 0)])
        frame[20:22] = (0x4000 | mf | offset).to_bytes(2, "big")  # MF, offset, reserved
    elif kind == 6 and not ipv6:
        frame[24] ^= 0x10  # a bad IP header checksum
    elif kind == 7:
        frame[23 if not ipv6 else 20] = rng.choice([17, 1, 0, 43, 44, 60])  # not TCP
    elif kind == 8:
        at = 16 if not ipv6 else 18  # IP length off
        value = int.from_bytes(frame[at:at + 2], "big") + rng.randrange(-30, 30)
        frame[at:at + 2] = (value & 0xFFFF).to_bytes(2, "big")
    elif kind == 9:
        frame[12:14] = rng.choice([b"\x08\x06", b"\x86\xdd", b"\x08\x00", b"\x81\x00"])
    elif kind == 10:
        frame[14] = rng.randrange(256)  # version / IHL
    elif kind == 11:
        tcp = 34 if not ipv6 else 54
        if len(frame) > tcp + 12:
            frame[tcp + 12] = rng.randrange(256)  # data offset
    elif kind == 12:
        frame = bytearray(rng.randbytes(rng.randrange(0, 100)))  # noise
    else:
        frame = bytearray(frame[:14] + rng.randbytes(rng.randrange(0, 80)))  # noise behind
    if not ipv6 and len(frame) >= 34 and rng.random() < 0.6:
        # A header checksum that verifies again: the other IPv4 checks must hold alone.
        frame[24:26] = b"\0\0"
        frame[24:26] = checksum._py_checksum(frame[14:34]).to_bytes(2, "big")
    return frame


def _frames(seed: int, count: int) -> list[bytearray]:
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        options = rng.choice(OPTION_LAYOUTS)(rng)
        payload = rng.randbytes(rng.choice([0, 0, 1, 7, 64, rng.randrange(0, 1449)]))
        tcp = _tcp(rng, options, payload)
        good = rng.random() < 0.8
        if rng.random() < 0.6:
            frame = _ipv4_frame(rng, tcp, src=rng.choice([0xC6120002, rng.randrange(2**32)]),
                                dst=0xC6120001, good_checksum=good)
        else:
            frame = _ipv6_frame(rng, tcp, src=0xFD00 << 112 | rng.randrange(2**64),
                                dst=rng.choice([0xFD00 << 112 | 1, rng.randrange(2**128)]),
                                good_checksum=good)
        frames.append(frame)
        if rng.random() < 0.7:
            frames.append(_mutate(rng, frame))
    return frames


def test_parse_tcp_frame_matches_the_reference(c: Any) -> None:
    taken = {4: 0, 6: 0}
    for index, frame in enumerate(_frames(9293, 2500)):
        for verify in (True, False):
            for buffer in (bytes(frame), frame, memoryview(frame)):
                result = same(interface._py_parse_tcp_frame, c.parse_tcp_frame, buffer, MAC,
                              verify)
            if result[0] != "NoneType":
                taken[result[0][0][1]] += 1  # the key's family
        if index % 7 == 0:  # another MAC than ours, a MAC of another length
            same(interface._py_parse_tcp_frame, c.parse_tcp_frame, frame, PEER_MAC, True)
            same(interface._py_parse_tcp_frame, c.parse_tcp_frame, frame, MAC[:5], True)
    assert taken[4] > 1000 and taken[6] > 800, taken  # the fast path was exercised


def test_parse_tcp_frame_checks_what_it_claims(c: Any) -> None:
    """Beyond twinship: a good frame parses, a bad TCP checksum is reported, the views
    are views of the frame."""
    rng = random.Random(7323)
    tcp = _tcp(rng, TS_OPTION + rng.randbytes(8), b"payload!")
    frame = _ipv4_frame(rng, tcp, src=0xC6120002, dst=0xC6120001)
    for parse in (interface._py_parse_tcp_frame, c.parse_tcp_frame):
        result = parse(frame, MAC, True)
        assert result is not None
        key, *_, header_len, data, payload, ok = result
        assert key[0] == 4 and key[1] == 0xC6120001 and key[3] == 0xC6120002
        assert header_len == 32 and bytes(payload) == b"payload!" and ok
        assert isinstance(data, memoryview) and data.obj is frame
        frame[-1] ^= 0xFF
        assert parse(frame, MAC, True)[-1] is False  # type: ignore[index]
        assert parse(frame, MAC, False)[-1] is True  # type: ignore[index]
        frame[-1] ^= 0xFF


def test_parse_tcp_segment_matches_the_reference(c: Any) -> None:
    rng = random.Random(5681)
    for _ in range(1500):
        options = rng.choice(OPTION_LAYOUTS)(rng)
        tcp = _tcp(rng, options, rng.randbytes(rng.randrange(0, 100)))
        del tcp[rng.choice([len(tcp), len(tcp), rng.randrange(len(tcp) + 1)]):]
        family = rng.choice([4, 6])
        src = rng.randrange(2**32 if family == 4 else 2**128)
        dst = rng.randrange(2**32 if family == 4 else 2**128)
        if rng.random() < 0.5 and len(tcp) >= 18:
            tcp[16:18] = checksum._py_checksum(
                tcp[:16] + b"\0\0" + tcp[18:],
                checksum.pseudo_header(src, dst, 6, len(tcp))).to_bytes(2, "big")
        for verify in (True, False):
            for data in (memoryview(tcp), bytes(tcp)):
                same(interface._py_parse_tcp_segment, c.parse_tcp_segment, family, src, dst,
                     data, verify)


# --- egress ---------------------------------------------------------------------------


def _template(rng: random.Random, ipv6: bool) -> bytes:
    eth = PEER_MAC + MAC + (b"\x86\xdd" if ipv6 else b"\x08\x00")
    if ipv6:
        return eth + b"\x60\0\0\0\0\0\x06\x40" + rng.randbytes(32)
    return eth + b"\x45\0\0\0\0\0\x40\0\x40\x06\0\0" + rng.randbytes(8)


def test_ts_frame_matches_the_reference(c: Any) -> None:
    rng = random.Random(7323)
    for _ in range(1500):
        ipv6 = rng.random() < 0.4
        template = _template(rng, ipv6)
        pseudo = rng.choice([0, 6, rng.randrange(2**17), rng.randrange(2**34),
                             rng.randrange(2**130), 0xFFFF * rng.randrange(1, 5) - 32])
        payload: Any = rng.randbytes(rng.choice([0, 1, 3, 100, 1448, rng.randrange(0, 9000)]))
        if rng.random() < 0.5:
            payload = memoryview(payload)[rng.randrange(0, 2):]
        seq = rng.choice([rng.randrange(2**32), rng.randrange(2**40), -rng.randrange(2**33)])
        ack = rng.choice([rng.randrange(2**32), 2**32 + 5, -1])
        ts_ecr = rng.choice([None, 0, rng.randrange(2**32)])
        for partial in (True, False):
            same(host._py_ts_frame, c.ts_frame, template, pseudo, partial,
                 rng.randrange(65536), rng.randrange(65536), seq, ack, rng.randrange(256),
                 rng.randrange(65536), rng.randrange(2**32), ts_ecr, payload)


def test_ts_frame_refuses_what_struct_refuses(c: Any) -> None:
    template = _template(random.Random(1), False)
    good = [template, 12345, False, 1, 2, 3, 4, 0x10, 5, 6, 7, b"x"]
    for at, bad in [(3, 65536), (4, -1), (7, 256), (8, 70000), (9, 2**32), (10, -2),
                    (3, 1.0), (9, None), (5, "1"), (11, 5), (0, None)]:
        args = list(good)
        args[at] = bad
        outcome = same(host._py_ts_frame, c.ts_frame, *args)
        assert outcome[0] == "raises", (at, bad)


def test_frames_carry_a_checksum_that_verifies(c: Any) -> None:
    """The full software checksum (offload=off) of the frame _frame builds on a path
    verifies with the reference over the header and the payload, for both families."""
    rng = random.Random(1)
    for ipv6 in (False, True):
        src, dst = rng.randrange(2**128 if ipv6 else 2**32), rng.randrange(2**32)
        path = FramePath(_template(rng, ipv6), checksum.pseudo_header(src, dst, 6, 0))
        for size in (0, 1, 1448):
            seg = Segment(1, 2, 3, 4, 0x18, 5, rng.randbytes(size), None, None, False, (),
                          rng.randrange(2**32), rng.randrange(2**32))
            frame = host._frame(seg, path, False)
            tcp = bytes(frame[path.l4_offset:]) + seg.payload
            assert checksum._py_verify(tcp, checksum.pseudo_header(src, dst, 6, len(tcp)))
            assert frame == host._py_ts_frame(path.template, path.pseudo, False, 1, 2, 3, 4,
                                              0x18, 5, seg.ts_val or 0, seg.ts_ecr,
                                              seg.payload)


def test_fill_ipv4_matches_the_reference(c: Any) -> None:
    rng = random.Random(791)
    for _ in range(1000):
        frame = bytearray(rng.randbytes(rng.choice([34, 26, 60])))
        header_sum = rng.choice([0, rng.randrange(2**16), rng.randrange(2**20),
                                 rng.randrange(2**70)])
        total, ident = rng.randrange(65536), rng.randrange(65536)
        expected, got = bytearray(frame), bytearray(frame)
        ipv4._py_fill_ipv4(expected, header_sum, total, ident)
        c.fill_ipv4(got, header_sum, total, ident)
        assert got == expected, (frame, header_sum, total, ident)
    for zeros in [(0, 0, 0), (0, 0, 0xFFFF), (0xFFFF, 0, 0), (0, 0xFFFF, 0)]:
        expected, got = bytearray(34), bytearray(34)  # the sum's two zeros
        ipv4._py_fill_ipv4(expected, *zeros)
        c.fill_ipv4(got, *zeros)
        assert got == expected, zeros
    for args in [(bytearray(25), 0, 1, 2), (bytearray(34), 0, 65536, 0),
                 (bytearray(34), 0, 1, -1)]:
        assert same(ipv4._py_fill_ipv4, c.fill_ipv4, *args)[0] == "raises", args
    for function in (ipv4._py_fill_ipv4, c.fill_ipv4):  # read-only: TypeError / BufferError
        with pytest.raises((TypeError, BufferError)):
            function(b"\0" * 34, 0, 1, 2)
