"""IP fragment reassembly (RFC 791, RFC 815; RFC 8200 §4.5, RFC 5722) with bounded memory.

Contract (sans-IO: time comes in as ``now``, the next deadline goes out via
:meth:`Reassembler.poll_at`):

- The caller parses the IP header and calls :meth:`Reassembler.add` with a key
  that identifies the datagram (IPv4: src, dst, protocol, identification; IPv6:
  src, dst, identification), the fragment offset *in bytes*, the "more fragments"
  flag and the fragment's payload. ``add`` copies the payload (device buffers are
  reused after the pump) and returns the complete payload as ``bytes`` once the
  last hole is filled, else ``None``. It never raises for remote input: invalid
  fragments are dropped and counted in :attr:`Reassembler.stats`.
- A fragment with offset 0 and ``more=False`` is not really fragmented (an IPv6
  "atomic fragment"): it is returned at once and does not touch the state of other
  fragments with the same key (RFC 6946 §4).
- Invalid fragments are dropped on their own (``dropped_invalid``): an offset that is
  negative or not a multiple of 8, an end beyond ``max_datagram_len`` (a "ping of
  death"), a non-final fragment that is empty or whose length is not a multiple of 8
  (RFC 8200 §4.5; RFC 791 §3.2 makes it impossible for IPv4 too).
- Overlap: if any byte would be covered twice, the whole datagram is discarded and
  every later fragment with its key is dropped until the datagram's original
  deadline (RFC 5722 §4 for IPv6; Linux does the same for IPv4 since 4.19, because
  overlapping fragments are how IDS evasion and "teardrop" attacks work). A final
  fragment (``more=False``) whose end disagrees with an earlier final fragment, or
  lies below data already received, or a fragment extending past the known end, is
  the same kind of inconsistency and is handled the same way. All count as
  ``overlaps``; fragments dropped afterwards count as ``dropped_discarded``.
- Exact duplicates (same offset, same bytes, same ``more``) are dropped and the
  datagram is kept (``duplicates``): RFC 5722 §4 allows it, networks do duplicate
  packets, and our own ``FaultInjector(duplicate=...)`` does; discarding would turn
  a harmless duplicate into a lost datagram.
- Timeout: each datagram expires ``timeout`` seconds after its *first* fragment
  arrived (not refreshed by later ones, as in Linux; RFC 791 suggests a timer,
  RFC 8200 §4.5 says 60 s). :meth:`Reassembler.expire` removes expired datagrams and
  returns them with the header of the offset-0 fragment, if that fragment arrived:
  only then may the caller send ICMP Time Exceeded, code 1 (RFC 792; RFC 8200 §4.5).
- Bounds: at most ``max_datagrams`` datagrams in progress and ``max_bytes`` buffered,
  where each fragment is charged its length plus :data:`FRAGMENT_OVERHEAD` (the
  Python bookkeeping per fragment, like Linux's ``truesize``), so a flood of 8-byte
  fragments cannot pin far more memory than the limit says. When a new fragment
  does not fit, the *oldest* datagrams are evicted (``evictions``) instead of the
  new one being refused: an attacker who sends fragments that never complete would
  otherwise fill the table once and lock out every legitimate datagram until the
  timeouts; evicting the oldest keeps reassembly working for peers whose fragments
  arrive close together. The tombstones of discarded datagrams hold no data and are
  bounded by ``max_datagrams`` too (the oldest is forgotten).
- ``fragment_sizes`` plans the fragments of an outgoing payload (RFC 791 §3.2,
  RFC 8200 §4.5): every fragment but the last carries a multiple of 8 bytes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = [
    "FRAGMENT_OVERHEAD",
    "Expired",
    "Reassembler",
    "ReassemblyStats",
    "fragment_sizes",
]

#: Bytes charged against ``max_bytes`` per stored fragment in addition to its payload
#: (a ``bytes`` object, its dict slot and its offset in the sorted list).
FRAGMENT_OVERHEAD = 128

_DEFAULT_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Expired:
    """A datagram that timed out; ``first_header`` is set iff its offset-0 fragment came."""

    key: Hashable
    first_header: bytes | None


@dataclass(slots=True)
class ReassemblyStats:
    """Counters, like ``netstat -s`` ReasmOKs/ReasmTimeout/ReasmFails."""

    completed: int = 0
    timeouts: int = 0
    overlaps: int = 0  # datagrams discarded: overlapping or inconsistent fragments
    evictions: int = 0  # datagrams evicted to stay within max_datagrams / max_bytes
    dropped_invalid: int = 0  # single fragments with a bad offset or length
    dropped_discarded: int = 0  # fragments of a datagram discarded earlier
    duplicates: int = 0  # exact duplicate fragments ignored
    in_progress: int = 0  # datagrams being reassembled now


class _Datagram:
    __slots__ = ("charged", "deadline", "end", "first_header", "frags", "max_end", "received",
                 "starts")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.frags: dict[int, bytes] = {}  # offset -> payload
        self.starts: list[int] = []  # sorted offsets, for the overlap check
        self.received = 0  # payload bytes held (no overlaps, so also bytes covered)
        self.charged = 0  # against max_bytes
        self.end: int | None = None  # total length, once the final fragment came
        self.max_end = 0
        self.first_header: bytes | None = None


class Reassembler:
    """Reassembles fragmented datagrams of one family; see the module docstring."""

    __slots__ = ("_bytes", "_datagrams", "_discarded", "max_bytes", "max_datagram_len",
                 "max_datagrams", "stats", "timeout")

    def __init__(self, *, timeout: float, max_datagrams: int = 64,
                 max_bytes: int = _DEFAULT_MAX_BYTES, max_datagram_len: int = 65535) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_datagrams < 1:
            raise ValueError(f"max_datagrams must be at least 1, not {max_datagrams}")
        if max_bytes < 8 + FRAGMENT_OVERHEAD:
            raise ValueError(f"max_bytes too small: {max_bytes}")
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.max_datagram_len = max_datagram_len
        self.stats = ReassemblyStats()
        # Both dicts are in arrival order, which is deadline order (constant timeout,
        # monotonic clock): the first entry is the oldest and expires first.
        self._datagrams: dict[Hashable, _Datagram] = {}
        self._discarded: dict[Hashable, float] = {}  # key -> deadline of the tombstone
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._datagrams)

    @property
    def buffered_bytes(self) -> int:
        """Bytes charged against ``max_bytes`` now (payload plus per-fragment overhead)."""
        return self._bytes

    def poll_at(self) -> float | None:
        """The earliest deadline (a datagram's or a tombstone's), or ``None``."""
        deadlines = []
        if self._datagrams:
            deadlines.append(next(iter(self._datagrams.values())).deadline)
        if self._discarded:
            deadlines.append(next(iter(self._discarded.values())))
        return min(deadlines, default=None)

    def expire(self, now: float) -> list[Expired]:
        """Remove datagrams whose deadline is ``<= now``; return them for ICMP."""
        expired: list[Expired] = []
        for key, dgram in list(self._datagrams.items()):
            if dgram.deadline > now:
                break
            self._drop(key)
            self.stats.timeouts += 1
            expired.append(Expired(key, dgram.first_header))
        for key, at in list(self._discarded.items()):
            if at > now:
                break
            del self._discarded[key]
        return expired

    def add(self, key: Hashable, offset: int, more: bool, data: bytes | bytearray | memoryview,
            now: float, first_header: bytes | bytearray | memoryview | None = None,
            ) -> bytes | None:
        """Add one fragment; return the whole payload when this one completes it."""
        done = self.add_fragment(key, offset, more, data, now, first_header=first_header)
        return None if done is None else done[0]

    def add_fragment(self, key: Hashable, offset: int, more: bool,
                     data: bytes | bytearray | memoryview, now: float,
                     first_header: bytes | bytearray | memoryview | None = None,
                     ) -> tuple[bytes, bytes | None] | None:
        """Like :meth:`add`, but return ``(payload, first_header)`` on completion:
        the offset-0 fragment's ``first_header`` as given (an error about the whole
        datagram quotes it, as Linux does), None if it was given none."""
        length = len(data)
        end = offset + length
        if offset < 0 or offset % 8 or end > self.max_datagram_len or (
                more and (length == 0 or length % 8)):
            self.stats.dropped_invalid += 1
            return None
        if offset == 0 and not more:  # atomic fragment, RFC 6946 §4
            return bytes(data), None if first_header is None else bytes(first_header)
        if key in self._discarded:
            self.stats.dropped_discarded += 1
            return None
        dgram = self._datagrams.get(key)
        if dgram is not None:
            verdict = self._check(dgram, offset, end, more, data)
            if verdict is not None:
                if verdict:
                    self.stats.duplicates += 1
                else:
                    self._discard(key, dgram)
                return None
        cost = length + FRAGMENT_OVERHEAD
        if cost > self.max_bytes:  # could never be held, even in an empty table
            self.stats.dropped_invalid += 1
            return None
        self._make_room(cost, key, new=dgram is None)
        if dgram is None:
            dgram = self._datagrams[key] = _Datagram(now + self.timeout)
            self.stats.in_progress = len(self._datagrams)
        elif key not in self._datagrams:  # evicted itself: it alone exceeds max_bytes
            return None
        # Store the fragment (copied).
        dgram.frags[offset] = bytes(data)
        dgram.starts.insert(bisect_right(dgram.starts, offset), offset)
        dgram.received += length
        dgram.charged += cost
        self._bytes += cost
        dgram.max_end = max(dgram.max_end, end)
        if not more:
            dgram.end = end
        if offset == 0 and first_header is not None:
            dgram.first_header = bytes(first_header)
        if dgram.end is None or dgram.received != dgram.end:
            return None
        # No overlaps and every byte in [0, end) held: the datagram is complete.
        payload = b"".join(dgram.frags[start] for start in dgram.starts)
        self._drop(key)
        self.stats.completed += 1
        return payload, dgram.first_header

    # -- internals ------------------------------------------------------------

    @staticmethod
    def _check(dgram: _Datagram, offset: int, end: int, more: bool,
               data: bytes | bytearray | memoryview) -> bool | None:
        """``None``: the fragment fits; ``True``: exact duplicate; ``False``: discard all."""
        held = dgram.frags.get(offset)
        if held is not None and held == data and (not more) == (dgram.end == end):
            return True
        if not more:
            if (dgram.end is not None and dgram.end != end) or end < dgram.max_end:
                return False
        elif dgram.end is not None and end > dgram.end:
            return False
        starts = dgram.starts
        i = bisect_right(starts, offset)
        if i > 0:
            prev = starts[i - 1]
            if prev + len(dgram.frags[prev]) > offset:
                return False
        if i < len(starts) and starts[i] < end:
            return False
        return None

    def _make_room(self, cost: int, key: Hashable, *, new: bool) -> None:
        """Evict the oldest datagrams until ``cost`` more bytes (and, if ``new``, one more
        datagram) fit. The datagram ``key`` goes last, only if it alone does not fit."""
        while self._datagrams and (
                self._bytes + cost > self.max_bytes
                or (new and len(self._datagrams) >= self.max_datagrams)):
            victim = next(iter(self._datagrams))
            if victim == key:
                others = [k for k in self._datagrams if k != key]
                victim = others[0] if others else key
            self._drop(victim)
            self.stats.evictions += 1

    def _discard(self, key: Hashable, dgram: _Datagram) -> None:
        self._drop(key)
        self.stats.overlaps += 1
        if len(self._discarded) >= self.max_datagrams:
            del self._discarded[next(iter(self._discarded))]
        self._discarded[key] = dgram.deadline

    def _drop(self, key: Hashable) -> None:
        dgram = self._datagrams.pop(key)
        self._bytes -= dgram.charged
        self.stats.in_progress = len(self._datagrams)


def fragment_sizes(payload_len: int, max_fragment_payload: int) -> list[tuple[int, int, bool]]:
    """Plan ``(offset, length, more)`` for fragments of a ``payload_len``-byte payload.

    Each fragment carries at most ``max_fragment_payload`` bytes (the MTU minus the IP
    header and, for IPv6, the Fragment header); all but the last carry a multiple of
    8 bytes (RFC 791 §3.2, RFC 8200 §4.5), so the usable size is rounded down to 8.
    A payload that fits is one entry ``(0, payload_len, False)``: send it unfragmented.
    """
    if payload_len < 0:
        raise ValueError(f"negative payload length {payload_len}")
    if payload_len <= max_fragment_payload:
        return [(0, payload_len, False)]
    step = max_fragment_payload & ~7
    if step < 8:
        raise ValueError(f"max_fragment_payload {max_fragment_payload} is below 8 bytes")
    plan = [(offset, step, True) for offset in range(0, payload_len - step, step)]
    last = len(plan) * step
    plan.append((last, payload_len - last, False))
    return plan
