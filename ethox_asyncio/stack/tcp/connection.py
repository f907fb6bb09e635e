"""One TCP connection: the RFC 9293 state machine over the TCB, sans-IO.

Contract:
- Construct a :class:`TcpConnection` per four-tuple, then :meth:`~TcpConnection.open`
  (active, SYN-SENT) or :meth:`~TcpConnection.accept` (passive, from a listener,
  SYN-RECEIVED). Feed it every segment of its four-tuple with :meth:`on_segment`
  (checksum verified, options parsed: :class:`~.segment.Segment`), its deadline
  with :meth:`on_timer` when ``now >= poll_at()``, and the user calls (:meth:`send`,
  :meth:`shutdown`, :meth:`close`, :meth:`abort`, :meth:`consumed`,
  :meth:`set_reading`). After any of these, call :meth:`output` and send what it
  returns; :meth:`poll_at` is then the next deadline (``consumed`` returns whether
  an ACK, a window update, is now owed).
- Inbound segments go to one method per state (``_on_segment_<state>``); the
  shared checks are named after RFC 9293 §3.10.7.4's steps: PAWS (RFC 7323 §5.3),
  RST (second, with RFC 5961 §3), SYN (fourth, RFC 5961 §4 challenge ACK),
  sequence acceptability (first), ACK (fifth, RFC 5961 §5), text (seventh), FIN
  (eighth). Remote input never raises.
- Header prediction (RFC 9293 §3.10.7.4, Van Jacobson's fast path, Linux
  ``tcp_rcv_established``): in ESTABLISHED, in-order data and ACKs of new data with
  nothing unusual about them are handled by :meth:`TcpConnection._predict` in one
  flat pass, with the same outcome as the steps above (the ACK itself through the
  sender's ``_on_new_ack`` and ``_update_window``); everything else, and anything it
  is unsure of, takes the full path. The TCP host calls it with the header as plain
  ints (no :class:`~.segment.Segment`); ``header_prediction = False`` on a subclass
  turns it off (tests/stack/tcp/test_fast_path.py compares the two).
- Events ``(kind, connection, arg)`` are appended to ``events``: ``EV_ESTABLISHED``
  (active opens only; a passive connection is announced by its listener's
  ``EV_ACCEPT``), ``EV_DATA`` (bytes or a memoryview into the received frame —
  deliver it before the frame buffer is reused; it counts against the window
  until :meth:`consumed`), ``EV_EOF``, ``EV_SENT`` (int: bytes newly
  acknowledged), ``EV_CLOSED`` (None for an orderly close — entering TIME-WAIT,
  or CLOSED from LAST-ACK, FIN-WAIT-2 timeout or :meth:`abort` — else the
  exception: ``ConnectionRefusedError`` for a RST in SYN-SENT, a hard ICMP error
  in SYN-SENT as given, ``ConnectionResetError`` for a RST, ``BrokenPipeError``
  for a RST in CLOSE-WAIT (Linux ``tcp_reset``: EPIPE), ``TimeoutError`` when
  retries run out — or, as Linux reports it, the last soft ICMP error with the
  ``TimeoutError`` as its ``__cause__``). ``EV_CLOSED`` comes exactly once for
  every connection the application knows of: every active open, and a passive
  one after its ``EV_ACCEPT``; a passive connection that dies in SYN-RECEIVED
  is dropped silently (Linux drops the request socket).
- :attr:`finished` is true once the connection is CLOSED and has nothing left to
  send: the glue then removes it from its table. A connection in TIME-WAIT is
  not finished; when a SYN arrives for its four-tuple the glue asks
  :meth:`tw_accepts_syn` (RFC 6191) and, if true, drops it and hands the SYN to
  the listener.
- Timers (RFC 6298 RTO, delayed ACK, persist, keep-alive, TIME-WAIT 2·MSL,
  FIN-WAIT-2 for orphans) are the ``*_at`` attributes; :meth:`poll_at` is their
  minimum.
"""

from __future__ import annotations

import errno
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from .config import TcpConfig
from .segment import ACK, FIN, RST, SYN, URG, Payload, Segment
from .sender import Sender
from .state import SYNCHRONIZED, TcpState, TcpStateError, UserCall, check_call
from .tcb import (
    DEFAULT_MSS,
    EV_ACCEPT,
    EV_CLOSED,
    EV_DATA,
    EV_EOF,
    EV_ESTABLISHED,
    EV_SENT,
    HALF32,
    MASK32,
    MIN_SND_MSS,
)

__all__ = [
    "EV_ACCEPT",
    "EV_CLOSED",
    "EV_DATA",
    "EV_EOF",
    "EV_ESTABLISHED",
    "EV_SENT",
    "TcpConnection",
]

_S = TcpState
_NEED_RESET = frozenset({_S.SYN_RECEIVED, _S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2,
                         _S.CLOSE_WAIT})  # Linux tcp_need_reset; RFC 9293 §3.10.5 ABORT
_RST_MINUS_ONE = frozenset({_S.CLOSE_WAIT, _S.LAST_ACK, _S.CLOSING})  # Linux tcp_reset_check
_KEEPALIVE_STATES = frozenset({_S.ESTABLISHED, _S.CLOSE_WAIT, _S.FIN_WAIT_2})
_ACK_QUEUE_STATES = SYNCHRONIZED  # where an owed ACK is a plain ACK (not a SYN-ACK)
_ACK_QUEUE_LIMIT = 64  # ACKs built ahead for a batching caller; beyond, they coalesce
# Header prediction takes segments whose control bits are ACK (PSH aside) only.
_NOT_PREDICTED = FIN | SYN | RST | ACK | URG | 0xC0  # 0xC0: ECE, CWR (RFC 3168)
# The record header prediction hands the sender's methods when no Segment was parsed
# (they read its fields during the call only; the payload is cleared after it).
_SCRATCH = Segment(0, 0, 0, 0, ACK, 0)


class TcpConnection(Sender):
    """A TCP connection (see the module contract)."""

    # The host's bookkeeping (host.py): this connection's live entry in the deadline
    # heap (its seq, -1: none, and its time).
    __slots__ = ("_timer_at", "_timer_seq")

    def __init__(self, config: TcpConfig, *, local_port: int, remote_port: int, iss: int,
                 mss_limit: int, now: float, events: deque[tuple[str, Any, Any]],
                 ts_offset: int = 0, owner: object = None,
                 stats: Counter[str] | None = None) -> None:
        super().__init__(config, local_port=local_port, remote_port=remote_port, iss=iss,
                         mss_limit=mss_limit, now=now, events=events, ts_offset=ts_offset,
                         owner=owner, stats=stats)
        self._timer_seq = -1
        self._timer_at = 0.0

    def __repr__(self) -> str:
        return (f"<TcpConnection {self.local_port}>{self.remote_port} {self._state.name} "
                f"una={self.snd_una} nxt={self.snd_nxt} max={self.snd_max} "
                f"rcv_nxt={self.rcv_nxt}>")

    # -- properties ----------------------------------------------------------------------

    @property
    def state(self) -> TcpState:
        return self._state

    @property
    def send_buffered(self) -> int:
        """Bytes written and not yet acknowledged (unsent + in flight)."""
        return len(self._sndbuf)

    @property
    def receive_held(self) -> int:
        """In-order bytes held while not reading (the window shrinks by as much)."""
        return self._held_len

    @property
    def finished(self) -> bool:
        """CLOSED with nothing more to send: remove the connection from the table."""
        return self._state is _S.CLOSED and not self._rst_pending and not self._ctl_out

    # -- opening ---------------------------------------------------------------------------

    def open(self, now: float) -> None:
        """Active open (RFC 9293 §3.10.1): queue the SYN, enter SYN-SENT."""
        if self.snd_max != self.iss or self._passive:
            raise TcpStateError(errno.EISCONN, UserCall.OPEN, self._state)
        check_call(UserCall.OPEN, self._state)
        self._state = _S.SYN_SENT
        self.snd_nxt = self.iss
        self._last_recv_at = now

    def accept(self, syn: Segment, now: float) -> None:
        """Passive open from a listener's SYN (RFC 9293 §3.10.7.2): SYN-RECEIVED, SYN-ACK due.

        Text on the SYN is not accepted (no TCP Fast Open): the peer resends it.
        """
        if self.snd_max != self.iss or self._passive:
            raise TcpStateError(errno.EISCONN, UserCall.OPEN, self._state)
        check_call(UserCall.OPEN, self._state)
        self._passive = True
        self.irs = syn.seq
        self.rcv_nxt = (syn.seq + 1) & MASK32
        self._negotiate(syn, now)
        self.snd_wnd = syn.window  # RFC 7323 §2.2: never scaled on a SYN
        self.max_snd_wnd = syn.window
        self.snd_wl1 = syn.seq
        self.snd_wl2 = self.iss
        self._state = _S.SYN_RECEIVED
        self.snd_nxt = self.iss
        self._last_recv_at = now

    def _negotiate(self, syn: Segment, now: float) -> None:
        """Options of the peer's SYN or SYN-ACK (RFC 9293 §3.7.1, RFC 7323 §2-3, RFC 2018)."""
        config = self.config
        mss = syn.mss if syn.mss is not None else DEFAULT_MSS
        self.peer_mss = mss if mss > MIN_SND_MSS else MIN_SND_MSS
        wscale = syn.wscale
        self.ws_ok = config.window_scaling and wscale is not None
        if self.ws_ok and wscale is not None:
            self.snd_wscale = wscale if wscale < 14 else 14  # RFC 7323 §2.3
            self.rcv_wscale = config.window_shift()
        else:
            self.snd_wscale = self.rcv_wscale = 0
        self.sack_ok = config.sack and syn.sack_permitted
        self.ts_ok = config.timestamps and syn.ts_val is not None
        if self.ts_ok and syn.ts_val is not None:
            self.ts_recent = syn.ts_val
            self.ts_recent_at = now
        self._set_mss_from_limit()
        window = self._recv_buffer if self._recv_buffer < 0xFFFF else 0xFFFF
        self.rcv_adv = (self.rcv_nxt + window) & MASK32

    # -- user calls --------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` (kept by reference when immutable) for transmission."""
        if self._state is _S.ESTABLISHED and not self._fin_queued:
            self._sndbuf.append(data)  # the common case, legal by the table
            return
        if self._fin_queued:
            raise TcpStateError(errno.EPIPE, UserCall.SEND, self._state)
        check_call(UserCall.SEND, self._state)
        self._sndbuf.append(data)

    def shutdown(self, now: float) -> None:
        """No more sending: FIN after the buffer drains (write_eof; RFC 9293 §3.10.4)."""
        check_call(UserCall.SHUTDOWN, self._state)
        if self._fin_queued:
            return  # already closing (Linux returns 0 for a repeated shutdown)
        state = self._state
        if state is _S.SYN_SENT:
            # RFC 9293 §3.10.4 CLOSE in SYN-SENT: delete the TCB.
            self._set_state(_S.CLOSED, now)
            self._report(None)
            return
        self._fin_queued = True
        self._fin_seq = (self.buf_seq + len(self._sndbuf)) & MASK32
        if state is _S.ESTABLISHED:
            self._set_state(_S.FIN_WAIT_1, now)
        elif state is _S.CLOSE_WAIT:
            self._set_state(_S.LAST_ACK, now)
        # SYN-RECEIVED: FIN-WAIT-1 once established (RFC 9293 §3.10.4).

    def close(self, now: float) -> None:
        """The application is done with the connection (orphan): shutdown, and no more
        delivery. With unread (held) data it aborts with a RST instead (RFC 2525 §2.17,
        Linux ``tcp_close``). A no-op once CLOSED."""
        state = self._state
        if state is _S.CLOSED:
            return
        self._orphan = True
        if self._held_len and state in SYNCHRONIZED and state is not _S.TIME_WAIT:
            self.stats["tcp_close_unread_reset"] += 1
            self.abort(now)
            return
        self.shutdown(now)
        if self._state is _S.FIN_WAIT_2 and self.fin_wait2_at is None:
            self.fin_wait2_at = now + self.config.fin_timeout

    def abort(self, now: float) -> None:
        """RST if synchronized (RFC 9293 §3.10.5), then CLOSED; EV_CLOSED(None)."""
        state = self._state
        if state is _S.CLOSED:
            return
        if state in _NEED_RESET or (
                state in _RST_MINUS_ONE and self._fin_queued
                and self.snd_max != ((self._fin_seq + 1) & MASK32)):
            # Linux tcp_disconnect: also in CLOSING/LAST-ACK while data or the FIN
            # is still unsent (the peer would wait for it forever).
            self._rst_pending = True
        self._ctl_out = None
        self._set_state(_S.CLOSED, now)
        self._report(None)

    # -- errors ------------------------------------------------------------------------

    def on_icmp_error(self, error: OSError, seq: int, hard: bool, now: float) -> bool:
        """An ICMP error quoting our segment with sequence number ``seq``.

        RFC 5927 §4.1: ignored unless SND.UNA =< seq < SND.MAX. A hard error
        (port/protocol unreachable, RFC 1122 §4.2.3.9) in SYN-SENT fails the
        connection with ``error``; a passive connection in SYN-RECEIVED is dropped
        (Linux ``tcp_req_err``). Anything else is soft (RFC 5927 §4.1, RFC 1122):
        remembered and reported if the connection then times out. True when the
        error was accepted (in window, in a state that takes it).
        """
        state = self._state
        if state is _S.CLOSED or state is _S.TIME_WAIT or state is _S.LISTEN:
            return False
        d = (seq - self.snd_una) & MASK32
        if d and d >= ((self.snd_max - self.snd_una) & MASK32):
            self.stats["tcp_icmp_out_of_window"] += 1
            return False
        self.stats["tcp_icmp_errors"] += 1
        if (hard and state is _S.SYN_SENT) or (hard and state is _S.SYN_RECEIVED and self._passive):
            self._fail(error, now)
        else:
            self._soft_error = error
        return True

    def on_path_mtu(self, mss_limit: int, now: float) -> bool:
        """The path's MTU fell: at most ``mss_limit`` bytes of TCP payload (options
        included) per segment from now on (RFC 1191 §6.1, RFC 8201 §5.4; RFC 6691:
        the options count against it). What is in flight is sent again at once in
        the new size, without touching cwnd or backing off the timer (Linux
        ``tcp_simple_retransmit``: the loss was the path's, not congestion). True if
        the limit fell; one at or above the current one is ignored (the path MTU
        rises again only when the host's estimate expires:
        :meth:`on_path_mtu_expired`)."""
        state = self._state
        if mss_limit >= self.mss_limit or state is _S.CLOSED or state is _S.TIME_WAIT:
            return False
        self.mss_limit = mss_limit
        self._blackhole_limit = 0  # the path's MTU is known now: no clamp to undo
        old = self.smss
        self._set_mss_from_limit()
        self.stats["tcp_pmtu_lowered"] += 1
        if self.smss < old and self.snd_max != self.snd_una \
                and state is not _S.SYN_SENT and state is not _S.SYN_RECEIVED:
            self._resend_flight()  # in the new size
        return True

    def on_path_mtu_expired(self, mss_limit: int, now: float) -> bool:
        """The path's MTU estimate expired (RFC 1191 §6.3, RFC 8201 §4): segments of up
        to ``mss_limit`` (the interface's) may go again; a path still small says so
        with another too-big message. A black-hole clamp keeps its own retry time and
        returns to this size after it. True if the MSS rose."""
        state = self._state
        if state is _S.CLOSED or state is _S.TIME_WAIT:
            return False
        if self._blackhole_limit:
            if mss_limit > self._blackhole_limit:
                self._blackhole_limit = mss_limit
            return False
        if mss_limit <= self.mss_limit:
            return False
        self.mss_limit = mss_limit
        self._set_mss_from_limit()
        self.stats["tcp_pmtu_raised"] += 1
        return True

    def _report(self, error: BaseException | None) -> None:
        """EV_CLOSED, once, for connections the application knows (module contract)."""
        if error is not None and self.error is None:
            self.error = error
        if self._reported or (self._passive and not self._ever_established):
            return
        self._reported = True
        self.events.append((EV_CLOSED, self, error))

    def _fail(self, error: BaseException | None, now: float, *, send_rst: bool = False) -> None:
        if self._state is _S.CLOSED:
            return
        if send_rst:
            self._rst_pending = True
        self._set_state(_S.CLOSED, now)
        self._report(error)

    def _handshake_timeout(self, now: float) -> None:
        self.stats["tcp_handshake_timeouts"] += 1
        self._fail(self._timeout_error(), now)

    def _set_state(self, state: TcpState, now: float) -> None:
        """The one place states change; timers and buffers follow the state."""
        old = self._state
        self._state = state
        if state is _S.ESTABLISHED:
            if self.config.keepalive:
                self.keepalive_at = now + self.config.keepalive_idle
        elif state is _S.TIME_WAIT:
            self._release(keep_time_wait=True)
            self.time_wait_at = now + self.config.time_wait  # 2·MSL (RFC 9293 §3.6.1)
            self._report(None)
        elif state is _S.FIN_WAIT_2:
            if self._orphan:
                self.fin_wait2_at = now + self.config.fin_timeout  # Linux tcp_fin_timeout
        elif state is _S.CLOSED:
            self._release(keep_time_wait=False)
            listener = self._listener
            if listener is not None and old is not _S.CLOSED:
                self._listener = None
                listener._child_closed(self)

    def _release(self, *, keep_time_wait: bool) -> None:
        self.rto_at = self.ack_at = self.persist_at = None
        self.keepalive_at = self.fin_wait2_at = None
        if not keep_time_wait:
            self.time_wait_at = None
            self._ack_now = False  # (TIME-WAIT still owes the ACK of the FIN)
        self._fast_rtx = self._probe_due = self._ka_due = self._synack_due = False
        self._sndbuf.clear()
        self._ooo = None  # (made again for the next hole, as for the first)

    def _establish(self, seg: Segment, now: float) -> None:
        """SND.UNA moved past our SYN: ESTABLISHED (RFC 9293 §3.10.7.3 / .4 SYN-RECEIVED)."""
        ack = seg.ack
        self.snd_una = ack
        if ((ack - self.snd_nxt - 1) & MASK32) < HALF32 - 1:
            self.snd_nxt = ack
        # RTT of the handshake: timestamps, else Karn (the SYN was sent once).
        if self.ts_ok and seg.ts_ecr:
            delta = (self._ts_now(now) - seg.ts_ecr) & MASK32
            if delta < HALF32:
                self.rtt.sample(delta / 1000.0, now)
        elif self._rtt_seq is not None and self._retries == 0:
            self.rtt.sample(now - self._rtt_at, now)
        self._rtt_seq = None
        if self._retries:
            self.rtt.fallback()  # RFC 6298 §5.7 (only without an RTT sample)
            if self._retries > 1:
                # RFC 5681 §3.1: after a lost SYN or SYN-ACK the initial window is one
                # segment — as Linux (tcp_init_transfer), only after more than one
                # retransmission: with RFC 6298's 1 s initial RTO one is often spurious.
                self.cc.cwnd = self.smss
                self.stats["tcp_syn_loss_window"] += 1
        self._retries = 0
        self.rto_at = None
        self._ever_established = True
        self._set_state(_S.ESTABLISHED, now)
        if self._fin_queued:
            self._set_state(_S.FIN_WAIT_1, now)

    # -- inbound ---------------------------------------------------------------------------

    def on_segment(self, seg: Segment, now: float) -> None:
        """Process one segment of this connection's four-tuple (never raises).

        Call :meth:`output` after each one. If the glue batches several segments before
        calling it, an ACK still owed for the previous segment is built now (with the
        state that segment left), so each segment that deserves an immediate ACK gets
        its own, as Linux sends them per packet (RFC 5681 §4.2: a duplicate ACK per
        out-of-order segment, an ACK at least every second full-sized one).
        """
        if self._state is _S.ESTABLISHED and not seg.sack_blocks and self._predict(
                seg.seq, seg.ack, seg.flags, seg.window, seg.ts_val, seg.ts_ecr,
                seg.payload, now, seg):
            return
        self._on_segment(seg, now)

    # Header prediction (RFC 9293 §3.10.7.4 "header prediction", Van Jacobson's fast
    # path, Linux tcp_rcv_established). A class attribute, so a test can compare the
    # two paths on the same segments.
    header_prediction = True

    def _predict(self, seq: int, ack: int, flags: int, window: int, ts_val: int | None,
                 ts_ecr: int | None, payload: Payload, now: float,
                 seg: Segment | None) -> bool:
        """The common case of an ESTABLISHED connection in one flat pass; False, with
        nothing changed, for anything else (the caller takes the full path).

        Taken: only ACK (and PSH) set; SEQ = RCV.NXT; timestamps exactly as negotiated
        and not older than TS.Recent (RFC 7323 §5.3 R1 passes); SEG.ACK either
        acknowledges new data up to SND.MAX, or equals SND.UNA on a segment with text
        (not a duplicate ACK, RFC 5681 §2); not in recovery; neither window is zero
        (no persist, RFC 9293 §3.8.6.1); text only when it is delivered as it comes:
        reading, nothing held, nothing out of order, within the window (no trimming).
        Everything else — RST, SYN, FIN, URG, SACK blocks, PAWS doubts, duplicate,
        old or unacceptable ACKs, zero windows, out-of-order text — takes the full path.

        The outcome is the full path's, step for step (``_check_incoming``,
        ``_process_ack``, ``_receive_text``): the owed ACK queued first, TS.Recent
        updated by R3 (RFC 7323 §4.3: only if SEG.SEQ =< Last.ACK.sent), new data
        acknowledged and the window updated by the sender's own methods
        (``_on_new_ack``, ``_update_window``), then the text delivered and the ACK
        policy of RFC 5681 §4.2 (at least every second full-sized segment, else
        delayed). ``seg`` is the segment if one was parsed, else a scratch record is
        filled for the sender's methods (no allocation per segment).
        """
        if not self.header_prediction or flags & _NOT_PREDICTED != ACK \
                or seq != self.rcv_nxt:
            return False
        if ts_val is None:
            if self.ts_ok:
                return False
        elif not self.ts_ok or ((ts_val - self.ts_recent) & MASK32) >= HALF32:
            return False
        snd_una = self.snd_una
        acked = (ack - snd_una) & MASK32
        n = len(payload)
        if acked:
            if acked > ((self.snd_max - snd_una) & MASK32):
                return False  # old, or acknowledges what was never sent (RFC 5961 §5)
        elif not n:
            return False  # a duplicate ACK or a window update
        wnd = window << self.snd_wscale
        if not wnd or not self.snd_wnd or self.recovery.in_recovery:
            return False
        if n:
            ooo = self._ooo
            if not self._reading or self._held_len or (ooo is not None and ooo.bytes_held) \
                    or self._ooo_fin is not None:
                return False
            rcv_wnd = (self.rcv_adv - seq) & MASK32
            if rcv_wnd >= HALF32 or n > rcv_wnd:
                return False
        # -- from here on the full path's outcome, in its order.
        if self._ack_now:
            ctl_out = self._ctl_out
            if ctl_out is None:  # (made on first use: the contract of .tcb)
                ctl_out = self._ctl_out = []
            if len(ctl_out) < _ACK_QUEUE_LIMIT:
                ctl_out.append(self._segment(self.snd_max, 0, b"", self._sack(), now))
        if ts_val is not None and ((self.last_ack_sent - seq) & MASK32) < HALF32:
            self.ts_recent = ts_val  # RFC 7323 §4.3 R3
            self.ts_recent_at = now
        self._last_recv_at = now
        if seg is None:
            seg = _SCRATCH
            seg.src_port = self.remote_port
            seg.dst_port = self.local_port
            seg.seq = seq
            seg.ack = ack
            seg.flags = flags
            seg.window = window
            seg.payload = payload
            seg.ts_val = ts_val
            seg.ts_ecr = ts_ecr
            if acked:
                self._on_new_ack(seg, ack, now)
            self._update_window(seg, ack, wnd, now)
            seg.payload = b""  # no view of the frame kept past the call
        else:
            if acked:
                self._on_new_ack(seg, ack, now)
            self._update_window(seg, ack, wnd, now)
        if n:
            if n > self.rcv_mss:
                self.rcv_mss = n if n < self.adv_mss else self.adv_mss
            self._unconsumed += n
            self.events.append((EV_DATA, self, payload))
            self.rcv_nxt = (seq + n) & MASK32
            self._data_ack_policy(now)
        return True

    def _on_segment(self, seg: Segment, now: float) -> None:
        """The full path of RFC 9293 §3.10.7 for one segment (see :meth:`on_segment`)."""
        if self._ack_now and self._state in _ACK_QUEUE_STATES:
            ctl_out = self._ctl_out
            if ctl_out is None:  # (made on first use: the contract of .tcb)
                ctl_out = self._ctl_out = []
            if len(ctl_out) < _ACK_QUEUE_LIMIT:
                ctl_out.append(self._segment(self.snd_max, 0, b"", self._sack(), now))
        if self._state is _S.ESTABLISHED:
            self._on_segment_established(seg, now)
        else:
            _HANDLERS[self._state](self, seg, now)

    def _on_segment_closed(self, seg: Segment, now: float) -> None:
        # RFC 9293 §3.10.7.1: the glue answers with reset_for(); nothing is left here.
        self.stats["tcp_closed_drop"] += 1

    def _on_segment_listen(self, seg: Segment, now: float) -> None:
        self.stats["tcp_closed_drop"] += 1  # connections are never in LISTEN

    def _on_segment_syn_sent(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.3."""
        flags = seg.flags
        ack = seg.ack
        # First: SEG.ACK =< ISS or SEG.ACK > SND.NXT: <SEQ=SEG.ACK><CTL=RST>.
        if flags & ACK and (((ack - self.iss - 1) & MASK32) >= HALF32 - 1
                            or ((ack - self.snd_max - 1) & MASK32) < HALF32 - 1):
            self.stats["tcp_syn_sent_bad_ack"] += 1
            if not flags & RST:
                self._queue_ctl(Segment(self.local_port, self.remote_port, ack, 0, RST, 0))
            return
        if flags & RST:
            # Second: a RST is acceptable only if it acknowledges our SYN (RFC 5961 §3).
            if flags & ACK:
                self._fail(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                           now)
            return
        if not flags & SYN:
            return  # fifth: neither SYN nor RST
        # Fourth: the peer's SYN.
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK32
        self._negotiate(seg, now)
        self.snd_wnd = seg.window  # RFC 7323 §2.2: not scaled on a SYN
        self.max_snd_wnd = seg.window
        self.snd_wl1 = seg.seq
        self._last_recv_at = now
        if flags & ACK:
            self.snd_wl2 = ack
            self._establish(seg, now)
            self._event(EV_ESTABLISHED)
            self._ack_now = True  # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
            if self._receive_text(seg, now):
                self._on_fin(now)
        else:
            # Simultaneous open (RFC 9293 Figure 8): SYN-RECEIVED, resend as SYN-ACK.
            self.snd_wl2 = self.iss
            self._set_state(_S.SYN_RECEIVED, now)
            self.snd_nxt = self.iss

    def _on_segment_syn_received(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4 in SYN-RECEIVED."""
        flags = seg.flags
        if flags & RST:
            seq = seg.seq
            if seq == self.rcv_nxt:
                if self._passive:
                    # "return this connection to the LISTEN state": the listener forgets it.
                    self.stats["tcp_embryonic_rsts"] += 1
                    self._fail(ConnectionResetError(errno.ECONNRESET, "Connection reset"), now)
                else:
                    self._fail(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                               now)
            elif self._acceptable(seq, 1):
                self._challenge_ack(now)  # RFC 5961 §3.2
            else:
                self.stats["tcp_rst_out_of_window"] += 1  # RFC 9293 §3.10.7.4: drop
            return
        if flags & SYN:
            if self._passive:
                if seg.seq == self.irs and not flags & ACK:
                    # The peer resent its SYN: resend the SYN-ACK (Linux tcp_check_req).
                    if now - self._oow_at >= 0.5:
                        self._oow_at = now
                        self._synack_due = True
                        self.stats["tcp_syn_resent_answered"] += 1
                    else:
                        self.stats["tcp_syn_resent_ratelimited"] += 1
                    return
                # A different SYN: "return this connection to the LISTEN state".
                self.stats["tcp_embryonic_syn"] += 1
                self._fail(None, now)
                return
            if flags & ACK and seg.seq == self.irs and self._ack_acceptable(seg.ack):
                # Simultaneous open: the peer's SYN-ACK acknowledges our SYN.
                self._update_ts_recent(seg, now)
                self._establish(seg, now)
                self._event(EV_ESTABLISHED)
                return
            self._challenge_ack(now)  # RFC 5961 §4
            return
        if self.ts_ok and seg.ts_val is not None and self._paws_reject(seg.ts_val, now):
            self.stats["tcp_paws_rejected"] += 1
            self._ack_unacceptable(seg, now)
            return
        if not self._acceptable(seg.seq, len(seg.payload) + (flags & FIN)):
            self._ack_unacceptable(seg, now)
            return
        if not flags & ACK:
            self.stats["tcp_no_ack_drop"] += 1  # RFC 9293 §3.10.7.4 fifth: drop
            return
        ack = seg.ack
        if not self._ack_acceptable(ack):
            # RFC 9293: <SEQ=SEG.ACK><CTL=RST>.
            self.stats["tcp_syn_received_bad_ack"] += 1
            self._queue_ctl(Segment(self.local_port, self.remote_port, ack, 0, RST, 0))
            return
        listener = self._listener
        if self._passive and listener is not None and not listener._child_established(self,
                                                                                        now):
            # Accept queue full: drop the ACK, keep SYN-RECEIVED (Linux with
            # tcp_abort_on_overflow = 0); the SYN-ACK timer keeps running.
            return
        self._update_ts_recent(seg, now)
        self._last_recv_at = now
        self._establish(seg, now)
        if not self._passive:
            self._event(EV_ESTABLISHED)
        self.snd_wnd = seg.window << self.snd_wscale
        self.snd_wl1 = seg.seq
        self.snd_wl2 = ack
        if self.snd_wnd > self.max_snd_wnd:
            self.max_snd_wnd = self.snd_wnd
        # Continue with the text and FIN in the new state.
        if self._state in (_S.ESTABLISHED, _S.FIN_WAIT_1) and self._receive_text(seg, now):
            self._on_fin(now)

    def _ack_acceptable(self, ack: int) -> bool:
        """SND.UNA < SEG.ACK =< SND.NXT (RFC 9293 §3.10.7.3)."""
        return ((ack - self.snd_una - 1) & MASK32) < HALF32 - 1 and \
            ((self.snd_max - ack) & MASK32) < HALF32

    def _check_incoming(self, seg: Segment, now: float) -> bool:
        """RFC 9293 §3.10.7.4 steps 1-5 preamble for synchronized states; False: dropped."""
        flags = seg.flags
        if flags & RST:
            self._check_rst(seg, now)
            return False
        ts_val = seg.ts_val
        if ts_val is not None and self.ts_ok and self._paws_reject(ts_val, now):
            self.stats["tcp_paws_rejected"] += 1  # RFC 7323 §5.3 R1
            self._ack_unacceptable(seg, now)
            return False
        if flags & SYN:
            self.stats["tcp_syn_in_window"] += 1
            self._challenge_ack(now)  # RFC 5961 §4.2: whatever the sequence number
            return False
        if not self._acceptable(seg.seq, len(seg.payload) + (flags & FIN)):
            self._ack_unacceptable(seg, now)
            return False
        if not flags & ACK:
            self.stats["tcp_no_ack_drop"] += 1
            return False
        if ts_val is not None:
            self._update_ts_recent(seg, now)
        self._last_recv_at = now
        return True

    def _check_rst(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4 second step with RFC 5961 §3.2."""
        seq = seg.seq
        state = self._state
        if seq == self.rcv_nxt or (
                state in _RST_MINUS_ONE and seq == ((self.rcv_nxt - 1) & MASK32)):
            self.stats["tcp_resets_received"] += 1
            error: OSError
            if state is _S.CLOSE_WAIT:
                error = BrokenPipeError(errno.EPIPE, "Broken pipe")
            else:
                error = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            self._fail(error, now)
            return
        window = self._recv_window()
        if ((seq - self.rcv_nxt) & MASK32) < (window if window else 1):
            self._challenge_ack(now)  # in the window but not exactly RCV.NXT
        else:
            self.stats["tcp_rst_out_of_window"] += 1

    def _on_fin(self, now: float) -> None:
        """RFC 9293 §3.10.7.4 eighth step: the FIN is in order."""
        self._fin_received = True
        self.rcv_nxt = (self.rcv_nxt + 1) & MASK32
        self._ack_now = True
        self._deliver_eof()
        state = self._state
        if state is _S.ESTABLISHED:
            self._set_state(_S.CLOSE_WAIT, now)
        elif state is _S.FIN_WAIT_1:
            if self._fin_acked():
                self._set_state(_S.TIME_WAIT, now)
            else:
                self._set_state(_S.CLOSING, now)
        elif state is _S.FIN_WAIT_2:
            self._set_state(_S.TIME_WAIT, now)

    def _fin_acked(self) -> bool:
        return self._fin_queued and self.snd_una == ((self._fin_seq + 1) & MASK32)

    def _orphan_data(self, seg: Segment, now: float) -> bool:
        """New text for an orphaned connection: RST (Linux tcp_rcv_state_process)."""
        n = len(seg.payload)
        if not self._orphan or not n:
            return False
        end = (seg.seq + n - self.rcv_nxt) & MASK32
        if end == 0 or end >= HALF32:
            return False
        self.stats["tcp_orphan_data_reset"] += 1
        self._fail(ConnectionResetError(errno.ECONNRESET, "Connection reset"), now,
                   send_rst=True)
        return True

    def _on_segment_established(self, seg: Segment, now: float) -> None:
        if not self._check_incoming(seg, now) or not self._process_ack(seg, now):
            return
        if self._receive_text(seg, now):
            self._on_fin(now)

    def _on_segment_fin_wait_1(self, seg: Segment, now: float) -> None:
        if not self._check_incoming(seg, now) or not self._process_ack(seg, now):
            return
        if self._fin_acked():
            self._set_state(_S.FIN_WAIT_2, now)
        if self._orphan_data(seg, now):
            return
        if self._receive_text(seg, now):
            self._on_fin(now)

    def _on_segment_fin_wait_2(self, seg: Segment, now: float) -> None:
        if not self._check_incoming(seg, now) or not self._process_ack(seg, now):
            return
        if self._orphan_data(seg, now):
            return
        if self._receive_text(seg, now):
            self._on_fin(now)

    def _on_segment_close_wait(self, seg: Segment, now: float) -> None:
        # Text after the peer's FIN is ignored (RFC 9293 seventh step).
        if self._check_incoming(seg, now):
            self._process_ack(seg, now)

    def _on_segment_closing(self, seg: Segment, now: float) -> None:
        if self._check_incoming(seg, now) and self._process_ack(seg, now) \
                and self._fin_acked():
            self._set_state(_S.TIME_WAIT, now)

    def _on_segment_last_ack(self, seg: Segment, now: float) -> None:
        if self._check_incoming(seg, now) and self._process_ack(seg, now) \
                and self._fin_acked():
            self._set_state(_S.CLOSED, now)
            self._report(None)

    def _on_segment_time_wait(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4 in TIME-WAIT, RFC 1337 (a RST does not end it)."""
        flags = seg.flags
        if flags & RST:
            self.stats["tcp_time_wait_rst_ignored"] += 1  # RFC 1337 TIME-WAIT assassination
            return
        if flags & SYN:
            # A SYN the glue did not accept by tw_accepts_syn(): ACK it (RFC 5961 §4).
            self._ack_unacceptable(seg, now)
            return
        ts_val = seg.ts_val
        if ts_val is not None and self.ts_ok and self._paws_reject(ts_val, now):
            self.stats["tcp_paws_rejected"] += 1
            self._ack_unacceptable(seg, now)
            return
        if seg.seg_len:
            # The peer resent its FIN (our ACK was lost): ACK it and restart 2·MSL.
            self._ack_unacceptable(seg, now)
            self.time_wait_at = now + self.config.time_wait
        elif not self._acceptable(seg.seq, 0):
            self._ack_unacceptable(seg, now)

    def tw_accepts_syn(self, seg: Segment) -> bool:
        """RFC 6191: may a new SYN reopen this four-tuple now in TIME-WAIT?

        With timestamps on the old incarnation and the new SYN: its TSval must be
        larger than TS.Recent (or equal, with a larger SEQ); without timestamps
        on either: its SEQ must be beyond RCV.NXT.
        """
        if self._state is not _S.TIME_WAIT:
            return False
        flags = seg.flags
        if not flags & SYN or flags & (ACK | RST | FIN):
            return False
        seq_after = ((seg.seq - self.rcv_nxt - 1) & MASK32) < HALF32 - 1
        if self.ts_ok and self.config.timestamps and seg.ts_val is not None:
            d = (seg.ts_val - self.ts_recent) & MASK32
            if d == 0:
                return seq_after
            return d < HALF32
        return seq_after

    # -- timers ------------------------------------------------------------------------

    def poll_at(self) -> float | None:
        """The earliest armed deadline, or None."""
        at: float | None = None
        for t in (self.rto_at, self.ack_at, self.persist_at, self.keepalive_at,
                  self.time_wait_at, self.fin_wait2_at):
            if t is not None and (at is None or t < at):
                at = t
        return at

    def on_timer(self, now: float) -> None:
        """Run every timer due at ``now``; then call :meth:`output`."""
        t = self.rto_at
        if t is not None and now >= t:
            self._on_rto(now)
        t = self.ack_at
        if t is not None and now >= t:
            self.ack_at = None
            if self._delack_due:
                self._delack_due = False
                self._ack_now = True
                # Linux tcp_delack_timer_handler: "Delayed ACK missed: leave pingpong
                # mode" (the reply it waited for did not come).
                self._pingpong = False
        t = self.persist_at
        if t is not None and now >= t:
            self._on_persist(now)
        t = self.keepalive_at
        if t is not None and now >= t:
            self._on_keepalive(now)
        t = self.fin_wait2_at
        if t is not None and now >= t:
            self.fin_wait2_at = None
            if self._state is _S.FIN_WAIT_2:
                # Linux tcp_fin_timeout: an orphan waits no longer for the peer's FIN.
                self.stats["tcp_fin_wait2_timeouts"] += 1
                self._set_state(_S.CLOSED, now)
                self._report(None)
        t = self.time_wait_at
        if t is not None and now >= t:
            self.time_wait_at = None
            if self._state is _S.TIME_WAIT:
                self._set_state(_S.CLOSED, now)

    def _on_keepalive(self, now: float) -> None:
        """RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6 with Linux's timing (tcp_keepalive_timer)."""
        self.keepalive_at = None
        config = self.config
        if not config.keepalive or self._state not in _KEEPALIVE_STATES:
            return
        idle = config.keepalive_idle
        if self.snd_max != self.snd_una or ((self.snd_nxt - self.buf_seq) & MASK32) < len(
                self._sndbuf):
            self.keepalive_at = now + idle  # data is moving: the RTO does the probing
            return
        elapsed = now - self._last_recv_at
        if elapsed < idle:
            self.keepalive_at = self._last_recv_at + idle
            return
        if self._probes_out >= config.keepalive_probes:
            self.stats["tcp_keepalive_timeouts"] += 1
            self._fail(self._timeout_error(), now, send_rst=True)
            return
        self._probes_out += 1
        self._ka_due = True
        self.keepalive_at = now + config.keepalive_interval
        self.stats["tcp_keepalive_probes"] += 1


_HandlerFn = Callable[[TcpConnection, Segment, float], None]
_HANDLERS: tuple[_HandlerFn, ...] = (
    TcpConnection._on_segment_closed,
    TcpConnection._on_segment_listen,
    TcpConnection._on_segment_syn_sent,
    TcpConnection._on_segment_syn_received,
    TcpConnection._on_segment_established,
    TcpConnection._on_segment_fin_wait_1,
    TcpConnection._on_segment_fin_wait_2,
    TcpConnection._on_segment_close_wait,
    TcpConnection._on_segment_closing,
    TcpConnection._on_segment_last_ack,
    TcpConnection._on_segment_time_wait,
)
assert all(fn.__name__ == f"_on_segment_{state.name.lower()}"
           for fn, state in zip(_HANDLERS, TcpState, strict=True))
