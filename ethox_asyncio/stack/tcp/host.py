"""TCP over both IP families: the connection table, listeners, ports and resets.

Contract:
- One :class:`TcpHost` per interface, shared by :class:`~..ipv4.Ipv4Host` and
  :class:`~..ipv6.Ipv6Host` (as the UDP table is). The IP layer hands it every TCP
  segment for one of our addresses with :meth:`ingress` (addresses as ints, the
  family, the checksum capability); it verifies the checksum (RFC 9293 §3.1,
  unless the device vouched for it), parses (:meth:`Segment.parse`), and
  demultiplexes in O(1): the connection of the exact four-tuple, else the listener
  of the port on that address, else on the wildcard address. Malformed segments
  are dropped and counted (``tcp_drop_<reason>``), never raised.
- The setup path: a bare SYN (no ACK, RST, FIN) that the interface's hot branch
  brings to :meth:`ingress_known` for no connection goes straight to the listener
  of its port (:meth:`_syn_known`) once the IP layer's own predicate accepts the
  addresses (``accepts_unicast``: our unicast address, a source that is a single
  host, RFC 1122 §3.2.1.3, §4.2.3.10), the checksum verifies and the segment
  parses — the outcome :meth:`ingress` would reach, without Ethernet/IP header
  objects or ``ipaddress`` objects. Anything else (no listener, addresses the IP
  layer refuses, other flags) goes back to the general path, which answers or
  drops and counts it (tests/stack/tcp/test_syn_fast_path.py: twins).
- A segment for no connection and no listener, or an ACK to a listener, is
  answered with a RST (RFC 9293 §3.10.7.1) through the IP layer's answer path
  (rules of :func:`reset_for`: never a RST for a RST; segments to a broadcast or
  multicast address never reach TCP). Resets are not rate limited, as in Linux.
- A new SYN on a TIME-WAIT four-tuple goes to the listener when the connection
  accepts it (RFC 6191, :meth:`TcpConnection.tw_accepts_syn`), else to the
  TIME-WAIT connection (which answers with an ACK).
- User calls: :meth:`connect` (active open, ephemeral port per RFC 6056
  Algorithm 4 when ``local_port`` is 0), :meth:`listen` (``bind`` conflicts raise
  ``OSError(EADDRINUSE)``; port 0 picks one), :meth:`close_listener`. After any
  call on a connection the caller marks it with :meth:`touch` so :meth:`egress`
  collects its output.
- :meth:`egress` collects the segments of every connection that has something to
  send (touched, received a segment, or whose timer ran) and sends each through
  the family's IP layer: checksum computed in software, or — ``checksum_offload``,
  a virtio-net device — only the pseudo-header sum, the loop marking the frame
  NEEDS_CSUM with :func:`partial_checksum_span`. Segments are built on the IP
  layer's :class:`~..path.FramePath` for the connection (one route and neighbour
  lookup per connection and call): the headers are written into one new buffer
  and the payload — a view of the application's bytes in the send buffer — is
  queued behind it by reference, so a payload byte is first copied by the device.
  With ``tso`` (the device segments) connections send super-segments
  (``tso_max``, sender.py) that leave with their ``gso_size``. While the next hop
  is unresolved, whole packets (super-segments cut to the MSS) go to the IP layer's
  queue.
- Deadlines are kept incrementally (DESIGN.md "Timers are data"): a heap of
  ``(at, seq, connection)`` with lazy invalidation. Every connection the host
  touched (ingress, a user call marked by :meth:`touch`, a timer) is flushed by the
  next :meth:`egress`, which re-reads its ``poll_at()`` once and pushes an entry
  only when the deadline moved *earlier* than the one already filed; a deadline
  that moved later (the common case: every ACK restarts the RTO, RFC 6298 §5.3) is
  re-filed when its old entry reaches the top. So each connection has at most one
  live entry, whose time is never after its true deadline, and :meth:`poll_at` is
  exact: O(1) plus O(log n) per re-filed or stale entry — no scan of the
  connections (10 000 idle ones cost nothing per call). ``poll_at()`` is 0.0 while
  a connection waits for its flush.
- Events ``(kind, connection|listener, arg)`` from :mod:`.connection` go to the
  interface's event queue; finished connections leave the table on their own.
- ICMP errors quoting one of our segments reach the connection through
  :meth:`icmp_error` (RFC 5927: the connection checks the sequence number).
- Path MTU per destination (RFC 1191 §5-6, RFC 8201 §4-5): a too-big message that a
  connection accepts sets the destination's MSS limit for ``PMTU_EXPIRES`` (600 s,
  RFC 8201's recommended 10 minutes, Linux ``mtu_expires``); it lowers every
  connection to that destination, and connections opened to it meanwhile start at
  it (their advertised MSS too, as Linux's route MTU gives it). When it expires the
  connections it limited go back to the interface's MSS (RFC 1191 §6.3: a larger
  PMTU is tried again; a path still small says so again). Only a message that lowers
  the limit walks the connections, so a flood of equal ones costs O(1) each; at most
  ``PMTU_CACHE_MAX`` destinations are kept (the oldest is forgotten first).

Sans-IO: never reads a clock, never does I/O.
"""

from __future__ import annotations

import errno
import heapq
import struct
from collections import Counter, deque
from typing import Any, Protocol

from ..path import FramePath, Payload, start_frame
from ..wire.checksum import ChecksumCaps, checksum, fold, ones_sum, pseudo_header, verify
from ..wire.errors import WireError
from ..wire.ip import IpProtocol
from ..wire.speedups import TcpFrame, compiled
from .config import TcpConfig
from .connection import TcpConnection
from .isn import IsnGenerator
from .listener import TcpListener
from .ports import EphemeralPorts
from .segment import (
    ACK,
    ALIGNED_TS_WORD,
    FIN,
    HEADER_TS,
    HEADER_TS_LEN,
    PSH,
    RST,
    SYN,
    Segment,
    reset_for,
)
from .state import TcpState

__all__ = ["TcpHost", "TcpSender", "complete_checksum", "partial_checksum_span"]

_CHECKSUM = struct.Struct("!H")
IPV4_TCP_MSS_OVERHEAD = 40  # IPv4 + TCP headers without options
IPV6_TCP_MSS_OVERHEAD = 60
PMTU_EXPIRES = 600.0  # seconds a learned path MTU holds (RFC 8201 §4, Linux mtu_expires)
PMTU_CACHE_MAX = 4096  # destinations whose path MTU is remembered
PMTU_FLOOR_IPV4 = 552  # Linux net.ipv4.route.min_pmtu
PMTU_FLOOR_IPV6 = 1280  # RFC 8200 §5: the IPv6 minimum link MTU
# The payload of a TSO super-segment: what the 16-bit IPv6 payload length (and the
# IPv4 total length) can carry behind the largest TCP header (60) and IPv4 header.
TSO_MAX_PAYLOAD = 0xFFFF - 60 - 20

_Key = tuple[int, int, int, int, int]  # family, local addr, local port, remote addr, port
_ESTABLISHED = TcpState.ESTABLISHED
_SYN_SENT = TcpState.SYN_SENT
_CLOSED = TcpState.CLOSED
_TIME_WAIT = TcpState.TIME_WAIT
_CONTROL = SYN | ACK | RST | FIN  # a bare SYN: these & flags == SYN


class TcpSender(Protocol):
    """What the host needs of an IP layer: send one TCP segment, whole or on a frame
    path (raising OSError), or a reset (never raising)."""

    def send_tcp(self, src: int, dst: int, segment: bytes, now: float) -> None: ...
    def path(self, src: int, dst: int, protocol: int, now: float) -> FramePath | None: ...
    def send_on(self, path: FramePath, frame: bytearray, payload: Payload,
                gso_size: int = 0) -> None: ...
    def answer_tcp(self, src: int, dst: int, segment: bytes, now: float) -> bool: ...
    def accepts_unicast(self, src: int, dst: int) -> bool: ...


class TcpHost:
    """See the module contract."""

    def __init__(self, config: TcpConfig, *, secret: bytes, mtu: int,
                 events: deque[Any], stats: Counter[str],
                 checksum_offload: bool = False, tso: bool = False) -> None:
        self.config = config
        # The device completes TCP checksums (virtio-net NEEDS_CSUM): emit only the
        # pseudo-header sum; the loop marks such frames with partial_checksum_span().
        self.checksum_offload = checksum_offload
        # The device also segments (TSO, which needs the checksum offload): every
        # connection may send super-segments of up to this many payload bytes.
        self.tso_max = TSO_MAX_PAYLOAD if tso and checksum_offload else 0
        self.events = events
        self.stats = stats
        self.mtu = mtu
        self.isn = IsnGenerator(secret[:16])
        self.ports = EphemeralPorts(secret[16:32] if len(secret) >= 32 else secret[:16])
        self.ip: dict[int, TcpSender] = {}
        self.connections: dict[_Key, TcpConnection] = {}
        self.listeners: dict[tuple[int, int, int], TcpListener] = {}  # family, addr, port
        self._keys: dict[TcpConnection, _Key] = {}
        self._dirty: dict[TcpConnection, None] = {}
        # Deadlines (module contract): (at, seq, connection); an entry is live while the
        # connection's _timer_seq is its seq.
        self._timers: list[tuple[float, int, TcpConnection]] = []
        self._timer_seq = 0
        self._live_timers = 0
        # Path MTU per destination (module contract): (family, remote address) ->
        # (MSS limit, expiry time), in the order learnt; the earliest expiry.
        self._pmtu: dict[tuple[int, int], tuple[int, float]] = {}
        self._pmtu_next = float("inf")

    # --- user calls -----------------------------------------------------------------

    def connect(self, family: int, local_addr: int, local_port: int, remote_addr: int,
                remote_port: int, now: float, owner: object = None) -> TcpConnection:
        """Active open (RFC 9293 §3.10.1): SYN-SENT; the SYN goes out at the next egress."""
        if local_port == 0:
            local_port = self.ports.allocate(
                local_addr, remote_addr, remote_port,
                lambda port: (family, local_addr, port, remote_addr, remote_port)
                in self.connections or (family, local_addr, port) in self.listeners
                or (family, 0, port) in self.listeners)
        key = (family, local_addr, local_port, remote_addr, remote_port)
        if key in self.connections:
            raise OSError(errno.EADDRINUSE, f"four-tuple already in use (local port "
                                            f"{local_port})")
        conn = TcpConnection(
            self.config, local_port=local_port, remote_port=remote_port,
            iss=self.isn.isn(local_addr, local_port, remote_addr, remote_port, now),
            mss_limit=self._mss_limit(family, remote_addr, now), now=now, events=self.events,
            ts_offset=self.isn.isn(remote_addr, remote_port, local_addr, local_port, 0.0),
            owner=owner, stats=self.stats)
        self._add(key, conn)
        conn.open(now)
        self.touch(conn)
        return conn

    def listen(self, family: int, local_addr: int, port: int, backlog: int,
               owner: object = None) -> TcpListener:
        """LISTEN on ``local_addr`` (0: every address of the family) and ``port``."""
        if port == 0:
            port = self.ports.allocate_listening(
                lambda p: self._listen_conflict(family, local_addr, p))
        elif self._listen_conflict(family, local_addr, port):
            raise OSError(errno.EADDRINUSE, f"address already in use: port {port}")
        listener = TcpListener(self.config, local_port=port, backlog=backlog,
                               events=self.events, isn=self.isn, owner=owner,
                               stats=self.stats)
        self.listeners[(family, local_addr, port)] = listener
        return listener

    def close_listener(self, listener: TcpListener, now: float) -> None:
        for key, value in list(self.listeners.items()):
            if value is listener:
                del self.listeners[key]
        pending = list(listener._syn_queue) + list(listener._accept_queue)
        listener.close(now)
        for conn in pending:
            self.touch(conn)

    def touch(self, conn: TcpConnection) -> None:
        """``conn`` may have something to send (after a user call)."""
        self._dirty[conn] = None

    def four_tuple(self, conn: TcpConnection) -> tuple[int, int, int, int, int]:
        """``(family, local_addr, local_port, remote_addr, remote_port)`` of ``conn``
        (KeyError once it left the table)."""
        return self._keys[conn]

    # --- from the IP layer ----------------------------------------------------------

    def ingress(self, family: int, src: int, dst: int, data: memoryview | bytes,
                caps: ChecksumCaps, now: float) -> None:
        """One TCP segment to ``dst`` (one of our unicast addresses)."""
        if caps.verify and not verify(data, pseudo_header(src, dst, IpProtocol.TCP,
                                                          len(data))):
            self.stats["tcp_drop_bad_checksum"] += 1
            return
        seg = self._parse(data)
        if seg is None:
            return
        key = (family, dst, seg.dst_port, src, seg.src_port)
        conn = self.connections.get(key)
        if conn is not None:
            self._to_connection(conn, key, seg, now)
            return
        listener = self._listener_for(family, dst, seg.dst_port)
        if listener is not None:
            if self._syn_to_listener(listener, key, seg, now):
                return
            if not seg.flags & 0x10:  # not an ACK: the listener dropped it silently
                return
        self.stats["tcp_no_socket"] += 1
        self._reset(family, dst, src, seg, now)

    def ingress_known(self, parsed: TcpFrame, now: float) -> bool:
        """The hot path (module contract): one TCP segment to ``dst`` from a peer we
        already heard from — the exact four-tuple of a connection past SYN-SENT, whose
        first segment passed every check of the IP layer (a unicast address of ours, a
        source that is a single host: RFC 1122 §3.2.1.3, §4.2.3.10), so the caller may
        skip them. False, with nothing done, for any other segment: the caller takes
        the general path. In-order data and ACKs of ESTABLISHED connections with the
        usual header (no options or ``NOP NOP TS``) go to header prediction
        (:meth:`TcpConnection._predict`) as plain ints, without a :class:`Segment`.
        ``parsed`` is the header decode of :func:`~..interface.parse_tcp_frame`
        (compiled or its pure-Python reference, wire/speedups.py), the checksum
        already checked (counted here, for a connection's segment only)."""
        (key, seq, ack, flags, window, ts_val, ts_ecr, header_len, data, payload,
         checksum_ok) = parsed
        conn = self.connections.get(key)
        if conn is None:
            # The addresses from the key; what is left to verify: only a bad checksum.
            return flags & _CONTROL == SYN and self._syn_known(
                key[0], key[3], key[1], key, data, not checksum_ok, now)
        if conn._state is _SYN_SENT or conn._state is _CLOSED:
            return False
        if not checksum_ok:
            self.stats["tcp_drop_bad_checksum"] += 1
            return True
        if header_len:
            if conn._state is _ESTABLISHED and conn._predict(
                    seq, ack, flags, window, ts_val, ts_ecr, payload, now, None):
                self._dirty[conn] = None
                return True
            # The fields decoded are the whole segment: no second parse.
            seg = Segment(key[4], key[2], seq, ack, flags, window, payload, None, None,
                          False, (), ts_val, ts_ecr)
            self._to_connection(conn, key, seg, now, conn._state is _ESTABLISHED)
            return True
        full = self._parse(data)
        if full is not None:
            self._to_connection(conn, key, full, now)
        return True

    def _parse(self, data: memoryview | bytes) -> Segment | None:
        """The segment, or None with the malformation counted (``tcp_drop_<reason>``)."""
        try:
            return Segment.parse(data)
        except WireError as error:
            self.stats[f"tcp_drop_{type(error).__name__}"] += 1
            return None

    def _to_connection(self, conn: TcpConnection, key: _Key, seg: Segment, now: float,
                       tried: bool = False) -> None:
        if conn._state is _TIME_WAIT and seg.flags & SYN and conn.tw_accepts_syn(seg):
            listener = self._listener_for(key[0], key[1], seg.dst_port)
            if listener is not None:  # RFC 6191: reuse the four-tuple
                self._remove(conn)
                self._syn_to_listener(listener, key, seg, now)
                return
        if tried:
            conn._on_segment(seg, now)  # header prediction declined it already
        else:
            conn.on_segment(seg, now)
        self._dirty[conn] = None

    def icmp_error(self, family: int, local_addr: int, local_port: int, remote_addr: int,
                   remote_port: int, seq: int | None, error: OSError, hard: bool,
                   now: float, *, mtu: int | None = None) -> bool:
        """An ICMP error quoting a segment we sent; True if a connection took it.

        With ``mtu`` (path MTU discovery, RFC 1191 / RFC 8201) an error the quoted
        connection accepts (its sequence number in flight, RFC 5927 §4.1) lowers the
        MSS of every connection to that destination: the path MTU belongs to the
        path, not to one connection. It is floored at 552 bytes for IPv4 (Linux
        ``min_pmtu``; RFC 1191 allows 68) and 1280 for IPv6 (RFC 8200 §5), so a forged
        tiny MTU cannot shrink segments to nothing, and it is never raised here."""
        conn = self.connections.get((family, local_addr, local_port, remote_addr,
                                     remote_port))
        if conn is None or seq is None:
            return False
        accepted = conn.on_icmp_error(error, seq, hard, now)
        self._after(conn)
        if mtu is not None and accepted:
            floor = PMTU_FLOOR_IPV4 if family == 4 else PMTU_FLOOR_IPV6
            overhead = IPV4_TCP_MSS_OVERHEAD if family == 4 else IPV6_TCP_MSS_OVERHEAD
            mss_limit = (mtu if mtu > floor else floor) - overhead
            self.stats["tcp_pmtu_messages"] += 1
            self._learn_path_mtu(family, remote_addr, mss_limit, now)
        return True

    # --- timers and output ----------------------------------------------------------

    def poll_at(self) -> float | None:
        """The earliest deadline of any connection (0.0: one waits for its flush)."""
        if self._dirty:
            return 0.0
        return self._top()

    def _top(self) -> float | None:
        """The time of the first live heap entry, re-filed until it is its connection's
        true deadline (module contract); stale entries are dropped on the way."""
        heap = self._timers
        while heap:
            at, seq, conn = heap[0]
            if conn._timer_seq != seq:
                heapq.heappop(heap)  # superseded, or the connection left
                continue
            true = conn.poll_at()
            if true == at:
                return at
            if true is None:
                heapq.heappop(heap)
                conn._timer_seq = -1
                self._live_timers -= 1
                continue
            # Moved (later, or earlier while the connection was not flushed): re-file.
            self._timer_seq += 1
            conn._timer_seq = self._timer_seq
            conn._timer_at = true
            heapq.heapreplace(heap, (true, self._timer_seq, conn))
        return None

    def egress(self, now: float) -> None:
        """Run due timers and send what every connection has to send."""
        if now >= self._pmtu_next:
            self._expire_path_mtus(now)
        heap = self._timers
        while heap and heap[0][0] <= now:
            at = self._top()
            if at is None or at > now:
                break
            conn = heapq.heappop(heap)[2]
            conn._timer_seq = -1
            self._live_timers -= 1
            conn.on_timer(now)
            self._dirty[conn] = None  # _settle files its next deadline
        # One path lookup per destination and egress (path.py: a path is good for the
        # frames of one egress call), however many connections go there.
        paths: dict[tuple[int, int, int], FramePath] = {}
        while self._dirty:
            conn = next(iter(self._dirty))
            del self._dirty[conn]
            self._flush(conn, now, paths)

    def _flush(self, conn: TcpConnection, now: float,
               paths: dict[tuple[int, int, int], FramePath] | None = None) -> None:
        key = self._keys.get(conn)
        if key is None:
            return
        family, local_addr, local_port, remote_addr, remote_port = key
        segments = conn.output(now, 1 << 30)
        if segments:
            ip = self.ip[family]
            route_key = (family, local_addr, remote_addr)
            path = paths.get(route_key) if paths is not None else None
            try:
                if path is None:
                    path = ip.path(local_addr, remote_addr, IpProtocol.TCP, now)
                    if path is not None and paths is not None:
                        paths[route_key] = path
            except OSError as error:  # no route: the connection retries on its timer
                self._count_send_failed(error, len(segments))
            else:
                partial = self.checksum_offload
                for seg in segments:
                    seg.src_port, seg.dst_port = local_port, remote_port
                    try:
                        if path is None:  # the IP layer queues it for the neighbour
                            for piece in _split(seg):  # whole packets within the MTU
                                ip.send_tcp(local_addr, remote_addr,
                                            _emit(piece, local_addr, remote_addr, partial),
                                            now)
                        else:
                            ip.send_on(path, _frame(seg, path, partial), seg.payload,
                                       seg.gso_size)
                    except OSError as error:
                        self._count_send_failed(error, 1)
        self._settle(conn)

    def _count_send_failed(self, error: OSError, count: int) -> None:
        self.stats[f"tcp_send_failed_{errno.errorcode.get(error.errno or 0, '?')}"] += count

    # --- internals ------------------------------------------------------------------

    def _after(self, conn: TcpConnection) -> None:
        self._dirty[conn] = None

    def _settle(self, conn: TcpConnection) -> None:
        if conn.finished:
            self._remove(conn)
            return
        at = conn.poll_at()
        if at is None:
            return  # a live entry stays: dropped lazily when it reaches the top
        if conn._timer_seq < 0:
            self._live_timers += 1
        elif at >= conn._timer_at:
            return  # later (or the same): re-filed when the old entry reaches the top
        self._timer_seq += 1
        conn._timer_seq = self._timer_seq
        conn._timer_at = at
        heap = self._timers
        heapq.heappush(heap, (at, self._timer_seq, conn))
        if len(heap) > 2 * self._live_timers + 64:
            # Deadlines that kept moving earlier left stale entries: keep the live ones.
            heap[:] = [entry for entry in heap if entry[2]._timer_seq == entry[1]]
            heapq.heapify(heap)

    def _add(self, key: _Key, conn: TcpConnection) -> None:
        conn.tso_max = self.tso_max
        self.connections[key] = conn
        self._keys[conn] = key

    def _remove(self, conn: TcpConnection) -> None:
        key = self._keys.pop(conn, None)
        if key is not None and self.connections.get(key) is conn:
            del self.connections[key]
        if conn._timer_seq >= 0:
            conn._timer_seq = -1  # its heap entry is stale now
            self._live_timers -= 1
        self._dirty.pop(conn, None)

    def _syn_to_listener(self, listener: TcpListener, key: _Key, seg: Segment,
                         now: float) -> bool:
        family, local_addr, _, remote_addr, remote_port = key
        conn = listener.on_syn(seg, local_addr, remote_addr, remote_port,
                               self._mss_limit(family, remote_addr, now), now)
        if conn is None:
            return False
        self._add(key, conn)
        self._dirty[conn] = None
        return True

    def _syn_known(self, family: int, src: int, dst: int, key: _Key, data: memoryview,
                   verify_checksum: bool, now: float) -> bool:
        """The setup path (module contract): a SYN (no ACK, RST, FIN) for no
        connection, from :meth:`ingress_known`. It goes to the listener of its port
        as :meth:`ingress` would take it — once the IP layer's own predicate accepts
        the addresses (:meth:`~..iphost.IpHost.accepts_unicast`: ``dst`` one of our
        unicast addresses, ``src`` a single host, RFC 1122 §3.2.1.3, §4.2.3.10),
        the checksum verifies and the segment parses. False, with nothing done,
        when there is no listener or the IP layer refuses the addresses: the
        general path then answers with its RST or drops and counts it."""
        listener = self._listener_for(family, dst, key[2])
        if listener is None or not self.ip[family].accepts_unicast(src, dst):
            return False
        if verify_checksum and not verify(data, pseudo_header(src, dst, IpProtocol.TCP,
                                                              len(data))):
            self.stats["tcp_drop_bad_checksum"] += 1
            return True
        seg = self._parse(data)
        if seg is not None:
            # Refused by the listener (queue full, closed): dropped and counted there, as
            # ingress drops a SYN the listener did not take (no ACK: no RST).
            self._syn_to_listener(listener, key, seg, now)
        return True

    def _listener_for(self, family: int, addr: int, port: int) -> TcpListener | None:
        listener = self.listeners.get((family, addr, port))
        if listener is None:
            listener = self.listeners.get((family, 0, port))
        return listener

    def _listen_conflict(self, family: int, addr: int, port: int) -> bool:
        if addr == 0:
            return any(f == family and p == port for f, _, p in self.listeners)
        return (family, addr, port) in self.listeners or (family, 0, port) in self.listeners

    def _mss_limit(self, family: int, remote: int | None = None, now: float = 0.0) -> int:
        """The interface's MSS limit, or the lower one learnt for ``remote``'s path and
        not expired at ``now``."""
        overhead = IPV4_TCP_MSS_OVERHEAD if family == 4 else IPV6_TCP_MSS_OVERHEAD
        limit = self.mtu - overhead
        if self._pmtu and remote is not None:
            learnt = self._pmtu.get((family, remote))
            if learnt is not None and learnt[1] > now and learnt[0] < limit:
                return learnt[0]
        return limit

    def _learn_path_mtu(self, family: int, remote: int, mss_limit: int, now: float) -> None:
        """A too-big message a connection accepted: the destination's MSS limit (module
        contract). RFC 8201 §5.2: a message never raises the estimate."""
        if mss_limit >= self._mss_limit(family):
            return
        dest = (family, remote)
        learnt = self._pmtu.get(dest)
        expires = now + PMTU_EXPIRES
        if learnt is not None and learnt[1] > now and learnt[0] <= mss_limit:
            if learnt[0] == mss_limit:
                self._pmtu[dest] = (mss_limit, expires)  # said again: it holds longer
            return
        self._pmtu.pop(dest, None)
        self._pmtu[dest] = (mss_limit, expires)
        if len(self._pmtu) > PMTU_CACHE_MAX:
            del self._pmtu[next(iter(self._pmtu))]  # the oldest
        if expires < self._pmtu_next:
            self._pmtu_next = expires
        for key, other in self.connections.items():
            if key[0] == family and key[3] == remote and other.on_path_mtu(mss_limit, now):
                self._after(other)

    def _expire_path_mtus(self, now: float) -> None:
        """RFC 1191 §6.3 / RFC 8201 §4: estimates older than ``PMTU_EXPIRES`` are
        dropped, and the connections to those destinations may use the interface's MSS
        again."""
        pmtu = self._pmtu
        expired = {dest for dest, (_, at) in pmtu.items() if at <= now}
        for dest in expired:
            del pmtu[dest]
        self._pmtu_next = min((at for _, at in pmtu.values()), default=float("inf"))
        if not expired:
            return
        full = {4: self._mss_limit(4), 6: self._mss_limit(6)}
        for key, conn in self.connections.items():
            if (key[0], key[3]) in expired and conn.on_path_mtu_expired(full[key[0]], now):
                self._after(conn)

    def _reset(self, family: int, local_addr: int, remote_addr: int, seg: Segment,
               now: float) -> None:
        """RFC 9293 §3.10.7.1: the RST answering a segment for no connection."""
        rst = reset_for(seg)
        if rst is None:
            return
        rst.src_port, rst.dst_port = seg.dst_port, seg.src_port
        if self.ip[family].answer_tcp(local_addr, remote_addr,
                                      _emit(rst, local_addr, remote_addr,
                                            self.checksum_offload), now):
            self.stats["tcp_rst_sent"] += 1


def _split(seg: Segment) -> list[Segment]:
    """A TSO super-segment as the segments the device would have cut it into (for the
    path that queues whole packets): ``gso_size`` bytes each, the same header and
    options, sequence numbers advanced, PSH and FIN only on the last (as Linux's
    tcp_gso_segment)."""
    size = seg.gso_size
    if not size:
        return [seg]
    payload = memoryview(seg.payload)
    pieces = []
    for start in range(0, len(payload), size):
        last = start + size >= len(payload)
        piece = Segment(seg.src_port, seg.dst_port, (seg.seq + start) & 0xFFFFFFFF, seg.ack,
                        seg.flags if last else seg.flags & ~(PSH | FIN), seg.window,
                        payload[start:start + size], None, None, False, seg.sack_blocks,
                        seg.ts_val, seg.ts_ecr)
        pieces.append(piece)
    return pieces


def _frame(seg: Segment, path: FramePath, partial: bool) -> bytearray:
    """The frame's headers on ``path`` with the TCP checksum filled in (software, over
    the payload too; RFC 9293 §3.1) or only the folded pseudo-header sum
    (``partial``); the payload itself stays where it is."""
    payload = seg.payload
    ts_val = seg.ts_val
    if ts_val is not None and seg.mss is None and seg.wscale is None \
            and not seg.sack_blocks and not seg.sack_permitted:
        # The hot path: every segment of an established connection with timestamps.
        return ts_frame(path.template, path.pseudo, partial, seg.src_port, seg.dst_port,
                        seg.seq, seg.ack, seg.flags, seg.window, ts_val, seg.ts_ecr, payload)
    offset = path.l4_offset
    header_len = seg.header_len
    frame = start_frame(path, header_len)
    seg.emit_header(frame, offset)
    pseudo = path.pseudo + header_len + len(payload)
    if partial:
        value = fold(pseudo)
    else:
        # The header is a whole number of 16-bit words, so the sums compose.
        value = checksum(memoryview(frame)[offset:], ones_sum(payload, pseudo))
    _CHECKSUM.pack_into(frame, offset + _TCP_CHECKSUM_OFFSET, value)
    return frame


def _py_ts_frame(template: bytes, pseudo: int, partial: bool, src_port: int, dst_port: int,
                 seq: int, ack: int, flags: int, window: int, ts_val: int,
                 ts_ecr: int | None, payload: Payload) -> bytearray:
    """The frame headers of a segment whose only option is the aligned timestamp (RFC
    7323 Appendix A), behind a path's ``template`` (``pseudo`` its pseudo-header sum
    without the length), written in one pack (the layout of Segment.emit_header); the
    checksum as :func:`_frame` fills it. Pure-Python reference of the compiled
    ``_speedups.ts_frame`` (wire/speedups.py)."""
    offset = len(template)
    frame = bytearray(offset + HEADER_TS_LEN)
    frame[:offset] = template
    pseudo += HEADER_TS_LEN + len(payload)
    value = pseudo % 0xFFFF or 0xFFFF  # fold(): pseudo is never 0
    HEADER_TS.pack_into(frame, offset, src_port, dst_port, seq & _MASK32, ack & _MASK32,
                        0x80, flags, window, value if partial else 0, 0, ALIGNED_TS_WORD,
                        ts_val, ts_ecr or 0)
    if not partial:
        value = checksum(memoryview(frame)[offset:], ones_sum(payload, pseudo))
        _CHECKSUM.pack_into(frame, offset + _TCP_CHECKSUM_OFFSET, value)
    return frame


# The implementation is chosen once, at import (wire/speedups.py).
ts_frame = compiled.ts_frame if compiled is not None else _py_ts_frame


def _emit(seg: Segment, src: int, dst: int, partial: bool) -> bytes:
    """Header + payload with the checksum filled in (software, RFC 9293 §3.1), or with
    only the folded pseudo-header sum when the device completes it (``partial``)."""
    header_len = seg.header_len
    payload = seg.payload
    buf = bytearray(header_len + len(payload))
    seg.emit_header(buf, 0)
    buf[header_len:] = payload
    pseudo = pseudo_header(src, dst, IpProtocol.TCP, len(buf))
    _CHECKSUM.pack_into(buf, 16, fold(pseudo) if partial else checksum(buf, pseudo))
    return bytes(buf)


_ETH_LEN = 14
_TCP_CHECKSUM_OFFSET = 16
_MASK32 = 0xFFFFFFFF


def partial_checksum_span(frame: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``(csum_start, csum_offset)`` of a TCP frame we emitted (Ethernet + IPv4 or
    IPv6 without extension headers, as this module sends them), else None: what a
    virtio-net NEEDS_CSUM header names so the device completes the checksum."""
    if len(frame) < _ETH_LEN + 40:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == 0x0800 and frame[_ETH_LEN + 9] == IpProtocol.TCP:
        return _ETH_LEN + (frame[_ETH_LEN] & 0x0F) * 4, _TCP_CHECKSUM_OFFSET
    if ethertype == 0x86DD and frame[_ETH_LEN + 6] == IpProtocol.TCP:
        return _ETH_LEN + 40, _TCP_CHECKSUM_OFFSET
    return None


def complete_checksum(frame: bytes, span: tuple[int, int]) -> bytes:
    """A copy of a partially checksummed frame with the checksum completed, as the
    device will send it (for captures: the pseudo-header sum is already in place)."""
    start, offset = span
    buf = bytearray(frame)
    segment = memoryview(buf)[start:]
    partial = _CHECKSUM.unpack_from(segment, offset)[0]
    _CHECKSUM.pack_into(segment, offset, 0)
    _CHECKSUM.pack_into(segment, offset, checksum(segment, partial))
    return bytes(buf)
