"""The receive half of a connection: acceptability, PAWS, data, window, ACK policy.

Contract (all methods work on the :class:`~.tcb.Tcb` fields, never send):
- :meth:`Receiver._acceptable` is the RFC 9293 §3.10.7.4 table, with two
  allowances Linux makes (``tcp_sequence``): a zero-length segment exactly at the
  right edge of the window is acceptable, and with a zero window a segment with
  text starting at RCV.NXT is acceptable for its ACK, RST and window (RFC 9293
  "special allowance should be made to accept valid ACKs"); its text is dropped.
- :meth:`Receiver._receive_text` (RFC 9293 §3.10.7.4 seventh) trims the segment to
  RCV.NXT .. right edge, delivers in-order text (``EV_DATA``, zero-copy when the
  application reads and nothing is held), queues out-of-order text (a copy,
  bounded by the window) and returns whether a FIN is now in order.
- ACK policy (RFC 5681 §4.2, RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2): an ACK is
  sent at once for out-of-order text, for text that fills all or part of a hole,
  for a FIN, when more than one full-sized segment is unacknowledged (so at
  least every second one), and for unacceptable segments; otherwise the ACK is
  delayed by ``config.delayed_ack`` — except in Linux's quick-ACK mode
  (``config.quickack``): the first in-order segments of the connection, and the
  first after an idle gap longer than the RTO, are ACKed at once unless the
  connection is interactive (it sent data within ``delayed_ack`` of the last data
  received — Linux's pingpong mode, left when a delayed ACK times out). Each ACK
  that acknowledges new data uses one. ``_ack_now`` asks the sender for an ACK.
- Receive window (RFC 9293 §3.8.6.2.2, §3.8.6): the window offered is the free
  buffer space (``recv_buffer`` minus data delivered but not consumed, minus
  data held while not reading); its right edge never moves left (RFC 9293
  §3.8.6.2.2: shrinking is strongly discouraged) and only advances by at least
  min(recv_buffer / 2, MSS) (receiver SWS avoidance). A window update is sent
  when :meth:`consumed` lets the window at least double by that much (Linux
  ``tcp_cleanup_rbuf``).
- Out-of-window answers are rate limited as Linux does (``tcp_oow_rate_limited``:
  one per 500 ms when answering pure ACKs or SYNs) and challenge ACKs (RFC 5961
  §7) to ``config.challenge_ack_limit`` per second.
"""

from __future__ import annotations

from .buffers import OutOfOrderQueue
from .segment import FIN, SYN, Segment
from .state import TcpState
from .tcb import (
    EV_DATA,
    EV_EOF,
    HALF32,
    MASK32,
    OOW_RATE_INTERVAL,
    PAWS_IDLE,
    Tcb,
)

__all__ = ["Receiver"]

_S = TcpState
_RECEIVING = frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2})


class Receiver(Tcb):
    """Receive-side behaviour on top of the TCB; see the module docstring."""

    __slots__ = ()

    # -- window ----------------------------------------------------------------------

    def _recv_window(self) -> int:
        """RCV.WND: what is left of the window we advertised (never negative)."""
        window = (self.rcv_adv - self.rcv_nxt) & MASK32
        return 0 if window >= HALF32 else window

    def _window_field(self) -> int:
        """The 16-bit window for a non-SYN segment we send now; advances ``rcv_adv``."""
        free = self._recv_buffer - self._unconsumed - self._held_len
        current = (self.rcv_adv - self.rcv_nxt) & MASK32
        if current >= HALF32:
            current = 0
        shift = self.rcv_wscale
        if free < current + self._sws_threshold:
            # RFC 9293 §3.8.6.2.2: do not advance the right edge by less than
            # min(RCV.BUFF/2, MSS), and never move it left: offer what is left,
            # rounded up to the scale unit so the edge does not recede.
            field = (current + (1 << shift) - 1) >> shift
        else:
            field = free >> shift
        if field > 0xFFFF:
            field = 0xFFFF
        edge = (self.rcv_nxt + (field << shift)) & MASK32
        if ((self.rcv_adv - edge) & MASK32) > HALF32:  # seq_gt(edge, rcv_adv)
            self.rcv_adv = edge
        return field

    def consumed(self, n: int) -> bool:
        """The application has taken ``n`` delivered bytes; the window may open.

        Sends a window update (RFC 9293 §3.8.6.2.2) when the window can at
        least double and grow by the SWS threshold (Linux ``tcp_cleanup_rbuf``).
        True when an ACK is now owed (the caller has output to collect).
        """
        if n > 0:
            unconsumed = self._unconsumed - n
            self._unconsumed = unconsumed if unconsumed > 0 else 0
            self._maybe_window_update()
        return self._ack_now

    def _maybe_window_update(self) -> None:
        if self._state not in _RECEIVING or self._fin_received:
            return
        current = self._recv_window()
        free = self._recv_buffer - self._unconsumed - self._held_len
        largest = 0xFFFF << self.rcv_wscale
        if free > largest:
            free = largest  # what the window field can say
        if free - current >= self._sws_threshold and free >= 2 * current:
            self._ack_now = True

    def set_reading(self, reading: bool) -> None:
        """Pause or resume delivery. While paused, in-order data is held here (a copy),
        the window shrinks as it fills and nothing is dropped; resuming delivers what is
        held as one ``EV_DATA`` (then a pending ``EV_EOF``)."""
        self._reading = reading
        if not reading:
            return
        if self._held_len:
            data = b"".join(self._held or ())
            self._held = None
            self._held_len = 0
            self._unconsumed += len(data)
            self.events.append((EV_DATA, self, data))
        if self._eof_pending:
            self._eof_pending = False
            self.events.append((EV_EOF, self, None))

    # -- acceptability, PAWS, rate limits --------------------------------------------

    def _acceptable(self, seq: int, seg_len: int) -> bool:
        """RFC 9293 §3.10.7.4 segment acceptability (see module contract for allowances)."""
        window = self._recv_window()
        d = (seq - self.rcv_nxt) & MASK32
        if seg_len == 0:
            # Zero window: SEG.SEQ = RCV.NXT; else RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND
            # (the right edge included, as Linux's tcp_sequence).
            return d <= window
        if window == 0:
            return d == 0  # special allowance: ACK/RST/window still processed
        return d < window or ((seq + seg_len - 1 - self.rcv_nxt) & MASK32) < window

    def _paws_reject(self, ts_val: int, now: float) -> bool:
        """RFC 7323 §5.3 R1: SEG.TSval < TS.Recent while TS.Recent is valid (§5.5)."""
        if ((ts_val - self.ts_recent) & MASK32) < HALF32:
            return False
        # TS.Recent older than 24 days is not to be trusted (RFC 7323 §5.5).
        return now - self.ts_recent_at <= PAWS_IDLE

    def _update_ts_recent(self, seg: Segment, now: float) -> None:
        """RFC 7323 §4.3 (R3): TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent."""
        ts_val = seg.ts_val
        if (ts_val is not None and ((ts_val - self.ts_recent) & MASK32) < HALF32
                and ((self.last_ack_sent - seg.seq) & MASK32) < HALF32):
            self.ts_recent = ts_val
            self.ts_recent_at = now

    def _ack_unacceptable(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4: answer an unacceptable segment with an ACK (rate limited
        for pure ACKs and SYNs, Linux ``tcp_oow_rate_limited``), and drop it. Data
        wholly before RCV.NXT is a duplicate: the ACK reports it (D-SACK)."""
        self.stats["tcp_unacceptable"] += 1
        n = len(seg.payload)
        if n and ((self.rcv_nxt - seg.seq - n) & MASK32) < HALF32:
            self._note_duplicate(seg.seq, n)
        flags = seg.flags
        if flags & SYN or (not flags & FIN and not len(seg.payload)):
            if now - self._oow_at < OOW_RATE_INTERVAL:
                self.stats["tcp_oow_rate_limited"] += 1
                return
            self._oow_at = now
        self._ack_now = True

    def _note_duplicate(self, seq: int, n: int) -> None:
        """RFC 2883 §4: ``n`` bytes at ``seq`` arrived again; the next ACK's first SACK
        block says so (when SACK was negotiated), once."""
        if self.sack_ok:
            self._dsack = (seq & MASK32, (seq + n) & MASK32)
            self.stats["tcp_dsack_sent"] += 1

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§5.2 challenge ACK, at most challenge_ack_limit per second (§7)."""
        if now - self._challenge_start >= 1.0:
            self._challenge_start = now
            self._challenge_count = 0
        if self._challenge_count >= self.config.challenge_ack_limit:
            self.stats["tcp_challenge_ack_limited"] += 1
            return
        self._challenge_count += 1
        self.stats["tcp_challenge_acks"] += 1
        self._ack_now = True

    # -- text ------------------------------------------------------------------------

    def _deliver(self, data: bytes | memoryview) -> None:
        if self._reading and not self._held_len:
            self._unconsumed += len(data)
            self.events.append((EV_DATA, self, data))
        else:
            held = self._held
            if held is None:
                self._held = [bytes(data)]
            else:
                held.append(bytes(data))
            self._held_len += len(data)

    def _deliver_eof(self) -> None:
        if self._reading and not self._held_len:
            self.events.append((EV_EOF, self, None))
        else:
            self._eof_pending = True

    def _receive_text(self, seg: Segment, now: float) -> bool:
        """RFC 9293 §3.10.7.4 seventh step; True when the segment's FIN is now in order."""
        payload = seg.payload
        n = len(payload)
        flags = seg.flags
        fin = flags & FIN
        if not n and not fin:
            return False
        seq = seg.seq
        if flags & SYN:
            seq = (seq + 1) & MASK32  # text of a SYN-ACK starts after the SYN
        rcv_nxt = self.rcv_nxt
        off = ((seq - rcv_nxt + HALF32) & MASK32) - HALF32
        if off < 0:
            # Starts before RCV.NXT: keep only the new part; the old part is a duplicate
            # to report (RFC 2883 §4, D-SACK).
            if -off > n:
                return False  # text and FIN both old
            self._note_duplicate(seq, -off if -off < n else n)
            self._ack_now = True
            payload = payload[-off:]
            n += off
            off = 0
        window = self._recv_window()
        if window == 0:
            if n or (fin and off == 0):
                # Zero window: drop the text (and FIN), tell the peer (RFC 9293 §3.8.6.1).
                self.stats["tcp_zero_window_drop"] += 1
                self._ack_now = True
            return False
        if off + n > window:
            # Trim to the window; a FIN beyond it is not received either.
            keep = window - off
            payload = payload[:keep] if keep > 0 else b""
            n = len(payload)
            fin = 0
            self.stats["tcp_trimmed_to_window"] += 1
        if off:
            # Out of order: hold a copy, ACK at once with SACK (RFC 5681 §4.2, RFC 2018 §4).
            if n:
                ooo = self._ooo
                if ooo is None:  # the first hole (made on first use: the contract of .tcb)
                    ooo = self._ooo = OutOfOrderQueue(self._recv_buffer)
                if self.sack_ok and ooo.bytes_held:
                    # RFC 2883 §4: data held out of order arrived again: a D-SACK block
                    # first, then the block that holds it.
                    dup = ooo.overlap(seq, n, rcv_nxt)
                    if dup is not None:
                        self._dsack = dup
                        self.stats["tcp_dsack_sent"] += 1
                if not ooo.add(seq, payload, rcv_nxt):
                    self.stats["tcp_ooo_dropped"] += 1
            if fin:
                self._ooo_fin = (seq + n) & MASK32
            self._ack_now = True
            self.stats["tcp_ooo_segments"] += 1
            return False
        if n:
            if n > self.rcv_mss:
                self.rcv_mss = n if n < self.adv_mss else self.adv_mss
            self._deliver(payload)
            rcv_nxt = (rcv_nxt + n) & MASK32
            ooo = self._ooo
            if ooo:
                # Fills all or part of a hole: ACK at once (RFC 5681 §4.2).
                for chunk in ooo.take(rcv_nxt):
                    self._deliver(chunk)
                    rcv_nxt = (rcv_nxt + len(chunk)) & MASK32
                self._ack_now = True
            self.rcv_nxt = rcv_nxt
        if self._ooo_fin is not None and self._ooo_fin == self.rcv_nxt:
            self._ooo_fin = None
            return True
        if fin:
            return True
        self._data_ack_policy(now)
        return False

    def _data_ack_policy(self, now: float) -> None:
        """In-order data was delivered: ACK at once or delay (RFC 5681 §4.2: at least
        every second full-sized segment, Linux ``__tcp_ack_snd_check``: more than one
        RCV.MSS unacknowledged), with Linux's quick-ACK mode (``tcp_event_data_recv``:
        the first data, or data after a gap longer than the RTO, earns quick ACKs;
        ``tcp_in_quickack_mode``: not while interactive)."""
        data_at = self._data_at
        if data_at < 0.0 or now - data_at > self.rtt.rto:
            # Linux tcp_incr_quickack: RCV.WND / (2·RCV.MSS) of them (2 at least), at
            # most config.quickack, never fewer than are left.
            quick = self._recv_window() // (2 * self.rcv_mss) or 2
            limit = self.config.quickack
            if quick > limit:
                quick = limit
            if quick > self._quick:
                self._quick = quick
        self._data_at = now
        if self._ack_now:
            return
        if ((self.rcv_nxt - self.last_ack_sent) & MASK32) > self.rcv_mss \
                or (self._quick and not self._pingpong):
            self._ack_now = True
        else:
            self._delack_due = True
            if self.ack_at is None:
                self.ack_at = now + self.config.delayed_ack
