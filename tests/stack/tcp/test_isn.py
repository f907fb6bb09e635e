"""RFC 6528 ISNs: M (4 µs timer) + SipHash-2-4 of the 4-tuple."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
import siphash24

from ethox_asyncio.stack.tcp.isn import IsnGenerator

KEY = bytes(range(16))
OTHER_KEY = bytes(range(1, 17))
LOCAL = int(IPv4Address("198.18.0.1"))
REMOTE = int(IPv4Address("198.18.1.9"))
LOCAL6 = int(IPv6Address("fd00::1"))
REMOTE6 = int(IPv6Address("fd00::99"))


def test_secret_must_be_16_bytes() -> None:
    for bad in (b"", b"short", bytes(15), bytes(17)):
        with pytest.raises(ValueError, match="16 bytes"):
            IsnGenerator(bad)
    with pytest.raises(ValueError):
        IsnGenerator(bytearray(16))  # type: ignore[arg-type]


def test_deterministic_for_secret_and_time() -> None:
    a, b = IsnGenerator(KEY), IsnGenerator(KEY)
    assert a.isn(LOCAL, 40000, REMOTE, 80, 12.5) == b.isn(LOCAL, 40000, REMOTE, 80, 12.5)
    assert 0 <= a.isn(LOCAL, 40000, REMOTE, 80, 12.5) < 2**32


def test_matches_the_rfc6528_formula() -> None:
    message = (
        LOCAL.to_bytes(16, "big") + (40000).to_bytes(2, "big")
        + REMOTE.to_bytes(16, "big") + (80).to_bytes(2, "big")
    )
    f = siphash24.siphash24(message, key=KEY).intdigest() & 0xFFFFFFFF
    now = 1234.567891
    assert IsnGenerator(KEY).isn(LOCAL, 40000, REMOTE, 80, now) == (int(now * 250_000) + f) % 2**32


def test_different_secrets_differ() -> None:
    assert IsnGenerator(KEY).isn(LOCAL, 40000, REMOTE, 80, 1.0) != IsnGenerator(OTHER_KEY).isn(
        LOCAL, 40000, REMOTE, 80, 1.0
    )


def test_m_advances_250_per_millisecond() -> None:
    gen = IsnGenerator(KEY)
    base = gen.isn(LOCAL, 40000, REMOTE, 80, 100.0)
    assert (gen.isn(LOCAL, 40000, REMOTE, 80, 100.001) - base) % 2**32 == 250
    assert (gen.isn(LOCAL, 40000, REMOTE, 80, 101.0) - base) % 2**32 == 250_000
    # It wraps modulo 2**32 (after 2**32 * 4 µs ~ 4.77 hours).
    assert gen.isn(LOCAL, 40000, REMOTE, 80, 100.0 + 2**32 / 250_000) == base


def test_four_tuples_differ() -> None:
    gen = IsnGenerator(KEY)
    tuples = [
        (LOCAL, 40000, REMOTE, 80),
        (LOCAL, 40001, REMOTE, 80),
        (LOCAL, 40000, REMOTE, 81),
        (LOCAL, 40000, REMOTE + 1, 80),
        (LOCAL + 1, 40000, REMOTE, 80),
        (REMOTE, 80, LOCAL, 40000),  # the reverse direction
        (LOCAL6, 40000, REMOTE6, 80),
    ]
    isns = {gen.isn(*t, 5.0) for t in tuples}
    assert len(isns) == len(tuples)


def test_ipv6_extremes_and_bad_values() -> None:
    gen = IsnGenerator(KEY)
    gen.isn(2**128 - 1, 65535, 2**128 - 1, 65535, 0.0)
    for args in [(-1, 1, 1, 1), (2**128, 1, 1, 1), (1, 65536, 1, 1), (1, 1, 1, -1)]:
        with pytest.raises(ValueError):
            gen.isn(*args, 0.0)


def test_ts_offset() -> None:
    gen = IsnGenerator(KEY)
    off = gen.ts_offset(LOCAL, REMOTE)
    assert 0 <= off < 2**32 and off == IsnGenerator(KEY).ts_offset(LOCAL, REMOTE)
    assert off != gen.ts_offset(LOCAL, REMOTE + 1)
    assert off != IsnGenerator(OTHER_KEY).ts_offset(LOCAL, REMOTE)
    with pytest.raises(ValueError):
        gen.ts_offset(-1, REMOTE)


def test_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(IsnGenerator(KEY))
