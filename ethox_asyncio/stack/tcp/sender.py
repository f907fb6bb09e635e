"""The send half of a connection: segments out, ACKs in, retransmission and probes.

Contract:
- :meth:`Sender.output` returns at most ``budget`` segments to send now, in this
  order: control segments queued for particular peers' segments (RSTs answering
  a bad ACK in SYN-SENT/SYN-RECEIVED), our own RST (after :meth:`abort`, then
  nothing else), SYN or SYN-ACK, a retransmission of the segment at SND.UNA
  (fast retransmit, partial ACK, RTO), a zero-window or keep-alive probe, new
  data within ``min(cwnd, SND.WND)``, a FIN once every byte is sent, and a pure
  ACK if one is owed and nothing else carried it. Every non-SYN segment carries
  ACK, the current window, the timestamps option when negotiated and SACK blocks
  when out-of-order data is held.
- Data segments carry at most the effective send MSS (RFC 9293 §3.7.1: the
  peer's MSS, capped by ``mss_limit``, minus the timestamps option and any SACK
  blocks) — or, with ``tso_max`` set (a device that segments, TSO), up to
  ``tso_max`` bytes in whole MSS as cwnd allows, with ``gso_size`` = the MSS: the
  device cuts it into the segments that would have been sent (headers copied,
  sequence numbers advanced, PSH/FIN on the last), so everything else here counts
  bytes as before. A super-segment ends on an MSS boundary unless it empties the
  queue and Nagle lets the runt go. Retransmissions are single segments.
  Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a segment smaller than
  the MSS is sent only if it empties the queue (and, with Nagle, nothing is
  unacknowledged, RFC 9293 §3.7.4) or is at least half the largest window the
  peer offered. The congestion window counts segments as Linux does: a full
  segment may leave while the flight is below ``cwnd``.
- :meth:`Sender._process_ack` is RFC 9293 §3.10.7.4 "fifth, check the ACK field"
  for the synchronized states with RFC 5961 §5 ACK validation; it advances
  SND.UNA, samples the RTT (timestamps, else Karn's rule), drives NewReno
  (RFC 5681 §3.2, RFC 6582), restarts the retransmission timer (RFC 6298 §5.3)
  and updates the send window (SND.WL1/SND.WL2 rule).
- Retransmission timeout (RFC 6298 §5.4-5.6): retransmit the segment at SND.UNA,
  back off, then go back N from SND.UNA as the window allows. The
  ``blackhole_timeouts``-th timeout in a row lowers the MSS limit to
  ``blackhole_mss`` (PMTU black hole, RFC 4821 §7.7, as Linux tcp_mtu_probing). The connection
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

from .receiver import Receiver
from .segment import ACK, FIN, PSH, RST, SYN, Segment
from .state import TcpState
from .tcb import EV_SENT, HALF32, MASK32, TS_OPTION_LEN

__all__ = ["Sender"]

_S = TcpState
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
        if dsack is not None:
            # RFC 2883 §4: the duplicate first, then the usual blocks; reported once.
            self._dsack = None
            blocks = self._ooo.sack_blocks(self.rcv_nxt, limit - 1) if len(self._ooo) else []
            return (dsack, *blocks)
        if len(self._ooo):
            # RFC 2018 §4: as many blocks as fit, the newest first (3 with timestamps).
            return tuple(self._ooo.sack_blocks(self.rcv_nxt, limit))
        return ()

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
        if self._ctl_out:
            take = self._ctl_out[:budget]
            del self._ctl_out[:budget]
            out.extend(take)
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
        sndbuf = self._sndbuf
        buf_len = len(sndbuf)
        sent = False
        if self._fast_rtx:
            self._fast_rtx = False
            if self._retransmit_head(now, out):
                sent = True
        if self._ka_due and len(out) < budget:
            self._ka_due = False
            out.append(self._segment((self.snd_una - 1) & MASK32, 0, b"", (), now))
        fin_pending = self._fin_queued and ((self._fin_seq - self.snd_nxt) & MASK32) < HALF32
        if not buf_len and not fin_pending and not self._probe_due:
            # Nothing to send but perhaps an ACK.
            if self._ack_now and len(out) < budget:
                out.append(self._segment(self.snd_max, 0, b"", self._sack(), now))
            if sent:
                self._after_send(now)
            return
        snd_una = self.snd_una
        snd_nxt = self.snd_nxt
        buf_seq = self.buf_seq
        wnd_end = (snd_una + self.snd_wnd) & MASK32
        cwnd = self.cc.cwnd
        sack = self._sack()
        mss = self.smss - (4 + 8 * len(sack) if sack else 0)
        if self.snd_max == snd_una and now - self._last_send_at > self.rtt.rto:
            self.cc.on_idle(now - self._last_send_at, self.rtt.rto)  # RFC 5681 §4.1
            cwnd = self.cc.cwnd
        nagle = self.config.nagle
        tso_max = self.tso_max
        tso_segs = max(1, tso_max // mss) if tso_max else 1
        window_blocked = False
        probe = self._probe_due
        self._probe_due = False
        while len(out) < budget:
            off = (snd_nxt - buf_seq) & MASK32
            unsent = buf_len - off
            if unsent <= 0:
                break
            flight = (snd_nxt - snd_una) & MASK32
            if flight >= cwnd and not probe:
                break
            win = ((wnd_end - snd_nxt + HALF32) & MASK32) - HALF32
            goal = mss
            if tso_max and not probe:
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
            elif n < mss and nagle and flight and not fin_pending:
                break  # Nagle, RFC 9293 §3.7.4
            probe = False
            flags = 0
            if n == unsent:
                flags = PSH
                if fin_pending and win > n:
                    flags = PSH | FIN
            if ((self.snd_max - snd_nxt - 1) & MASK32) < HALF32 - 1:
                self.stats["tcp_retransmitted_segments"] += 1
            elif self._rtt_seq is None and not self.ts_ok:
                self._rtt_seq = (snd_nxt + n) & MASK32
                self._rtt_at = now
            seg = self._segment(snd_nxt, flags, sndbuf.peek(off, n), sack, now)
            if n > mss:
                seg.gso_size = mss
                self.stats["tcp_tso_segments"] += 1
            out.append(seg)
            snd_nxt = (snd_nxt + n + (flags & FIN)) & MASK32
            if ((self.snd_max - snd_nxt) & MASK32) > HALF32:
                self.snd_max = snd_nxt
            sent = True
        self.snd_nxt = snd_nxt
        if fin_pending and snd_nxt == self._fin_seq and len(out) < budget \
                and ((snd_nxt - buf_seq) & MASK32) == buf_len:
            # A bare FIN once everything else is sent; it needs one byte of window.
            if ((wnd_end - snd_nxt - 1) & MASK32) < HALF32 - 1:
                out.append(self._segment(snd_nxt, FIN, b"", sack, now))
                snd_nxt = self.snd_nxt = (snd_nxt + 1) & MASK32
                if ((self.snd_max - snd_nxt) & MASK32) > HALF32:
                    self.snd_max = snd_nxt
                sent = True
            else:
                window_blocked = True
        if probe:
            # Zero window: Linux's probe, an old sequence number that forces an ACK.
            out.append(self._segment((self.snd_una - 1) & MASK32, 0, b"", sack, now))
        if self._ack_now and len(out) < budget:
            out.append(self._segment(self.snd_max, 0, b"", sack, now))
        if sent:
            self._after_send(now)
        elif window_blocked and self.snd_max == self.snd_una and self.persist_at is None:
            self.persist_at = now + self._persist_interval()

    def _after_send(self, now: float) -> None:
        self._last_send_at = now
        if self.rto_at is None and self.snd_max != self.snd_una:
            self.rto_at = now + self.rtt.rto  # RFC 6298 §5.1
        if self.snd_max != self.snd_una:
            self.persist_at = None

    def _retransmit_head(self, now: float, out: list[Segment]) -> bool:
        """Resend the first unacknowledged segment, whatever cwnd and the window say."""
        snd_una = self.snd_una
        off = (snd_una - self.buf_seq) & MASK32
        avail = len(self._sndbuf) - off
        inflight = (self.snd_max - snd_una) & MASK32
        if inflight < avail:
            avail = inflight  # never new data here: only what was sent before
        sack = self._sack()
        # The MSS bounds data and options together (RFC 9293 §3.7.1, RFC 6691).
        limit = self.smss - (4 + 8 * len(sack) if sack else 0)
        n = limit if limit < avail else avail
        flags = 0
        if n > 0 and n == avail:
            flags = PSH
        fin_seq = (snd_una + (n if n > 0 else 0)) & MASK32
        if self._fin_queued and fin_seq == self._fin_seq \
                and ((self.snd_max - fin_seq - 1) & MASK32) < HALF32 - 1:
            flags |= FIN
        if n <= 0 and not flags & FIN:
            return False
        payload = self._sndbuf.peek(off, n) if n > 0 else b""
        out.append(self._segment(snd_una, flags, payload, sack, now))
        end = (snd_una + (n if n > 0 else 0) + (flags & FIN)) & MASK32
        if ((end - self.snd_nxt - 1) & MASK32) < HALF32 - 1:  # seq_gt(end, snd_nxt)
            self.snd_nxt = end
        if ((end - self.snd_max - 1) & MASK32) < HALF32 - 1:
            self.snd_max = end
        self._rtt_seq = None  # Karn: this data's ACK is ambiguous
        self.stats["tcp_retransmitted_segments"] += 1
        return True

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
        blocks = seg.sack_blocks
        if blocks and (((ack - blocks[0][0] - 1) & MASK32) < HALF32 - 1 or (
                len(blocks) > 1 and ((blocks[0][0] - blocks[1][0]) & MASK32) < HALF32
                and ((blocks[1][1] - blocks[0][1]) & MASK32) < HALF32)):
            # RFC 2883 §4: a first block below the ACK, or inside the second, reports
            # a duplicate (D-SACK): something was retransmitted needlessly.
            self.stats["tcp_dsack_received"] += 1
        if behind >= HALF32:  # ack after snd_una: new data acknowledged
            self._on_new_ack(seg, ack, now)
        elif behind:
            return True  # an old duplicate ACK: ignored (RFC 9293), the text is processed
        elif window == self.snd_wnd and not len(seg.payload) \
                and not seg.flags & (SYN | FIN) and self.snd_max != snd_una:
            self._on_dupack(now)  # RFC 5681 §2 duplicate ACK
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
        ts_ecr = seg.ts_ecr
        if self.ts_ok and ts_ecr:
            delta = (self._ts_now(now) - ts_ecr) & MASK32
            if delta < HALF32:
                self.rtt.sample(delta / 1000.0)
        elif self._rtt_seq is not None and ((ack - self._rtt_seq) & MASK32) < HALF32:
            self.rtt.sample(now - self._rtt_at)
            self._rtt_seq = None
        self._retries = 0
        rec = self.recovery
        cc = self.cc
        restart = True
        if rec.in_recovery:
            if rec.covers(ack):
                rec.exit()  # full ACK: RFC 6582 §3.2 step 6
                cc.exit_recovery((self.snd_max - ack) & MASK32)
            else:
                # Partial ACK: RFC 6582 §3.2 step 5, the "Impatient" timer variant.
                cc.on_partial_ack(acked)
                self._fast_rtx = True
                restart = not self._partial_seen
                self._partial_seen = True
        else:
            rec.dupacks = 0
            # RFC 7661 spirit: grow only if the window was (nearly) used.
            if flight + self.smss >= cc.cwnd or (cc.cwnd < cc.ssthresh and 2 * flight >= cc.cwnd):
                cc.on_ack(acked, now, self.rtt.srtt or 0.0)
        if self.snd_una == self.snd_max:
            self.rto_at = None  # RFC 6298 §5.2
        elif restart:
            self.rto_at = now + self.rtt.rto  # RFC 6298 §5.3
        if data > 0:
            self.events.append((EV_SENT, self, data))

    def _on_dupack(self, now: float) -> None:
        """RFC 5681 §3.2 / RFC 6582 §3.2 steps 1-4."""
        rec = self.recovery
        rec.dupacks += 1
        self.stats["tcp_dupacks"] += 1
        if rec.in_recovery:
            self.cc.on_dupack_in_recovery()
            return
        if rec.dupacks == rec.dupack_threshold and rec.covers(self.snd_una):
            rec.enter(self.snd_max)
            self.cc.enter_recovery(self._flight())
            self._fast_rtx = True
            self._partial_seen = False
            self._rtt_seq = None
            self.stats["tcp_fast_retransmits"] += 1

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
        """RFC 6298 §5.4-5.7 retransmission timeout (see the module contract)."""
        self.rto_at = None
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
                self.mss_limit = config.blackhole_mss
                self._set_mss_from_limit()
                self.stats["tcp_pmtu_blackhole"] += 1
        self.cc.on_rto(self._flight(), self.rtt.backoffs > 0)
        self.recovery.on_rto(self.snd_max)
        self.rtt.backoff()
        self.snd_nxt = self.snd_una  # go back N
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
