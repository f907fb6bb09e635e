"""Ephemeral port selection (RFC 6056 §3.3.4, Algorithm 4 "double-hash").

Contract:
- ``EphemeralPorts(secret, low=, high=, table_size=)``: the secret is exactly 16
  bytes (ValueError otherwise); the range is Linux's
  net.ipv4.ip_local_port_range default 32768..60999, inclusive.
- :meth:`EphemeralPorts.allocate` (connect()): RFC 6056 Algorithm 4 as Linux's
  ``__inet_hash_connect`` does it. One SipHash-2-4 over (local address, remote
  address, remote port) gives both the per-destination ``offset`` (F, high 32
  bits) and the perturbation-table ``index`` (G, low bits) — two independent
  keyed functions of the same input, as the algorithm's secret_key1/secret_key2.
  Candidates are ``low + (offset + table[index]) % num`` with ``table[index]``
  incremented per probe; the first port for which ``in_use(port)`` is false is
  returned. ``in_use`` decides what "free" means (normally: the 4-tuple with
  that local port is not taken, so one port serves many destinations).
  After a success the table slot also moves by a small keyed pseudo-random step
  (0..7), Linux's mitigation since 5.18 against the port-sequence device
  tracking of Klein & Pinkas (2019): successive connections to one destination
  get increasing but not strictly consecutive ports.
  No free port: ``OSError(EADDRNOTAVAIL)`` naming the range and destination, as
  Linux connect() fails.
- :meth:`EphemeralPorts.allocate_listening` (bind() to port 0): a keyed
  pseudo-random start from the secret and a counter, then a linear scan with
  wrap-around (Linux ``inet_csk_find_open_port``); ``OSError(EADDRINUSE)`` when
  the range is full.
- Everything is deterministic for a given secret and call sequence (tests rely
  on it); nothing here reads a clock or the OS's random source.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from ipaddress import ip_address

import siphash24

from .isn import check_secret

__all__ = ["DEFAULT_EPHEMERAL_RANGE", "EphemeralPorts"]

# Linux net.ipv4.ip_local_port_range default.
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_ADDR_LIMIT = 1 << 128
# Distinct leading bytes keep the PRF inputs of the table, bind() and the
# post-success perturbation apart from each other and from the 34-byte
# destination message.
_TAG_TABLE = 0x01
_TAG_BIND = 0x02
_TAG_STEP = 0x03


def _describe(addr: int, port: int) -> str:
    try:
        text = str(ip_address(addr))
    except ValueError:
        text = hex(addr)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


class EphemeralPorts:
    """Local port choice for connect() and bind(port=0), keyed by one secret."""

    __slots__ = ("_binds", "_connects", "_high", "_key", "_low", "_num", "_table")

    def __init__(
        self, secret: bytes, *, low: int = 32768, high: int = 60999, table_size: int = 256
    ) -> None:
        self._key = check_secret(secret)
        if not 1 <= low <= high <= 0xFFFF:
            raise ValueError(f"need 1 <= low <= high <= 65535, got {low}..{high}")
        if table_size < 1:
            raise ValueError(f"table_size must be >= 1, got {table_size}")
        self._low = low
        self._high = high
        self._num = high - low + 1
        key = self._key
        # RFC 6056 Algorithm 4 initialisation: "table[i] = random() % 65536".
        # Keyed, so deterministic per secret and unknown without it.
        self._table = [
            int(siphash24.siphash24(bytes((_TAG_TABLE,)) + i.to_bytes(4, "big"), key=key)
                .intdigest()) & 0xFFFF
            for i in range(table_size)
        ]
        self._connects = 0
        self._binds = 0

    def __repr__(self) -> str:
        return f"<EphemeralPorts {self._low}..{self._high}>"

    @property
    def range(self) -> tuple[int, int]:
        """The inclusive port range."""
        return (self._low, self._high)

    def _prf(self, tag: int, counter: int) -> int:
        message = bytes((tag,)) + counter.to_bytes(8, "big")
        return int(siphash24.siphash24(message, key=self._key).intdigest()) & _MASK64

    def allocate(
        self, local_addr: int, remote_addr: int, remote_port: int, in_use: Callable[[int], bool]
    ) -> int:
        """A free local port for a connection to ``remote_addr:remote_port``."""
        if not (0 <= local_addr < _ADDR_LIMIT and 0 <= remote_addr < _ADDR_LIMIT):
            raise ValueError(f"address out of range: {local_addr}, {remote_addr}")
        if not 0 <= remote_port <= 0xFFFF:
            raise ValueError(f"port out of range: {remote_port}")
        message = ((local_addr << 144) | (remote_addr << 16) | remote_port).to_bytes(34, "big")
        h = int(siphash24.siphash24(message, key=self._key).intdigest()) & _MASK64
        # RFC 6056 §3.3.4: offset = F(local_IP, remote_IP, remote_port, key1),
        # index = G(local_IP, remote_IP, remote_port, key2).
        offset = h >> 32
        table = self._table
        index = (h & _MASK32) % len(table)
        low = self._low
        num = self._num
        for probes in range(1, num + 1):
            # "port = min_ephemeral + (offset + table[index]) % num_ephemeral;
            #  table[index]++;"
            port = low + (offset + table[index]) % num
            table[index] += 1
            if not in_use(port):
                # Linux (__inet_hash_connect, 5.18+): nudge the slot further by a
                # random 0..7 when few ports were probed, so the sequence of
                # ports one destination sees does not count connections.
                self._connects += 1
                extra = (self._prf(_TAG_STEP, self._connects) & 7) - probes + 1
                if extra > 0:
                    table[index] += extra
                return port
        raise OSError(
            errno.EADDRNOTAVAIL,
            f"no free ephemeral port in {low}..{self._high} for "
            f"{_describe(remote_addr, remote_port)} (connect)",
        )

    def allocate_listening(self, in_use: Callable[[int], bool]) -> int:
        """A free port for bind(port=0): keyed random start, then a linear scan."""
        self._binds += 1
        low = self._low
        num = self._num
        start = self._prf(_TAG_BIND, self._binds) % num
        for i in range(num):
            port = low + (start + i) % num
            if not in_use(port):
                return port
        raise OSError(
            errno.EADDRINUSE, f"no free port in {low}..{self._high} for bind(port=0)"
        )
