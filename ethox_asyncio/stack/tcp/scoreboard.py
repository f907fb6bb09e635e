"""The sender's scoreboard (RFC 6675 §3) and RACK's loss detection (RFC 8985 §6).

Contract:
- :class:`Scoreboard` keeps one :class:`SentSegment` per transmission of new
  sequence space (a TSO super-segment is one record; a FIN is counted in the record
  it ends), covering SND.UNA .. SND.MAX contiguously and in sequence order. A
  record is split when a SACK block or a retransmission covers part of it (Linux
  ``tcp_fragment``); SACK blocks split at most up to two records per MSS in flight
  (+16), so a peer cannot grow it or the work per ACK without bound. Each carries
  the time of its last transmission (RACK's ``xmit_ts``) and state bits:
  :data:`SACKED`, :data:`LOST`, :data:`RETRANS` (a retransmission of it is in
  flight) and :data:`EVER_RETRANS`.
- Byte counters, kept exact on every state change: ``sacked_out``, ``lost_out``,
  ``retrans_out`` and ``lost_pending`` (lost and not yet retransmitted). RFC 6675's
  ``pipe`` is :meth:`pipe` — flight − SACKed − lost + retransmitted, Linux's
  ``tcp_packets_in_flight`` in bytes: a lost segment leaves the network, its
  retransmission enters it.
- :meth:`cumulative_ack` drops what an ACK covers, :meth:`sack` marks SACK blocks
  (RFC 2018; blocks outside SND.UNA .. SND.MAX, D-SACK blocks among them, are
  ignored here). Both return the bytes newly delivered (RFC 6937 DeliveredData) and
  update RACK's "most recently sent segment delivered" (RFC 8985 §6.2 step 2,
  skipping a retransmitted one delivered sooner than the minimum RTT: ambiguous,
  as Linux ``tcp_rack_advance``) and the reordering evidence (step 3: a segment
  never retransmitted delivered below the highest SACKed sequence).
- Loss marking: :meth:`rack_detect_loss` (RFC 8985 §6.2 step 5; returns the time
  until the next segment would be lost, for the reorder timer),
  :meth:`mark_lost_dupthresh` (RFC 6675 §4 IsLost: DupThresh SACKed segments or
  more than (DupThresh − 1)·SMSS SACKed bytes above), :meth:`mark_head_lost` (the
  first un-SACKed segment: three duplicate ACKs without SACK information, RFC 5681
  §3.2 / RFC 6582 partial ACKs) and :meth:`mark_all_lost` (a retransmission
  timeout, RFC 6675 §5.1 / RFC 8985 §6.3).
- Without SACK (PRR's pipe, Linux's "reno SACK" emulation): :meth:`dupack` counts
  each duplicate ACK as one segment that left the network (``dupack_out`` bytes,
  bounded so a hole is always left, Linux ``tcp_add_reno_sack`` /
  ``tcp_limit_reno_sacked``), and :meth:`dupack_acked` takes back, on a cumulative
  ACK, what it covers beyond its first segment (``tcp_remove_reno_sacks``). ``pipe``
  subtracts ``dupack_out`` as it does SACKed bytes.
- :meth:`next_lost` finds what to retransmit (RFC 6675 §4 NextSeg rule 1: the
  first lost, un-SACKed segment not yet retransmitted); :meth:`on_retransmit`
  records that it was.
- Sequence numbers are 32-bit and wrap; every comparison is relative to SND.UNA.
  Times are the connection's ``now`` (seconds). Sans-IO.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = [
    "EVER_RETRANS",
    "LOST",
    "RETRANS",
    "SACKED",
    "Scoreboard",
    "SentSegment",
]

SACKED = 1
LOST = 2
RETRANS = 4
EVER_RETRANS = 8

MASK32 = 0xFFFFFFFF
HALF32 = 0x80000000
DUPTHRESH = 3  # RFC 6675 §2 / RFC 5681 §3.2
# Loss times are compared in floating point: a segment whose deadline is within this
# of now is due (RACK's arithmetic on the ACK that delivered it gives exactly now).
_EPSILON = 1e-6
_INF = float("inf")  # one object for every scoreboard (a float per connection otherwise)


class SentSegment:
    """One transmission's sequence range ``start`` .. ``end`` (FIN included)."""

    __slots__ = ("end", "fin", "sent_at", "start", "state")

    def __init__(self, start: int, end: int, sent_at: float, fin: bool, state: int = 0) -> None:
        self.start = start
        self.end = end
        self.sent_at = sent_at
        self.fin = fin
        self.state = state

    def __repr__(self) -> str:
        bits = "".join(name for bit, name in ((SACKED, "S"), (LOST, "L"), (RETRANS, "R"),
                                             (EVER_RETRANS, "E")) if self.state & bit)
        return (f"<SentSegment {self.start}..{self.end}{' FIN' if self.fin else ''} "
                f"at {self.sent_at:.6f} {bits or '-'}>")

    @property
    def length(self) -> int:
        return (self.end - self.start) & MASK32


class Scoreboard:
    """See the module contract."""

    __slots__ = ("dupack_out", "fack", "lost_out", "lost_pending", "min_rtt", "rack_end",
                 "rack_rtt", "rack_xmit", "reordering_seen", "retrans_out", "sacked_out",
                 "segments", "una")

    def __init__(self, una: int) -> None:
        # (``una`` masked once: one int object shared by the three fields below.)
        una &= MASK32
        self.segments: list[SentSegment] = []
        self.una = una  # SND.UNA as of the last cumulative_ack
        self.sacked_out = 0
        self.lost_out = 0
        self.retrans_out = 0
        self.lost_pending = 0
        self.dupack_out = 0  # bytes duplicate ACKs stand for, without SACK
        # RACK (RFC 8985 §6.1): the most recently sent segment delivered.
        self.rack_xmit = -1.0  # RACK.xmit_ts; -1: none yet
        self.rack_end = una  # RACK.end_seq
        self.rack_rtt = 0.0  # RACK.rtt
        self.min_rtt = _INF  # RACK.min_RTT (the smallest RTT sample seen)
        self.fack = una  # highest sequence delivered (SACKed or ACKed)
        self.reordering_seen = False

    def __repr__(self) -> str:
        return (f"<Scoreboard {len(self.segments)} records sacked={self.sacked_out} "
                f"lost={self.lost_out} retrans={self.retrans_out}>")

    def __len__(self) -> int:
        return len(self.segments)

    def pipe(self, flight: int) -> int:
        """RFC 6675 pipe: ``flight`` (SND.MAX − SND.UNA) less what left the network."""
        return flight - self.sacked_out - self.dupack_out - self.lost_out + self.retrans_out

    def dupack(self, flight: int, smss: int) -> int:
        """A duplicate ACK from a peer that does not SACK: one more segment has left the
        network (RFC 6937 §3 without SACK, Linux ``tcp_add_reno_sack``); bounded so that
        ``dupack_out`` leaves at least the lost bytes (or one segment) as the hole
        (``tcp_limit_reno_sacked``). Returns the bytes credited (DeliveredData)."""
        hole = self.lost_out if self.lost_out > smss else smss
        room = flight - hole - self.dupack_out
        credit = smss if smss < room else (room if room > 0 else 0)
        self.dupack_out += credit
        return credit

    def dupack_acked(self, acked: int, smss: int, flight: int) -> int:
        """A cumulative ACK of ``acked`` new bytes, ``flight`` left after it: all of it
        but its first segment was already credited by duplicate ACKs, as far as they
        reach (Linux ``tcp_remove_reno_sacks``). Returns the bytes newly delivered."""
        used = acked - smss
        if used > self.dupack_out:
            used = self.dupack_out
        if used > 0:
            self.dupack_out -= used
            acked -= used
        hole = self.lost_out if self.lost_out > smss else smss
        if self.dupack_out > flight - hole:
            self.dupack_out = flight - hole if flight > hole else 0
        return acked

    # -- bookkeeping ---------------------------------------------------------------

    def _count(self, rec: SentSegment, sign: int) -> None:
        state = rec.state
        n = sign * ((rec.end - rec.start) & MASK32)
        if state & SACKED:
            self.sacked_out += n
        if state & LOST:
            self.lost_out += n
            if not state & RETRANS:
                self.lost_pending += n
        if state & RETRANS:
            self.retrans_out += n

    def _set(self, rec: SentSegment, state: int) -> None:
        if rec.state:
            self._count(rec, -1)
        rec.state = state
        if state:
            self._count(rec, 1)

    def _split(self, index: int, at: int) -> SentSegment:
        """Cut record ``index`` at sequence ``at`` (inside it); returns the second part,
        now at ``index + 1``. Counters are unchanged: both parts keep the state."""
        rec = self.segments[index]
        tail = SentSegment(at, rec.end, rec.sent_at, rec.fin, rec.state)
        rec.end = at
        rec.fin = False
        self.segments.insert(index + 1, tail)
        return tail

    def _delivered(self, rec: SentSegment, now: float) -> None:
        """RFC 8985 §6.2 steps 2-3 for a record newly ACKed or SACKed."""
        sent_at = rec.sent_at
        end = rec.end
        fack = self.fack
        if ((end - fack - 1) & MASK32) < HALF32 - 1:
            self.fack = end
        elif not rec.state & EVER_RETRANS and ((end - fack) & MASK32) >= HALF32:
            self.reordering_seen = True  # delivered below the highest delivered: reordering
        if rec.state & EVER_RETRANS and now - sent_at < self.min_rtt:
            return  # ambiguous: the original may be what arrived (Linux tcp_rack_advance)
        rack_xmit = self.rack_xmit
        if sent_at > rack_xmit or (sent_at == rack_xmit
                                   and ((end - self.rack_end - 1) & MASK32) < HALF32 - 1):
            self.rack_xmit = sent_at
            self.rack_end = end
            self.rack_rtt = now - sent_at

    def on_sent(self, start: int, end: int, now: float, fin: bool) -> None:
        """New sequence space ``start`` .. ``end`` went out (a FIN counted in ``end``)."""
        self.segments.append(SentSegment(start, end, now, fin))

    def cumulative_ack(self, ack: int, now: float) -> int:
        """SND.UNA moved to ``ack``: drop what it covers; the bytes newly delivered."""
        segs = self.segments
        una = self.una
        if not (self.sacked_out or self.lost_out or self.retrans_out) and segs \
                and segs[-1].end == ack:
            # Everything acknowledged, nothing SACKed, lost or retransmitted: the records
            # are in the order they were sent, so the last is RACK's segment.
            self._delivered(segs[-1], now)
            segs.clear()
            self.una = ack & MASK32
            return (ack - una) & MASK32
        ack_off = (ack - una) & MASK32
        delivered = 0
        count = 0
        for rec in segs:
            end_off = (rec.end - una) & MASK32
            if end_off <= ack_off:
                state = rec.state
                if state:
                    self._count(rec, -1)
                if not state & SACKED:
                    delivered += (rec.end - rec.start) & MASK32
                    self._delivered(rec, now)
                count += 1
                continue
            if ((rec.start - una) & MASK32) < ack_off:  # partly acknowledged
                state = rec.state
                if state:
                    self._count(rec, -1)
                if not state & SACKED:
                    delivered += (ack - rec.start) & MASK32
                    self._delivered(rec, now)
                rec.start = ack
                if state:
                    self._count(rec, 1)
            break
        if count:
            del segs[:count]
        self.una = ack & MASK32
        return delivered

    def sack(self, blocks: tuple[tuple[int, int], ...], snd_max: int, now: float,
             smss: int = 1) -> int:
        """Mark the SACK blocks (RFC 2018 §3); the bytes newly SACKed.

        Records are split where a block edge falls inside one, but never beyond two per
        ``smss`` bytes in flight (+16): a peer whose blocks cut the flight into tiny
        pieces (the "SACK panic" of CVE-2019-11477/-11478) cannot grow the scoreboard,
        and the work per ACK, past what real segments need. A record the cap keeps
        whole is left un-SACKed: at worst it is sent again."""
        segs = self.segments
        if not segs:
            return 0
        una = self.una
        limit = (snd_max - una) & MASK32
        cap = 2 * (limit // (smss if smss > 0 else 1)) + 16
        newly = 0
        if len(blocks) > 1:
            # In sequence order (receivers put the newest block first, RFC 2018 §4), so
            # RACK sees the segments delivered in the order they were sent (RFC 8985
            # §6.2 step 3) and a lower block is not taken for reordering.
            blocks = tuple(sorted(blocks, key=lambda block: (block[0] - una) & MASK32))
        for left, right in blocks:
            lo = (left - una) & MASK32
            hi = (right - una) & MASK32
            if lo >= HALF32 and hi < HALF32:
                lo = 0  # starts below SND.UNA: the part above it counts
            if lo >= hi or hi > limit:
                continue  # below SND.UNA (D-SACK), beyond SND.MAX or empty: not for us
            i = bisect_right(segs, lo, key=lambda r: (r.end - una) & MASK32)
            while i < len(segs):
                rec = segs[i]
                start_off = (rec.start - una) & MASK32
                if start_off >= hi:
                    break
                state = rec.state
                if state & SACKED:
                    i += 1
                    continue
                if start_off < lo:  # the block starts inside: keep the first part as is
                    if len(segs) < cap:
                        self._split(i, (una + lo) & MASK32)
                    i += 1
                    continue
                if ((rec.end - una) & MASK32) > hi:
                    if len(segs) >= cap:
                        break  # the block ends inside a record the cap keeps whole
                    self._split(i, (una + hi) & MASK32)
                newly += (rec.end - rec.start) & MASK32
                self._delivered(rec, now)
                self._set(rec, SACKED | (state & EVER_RETRANS))
                i += 1
        return newly

    def on_retransmit(self, rec: SentSegment, now: float) -> None:
        self._set(rec, (rec.state | RETRANS | EVER_RETRANS))
        rec.sent_at = now

    def next_lost(self, limit: int) -> SentSegment | None:
        """The first lost, un-SACKed record not retransmitted since (RFC 6675 NextSeg
        rule 1), cut to at most ``limit`` bytes of sequence space."""
        if not self.lost_pending:
            return None
        segs = self.segments
        for i, rec in enumerate(segs):
            if rec.state & (LOST | RETRANS | SACKED) == LOST:
                size = ((rec.end - rec.start) & MASK32) - rec.fin
                if size > limit:
                    self._split(i, (rec.start + limit) & MASK32)
                    return rec
                # Fill the segment from the lost records behind it (Linux
                # tcp_retrans_try_collapse): after the MSS fell, or when small segments
                # were sent, the flight goes again in full-sized segments.
                while size < limit and not rec.fin and i + 1 < len(segs) \
                        and segs[i + 1].state & (LOST | RETRANS | SACKED) == LOST:
                    nxt = segs[i + 1]
                    room = limit - size
                    if ((nxt.end - nxt.start) & MASK32) - nxt.fin > room:
                        self._split(i + 1, (nxt.start + room) & MASK32)
                    rec.end = nxt.end
                    rec.fin = nxt.fin
                    rec.state |= nxt.state  # only EVER_RETRANS can differ: not counted
                    size = ((rec.end - rec.start) & MASK32) - rec.fin
                    del segs[i + 1]
                return rec
        return None

    # -- loss marking ----------------------------------------------------------------

    def _mark_lost(self, rec: SentSegment) -> None:
        # A retransmission that is lost again leaves the network too (RFC 8985 §6.2).
        self._set(rec, (rec.state & EVER_RETRANS) | LOST)

    def unmark_lost(self) -> None:
        """The losses marked were not (a spurious timeout undone): no record is lost any
        more; retransmissions stay counted in flight (Linux ``tcp_undo_cwnd_reduction``
        with ``unmark_loss``)."""
        for rec in self.segments:
            if rec.state & LOST:
                self._set(rec, rec.state & ~LOST)

    def acks_original(self, ack: int, blocks: tuple[tuple[int, int], ...], high: int) -> bool:
        """Whether the cumulative ``ack`` or the SACK ``blocks`` newly cover data sent
        before ``high`` and never retransmitted: the originals arrived, so a timeout's
        retransmission was not needed (RFC 5682 §3 step 3b, Linux
        ``FLAG_ORIG_SACK_ACKED``). Call it before :meth:`cumulative_ack` and :meth:`sack`
        apply them."""
        una = self.una
        upto = (ack - una) & MASK32
        if upto >= HALF32:
            upto = 0
        limit = (high - una) & MASK32
        spans = [((a - una) & MASK32, (b - una) & MASK32) for a, b in blocks]
        for rec in self.segments:
            start = (rec.start - una) & MASK32
            end = (rec.end - una) & MASK32
            if end > limit or start >= limit:
                break  # sent after the timeout
            if rec.state & (SACKED | EVER_RETRANS):
                continue
            if start < upto:
                return True
            for left, right in spans:
                if left < end and start < right and left < right:
                    return True
        return False

    def mark_head_lost(self) -> bool:
        """The first un-SACKed record is lost; True if it was not marked before."""
        for rec in self.segments:
            if not rec.state & SACKED:
                if rec.state & (LOST | RETRANS) == LOST:
                    return False
                self._mark_lost(rec)
                return True
        return False

    def mark_all_lost(self, *, forget_sacks: bool) -> None:
        """A retransmission timeout: everything not SACKED is lost, retransmissions too
        (RFC 6675 §5.1, RFC 8985 §6.3). ``forget_sacks``: SACKed records too (RFC 2018
        §8: the receiver may have discarded them). What duplicate ACKs stood for is lost
        too (Linux ``tcp_enter_loss``: ``tcp_reset_reno_sack``)."""
        self.dupack_out = 0
        for rec in self.segments:
            if forget_sacks or not rec.state & SACKED:
                self._mark_lost(rec)

    def mark_lost_dupthresh(self, smss: int) -> int:
        """RFC 6675 §4 IsLost for every un-SACKed record; the bytes newly marked."""
        count = 0
        sacked = 0
        marked = 0
        threshold = (DUPTHRESH - 1) * smss
        for rec in reversed(self.segments):
            state = rec.state
            if state & SACKED:
                count += 1
                sacked += (rec.end - rec.start) & MASK32
            elif (count >= DUPTHRESH or sacked > threshold) and not state & (LOST | RETRANS):
                self._mark_lost(rec)
                marked += (rec.end - rec.start) & MASK32
        return marked

    def rack_detect_loss(self, now: float, reo_wnd: float) -> tuple[int, float]:
        """RFC 8985 §6.2 step 5: mark the records sent before RACK's segment whose
        reordering allowance ran out. Returns the bytes newly marked and the time
        until the next one would be (0.0: none waits)."""
        rack_xmit = self.rack_xmit
        if rack_xmit < 0.0:
            return 0, 0.0
        rack_end = self.rack_end
        deadline_base = self.rack_rtt + reo_wnd - now
        timeout = 0.0
        marked = 0
        for rec in self.segments:
            state = rec.state
            if state & SACKED or state & (LOST | RETRANS) == LOST:
                continue
            sent_at = rec.sent_at
            if sent_at > rack_xmit or (sent_at == rack_xmit and (
                    (rec.end - rack_end) & MASK32) < HALF32):
                continue  # sent after the most recently delivered segment
            remaining = sent_at + deadline_base
            if remaining <= _EPSILON:
                self._mark_lost(rec)
                marked += (rec.end - rec.start) & MASK32
            elif remaining > timeout:
                timeout = remaining
        return marked, timeout

    def check(self, snd_una: int, snd_max: int) -> None:
        """Assert the invariants (tests): contiguous records, exact counters."""
        segs = self.segments
        at = snd_una & MASK32
        counters = [0, 0, 0, 0]
        for rec in segs:
            assert rec.start == at, (rec, at)
            assert rec.length > 0 or rec.fin, rec
            at = rec.end
            n = rec.length
            if rec.state & SACKED:
                counters[0] += n
                assert not rec.state & (LOST | RETRANS), rec
            if rec.state & LOST:
                counters[1] += n
                if not rec.state & RETRANS:
                    counters[3] += n
            if rec.state & RETRANS:
                counters[2] += n
        if segs:
            assert at == snd_max & MASK32, (at, snd_max)
        assert counters == [self.sacked_out, self.lost_out, self.retrans_out,
                            self.lost_pending], (counters, self)
        flight = (at - snd_una) & MASK32
        assert self.dupack_out >= 0, self
        assert not self.dupack_out or self.dupack_out + max(self.lost_out, 1) <= flight, self
