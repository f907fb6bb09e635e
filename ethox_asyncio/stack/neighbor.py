"""Neighbour cache for ARP (RFC 826, RFC 1122 §2.3.2) and IPv6 NDP (RFC 4861 §7.3).

Contract:
- One :class:`NeighborCache` per address family and interface. It maps IP
  addresses to Ethernet addresses, queues packets for unresolved neighbours and
  says *when* to send which solicitation; building and parsing ARP or Neighbor
  Solicitation/Advertisement frames is the caller's (the Interface's) job.
- Sans-IO: time comes in as ``now`` (seconds); the earliest deadline goes out
  through :meth:`NeighborCache.poll_at`; the caller calls :meth:`NeighborCache.poll`
  when it is reached and sends what it returns. Nothing happens between calls.
- Sending path: ``mac = cache.lookup(ip, now)``; if ``None``,
  ``cache.resolve(ip, packet, now)`` queues the packet and schedules an immediate
  solicitation (so ``poll_at()`` becomes ``now``). ``resolve`` on a resolved
  neighbour is a programming error (``ValueError``).
- Receiving path: a reply/advertisement is :meth:`~NeighborCache.update`; a
  mapping seen in a request/solicitation is :meth:`~NeighborCache.learn`. Both
  return the packets queued for the neighbour, oldest first, now sendable.
- :meth:`~NeighborCache.poll` returns the due solicitations and the neighbours
  found unreachable, with the packets that were waiting for them, so the caller
  can answer each with ICMP destination/address unreachable (RFC 1122 §2.3.2.2,
  RFC 4861 §7.2.2). A neighbour lost in PROBE has no queued packets; it is still
  reported (with an empty list) so routing can drop a dead router (§7.3.3).
- Bounds: at most ``max_entries`` entries (a new one evicts the least recently
  STALE entry, else it is refused); at most ``max_pending_per_neighbor`` queued
  packets per neighbour (RFC 1122 §2.3.2.2 / RFC 4861 §7.2.2: the new arrival
  replaces the *oldest*) and ``max_pending_total`` in all. Every drop is counted
  in :class:`NeighborStats`.

States (RFC 4861 §7.3.2) and the ARP mapping. Every entry has exactly one timer,
``deadline``, whose meaning depends on the state:

============  =======================================  ==============================
state         timer fires                              ARP meaning
============  =======================================  ==============================
INCOMPLETE    next broadcast/multicast solicitation;    ARP request broadcast, retried
              after ``max_multicast_solicit`` the       (RFC 1122 §2.3.2.1), then
              entry is deleted, packets → failures      failure
REACHABLE     ``reachable_time`` after the last          a reply to our request, or
              confirmation → STALE                      upper-layer progress
STALE         ``stale_timeout`` unused → deleted (GC)   learnt from a request, or aged
DELAY         ``delay_first_probe_time`` after first    used while stale: give upper
              use while STALE → PROBE                   layers a chance to confirm
PROBE         unicast probe every ``retrans_time``;     unicast ARP request ("unicast
              after ``max_unicast_solicit`` deleted     poll", RFC 1122 §2.3.2.1)
============  =======================================  ==============================

ARP has no solicited/override flags: the caller passes ``solicited=True`` for a
reply to a request of ours (``override`` stays True, RFC 826 overwrites), and
``learn()`` for the sender of a request (RFC 826 "merge": update an existing entry;
whether to create one — only when the request targets us — the caller decides).

Timers: a heap of ``(at, seq, entry)`` with lazy deletion. An entry's
``deadline`` may move later without a heap push (``confirm()`` on every TCP ACK
costs O(1)); :meth:`poll_at` re-files such items when they reach the top, so it
returns exactly the earliest entry deadline. The heap is rebuilt when stale items
outnumber entries. ``lookup()`` is O(1); ``poll()`` is O(k log n) for k due timers.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, TypeVar

from .wire.ethernet import EthernetAddress

__all__ = [
    "Failure",
    "NeighborAddress",
    "NeighborCache",
    "NeighborConfig",
    "NeighborInfo",
    "NeighborState",
    "NeighborStats",
    "PollResult",
    "Solicitation",
]

P = TypeVar("P")
NeighborAddress = IPv4Address | IPv6Address


class NeighborState(enum.Enum):
    """RFC 4861 §7.3.2 reachability states (used for ARP as well, see module doc)."""

    INCOMPLETE = "incomplete"
    REACHABLE = "reachable"
    STALE = "stale"
    DELAY = "delay"
    PROBE = "probe"


_INCOMPLETE = NeighborState.INCOMPLETE
_REACHABLE = NeighborState.REACHABLE
_STALE = NeighborState.STALE
_DELAY = NeighborState.DELAY
_PROBE = NeighborState.PROBE


@dataclass(frozen=True, slots=True)
class NeighborConfig:
    """Protocol constants (RFC 4861 §10) and table bounds; times in seconds.

    RFC 4861 §6.3.2 wants ``reachable_time`` randomised (0.5–1.5 × base) and
    Router Advertisements may change it and ``retrans_time``: the caller may assign
    a new config to :attr:`NeighborCache.config` at any time; it applies to timers
    set from then on.
    """

    reachable_time: float = 30.0  # REACHABLE_TIME
    retrans_time: float = 1.0  # RETRANS_TIMER
    delay_first_probe_time: float = 5.0  # DELAY_FIRST_PROBE_TIME
    max_multicast_solicit: int = 3  # MAX_MULTICAST_SOLICIT
    max_unicast_solicit: int = 3  # MAX_UNICAST_SOLICIT
    stale_timeout: float = 600.0  # garbage-collect STALE entries unused this long
    max_entries: int = 1024
    max_pending_per_neighbor: int = 8  # RFC 1122 §2.3.2.2: at least one
    max_pending_total: int = 256

    def __post_init__(self) -> None:
        # Positive retransmit/ageing times guarantee poll() terminates: every
        # timer it fires is re-armed strictly in the future or the entry goes.
        for name in ("reachable_time", "retrans_time", "stale_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if not self.delay_first_probe_time >= 0:
            raise ValueError("delay_first_probe_time must be >= 0")
        if self.max_unicast_solicit < 0:
            raise ValueError("max_unicast_solicit must be >= 0")
        for name in ("max_multicast_solicit", "max_entries", "max_pending_per_neighbor",
                     "max_pending_total"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass(slots=True)
class NeighborStats:
    """Counters; ``entries`` is the current table size, the others only grow."""

    hits: int = 0  # lookup() found a link-layer address
    misses: int = 0  # lookup() found nothing or INCOMPLETE
    solicitations_sent: int = 0  # multicast/broadcast and unicast, returned by poll()
    resolved: int = 0  # INCOMPLETE entries that got an address
    failed: int = 0  # neighbours found unreachable (INCOMPLETE or PROBE exhausted)
    pending_dropped: int = 0  # queued packets dropped (bounds, refused entry, flush)
    evicted: int = 0  # STALE entries evicted to make room
    expired: int = 0  # STALE entries garbage-collected after stale_timeout
    entries: int = 0


@dataclass(frozen=True, slots=True)
class Solicitation:
    """Send an ARP request / Neighbor Solicitation for ``ip``.

    ``unicast_mac`` None: broadcast (ARP) or to the solicited-node multicast group
    (NDP); otherwise a unicast probe to that address (RFC 4861 §7.3.3).
    """

    ip: NeighborAddress
    unicast_mac: EthernetAddress | None


@dataclass(frozen=True, slots=True)
class Failure(Generic[P]):
    """``ip`` is unreachable; ``packets`` were queued for it, oldest first."""

    ip: NeighborAddress
    packets: list[P]


@dataclass(frozen=True, slots=True)
class PollResult(Generic[P]):
    solicitations: list[Solicitation]
    failures: list[Failure[P]]

    def __bool__(self) -> bool:
        return bool(self.solicitations or self.failures)


@dataclass(frozen=True, slots=True)
class NeighborInfo:
    """A snapshot of one entry, for introspection and tests."""

    ip: NeighborAddress
    mac: EthernetAddress | None
    state: NeighborState
    is_router: bool
    pending: int
    deadline: float


@dataclass(slots=True, eq=False)
class _Entry(Generic[P]):
    ip: NeighborAddress
    state: NeighborState
    deadline: float
    mac: EthernetAddress | None = None
    is_router: bool = False
    probes_sent: int = 0  # solicitations sent in the current INCOMPLETE/PROBE episode
    pending: deque[P] = field(default_factory=deque)
    queued_at: float | None = None  # time of this entry's current heap item
    alive: bool = True


class NeighborCache(Generic[P]):
    """The neighbour table of one interface and address family (see module doc)."""

    def __init__(self, config: NeighborConfig | None = None) -> None:
        self.config = config if config is not None else NeighborConfig()
        self.stats = NeighborStats()
        self._entries: dict[NeighborAddress, _Entry[P]] = {}
        # STALE entries, least recently made stale first: the eviction order.
        self._stale: dict[NeighborAddress, None] = {}
        self._heap: list[tuple[float, int, _Entry[P]]] = []
        self._seq = 0
        self._pending_total = 0

    # -- sending path -----------------------------------------------------------

    def lookup(self, ip: NeighborAddress, now: float) -> EthernetAddress | None:
        """The link-layer address to send to ``ip``, or None (then :meth:`resolve`).

        Using a STALE entry starts reachability confirmation: → DELAY (RFC 4861
        §7.3.3).
        """
        entry = self._entries.get(ip)
        if entry is None or entry.mac is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        if entry.state is _STALE:
            self._set_state(entry, _DELAY, now + self.config.delay_first_probe_time)
        return entry.mac

    def resolve(self, ip: NeighborAddress, packet: P, now: float) -> bool:
        """Queue ``packet`` until ``ip`` is resolved; False if it was dropped.

        Creates an INCOMPLETE entry with an immediate solicitation when there is
        none. When the neighbour's queue (or the total) is full the oldest packet
        of this neighbour is dropped to keep the newest (RFC 4861 §7.2.2); that
        drop is counted but still returns True.
        """
        entry = self._entries.get(ip)
        if entry is None:
            entry = self._create(ip, _INCOMPLETE, None, now)
            if entry is None:
                self.stats.pending_dropped += 1
                return False
        elif entry.state is not _INCOMPLETE:
            raise ValueError(f"{ip} is already resolved: use lookup()")
        return self._enqueue(entry, packet)

    # -- receiving path ---------------------------------------------------------

    def update(
        self,
        ip: NeighborAddress,
        mac: EthernetAddress | None,
        now: float,
        *,
        solicited: bool,
        override: bool = True,
        is_router: bool | None = None,
    ) -> list[P]:
        """Apply an ARP reply / Neighbor Advertisement (RFC 4861 §7.2.5).

        ``mac`` None is an advertisement without a Target Link-Layer Address
        option. An advertisement for an unknown neighbour is ignored (§7.2.5: use
        :meth:`learn` to create entries). Returns the packets queued for ``ip``,
        oldest first, now sendable to the new address.
        """
        entry = self._entries.get(ip)
        if entry is None:
            return []
        if entry.mac is None:  # INCOMPLETE: Override is ignored
            if mac is None:
                return []  # nothing to resolve with
            entry.mac = mac
            if is_router is not None:
                entry.is_router = is_router
            self.stats.resolved += 1
            if solicited:
                self._set_state(entry, _REACHABLE, now + self.config.reachable_time)
            else:
                self._set_state(entry, _STALE, now + self.config.stale_timeout)
            return self._release(entry, now)
        changed = mac is not None and mac != entry.mac
        if changed and not override:
            # Keep the address; a REACHABLE entry becomes suspect.
            if entry.state is _REACHABLE:
                self._set_state(entry, _STALE, now + self.config.stale_timeout)
            return []
        if is_router is not None:
            entry.is_router = is_router
        if changed:
            entry.mac = mac
        if solicited:
            self._set_state(entry, _REACHABLE, now + self.config.reachable_time)
        elif changed:
            self._set_state(entry, _STALE, now + self.config.stale_timeout)
        return []

    def learn(self, ip: NeighborAddress, mac: EthernetAddress, now: float) -> list[P]:
        """A mapping seen in an ARP request / Neighbor Solicitation (RFC 4861 §7.2.3).

        Creates a STALE entry (when the table has room), or updates an existing
        one as an unsolicited override: a new address makes it STALE, the same one
        leaves it alone; an INCOMPLETE entry is resolved and its queued packets
        returned.
        """
        if ip not in self._entries:
            self._create(ip, _STALE, mac, now)
            return []
        return self.update(ip, mac, now, solicited=False, override=True)

    def confirm(self, ip: NeighborAddress, now: float) -> None:
        """Upper-layer proof of reachability (e.g. TCP progress): → REACHABLE.

        O(1) for an entry already REACHABLE: its timer is extended lazily.
        """
        entry = self._entries.get(ip)
        if entry is not None and entry.mac is not None:
            self._set_state(entry, _REACHABLE, now + self.config.reachable_time)

    # -- timers -----------------------------------------------------------------

    def poll_at(self) -> float | None:
        """The earliest entry deadline (possibly in the past), or None."""
        heap = self._heap
        while heap:
            at, _, entry = heap[0]
            if not entry.alive or entry.queued_at != at:
                heapq.heappop(heap)  # superseded item
            elif entry.deadline > at:
                # Deadline moved later without a push: re-file the item.
                self._seq += 1
                heapq.heapreplace(heap, (entry.deadline, self._seq, entry))
                entry.queued_at = entry.deadline
            else:
                return at
        return None

    def poll(self, now: float) -> PollResult[P]:
        """Fire every timer due at ``now``: solicitations to send, neighbours lost."""
        solicitations: list[Solicitation] = []
        failures: list[Failure[P]] = []
        while (at := self.poll_at()) is not None and at <= now:
            _, _, entry = heapq.heappop(self._heap)
            entry.queued_at = None
            self._fire(entry, now, solicitations, failures)
        return PollResult(solicitations, failures)

    # -- introspection and management -------------------------------------------

    def state(self, ip: NeighborAddress) -> NeighborState | None:
        entry = self._entries.get(ip)
        return None if entry is None else entry.state

    def entries(self) -> list[NeighborInfo]:
        return [
            NeighborInfo(e.ip, e.mac, e.state, e.is_router, len(e.pending), e.deadline)
            for e in self._entries.values()
        ]

    @property
    def pending_total(self) -> int:
        return self._pending_total

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ip: object) -> bool:
        return ip in self._entries

    def remove(self, ip: NeighborAddress) -> list[P]:
        """Delete ``ip``'s entry; returns its queued packets (not counted as drops)."""
        entry = self._entries.get(ip)
        return [] if entry is None else self._delete(entry)

    def flush(self) -> None:
        """Delete every entry; queued packets are dropped and counted."""
        for entry in list(self._entries.values()):
            self.stats.pending_dropped += len(self._delete(entry))
        self._heap.clear()

    # -- internals --------------------------------------------------------------

    def _fire(
        self,
        entry: _Entry[P],
        now: float,
        solicitations: list[Solicitation],
        failures: list[Failure[P]],
    ) -> None:
        cfg = self.config
        state = entry.state
        if state is _INCOMPLETE:
            if entry.probes_sent < cfg.max_multicast_solicit:
                self._solicit(entry, None, now, solicitations)
            else:
                self.stats.failed += 1
                failures.append(Failure(entry.ip, self._delete(entry)))
        elif state is _REACHABLE:
            self._set_state(entry, _STALE, now + cfg.stale_timeout)
        elif state is _STALE:
            self.stats.expired += 1
            self._delete(entry)
        else:
            if state is _DELAY:
                entry.state = _PROBE
                entry.probes_sent = 0
            if entry.probes_sent < cfg.max_unicast_solicit:
                self._solicit(entry, entry.mac, now, solicitations)
            else:
                self.stats.failed += 1
                failures.append(Failure(entry.ip, self._delete(entry)))

    def _solicit(
        self,
        entry: _Entry[P],
        unicast_mac: EthernetAddress | None,
        now: float,
        solicitations: list[Solicitation],
    ) -> None:
        entry.probes_sent += 1
        self.stats.solicitations_sent += 1
        solicitations.append(Solicitation(entry.ip, unicast_mac))
        self._schedule(entry, now + self.config.retrans_time)

    def _create(
        self, ip: NeighborAddress, state: NeighborState, mac: EthernetAddress | None, now: float
    ) -> _Entry[P] | None:
        if len(self._entries) >= self.config.max_entries:
            if not self._stale:
                return None  # only busy entries: refuse rather than disturb them
            victim = self._entries[next(iter(self._stale))]
            self._delete(victim)  # STALE entries have no queued packets
            self.stats.evicted += 1
        # INCOMPLETE: solicit at once; STALE: garbage-collect if never used.
        deadline = now if state is _INCOMPLETE else now + self.config.stale_timeout
        entry: _Entry[P] = _Entry(ip, state, deadline, mac)
        self._entries[ip] = entry
        if state is _STALE:
            self._stale[ip] = None
        self.stats.entries = len(self._entries)
        self._schedule(entry, deadline)
        return entry

    def _delete(self, entry: _Entry[P]) -> list[P]:
        entry.alive = False  # its heap items are dropped lazily
        del self._entries[entry.ip]
        self._stale.pop(entry.ip, None)
        self.stats.entries = len(self._entries)
        packets = list(entry.pending)
        entry.pending.clear()
        self._pending_total -= len(packets)
        return packets

    def _enqueue(self, entry: _Entry[P], packet: P) -> bool:
        cfg = self.config
        pending = entry.pending
        while pending and (
            len(pending) >= cfg.max_pending_per_neighbor
            or self._pending_total >= cfg.max_pending_total
        ):
            pending.popleft()  # keep the newest (RFC 4861 §7.2.2)
            self._pending_total -= 1
            self.stats.pending_dropped += 1
        if self._pending_total >= cfg.max_pending_total:
            # Other neighbours hold the whole budget: this packet is the one to go.
            self.stats.pending_dropped += 1
            return False
        pending.append(packet)
        self._pending_total += 1
        return True

    def _release(self, entry: _Entry[P], now: float) -> list[P]:
        """Hand back the queued packets of a just-resolved entry."""
        packets = list(entry.pending)
        entry.pending.clear()
        self._pending_total -= len(packets)
        if packets and entry.state is _STALE:
            # The caller sends them now: that is a use of a STALE entry (§7.3.3).
            self._set_state(entry, _DELAY, now + self.config.delay_first_probe_time)
        return packets

    def _set_state(self, entry: _Entry[P], state: NeighborState, deadline: float) -> None:
        if entry.state is _STALE:
            del self._stale[entry.ip]
        if state is _STALE:
            self._stale[entry.ip] = None  # (re)inserted last: most recently stale
        entry.state = state
        self._schedule(entry, deadline)

    def _schedule(self, entry: _Entry[P], deadline: float) -> None:
        entry.deadline = deadline
        if entry.queued_at is None or deadline < entry.queued_at:
            # A later deadline keeps the earlier heap item; poll_at() re-files it.
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, entry))
            entry.queued_at = deadline
            if len(self._heap) > 2 * len(self._entries) + 64:
                self._compact()

    def _compact(self) -> None:
        """Drop superseded heap items: one item per live entry, at its deadline."""
        heap = []
        for entry in self._entries.values():
            self._seq += 1
            heap.append((entry.deadline, self._seq, entry))
            entry.queued_at = entry.deadline
        heapq.heapify(heap)
        self._heap = heap
