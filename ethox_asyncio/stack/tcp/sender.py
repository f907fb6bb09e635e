"""The send half of a connection: segments out, ACKs in, retransmission and probes.

Contract:
- :meth:`Sender.output` returns at most ``budget`` segments to send now, in this
  order: control segments queued for particular peers' segments (RSTs answering
  a bad ACK in SYN-SENT/SYN-RECEIVED), our own RST (after :meth:`abort`, then
  nothing else), SYN or SYN-ACK, retransmissions of segments the scoreboard marks
  lost (the first of a fast retransmit or timeout whatever cwnd says, the rest while
  RFC 6675's pipe is below cwnd), a keep-alive probe, new data while pipe < cwnd
  and within SND.WND, a FIN once every byte is sent, a tail loss probe or a
  zero-window probe, and a pure ACK if one is owed and nothing else carried it.
  Every non-SYN segment carries ACK, the current window, the timestamps option
  when negotiated and SACK blocks when out-of-order data is held.
- Data segments carry at most the effective send MSS (RFC 9293 §3.7.1: the
  peer's MSS, capped by ``mss_limit``, minus the timestamps option and any SACK
  blocks) — or, with ``tso_max`` set (a device that segments, TSO), up to
  ``tso_max`` bytes in whole MSS as cwnd allows, with ``gso_size`` = the MSS: the
  device cuts it into the segments that would have been sent (headers copied,
  sequence numbers advanced, PSH/FIN on the last), so everything else here counts
  bytes as before. A super-segment ends on an MSS boundary unless it empties the
  queue and Nagle lets the runt go, and carries about 1 ms of data at the pacing
  rate (cwnd/SRTT · 2 early in slow start, · 1.2 after; at least two MSS), as Linux
  sizes them (``tcp_tso_autosize``) — the rate is not enforced by a timer.
  Retransmissions are single segments. Sender SWS avoidance (RFC 9293 §3.8.6.2.1):
  a segment smaller than the MSS is sent only if it empties the queue (and, with Nagle, nothing is
  unacknowledged, RFC 9293 §3.7.4) or is at least half the largest window the
  peer offered. The congestion window counts segments as Linux does: a full
  segment may leave while the flight is below ``cwnd``.
- :meth:`Sender._process_ack` is RFC 9293 §3.10.7.4 "fifth, check the ACK field"
  for the synchronized states with RFC 5961 §5 ACK validation; it advances
  SND.UNA, samples the RTT (timestamps, else Karn's rule), updates the scoreboard
  (:mod:`.scoreboard`: every segment in flight, SACKed, lost, retransmitted),
  detects losses, runs recovery, re-arms the timer slot and updates the send
  window (SND.WL1/SND.WL2 rule).
- Loss detection and recovery. With SACK: RACK (RFC 8985 §6, ``TcpConfig.rack``)
  marks a segment lost once one sent after it is delivered and RACK.rtt plus a
  reordering window (min_RTT/4, widened per D-SACK round; zero while recovering or
  with more than two segments SACKed above, unless reordering was seen) has passed
  — on an ACK, or by the reorder timer; without RACK, RFC 6675 §4 IsLost (DupThresh
  SACKed segments above). A loss outside recovery enters fast recovery (unless the
  ACK is below ``recover``, RFC 6582 §3.2 step 2): the controller's reduction, then
  PRR (RFC 6937, :mod:`.prr`) sets cwnd = pipe + sndcnt on every ACK, and the full
  ACK leaves with cwnd = ssthresh. Without SACK: NewReno (RFC 5681 §3.2, RFC 6582):
  three duplicate ACKs mark the first segment lost, partial ACKs mark the next one
  lost; PRR sets cwnd here too, each duplicate ACK counted as a segment delivered
  (the scoreboard's ``dupack_out``, Linux's SACK emulation, which also sends new
  data on the first two as RFC 3042 would). ``TcpConfig.prr = False`` gives the
  RFCs' classic windows instead: cwnd = ssthresh with SACK (RFC 6675 §5), window
  inflation without. When every retransmission of an episode is D-SACKed, the
  reduction is undone (RFC 2883 §5, Linux ``tcp_try_undo_dsack``).
- :meth:`Sender._on_new_ack` and :meth:`Sender._update_window` are also called by
  header prediction (``TcpConnection._predict``) with a reused scratch record: they
  read the segment's fields during the call only and never keep it. New ACK-path
  state belongs in them (or gets a bail-out in ``_predict``);
  tests/stack/tcp/test_fast_path.py compares the two paths field by field.
- Tail loss probe (RFC 8985 §7, ``TcpConfig.tlp``, SACK only): with data in flight
  and nothing SACKed or lost, the timer slot holds a probe timeout of 2·SRTT (plus
  the worst-case delayed ACK with one segment in flight, at most the RTO), re-armed
  by new data and ACKs. It sends one new segment (beyond cwnd) or, with none, the
  last segment again, then the RTO is armed. A retransmitted probe acknowledged
  without a D-SACK repaired a loss: cwnd is reduced once (Linux
  ``tcp_process_tlp_ack``).
- Retransmission timeout (RFC 6298 §5.4-5.6): back off, mark every segment not
  SACKed lost (RFC 6675 §5.1, RFC 8985 §6.3; SACK marks are forgotten too when the
  peer seems to have reneged or the timeout repeats, RFC 2018 §8), retransmit the
  first at once and the rest as the window grows again — go-back-N without what the
  peer holds. A spurious timeout is undone (``TcpConfig.frto``, Linux
  ``tcp_try_undo_loss``: nothing lost, cwnd and ssthresh back): on the first timeout
  outside recovery, an ACK echoing a TSval older than the retransmission's (Eifel,
  RFC 3522) or covering data sent before it and never retransmitted (F-RTO, RFC 5682:
  after the first ACK new data goes instead of more retransmissions, and a duplicate
  ACK or a SACK of only that new data means the loss was real) shows the originals
  arrived. The
  ``blackhole_timeouts``-th timeout in a row lowers the MSS limit to
  ``blackhole_mss`` (PMTU black hole, RFC 4821 §7.7, as Linux tcp_mtu_probing), for
  ``blackhole_retry`` seconds (then full size is tried again). The connection
  fails after ``retries2`` timeouts without progress (``syn_retries`` /
  ``synack_retries`` in the handshake), with ``TimeoutError``, or with the last
  soft ICMP error as Linux reports it. While the peer's window is zero the
  retransmissions are probes and do not count; the connection then fails only
  when nothing was heard from the peer for ``rto_max`` (Linux
  ``tcp_retransmit_timer``).
- Persist timer (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17): armed when data (or a
  FIN) waits for the window with nothing in flight; first probe after one RTO,
  then doubling up to ``persist_max``. The probe is Linux's: a zero-length ACK
  with SEQ = SND.UNA - 1 when the window is zero, else up to min(window, MSS)
  bytes of new data. Any acceptable ACK resets the probe count, so a peer that
  answers while keeping its window closed holds the connection open forever; one
  that stops answering fails it after ``retries2`` unanswered probes.
"""

from __future__ import annotations

import errno

from .prr import Prr
from .receiver import Receiver
from .scoreboard import DUPTHRESH, SACKED, SentSegment
from .segment import ACK, FIN, PSH, RST, SYN, Segment
from .state import TcpState
from .tcb import EV_SENT, HALF32, MASK32, TIMER_REORDER, TIMER_RTO, TIMER_TLP, TS_OPTION_LEN

__all__ = ["Sender"]

_S = TcpState
TSO_AUTOSIZE_INTERVAL = 0.001  # seconds of the pacing rate per super-segment (Linux)
_SYN_STATES = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED})


class Sender(Receiver):
    """Send-side behaviour; see the module docstring."""

    __slots__ = ()

    # -- segment construction ----------------------------------------------------------

    def _set_mss_from_limit(self) -> None:
        """SMSS from the peer's MSS and our limit, minus the timestamps option (RFC 9293
        §3.7.1, RFC 6691); cwnd follows it."""
        smss = min(self.peer_mss, self.mss_limit) - (TS_OPTION_LEN if self.ts_ok else 0)
        self.smss = smss if smss > 1 else 1
        self.cc.set_mss(self.smss)

    def _segment(self, seq: int, flags: int, payload: bytes | memoryview,
                 sack: tuple[tuple[int, int], ...], now: float) -> Segment:
        """A non-SYN segment with ACK, window and options; it carries any owed ACK."""
        rcv_nxt = self.rcv_nxt
        window = self._window_field()
        if self._quick and rcv_nxt != self.last_ack_sent:
            self._quick -= 1  # an ACK of new data (Linux tcp_dec_quickack_mode)
        self.last_ack_sent = rcv_nxt
        self._ack_now = False
        self._delack_due = False
        self.ack_at = None
        if self.ts_ok:
            ts_val = (int(now * 1000.0) + self.ts_offset) & MASK32  # _ts_now(), inlined
            return Segment(self.local_port, self.remote_port, seq, rcv_nxt, flags | ACK, window,
                           payload, None, None, False, sack, ts_val, self.ts_recent)
        return Segment(self.local_port, self.remote_port, seq, rcv_nxt, flags | ACK, window,
                       payload, None, None, False, sack)

    def _sack(self) -> tuple[tuple[int, int], ...]:
        if not self.sack_ok:
            return ()
        limit = 3 if self.ts_ok else 4
        dsack = self._dsack
        ooo_fin = self._ooo_fin
        ooo = self._ooo
        if dsack is not None:
            # RFC 2883 §4: the duplicate first, then the usual blocks; reported once.
            self._dsack = None
            blocks = ooo.sack_blocks(self.rcv_nxt, limit - 1) if ooo else []
            if ooo_fin is not None:
                blocks = _with_fin(blocks, ooo_fin, limit - 1)
            return (dsack, *blocks)
        if ooo or ooo_fin is not None:
            # RFC 2018 §4: as many blocks as fit, the newest first (3 with timestamps).
            blocks = ooo.sack_blocks(self.rcv_nxt, limit) if ooo else []
            if ooo_fin is not None:
                blocks = _with_fin(blocks, ooo_fin, limit)
            return tuple(blocks)
        return ()

    def _payload_limit(self, sack: tuple[tuple[int, int], ...]) -> int:
        """Data bytes per segment: the MSS bounds data and options together (RFC 9293
        §3.7.1, RFC 6691), so SACK blocks (2 + 8 each, padded to 4) take their room."""
        return self.smss - (4 + 8 * len(sack) if sack else 0)

    def _syn_segment(self, now: float) -> Segment:
        """SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED) with our options (RFC 9293 §3.7.1,
        RFC 7323 §2.2/§3.2, RFC 2018 §2). The SYN's window is never scaled."""
        config = self.config
        window = self._recv_buffer if self._recv_buffer < 0xFFFF else 0xFFFF
        ts_val: int | None = None
        ts_ecr: int | None = None
        if self._state is _S.SYN_SENT:
            flags = SYN
            ack = 0
            wscale = config.window_shift() if config.window_scaling else None
            sack = config.sack
            if config.timestamps:
                ts_val, ts_ecr = self._ts_now(now), 0
        else:
            flags = SYN | ACK
            ack = self.rcv_nxt
            self.last_ack_sent = ack
            self.rcv_adv = (ack + window) & MASK32
            self._ack_now = False
            wscale = self.rcv_wscale if self.ws_ok else None
            sack = self.sack_ok
            if self.ts_ok:
                ts_val, ts_ecr = self._ts_now(now), self.ts_recent
        return Segment(self.local_port, self.remote_port, self.iss, ack, flags, window, b"",
                       self.adv_mss, wscale, sack, (), ts_val, ts_ecr)

    def _rst_segment(self, now: float) -> Segment:
        """Our RST for abort() (Linux tcp_send_active_reset: RST|ACK at SND.MAX)."""
        ts_val = self._ts_now(now) if self.ts_ok else None
        ts_ecr = self.ts_recent if self.ts_ok else None
        return Segment(self.local_port, self.remote_port, self.snd_max, self.rcv_nxt,
                       RST | ACK, 0, b"", None, None, False, (), ts_val, ts_ecr)

    # -- output ----------------------------------------------------------------------

    def output(self, now: float, budget: int) -> list[Segment]:
        """Everything to send now, at most ``budget`` segments (module contract)."""
        out: list[Segment] = []
        if budget <= 0:
            return out
        ctl_out = self._ctl_out
        if ctl_out:
            if len(ctl_out) <= budget:
                self._ctl_out = None  # all taken: the queue itself is the output
                out = ctl_out
            else:
                out.extend(ctl_out[:budget])
                del ctl_out[:budget]
            if len(out) >= budget:
                return out
        if self._rst_pending:
            self._rst_pending = False
            out.append(self._rst_segment(now))
            return out
        state = self._state
        if state is _S.ESTABLISHED or state is _S.CLOSE_WAIT or state is _S.FIN_WAIT_1 \
                or state is _S.LAST_ACK or state is _S.CLOSING or state is _S.FIN_WAIT_2:
            self._output_synchronized(now, budget, out)
        elif state is _S.SYN_SENT or state is _S.SYN_RECEIVED:
            if self.snd_nxt == self.iss or self._synack_due or (
                    state is _S.SYN_RECEIVED and self._ack_now):
                self._synack_due = False
                out.append(self._syn_segment(now))
                self.snd_nxt = self.snd_max = (self.iss + 1) & MASK32
                self._last_send_at = now
                if self._retries == 0:
                    self._rtt_seq = self.snd_nxt  # time the SYN (Karn: first transmission only)
                    self._rtt_at = now
                if self.rto_at is None:
                    self.rto_at = now + self.rtt.rto
        elif state is _S.TIME_WAIT and self._ack_now:
            out.append(self._segment(self.snd_max, 0, b"", (), now))
        return out

    def _output_synchronized(self, now: float, budget: int, out: list[Segment]) -> None:
        if self._blackhole_limit and self.config.blackhole_retry \
                and now - self._blackhole_at >= self.config.blackhole_retry:
            self._end_blackhole_clamp()
        sndbuf = self._sndbuf
        buf_len = len(sndbuf)
        sb = self.sb
        sent = False
        if (self._fast_rtx or sb.lost_pending) and self._frto != 2:
            # RFC 6675 §4 NextSeg rule 1: lost segments before new data; the first one of
            # a fast retransmit or a timeout whatever cwnd says. (F-RTO's second step
            # sends new data instead, RFC 5682 §2.1 step 2b.)
            force = self._fast_rtx
            self._fast_rtx = False
            if self._retransmit_lost(now, budget, out, force):
                sent = True
        if self._ka_due and len(out) < budget:
            self._ka_due = False
            out.append(self._segment((self.snd_una - 1) & MASK32, 0, b"", (), now))
        fin_pending = self._fin_queued and ((self._fin_seq - self.snd_nxt) & MASK32) < HALF32
        tlp = self._tlp_due
        if not buf_len and not fin_pending and not self._probe_due and not tlp:
            # Nothing to send but perhaps an ACK.
            if self._ack_now and len(out) < budget:
                out.append(self._segment(self.snd_max, 0, b"", self._sack(), now))
            if sent:
                self._after_send(now)
            return
        if not sent and not fin_pending and not tlp and not self._probe_due \
                and self._dsack is None and self._ooo_fin is None and not self._ooo \
                and len(out) < budget and self._send_one(now, buf_len, out):
            return  # the common case: what is queued fits one segment
        self._tlp_due = False
        snd_una = self.snd_una
        snd_nxt = self.snd_nxt
        buf_seq = self.buf_seq
        wnd_end = (snd_una + self.snd_wnd) & MASK32
        cwnd = self.cc.cwnd
        # RFC 6675 pipe: what left the network (SACKed, lost) does not count, what was
        # retransmitted does (Linux tcp_packets_in_flight).
        held = sb.sacked_out + sb.dupack_out + sb.lost_out - sb.retrans_out
        sack = self._sack()
        mss = self._payload_limit(sack)
        if self.snd_max == snd_una and now - self._last_send_at > self.rtt.rto:
            self.cc.on_idle(now - self._last_send_at, self.rtt.rto)  # RFC 5681 §4.1
            cwnd = self.cc.cwnd
        nagle = self.config.nagle
        tso_max = self.tso_max
        tso_segs = max(1, tso_max // mss) if tso_max else 1
        srtt = self.rtt.srtt
        if tso_max and srtt:
            # Linux tcp_tso_autosize: a super-segment carries about 1 ms of data at the
            # pacing rate (cwnd / SRTT, twice that early in slow start and 1.2 times
            # after, tcp_update_pacing_rate), at least two segments (tcp_min_tso_segs),
            # so a slow path gets its bursts in smaller pieces.
            ratio = 2.0 if cwnd < self.cc.ssthresh >> 1 else 1.2
            segs = int(cwnd * ratio * TSO_AUTOSIZE_INTERVAL / srtt) // mss
            if segs < tso_segs:
                tso_segs = segs if segs > 2 else 2
        in_recovery = self.recovery.in_recovery
        window_blocked = False
        probe = self._probe_due
        self._probe_due = False
        while len(out) < budget:
            off = (snd_nxt - buf_seq) & MASK32
            unsent = buf_len - off
            if unsent <= 0:
                break
            flight = ((snd_nxt - snd_una) & MASK32) - held
            if flight >= cwnd and not probe and not tlp:
                break
            win = ((wnd_end - snd_nxt + HALF32) & MASK32) - HALF32
            goal = mss
            if tso_max and not probe and not tlp:
                # TSO: as many whole MSS as cwnd has room for (at least one, as without
                # TSO), up to what one super-segment carries (Linux tcp_tso_segs).
                room = (cwnd - flight) // mss
                goal = mss * min(room if room > 1 else 1, tso_segs)
            n = goal if goal < unsent else unsent
            if win < n:
                n = win
            if n <= 0:
                window_blocked = True
                break
            if n > mss and (n < unsent or (nagle and flight and not fin_pending)) \
                    and n % mss:
                # A super-segment ends on an MSS boundary unless it empties the queue
                # and Nagle allows the runt (Linux tcp_mss_split_point).
                n -= n % mss
            if n < mss and n < unsent:
                # Window-limited runt: RFC 9293 §3.8.6.2.1 (sender SWS avoidance).
                if n < (self.max_snd_wnd >> 1) and not probe:
                    window_blocked = True
                    break
            elif n < mss and nagle and flight and not fin_pending and not tlp:
                break  # Nagle, RFC 9293 §3.7.4
            probe = False
            flags = 0
            if n == unsent:
                flags = PSH
                if fin_pending and win > n:
                    flags = PSH | FIN
            if self._rtt_seq is None and not self.ts_ok:
                self._rtt_seq = (snd_nxt + n) & MASK32
                self._rtt_at = now
            seg = self._segment(snd_nxt, flags, sndbuf.peek(off, n), sack, now)
            if n > mss:
                seg.gso_size = mss
                self.stats["tcp_tso_segments"] += 1
            out.append(seg)
            end = (snd_nxt + n + (flags & FIN)) & MASK32
            sb.on_sent(snd_nxt, end, now, bool(flags & FIN))
            if in_recovery:
                self._prr().on_sent(n)
            snd_nxt = end
            if tlp:
                self._tlp_sent(end, False)
                tlp = False
            sent = True
        self.snd_nxt = self.snd_max = snd_nxt
        if fin_pending and snd_nxt == self._fin_seq and len(out) < budget \
                and ((snd_nxt - buf_seq) & MASK32) == buf_len:
            # A bare FIN once everything else is sent; it needs one byte of window.
            if ((wnd_end - snd_nxt - 1) & MASK32) < HALF32 - 1:
                out.append(self._segment(snd_nxt, FIN, b"", sack, now))
                end = (snd_nxt + 1) & MASK32
                sb.on_sent(snd_nxt, end, now, True)
                snd_nxt = self.snd_nxt = self.snd_max = end
                if tlp:
                    self._tlp_sent(end, False)
                    tlp = False
                sent = True
            else:
                window_blocked = True
        if tlp and len(out) < budget and self._tlp_retransmit(now, out, sack):
            sent = True  # RFC 8985 §7.3: no new data could go, so the last segment again
        if probe:
            # Zero window: Linux's probe, an old sequence number that forces an ACK.
            out.append(self._segment((self.snd_una - 1) & MASK32, 0, b"", sack, now))
        if self._ack_now and len(out) < budget:
            out.append(self._segment(self.snd_max, 0, b"", sack, now))
        if sent:
            self._after_send(now)
        elif window_blocked and self.snd_max == self.snd_una and self.persist_at is None:
            self.persist_at = now + self._persist_interval()

    def _end_blackhole_clamp(self) -> None:
        """``blackhole_retry`` after the clamp: full-sized segments again (RFC 4821
        §7.7); should the path still drop them, the same timeouts clamp it again."""
        self.mss_limit = self._blackhole_limit
        self._blackhole_limit = 0
        self._set_mss_from_limit()
        self.stats["tcp_pmtu_blackhole_retried"] += 1

    def _send_one(self, now: float, buf_len: int, out: list[Segment]) -> bool:
        """The loop of :meth:`_output_synchronized` for its most common case, a request
        or reply: everything unsent fits one segment, cwnd and the window take it, no
        SACK blocks, no FIN, no probe, Nagle does not hold it. Sends exactly what the
        loop would; False (nothing done) in any other case."""
        snd_una = self.snd_una
        snd_nxt = self.snd_nxt
        off = (snd_nxt - self.buf_seq) & MASK32
        n = buf_len - off
        smss = self.smss
        if n <= 0 or n > smss:
            return False
        if self.snd_max == snd_una and now - self._last_send_at > self.rtt.rto:
            self.cc.on_idle(now - self._last_send_at, self.rtt.rto)  # RFC 5681 §4.1
        sb = self.sb
        flight = ((snd_nxt - snd_una) & MASK32) - (sb.sacked_out + sb.dupack_out
                                                   + sb.lost_out - sb.retrans_out)
        if flight >= self.cc.cwnd \
                or ((snd_una + self.snd_wnd - snd_nxt + HALF32) & MASK32) - HALF32 < n \
                or (n < smss and flight and self.config.nagle):
            return False
        if self._rtt_seq is None and not self.ts_ok:
            self._rtt_seq = (snd_nxt + n) & MASK32
            self._rtt_at = now
        out.append(self._segment(snd_nxt, PSH, self._sndbuf.peek(off, n), (), now))
        end = (snd_nxt + n) & MASK32
        sb.on_sent(snd_nxt, end, now, False)
        if self.recovery.in_recovery:
            self._prr().on_sent(n)
        self.snd_nxt = self.snd_max = end
        self._after_send(now)
        return True

    def _after_send(self, now: float) -> None:
        self._last_send_at = now
        if now - self._data_at < self.config.delayed_ack:
            # Data sent within the ACK timeout of data received: an interactive
            # exchange, whose ACKs ride on the replies (Linux tcp_event_data_sent:
            # pingpong mode, threshold 1).
            self._pingpong = True
        if self.snd_max != self.snd_una:
            self.persist_at = None
            if self.rto_at is None or self._timer_kind == TIMER_TLP:
                # RFC 6298 §5.1, or RFC 8985 §7.2: the probe timeout restarts with new data.
                self._arm_timer(now, True)

    def _send_record(self, rec: SentSegment, now: float, out: list[Segment],
                     sack: tuple[tuple[int, int], ...]) -> None:
        """Retransmit one scoreboard record (at most an MSS: the caller cut it)."""
        start = rec.start
        n = ((rec.end - start) & MASK32) - rec.fin
        flags = FIN if rec.fin else 0
        payload: bytes | memoryview = b""
        if n > 0:
            off = (start - self.buf_seq) & MASK32
            payload = self._sndbuf.peek(off, n)
            if off + n == len(self._sndbuf):
                flags |= PSH
        out.append(self._segment(start, flags, payload, sack, now))
        self.sb.on_retransmit(rec, now)
        self._rtt_seq = None  # Karn: this data's ACK is ambiguous
        self.stats["tcp_retransmitted_segments"] += 1
        if self._undo_retrans >= 0:
            self._undo_retrans += 1
        if self.recovery.in_recovery:
            self._prr().on_sent(n + rec.fin)

    def _retransmit_lost(self, now: float, budget: int, out: list[Segment],
                         force: bool) -> bool:
        """RFC 6675 §5 step (C): retransmit lost segments while pipe < cwnd (the first
        one regardless with ``force``); True if anything was sent."""
        sb = self.sb
        sack = self._sack()
        limit = self._payload_limit(sack)
        flight = (self.snd_max - self.snd_una) & MASK32
        cwnd = self.cc.cwnd
        sent = False
        while len(out) < budget:
            if not force and sb.pipe(flight) >= cwnd:
                break
            rec = sb.next_lost(limit)
            if rec is None:
                break
            force = False
            self._send_record(rec, now, out, sack)
            sent = True
        return sent

    def _tlp_sent(self, end: int, retransmission: bool) -> None:
        """RFC 8985 §7.3: remember the probe (TLP.end_seq, TLP.is_retrans)."""
        self._tlp_high = end
        self._tlp_retrans = retransmission
        self.stats["tcp_tlp_probes"] += 1

    def _tlp_retransmit(self, now: float, out: list[Segment],
                        sack: tuple[tuple[int, int], ...]) -> bool:
        """The probe as a retransmission of the last segment, cut to one MSS at its end."""
        sb = self.sb
        segs = sb.segments
        if not segs:
            return False
        limit = self._payload_limit(sack)
        rec = segs[-1]
        if rec.state & SACKED:
            return False  # the tail arrived: nothing to probe for
        if ((rec.end - rec.start) & MASK32) - rec.fin > limit:
            rec = sb._split(len(segs) - 1, (rec.end - rec.fin - limit) & MASK32)
        self._send_record(rec, now, out, sack)
        self._tlp_sent(self.snd_max, True)
        return True

    def _resend_flight(self) -> None:
        """Everything in flight is to be sent again (a smaller path MTU, RFC 1191 §6.1):
        marked lost without a congestion response (Linux ``tcp_simple_retransmit``)."""
        if self.snd_max == self.snd_una:
            return
        self.sb.mark_all_lost(forget_sacks=False)
        self._fast_rtx = True
        self._rtt_seq = None  # Karn: these are retransmissions

    # -- ACK processing (RFC 9293 §3.10.7.4 fifth) ------------------------------------

    def _process_ack(self, seg: Segment, now: float) -> bool:
        """Process SEG.ACK in a synchronized state; False: drop the segment."""
        ack = seg.ack
        snd_una = self.snd_una
        if ((ack - self.snd_max - 1) & MASK32) < HALF32:
            # Acknowledges something not yet sent: send an ACK, drop (RFC 9293, RFC 5961 §5.2).
            # Exactly half the sequence space away is ambiguous; it counts as not sent, or
            # an idle connection would take it for 2**31 acknowledged bytes.
            self.stats["tcp_ack_unsent"] += 1
            self._ack_unacceptable(seg, now)
            return False
        behind = ((snd_una - ack) & MASK32)
        if behind < HALF32 and behind > self.max_snd_wnd:
            # Older than SND.UNA - MAX.SND.WND: RFC 5961 §5.2 challenge ACK, drop.
            self.stats["tcp_ack_too_old"] += 1
            self._challenge_ack(now)
            return False
        window = seg.window << self.snd_wscale
        if behind >= HALF32:  # ack after snd_una: new data acknowledged
            self._on_new_ack(seg, ack, now)
        elif behind:
            return True  # an old duplicate ACK: ignored (RFC 9293), the text is processed
        else:
            dupack = window == self.snd_wnd and not len(seg.payload) \
                and not seg.flags & (SYN | FIN) and self.snd_max != snd_una
            if dupack or (seg.sack_blocks and self.sack_ok):
                self._on_same_ack(seg, dupack, now)
        self._update_window(seg, ack, window, now)
        return True

    def _update_window(self, seg: Segment, ack: int, window: int, now: float) -> None:
        """RFC 9293 §3.10.7.4: SND.WND from the newest segment (SND.WL1/SND.WL2)."""
        self._probes_out = 0  # the peer answers (Linux tcp_ack: icsk_probes_out = 0)
        seq = seg.seq
        wl1 = self.snd_wl1
        if ((seq - wl1 - 1) & MASK32) < HALF32 - 1 or (
                wl1 == seq and ((ack - self.snd_wl2) & MASK32) < HALF32):
            old = self.snd_wnd
            self.snd_wnd = window
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if window > self.max_snd_wnd:
                self.max_snd_wnd = window
            if window and not old:
                self.persist_at = None
                self._persist_backoff = 0
            elif not window and self.persist_at is not None:
                # Linux tcp_ack_probe: still closed, re-arm from now with the backoff.
                self.persist_at = now + self._persist_interval()

    def _on_new_ack(self, seg: Segment, ack: int, now: float) -> None:
        """SEG.ACK advances SND.UNA: everything that follows from it, SACK blocks,
        loss detection, recovery and timers included."""
        if self._frto:
            self._frto_ack(seg, ack, True, False)
        snd_una = self.snd_una
        acked = (ack - snd_una) & MASK32
        data = acked
        if snd_una == self.iss:
            data -= 1  # the SYN (only reachable from SYN-RECEIVED)
        if self._fin_queued and ((ack - self._fin_seq - 1) & MASK32) < HALF32 - 1:
            data -= 1  # our FIN
        flight = (self.snd_max - snd_una) & MASK32
        if data > 0:
            self._sndbuf.consume(data)
            self.buf_seq = (self.buf_seq + data) & MASK32
        self.snd_una = ack
        if ((ack - self.snd_nxt - 1) & MASK32) < HALF32 - 1:
            self.snd_nxt = ack
        # RTT: RFC 7323 §4 (timestamps) or RFC 6298 §3 with Karn's rule.
        sample: float | None = None
        ts_ecr = seg.ts_ecr
        if self.ts_ok and ts_ecr:
            delta = (self._ts_now(now) - ts_ecr) & MASK32
            if delta < HALF32:
                sample = delta / 1000.0
        elif self._rtt_seq is not None and ((ack - self._rtt_seq) & MASK32) < HALF32:
            sample = now - self._rtt_at
            self._rtt_seq = None
        sb = self.sb
        if sample is not None:
            self.rtt.sample(sample, now)
        sb.min_rtt = self.rtt.min_rtt  # RACK.min_RTT (RFC 8985 §6.2 step 1), handshake's too
        cc = self.cc
        cc.observe_ack(ack, self.snd_nxt, sample, now)
        self._retries = 0
        delivered = sb.cumulative_ack(ack, now) if sb.segments else 0
        rec = self.recovery
        restart = True
        if rec.in_recovery:
            if rec.covers(ack):
                self._exit_recovery()
            elif not self.sack_ok:
                # Partial ACK: RFC 6582 §3.2 step 5, the "Impatient" timer variant.
                if self.config.prr:
                    # RFC 6937 §3 DeliveredData without SACK: what the duplicate ACKs
                    # did not already count.
                    delivered = sb.dupack_acked(delivered, self.smss,
                                                (self.snd_max - ack) & MASK32)
                else:
                    cc.on_partial_ack(acked)
                sb.mark_head_lost()
                self._fast_rtx = True
                restart = not self._partial_seen
                self._partial_seen = True
        else:
            rec.dupacks = 0
            sb.dupack_out = 0  # the hole those duplicates pointed at is filled
            # RFC 7661 spirit: grow only if the window was (nearly) used.
            if flight + self.smss >= cc.cwnd or (cc.cwnd < cc.ssthresh and 2 * flight >= cc.cwnd):
                cc.on_ack(acked, now, self.rtt.srtt or 0.0)
        if seg.sack_blocks or sb.sacked_out or sb.lost_out or rec.in_recovery \
                or self._tlp_high is not None or not rec.covers(ack):
            self._loss_step(seg, now, delivered, restart, False)
        else:
            self._arm_timer(now, restart)  # nothing can be lost: _loss_step's first exit
        if data > 0:
            self.events.append((EV_SENT, self, data))

    def _on_same_ack(self, seg: Segment, dupack: bool, now: float) -> None:
        """SEG.ACK = SND.UNA: a duplicate ACK (RFC 5681 §2) and/or new SACK information."""
        rec = self.recovery
        delivered = 0
        if self._frto:
            self._frto_ack(seg, self.snd_una, False, dupack)
        if dupack:
            rec.dupacks += 1
            self.stats["tcp_dupacks"] += 1
            if not self.sack_ok and self.config.prr:
                # Without SACK a duplicate ACK is a segment delivered (RFC 6937 §3).
                delivered = self.sb.dupack((self.snd_max - self.snd_una) & MASK32,
                                           self.smss)
            if rec.in_recovery:
                if not self.sack_ok and not self.config.prr:
                    self.cc.on_dupack_in_recovery()  # RFC 6582 §3.2 step 3
            elif rec.dupacks >= rec.dupack_threshold and rec.covers(self.snd_una) and (
                    not self.sack_ok or not self.config.rack or not self.sb.sacked_out):
                # RFC 5681 §3.2 / RFC 6675 §5 (a): DupThresh duplicates, the first
                # unacknowledged segment is lost. With SACK information RACK decides
                # (Linux: no duplicate-ACK counting when RACK is on).
                self.sb.mark_head_lost()
        self._loss_step(seg, now, delivered, False, dupack)

    def _loss_step(self, seg: Segment, now: float, delivered: int, restart: bool,
                   dupack: bool) -> None:
        """SACK blocks, loss detection, recovery entry, PRR and the timer for one ACK."""
        sb = self.sb
        rec = self.recovery
        blocks = seg.sack_blocks
        ack = seg.ack
        dsack_end: int | None = None
        newly_sacked = 0
        if blocks and self.sack_ok:
            first = blocks[0]
            if ((ack - first[0] - 1) & MASK32) < HALF32 - 1 or (
                    len(blocks) > 1 and ((first[0] - blocks[1][0]) & MASK32) < HALF32
                    and ((blocks[1][1] - first[1]) & MASK32) < HALF32):
                # RFC 2883 §4: a first block below the ACK, or inside the second, reports
                # a duplicate (D-SACK): something was retransmitted needlessly.
                self.stats["tcp_dsack_received"] += 1
                dsack_end = first[1]
                self._on_dsack()
            newly_sacked = sb.sack(blocks, self.snd_max, now, self.smss)
            delivered += newly_sacked
        if self._tlp_high is not None:
            self._tlp_ack(ack, dsack_end, restart, newly_sacked, dupack)
        if not (sb.sacked_out or sb.lost_out or rec.in_recovery or dupack) \
                and rec.covers(self.snd_una):
            # Nothing can be lost (Linux: the ACK is not "dubious").
            self._arm_timer(now, restart)
            return
        timeout = 0.0
        if self.sack_ok:
            if self.config.rack:
                _, timeout = sb.rack_detect_loss(now, self._reo_wnd())
            else:
                sb.mark_lost_dupthresh(self.smss)
        if sb.lost_out and not rec.in_recovery and rec.covers(self.snd_una):
            self._enter_recovery()
        if rec.in_recovery and self.config.prr:
            # RFC 6937: cwnd = pipe + sndcnt on every ACK in recovery.
            pipe = sb.pipe((self.snd_max - self.snd_una) & MASK32)
            self.cc.cwnd = self._prr().on_ack(delivered, pipe, self.smss)
        self._arm_timer(now, restart or timeout > 0.0, timeout)

    def _reo_wnd(self) -> float:
        """RACK.reo_wnd (RFC 8985 §6.2 step 4): no allowance for reordering while none
        has been seen and the sender is recovering or DupThresh segments are SACKed; else
        reo_wnd_mult · min_RTT / 4, at most SRTT."""
        sb = self.sb
        rec = self.recovery
        if not sb.reordering_seen and (
                rec.in_recovery or not rec.covers(self.snd_una)
                or sb.sacked_out > (DUPTHRESH - 1) * self.smss):
            return 0.0
        srtt = self.rtt.srtt or 0.0
        min_rtt = self.rtt.min_rtt
        if min_rtt == float("inf"):
            return srtt
        window = self._reo_wnd_mult * min_rtt / 4
        return window if window < srtt or not srtt else srtt

    def _on_dsack(self) -> None:
        """A D-SACK arrived: widen RACK's reordering window once per round (RFC 8985
        §6.2 step 4) and count towards undoing the last reduction (RFC 2883 §5)."""
        if self._dsack_round is not None and \
                ((self.snd_una - self._dsack_round) & MASK32) < HALF32:
            self._dsack_round = None
        if self._dsack_round is None:
            self._dsack_round = self.snd_max
            self._reo_wnd_mult += 1
            self._reo_wnd_persist = 16
        if self._undo_retrans > 0:
            self._undo_retrans -= 1
            if not self._undo_retrans and not self.recovery.in_recovery:
                self._undo()

    def _undo(self) -> None:
        """Every retransmission of the last episode was needless (D-SACKed): the loss
        was reordering, so restore the window it cost (RFC 2883 §5, Linux
        ``tcp_try_undo_dsack``)."""
        cc = self.cc
        if self._prior_cwnd > cc.cwnd:
            cc.cwnd = self._prior_cwnd
        if self._prior_ssthresh > cc.ssthresh:
            cc.ssthresh = self._prior_ssthresh
        self._undo_retrans = -1
        self.stats["tcp_dsack_undo"] += 1

    def _frto_ack(self, seg: Segment, ack: int, advanced: bool, dupack: bool) -> None:
        """An ACK after a timeout, before it is applied: Eifel detection (RFC 3522 §3.2)
        and F-RTO (RFC 5682 §2.1 basic, §3 SACK-enhanced; Linux ``tcp_process_loss``).
        ``advanced``: it acknowledges new data (``ack`` > SND.UNA)."""
        state = self._frto
        frto_ts = self._frto_ts
        ts_ecr = seg.ts_ecr
        if advanced and state == 1 and frto_ts is not None and ts_ecr \
                and ((frto_ts - ts_ecr - 1) & MASK32) < HALF32 - 1:
            # The first acceptable ACK echoes a TSval older than the retransmission's: an
            # original segment caused it, so the timeout was spurious.
            self._undo_timeout("tcp_spurious_rto_eifel")
            return
        blocks = seg.sack_blocks if self.sack_ok else ()
        if self.sb.acks_original(ack, blocks, self._frto_high):
            # Step 3b: data the timeout marked lost, never sent again, was delivered.
            self._undo_timeout("tcp_spurious_rto_frto")
            return
        if state == 2 or not advanced:
            if dupack or blocks:
                self._frto = 0  # step 3a (2a in state 1): the loss was real
            return
        # Step 2b: the retransmission is acknowledged. Send new data next (up to two
        # segments, as the slow-start window now allows) instead of retransmitting, if
        # there is any and the window takes it; else the usual go-back-N.
        unsent = len(self._sndbuf) - ((self.snd_max - self.buf_seq) & MASK32)
        window_end = (ack + (seg.window << self.snd_wscale)) & MASK32
        if ((ack - self._frto_high) & MASK32) < HALF32 or unsent <= 0 \
                or ((window_end - self.snd_max - 1) & MASK32) >= HALF32 - 1:
            self._frto = 0
            return
        self._frto = 2

    def _undo_timeout(self, stat: str) -> None:
        """The timeout was spurious: nothing is lost after all, and cwnd and ssthresh
        come back (Linux ``tcp_try_undo_loss``; RFC 4015's response restores ssthresh
        too)."""
        self._frto = 0
        self._fast_rtx = False
        self.sb.unmark_lost()
        # No go-back-N follows, so RFC 6582's guard against its duplicate ACKs (no fast
        # retransmit below ``recover``) has nothing left to guard (Linux: back to Open).
        self.recovery.recover = self.snd_una
        cc = self.cc
        if self._prior_cwnd > cc.cwnd:
            cc.cwnd = self._prior_cwnd
        if self._prior_ssthresh > cc.ssthresh:
            cc.ssthresh = self._prior_ssthresh
        self.stats[stat] += 1

    def _enter_recovery(self) -> None:
        """Fast recovery (RFC 5681 §3.2, RFC 6675 §5, RFC 6582 §3.2 step 2): the
        controller's reduction; with SACK, PRR spreads it over the round."""
        rec = self.recovery
        cc = self.cc
        flight = (self.snd_max - self.snd_una) & MASK32
        self._prior_cwnd = cc.cwnd
        self._prior_ssthresh = cc.ssthresh
        self._undo_retrans = 0
        prr = self.prr
        if prr is None:  # the first recovery (made on first use: the contract of .tcb)
            prr = self.prr = Prr()
        rec.enter(self.snd_max)
        cc.enter_recovery(flight)
        if self.config.prr:
            prr.start(cc.ssthresh, flight)
        elif self.sack_ok:
            cc.cwnd = cc.ssthresh  # RFC 6675 §5 step (4.2)
        self._fast_rtx = True
        self._partial_seen = False
        self._rtt_seq = None
        self._tlp_high = None  # Linux tcp_init_cwnd_reduction
        self.stats["tcp_fast_retransmits"] += 1

    def _prr(self) -> Prr:
        """The PRR state, in recovery (made by :meth:`_enter_recovery` before it)."""
        prr = self.prr
        assert prr is not None, "PRR used before the first recovery"
        return prr

    def _exit_recovery(self) -> None:
        """The full ACK (RFC 6582 §3.2 step 6): cwnd = ssthresh with PRR (RFC 6937 §3) or
        SACK, NewReno's deflation with neither."""
        rec = self.recovery
        cc = self.cc
        rec.exit()
        self.sb.dupack_out = 0
        if self.sack_ok or self.config.prr:
            cc.exit_recovery(cc.ssthresh)  # min(ssthresh, ssthresh + MSS) = ssthresh
        else:
            cc.exit_recovery((self.snd_max - self.snd_una) & MASK32)
        self._reo_wnd_persist -= 1
        if self._reo_wnd_persist <= 0:
            self._reo_wnd_mult = 1  # RFC 8985 §6.2 step 4
        if self._undo_retrans == 0:
            self._undo()

    def _tlp_ack(self, ack: int, dsack_end: int | None, advanced: bool, sacked: int,
                 dupack: bool) -> None:
        """RFC 8985 §7.4 with Linux ``tcp_process_tlp_ack``: was the probe needed?"""
        high = self._tlp_high
        assert high is not None
        if ((ack - high) & MASK32) >= HALF32:
            return  # the probe is not acknowledged yet
        if not self._tlp_retrans or dsack_end == high:
            self._tlp_high = None  # new data, or the original arrived too: no loss
        elif ((ack - high - 1) & MASK32) < HALF32 - 1:
            # The probe repaired a loss: respond to it as to congestion, once.
            self._tlp_high = None
            cc = self.cc
            cc.enter_recovery((self.snd_max - self.snd_una) & MASK32)
            cc.exit_recovery(cc.ssthresh)
            self.stats["tcp_tlp_recoveries"] += 1
        elif dupack and not advanced and not sacked:
            self._tlp_high = None  # a pure duplicate: original and probe both arrived

    # -- the retransmission timer slot --------------------------------------------------

    def _tlp_eligible(self) -> bool:
        """RFC 8985 §7.2 / Linux ``tcp_schedule_loss_probe``: SACK, nothing SACKed or
        lost, not recovering, no probe outstanding."""
        config = self.config
        sb = self.sb
        rec = self.recovery
        return (config.tlp and config.rack and self.sack_ok and self._tlp_high is None
                and not rec.in_recovery and rec.covers(self.snd_una) and not sb.sacked_out
                and not sb.lost_out and bool(self.snd_wnd) and not self.rtt.backoffs)

    def _arm_timer(self, now: float, restart: bool, reorder: float = 0.0) -> None:
        """Arm the timer slot after an ACK: the reorder timer if RACK waits for one, else
        a probe timeout if a tail loss probe may go, else the RTO (restarted on new data,
        RFC 6298 §5.3)."""
        if self.snd_una == self.snd_max:
            self.rto_at = None  # RFC 6298 §5.2
            self._timer_kind = TIMER_RTO
            return
        if reorder > 0.0:
            self.rto_at = now + reorder
            self._timer_kind = TIMER_REORDER
            return
        if self._tlp_eligible():
            # RFC 8985 §7.2: PTO = 2·SRTT, plus the worst-case delayed ACK when one
            # segment is in flight; 1 s without an RTT sample; never past the RTO.
            srtt = self.rtt.srtt
            if srtt:
                pto = 2.0 * srtt
                if ((self.snd_max - self.snd_una) & MASK32) <= self.smss:
                    pto += self.config.delayed_ack_max
            else:
                pto = 1.0
            rto = self.rtt.rto
            self.rto_at = now + (pto if pto < rto else rto)
            self._timer_kind = TIMER_TLP
            return
        if restart or self.rto_at is None or self._timer_kind != TIMER_RTO:
            self.rto_at = now + self.rtt.rto
            self._timer_kind = TIMER_RTO

    # -- timers --------------------------------------------------------------------------

    def _persist_interval(self) -> float:
        interval = self.rtt.base_rto * (1 << self._persist_backoff)
        limit = self.config.persist_max
        return interval if interval < limit else limit

    def _timeout_error(self) -> OSError:
        """Retries exhausted: ETIMEDOUT, or the soft error Linux reports instead
        (``tcp_write_err``: ``sk_err = sk_err_soft ? : ETIMEDOUT``), caused by a TimeoutError."""
        timeout = TimeoutError(errno.ETIMEDOUT, "Connection timed out")
        soft = self._soft_error
        if soft is None:
            return timeout
        error = type(soft)(*soft.args)
        error.__cause__ = timeout
        return error

    def _on_rto(self, now: float) -> None:
        """The timer slot ran out: a probe timeout, a reorder timeout or the RTO."""
        self.rto_at = None
        kind = self._timer_kind
        self._timer_kind = TIMER_RTO
        if kind == TIMER_TLP:
            # RFC 8985 §7.3: send the probe, then wait for it with the RTO.
            if self.snd_max != self.snd_una:
                self._tlp_due = True
                self.rto_at = now + self.rtt.rto
            return
        if kind == TIMER_REORDER:
            self._on_reorder_timeout(now)
            return
        self._on_retransmission_timeout(now)

    def _on_reorder_timeout(self, now: float) -> None:
        """RFC 8985 §6.3: the reordering window of a segment ran out; as on an ACK,
        what RACK now finds lost starts (or continues) recovery."""
        sb = self.sb
        rec = self.recovery
        if self.snd_max == self.snd_una:
            return
        _, timeout = sb.rack_detect_loss(now, self._reo_wnd())
        if sb.lost_out and not rec.in_recovery and rec.covers(self.snd_una):
            self._enter_recovery()
            if self.config.prr:
                pipe = sb.pipe((self.snd_max - self.snd_una) & MASK32)
                self.cc.cwnd = self._prr().on_ack(0, pipe, self.smss)
        self.stats["tcp_rack_reorder_timeouts"] += 1
        self._arm_timer(now, True, timeout)

    def _on_retransmission_timeout(self, now: float) -> None:
        """RFC 6298 §5.4-5.7 retransmission timeout (see the module contract)."""
        state = self._state
        config = self.config
        if state in _SYN_STATES:
            limit = config.syn_retries if state is _S.SYN_SENT else config.synack_retries
            if self._retries >= limit:
                self._handshake_timeout(now)
                return
            self._retries += 1
            self.rtt.backoff()
            self.snd_nxt = self.iss  # resend SYN / SYN-ACK
            self._rtt_seq = None
            self.rto_at = now + self.rtt.rto
            self.stats["tcp_syn_retransmits"] += 1
            return
        if self.snd_una == self.snd_max:
            return
        if not self.snd_wnd:
            # Zero window with data in flight: these are probes (Linux).
            if now - self._last_recv_at > config.rto_max:
                self._fail(self._timeout_error(), now)
                return
        elif self._retries >= config.retries2:
            self._fail(self._timeout_error(), now)
            return
        else:
            self._retries += 1
            if self._retries == config.blackhole_timeouts and config.blackhole_mss \
                    and self.mss_limit > config.blackhole_mss:
                # PMTU black hole (RFC 4821 §7.7, Linux tcp_mtu_probing): smaller
                # segments from the go-back-N below on.
                self._blackhole_limit = self.mss_limit
                self._blackhole_at = now
                self.mss_limit = config.blackhole_mss
                self._set_mss_from_limit()
                self.stats["tcp_pmtu_blackhole"] += 1
        cc = self.cc
        # F-RTO (RFC 5682 §2.1 step 1) on the first timeout of an episode outside fast
        # recovery with the window open, as Linux's tcp_enter_loss starts it; the state
        # before the reduction is kept for the undo.
        if config.frto and not self.rtt.backoffs and not self.recovery.in_recovery \
                and self.snd_wnd:
            self._frto = 1
            self._frto_high = self.snd_max
            self._frto_ts = self._ts_now(now) if self.ts_ok else None
            self._prior_cwnd = cc.cwnd
            self._prior_ssthresh = cc.ssthresh
        else:
            self._frto = 0
        cc.on_rto(self._flight(), self.rtt.backoffs > 0)
        self.recovery.on_rto(self.snd_max)
        self.rtt.backoff()
        # RFC 6675 §5.1 / RFC 8985 §6.3: everything not SACKed is lost, and sent again
        # from SND.UNA as the (one-segment) window allows: go-back-N without what the
        # peer holds. SACKed data is kept (Linux) unless the peer seems to have dropped
        # it (the cumulative ACK stops at a SACKed segment) or the timeout repeats
        # (RFC 2018 §8: the receiver may renege).
        sb = self.sb
        segs = sb.segments
        sb.mark_all_lost(forget_sacks=self.rtt.backoffs > 1 or bool(
            segs and segs[0].state & SACKED))
        self._undo_retrans = -1
        self._tlp_high = None
        self._fast_rtx = True
        self._rtt_seq = None
        self.rto_at = now + self.rtt.rto
        self.stats["tcp_timeouts"] += 1

    def _on_persist(self, now: float) -> None:
        self.persist_at = None
        if self.snd_max != self.snd_una:
            return
        if self._probes_out >= self.config.retries2:
            self._fail(self._timeout_error(), now)
            return
        self._probes_out += 1
        self._probe_due = True
        self._persist_backoff += 1
        self.persist_at = now + self._persist_interval()
        self.stats["tcp_window_probes"] += 1

    # Provided by the state machine (connection.py).

    def _fail(self, error: BaseException | None, now: float, *, send_rst: bool = False) -> None:
        raise NotImplementedError

    def _handshake_timeout(self, now: float) -> None:
        raise NotImplementedError


def _with_fin(blocks: list[tuple[int, int]], fin: int,
              limit: int) -> list[tuple[int, int]]:
    """SACK blocks covering a FIN held out of order too: it occupies sequence space, so
    the block its data ends (or a block of its own, the newest) reaches past it (Linux
    SACKs the FIN as part of its out-of-order segment), and the sender's RACK learns
    that what was sent before it is missing."""
    for i, (left, right) in enumerate(blocks):
        if right == fin:
            blocks[i] = (left, (fin + 1) & MASK32)
            return blocks
    return [(fin, (fin + 1) & MASK32), *blocks][:limit]
