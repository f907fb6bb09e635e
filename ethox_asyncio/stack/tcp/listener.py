"""A listening TCP endpoint: SYN queue, accept queue and their bounds (Linux semantics).

Contract:
- :meth:`TcpListener.on_syn` takes a segment addressed to the listening port for
  which no connection exists. Only a SYN without ACK, RST or FIN opens a
  connection (Linux ``tcp_rcv_state_process`` LISTEN: RST → drop; ACK → the
  caller answers with :func:`~.segment.reset_for`; SYN+FIN → drop). It returns
  the new :class:`~.connection.TcpConnection` in SYN-RECEIVED (its SYN-ACK is due
  from ``output``), which the glue adds to its four-tuple table, or ``None``
  when the segment is dropped (counted in :attr:`stats`).
- Bounds, as Linux without SYN cookies: a SYN is dropped when the accept queue
  is full (``ListenOverflows``) or the SYN queue holds ``min(syn_backlog,
  backlog)`` half-open connections (``ListenDrops``). "Full" is Linux's
  ``sk_acceptq_is_full``: more than ``backlog`` entries.
- When a half-open connection completes the handshake it moves to the accept
  queue and ``(EV_ACCEPT, listener, connection)`` is appended to ``events``. If
  the accept queue is full then, the final ACK is dropped and the connection
  stays in SYN-RECEIVED (its SYN-ACK timer keeps running, the client's
  retransmission may succeed later), as Linux does with
  ``net.ipv4.tcp_abort_on_overflow = 0``.
- Connections made here start with reading paused: data that arrives before the
  application takes the connection is held in it (and the window shrinks).
  :meth:`accept` pops the oldest established connection; the glue calls
  ``conn.set_reading(True)`` once its protocol can receive.
- A half-open connection that dies (RST, SYN-ACK retries exhausted, ICMP) leaves
  the SYN queue by itself, silently. One that dies after its ``EV_ACCEPT`` stays
  in the accept queue until :meth:`accept` returns it (Linux does the same; the
  application then gets its ``EV_CLOSED``, e.g. ECONNRESET).
- :meth:`close` aborts every connection not yet accepted (RST to the peer) and
  refuses further SYNs.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from .config import TcpConfig
from .connection import EV_ACCEPT, TcpConnection
from .segment import ACK, FIN, RST, SYN, Segment

__all__ = ["TcpListener"]

IsnFunction = Callable[[int, int, int, int, float], int]


class TcpListener:
    """The LISTEN state of one local port (RFC 9293 §3.10.7.2)."""

    __slots__ = ("_accept_queue", "_isn", "_syn_queue", "backlog", "closed", "config",
                 "events", "local_port", "owner", "stats")

    def __init__(self, config: TcpConfig, *, local_port: int, backlog: int,
                 events: deque[tuple[str, Any, Any]], isn: IsnFunction | Any,
                 owner: object = None, stats: Counter[str] | None = None) -> None:
        self.config = config
        self.local_port = local_port
        self.backlog = backlog if backlog > 0 else 0
        self.events = events
        # An IsnGenerator or its bound ``isn`` method (any such callable).
        self._isn: IsnFunction = isn.isn if hasattr(isn, "isn") else isn
        self.owner = owner
        # The interface's counters when given (netstat -s), shared with every child.
        self.stats: Counter[str] = Counter() if stats is None else stats
        self.closed = False
        self._syn_queue: dict[TcpConnection, None] = {}  # insertion-ordered set
        self._accept_queue: deque[TcpConnection] = deque()

    def __repr__(self) -> str:
        return (f"<TcpListener :{self.local_port} syn={len(self._syn_queue)} "
                f"accept={len(self._accept_queue)}/{self.backlog}>")

    @property
    def syn_queue_len(self) -> int:
        return len(self._syn_queue)

    @property
    def accept_queue_len(self) -> int:
        return len(self._accept_queue)

    def on_syn(self, seg: Segment, local_addr: int, remote_addr: int, remote_port: int,
               mss_limit: int, now: float) -> TcpConnection | None:
        """A segment for this port with no connection: maybe a new one (module contract)."""
        flags = seg.flags
        if self.closed:
            self.stats["listen_closed_drop"] += 1
            return None
        if flags & RST:
            self.stats["listen_rst_drop"] += 1
            return None
        if flags & ACK:
            self.stats["listen_ack_reset"] += 1  # the glue sends reset_for(seg)
            return None
        if not flags & SYN:
            self.stats["listen_no_syn_drop"] += 1
            return None
        if flags & FIN:
            self.stats["listen_syn_fin_drop"] += 1
            return None
        if len(self._accept_queue) > self.backlog:
            self.stats["ListenOverflows"] += 1
            self.stats["ListenDrops"] += 1
            return None
        if len(self._syn_queue) >= min(self.config.syn_backlog, max(self.backlog, 1)):
            self.stats["ListenDrops"] += 1
            self.stats["syn_queue_full"] += 1
            return None
        isn = self._isn
        iss = isn(local_addr, self.local_port, remote_addr, remote_port, now)
        # A timestamp offset per four-tuple that says nothing about our clock
        # (RFC 7323 §7.1); derived from the same keyed hash with the roles swapped.
        ts_offset = isn(remote_addr, remote_port, local_addr, self.local_port, 0.0)
        conn = TcpConnection(self.config, local_port=self.local_port, remote_port=remote_port,
                             iss=iss, mss_limit=mss_limit, now=now, events=self.events,
                             ts_offset=ts_offset, owner=self.owner, stats=self.stats)
        conn._listener = self
        conn._reading = False
        conn.accept(seg, now)
        self._syn_queue[conn] = None
        self.stats["passive_opens"] += 1
        return conn

    def accept(self) -> TcpConnection | None:
        """Pop the oldest established, not yet accepted connection."""
        if not self._accept_queue:
            return None
        conn = self._accept_queue.popleft()
        conn._listener = None
        return conn

    def close(self, now: float = 0.0) -> None:
        """Stop listening: abort (RST) every connection not yet accepted."""
        self.closed = True
        pending = list(self._syn_queue) + list(self._accept_queue)
        self._syn_queue.clear()
        self._accept_queue.clear()
        for conn in pending:
            conn._listener = None
            conn.abort(now)

    # -- hooks called by the connections (tcb.ListenerHooks) ---------------------------

    def _child_established(self, conn: TcpConnection, now: float) -> bool:
        if len(self._accept_queue) > self.backlog:
            self.stats["ListenOverflows"] += 1
            return False
        self._syn_queue.pop(conn, None)
        self._accept_queue.append(conn)
        self.events.append((EV_ACCEPT, self, conn))
        return True

    def _child_closed(self, conn: TcpConnection) -> None:
        # A half-open child is forgotten. An announced one (EV_ACCEPT) stays in the
        # accept queue even dead, as in Linux: accept() hands it over and the
        # application sees its EV_CLOSED (e.g. ECONNRESET).
        self._syn_queue.pop(conn, None)
