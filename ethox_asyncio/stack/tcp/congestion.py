"""Congestion-window arithmetic: the :class:`CongestionControl` interface and NewReno.

Contract:
- A congestion controller owns ``cwnd`` and ``ssthresh`` (bytes) for one
  connection and changes them only when the connection tells it what happened:
  new data acknowledged outside recovery (:meth:`on_ack`), fast retransmit
  (:meth:`enter_recovery`), a duplicate ACK during recovery, a partial ACK, the
  full ACK ending recovery, a retransmission timeout, an idle period, a new MSS.
- The *decisions* are the connection's: counting duplicate ACKs, the RFC 6582
  ``recover`` point, full vs partial ACK, what to retransmit, and whether the
  flight was cwnd-limited (RFC 7661: call :meth:`on_ack` only when it was, or
  the window grows without being tested). :class:`RecoveryState` holds the
  per-connection variables for those decisions and documents the steps.
- Values never go below one MSS (cwnd) or two MSS (ssthresh, RFC 5681 eq. 4).
  ``ssthresh`` starts "arbitrarily high" (RFC 5681 §3.1) at
  :data:`INFINITE_SSTHRESH` = 0x7FFFFFFF (Linux ``TCP_INFINITE_SSTHRESH``).
- ``now`` and ``rtt`` (the smoothed RTT, 0 before the first sample) are for
  time-based controllers (:class:`Cubic`, RFC 9438); NewReno ignores them.
- :class:`Cubic` is NewReno's recovery (the same RFC 5681 / 6582 steps) with
  RFC 9438's window: β = 0.7 on a congestion event, fast convergence (§4.7), the
  cubic function W(t) = C·(t − K)³ + W_max with C = 0.4 in congestion avoidance
  (§4.2–4.5, target clamped to [cwnd, 1.5·cwnd] per RTT), and the Reno-friendly
  estimate W_est with α = 3(1 − β)/(1 + β) (§4.3). Windows are in bytes
  outside, segments inside the formulas.
- HyStart++ (RFC 9406), for both controllers when built with ``hystart=True``
  (default False: standard RFC 5681 slow start). The connection calls
  :meth:`~NewReno.observe_ack` on *every* ACK of new data (in recovery or not,
  cwnd-limited or not) *before* :meth:`~NewReno.on_ack`; it tracks rounds and
  per-round minimum RTTs, moves slow start to Conservative Slow Start (CSS,
  growth ÷ :data:`CSS_GROWTH_DIVISOR`) on a delay increase, back on a spurious
  one, and to congestion avoidance (ssthresh = cwnd) after :data:`CSS_ROUNDS`
  CSS rounds. It runs only in the initial slow start (ssthresh still
  :data:`INFINITE_SSTHRESH`, RFC 9406 §4.3): a fast retransmit, an RTO, or any
  finite ssthresh ends it for the life of the connection; an idle restart
  (:meth:`~NewReno.on_idle`) while the initial slow start is still on keeps it
  running, which §4.3 allows for the restart window.
  :attr:`~NewReno.hystart_phase` tells where it is. The per-ACK limit L is
  RFC 3465's ``abc_limit``, as in standard slow start (see :class:`NewReno`).
"""

from __future__ import annotations

from typing import Protocol

from .seq import seq_gt

__all__ = [
    "CONTROLLERS",
    "CSS_GROWTH_DIVISOR",
    "CSS_ROUNDS",
    "INFINITE_SSTHRESH",
    "MAX_RTT_THRESH",
    "MIN_RTT_DIVISOR",
    "MIN_RTT_THRESH",
    "N_RTT_SAMPLE",
    "CongestionControl",
    "Cubic",
    "NewReno",
    "RecoveryState",
    "initial_window",
]

INFINITE_SSTHRESH = 0x7FFFFFFF

# HyStart++ constants, the values RFC 9406 §4.3 recommends (times in seconds).
MIN_RTT_THRESH = 0.004  # the delay-increase threshold is at least 4 ms...
MAX_RTT_THRESH = 0.016  # ...and at most 16 ms...
MIN_RTT_DIVISOR = 8  # ...and otherwise an eighth of the last round's minimum RTT
N_RTT_SAMPLE = 8  # RTT samples a round needs before its minimum is judged
CSS_GROWTH_DIVISOR = 4  # Conservative Slow Start grows a quarter as fast
CSS_ROUNDS = 5  # CSS rounds before congestion avoidance

# ``NewReno._hs_phase`` values; ``<= _HS_DONE`` means "nothing to do per ACK".
_HS_OFF = 0  # built with hystart=False
_HS_DONE = 1  # ended: a congestion event, CSS completed, or a finite ssthresh
_HS_SLOW_START = 2  # standard slow start, watching the RTT (RFC 9406 §4.2)
_HS_CSS = 3  # Conservative Slow Start (RFC 9406 §4.2)
_HS_NAMES = ("off", "done", "slow_start", "css")
_INF = float("inf")


def initial_window(mss: int, segments: int = 10) -> int:
    """Initial window in bytes: RFC 6928 §2, min(10·MSS, max(2·MSS, 14600)).

    Generalised to other segment counts as min(N·MSS, max(2·MSS, N·1460)), which
    is RFC 6928's formula for N = 10 (14600 = 10·1460).
    """
    # min(N·MSS, max(2·MSS, N·1460)) without the builtins' calls: once per connection.
    window = segments * mss
    limit = segments * 1460
    floor = 2 * mss
    if floor > limit:
        limit = floor
    return window if window < limit else limit


class CongestionControl(Protocol):
    """What the connection calls; all sizes in bytes, times in seconds."""

    cwnd: int
    ssthresh: int
    mss: int

    def observe_ack(self, ack: int, snd_nxt: int, rtt_sample: float | None,
                    now: float) -> None:
        """An ACK acknowledged new data: SEG.ACK ``ack``, the sender's SND.NXT now,
        the RTT sample it gave (seconds) or None. Called on every such ACK, in or
        out of recovery and whether or not the flight was cwnd-limited, *before*
        :meth:`on_ack` (HyStart++'s round and delay tracking, RFC 9406 §4.2)."""

    def on_ack(self, acked: int, now: float, rtt: float = 0.0) -> None:
        """``acked`` bytes of new data were cumulatively acknowledged, not in recovery."""

    def enter_recovery(self, flight_size: int) -> None:
        """Fast retransmit on the third duplicate ACK (RFC 5681 §3.2 steps 2-3)."""

    def on_dupack_in_recovery(self) -> None:
        """One more duplicate ACK during fast recovery (RFC 5681 §3.2 step 4)."""

    def on_partial_ack(self, acked: int) -> None:
        """A partial ACK of ``acked`` new bytes during recovery (RFC 6582 §3.2 step 5)."""

    def exit_recovery(self, flight_size: int) -> None:
        """A full ACK ends fast recovery (RFC 6582 §3.2 step 6)."""

    def on_rto(self, flight_size: int, repeated: bool = False) -> None:
        """The retransmission timer expired (RFC 5681 §3.1 eq. 4, RFC 6298 §5)."""

    def on_idle(self, idle: float, rto: float) -> None:
        """About to send after ``idle`` seconds without sending (RFC 5681 §4.1)."""

    def set_mss(self, mss: int) -> None:
        """The sender's MSS changed (handshake, PMTU)."""


class NewReno:
    """RFC 5681 slow start / congestion avoidance with RFC 6582 NewReno recovery.

    ``abc_limit`` is RFC 3465's L in segments: slow start grows by at most
    L·MSS per ACK. RFC 5681 §3.1 eq. 2 has L = 1 (the default here); RFC 3465
    §2.2 allows 2, which restores doubling per RTT against a delayed-ACK receiver.

    ``hystart`` turns on HyStart++ (RFC 9406) for the initial slow start; see
    :meth:`observe_ack` for what it does per ACK. Its L (the same cap on the
    bytes one ACK may add, §4.2) is this ``abc_limit``: §4.3 recommends
    L = infinity for a paced sender and 8 for an unpaced one; we do not pace and
    keep RFC 3465's limit so that turning HyStart++ on never makes slow start
    burstier than it was without it.
    """

    __slots__ = ("_abc_bytes", "_abc_limit", "_acked", "_hs_baseline", "_hs_css_rounds",
                 "_hs_cur_min", "_hs_exit_rtt", "_hs_phase", "_hs_rounds",
                 "_hs_samples", "_hs_window_end", "_segments", "cwnd", "initial_window",
                 "mss", "ssthresh")

    def __init__(self, mss: int, *, initial_window_segments: int = 10, abc_limit: int = 1,
                 hystart: bool = False) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be > 0, got {mss}")
        if initial_window_segments < 1:
            raise ValueError(f"initial_window_segments must be >= 1, got {initial_window_segments}")
        if abc_limit < 1:
            raise ValueError(f"abc_limit must be >= 1, got {abc_limit}")
        self.mss = mss
        self._segments = initial_window_segments
        self._abc_limit = abc_limit
        # (L = 1: the MSS's own int object, not a product: an idle connection's memory.)
        self._abc_bytes = mss if abc_limit == 1 else abc_limit * mss
        # RFC 6928 §2 / RFC 5681 §3.1: IW; ssthresh arbitrarily high.
        self.initial_window = initial_window(mss, initial_window_segments)
        self.cwnd = self.initial_window
        self.ssthresh = INFINITE_SSTHRESH
        # Bytes acknowledged in congestion avoidance since cwnd last grew.
        self._acked = 0
        # HyStart++ (RFC 9406 §4.2), names after the RFC's variables:
        self._hs_phase = _HS_SLOW_START if hystart else _HS_OFF
        self._hs_window_end = -1  # windowEnd; -1: no round yet (set on the first ACK)
        self._hs_rounds = 0  # rounds completed (diagnostics)
        self._hs_cur_min = _INF  # currentRoundMinRTT
        self._hs_samples = 0  # rttSampleCount
        # lastRoundMinRTT + RttThresh, fixed at the start of a round (infinite while
        # lastRoundMinRTT is): lastRoundMinRTT itself is not needed after that.
        self._hs_exit_rtt = _INF
        self._hs_baseline = _INF  # cssBaselineMinRtt
        self._hs_css_rounds = 0  # rounds (the partial first one included) spent in CSS

    def __repr__(self) -> str:
        return f"<NewReno cwnd={self.cwnd} ssthresh={self.ssthresh} mss={self.mss}>"

    @property
    def in_slow_start(self) -> bool:
        # RFC 5681 §3.1: slow start when cwnd < ssthresh (either when equal: we
        # choose congestion avoidance, like Linux's tcp_in_slow_start).
        return self.cwnd < self.ssthresh

    @property
    def hystart_phase(self) -> str:
        """HyStart++ state: ``"off"`` (not enabled), ``"slow_start"`` (standard
        slow start, watching the RTT), ``"css"`` (Conservative Slow Start), or
        ``"done"`` (ended for this connection: CSS ran its rounds, or a congestion
        event or a finite ssthresh ended the initial slow start)."""
        return _HS_NAMES[self._hs_phase]

    @property
    def hystart_rounds(self) -> int:
        """HyStart++ rounds completed so far (a round ends when an ACK covers the
        first byte sent after it began)."""
        return self._hs_rounds

    def observe_ack(self, ack: int, snd_nxt: int, rtt_sample: float | None,
                    now: float) -> None:
        """HyStart++ bookkeeping for one ACK of new data (RFC 9406 §4.2).

        1. Off, done, or ssthresh no longer "arbitrarily high": return (§4.3, the
           initial slow start only; a finite ssthresh ends it for good).
        2. Rounds: ``windowEnd`` is SND.NXT when a round starts (the first call
           starts the first). The round ends when the byte at ``windowEnd`` is
           acknowledged, i.e. ``ack`` > windowEnd (mod 2**32): then windowEnd =
           ``snd_nxt``, lastRoundMinRTT = currentRoundMinRTT, currentRoundMinRTT
           = infinity, rttSampleCount = 0, and in CSS one more CSS round; after
           :data:`CSS_ROUNDS` of them ssthresh = cwnd (congestion avoidance) and
           HyStart++ is done.
        3. A sample (``rtt_sample`` not None) lowers currentRoundMinRTT and counts
           (the ACK that ended a round counts in the new one). Once the round has
           :data:`N_RTT_SAMPLE` samples: in slow start, enter CSS when
           currentRoundMinRTT >= lastRoundMinRTT + RttThresh (both known), with
           RttThresh = lastRoundMinRTT / 8 clamped to [4 ms, 16 ms], and
           cssBaselineMinRtt = currentRoundMinRTT; in CSS, go back to slow start
           when currentRoundMinRTT < cssBaselineMinRtt (a spurious exit).

        ``now`` is unused (the interface's, for time-based variants).
        """
        phase = self._hs_phase
        if phase <= _HS_DONE:
            return
        if self.ssthresh != INFINITE_SSTHRESH:
            self._hs_phase = _HS_DONE  # §4.3: not beyond the initial slow start
            return
        end = self._hs_window_end
        if end < 0 or seq_gt(ack, end):
            # §4.2: a new round. Its exit threshold depends only on the last
            # round's minimum, so it is computed once here, not per ACK.
            self._hs_window_end = snd_nxt
            last = self._hs_cur_min  # lastRoundMinRTT = currentRoundMinRTT
            self._hs_cur_min = _INF
            self._hs_samples = 0
            if last == _INF:
                self._hs_exit_rtt = _INF
            else:
                thresh = last / MIN_RTT_DIVISOR
                if thresh < MIN_RTT_THRESH:
                    thresh = MIN_RTT_THRESH
                elif thresh > MAX_RTT_THRESH:
                    thresh = MAX_RTT_THRESH
                self._hs_exit_rtt = last + thresh
            if end >= 0:
                self._hs_rounds += 1
                if phase == _HS_CSS:
                    # §4.2: CSS lasts at most CSS_ROUNDS rounds, the partial round
                    # in which it began included; then congestion avoidance.
                    rounds = self._hs_css_rounds + 1
                    self._hs_css_rounds = rounds
                    if rounds >= CSS_ROUNDS:
                        # ssthresh = cwnd, never below the module's 2·SMSS floor.
                        cwnd = self.cwnd
                        floor = 2 * self.mss
                        self.ssthresh = cwnd if cwnd > floor else floor
                        self._hs_phase = _HS_DONE
                        return
        if rtt_sample is None:
            return
        cur = self._hs_cur_min
        if rtt_sample < cur:
            cur = self._hs_cur_min = rtt_sample
        samples = self._hs_samples + 1
        self._hs_samples = samples
        if samples < N_RTT_SAMPLE:
            return
        if phase == _HS_SLOW_START:
            # §4.2: a delay increase of RttThresh over the last round: enter CSS
            # (exit_rtt is infinite while lastRoundMinRTT is unknown).
            if cur >= self._hs_exit_rtt:
                self._hs_baseline = cur  # (_hs_css_rounds is 0 here)
                self._hs_phase = _HS_CSS
        elif cur < self._hs_baseline:
            # §4.2: the RTT fell below the CSS baseline: the exit was spurious;
            # resume slow start, HyStart++ included.
            self._hs_baseline = _INF
            self._hs_css_rounds = 0
            self._hs_phase = _HS_SLOW_START

    def on_ack(self, acked: int, now: float, rtt: float = 0.0) -> None:
        if acked <= 0:
            return
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            # RFC 5681 §3.1 eq. 2: cwnd += min(N, SMSS) (RFC 3465 L·SMSS; RFC 9406
            # §4.2's L is the same limit, see the class docstring).
            limit = self._abc_bytes
            inc = acked if acked < limit else limit
            if self._hs_phase == _HS_CSS:
                # RFC 9406 §4.2: CSS grows by min(N, L·SMSS) / CSS_GROWTH_DIVISOR
                # (truncated: at most 3 bytes lost per ACK).
                inc //= CSS_GROWTH_DIVISOR
            self.cwnd = cwnd + inc
            return
        # RFC 5681 §3.1, congestion avoidance by byte counting: "When the number
        # of bytes acknowledged reaches cwnd, then cwnd can be incremented by up
        # to SMSS bytes" — the exact form of eq. 3's SMSS*SMSS/cwnd per ACK,
        # without its integer truncation to 0 once cwnd > SMSS**2, and at most
        # one SMSS per RTT whatever the ACK pattern.
        counted = self._acked + acked
        if counted >= cwnd:
            counted -= cwnd
            if counted > cwnd:  # a stretch ACK worth several windows: still one SMSS
                counted = cwnd
            self.cwnd = cwnd + self.mss
        self._acked = counted

    def _halve(self, flight_size: int) -> None:
        # RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS) — FlightSize, not
        # cwnd (the RFC's own implementation note).
        half = flight_size >> 1
        floor = 2 * self.mss
        self.ssthresh = half if half > floor else floor
        self._acked = 0

    def enter_recovery(self, flight_size: int) -> None:
        # RFC 5681 §3.2 step 2 (ssthresh) and step 3 / RFC 6582 §3.2 step 2:
        # cwnd = ssthresh + 3*SMSS, inflated by the three segments that left.
        # RFC 9406 §4.2: a loss in slow start or CSS leaves HyStart++ for the
        # controller's usual response, and §4.3 keeps it to the initial slow start.
        if self._hs_phase > _HS_DONE:
            self._hs_phase = _HS_DONE
        self._halve(flight_size)
        self.cwnd = self.ssthresh + 3 * self.mss

    def on_dupack_in_recovery(self) -> None:
        # RFC 5681 §3.2 step 4 / RFC 6582 §3.2 step 3: inflate by SMSS per dupack.
        self.cwnd += self.mss

    def on_partial_ack(self, acked: int) -> None:
        # RFC 6582 §3.2 step 5: "deflate the congestion window by the amount of
        # new data acknowledged by the Cumulative Acknowledgment field. If the
        # partial ACK acknowledges at least one SMSS of new data, then add back
        # SMSS bytes". Floor at one SMSS so a huge partial ACK cannot zero cwnd.
        mss = self.mss
        cwnd = self.cwnd - acked
        if acked >= mss:
            cwnd += mss
        self.cwnd = cwnd if cwnd > mss else mss

    def exit_recovery(self, flight_size: int) -> None:
        # RFC 6582 §3.2 step 6, option (1): cwnd = min(ssthresh, max(FlightSize,
        # SMSS) + SMSS), which avoids a burst when little is in flight.
        mss = self.mss
        window = (flight_size if flight_size > mss else mss) + mss
        self.cwnd = window if window < self.ssthresh else self.ssthresh
        self._acked = 0

    def on_rto(self, flight_size: int, repeated: bool = False) -> None:
        # RFC 5681 §3.1 eq. 4 and "cwnd MUST be set to no more than the loss
        # window, LW, which equals 1 full-sized segment". When the segment timing
        # out had already been retransmitted by the timer (``repeated``: the RTO
        # was already backed off), "the value of ssthresh is held constant".
        # RFC 9406 §4.3: the slow start that follows is standard (HyStart++ is
        # for the initial slow start only; the new ssthresh bounds this one).
        if self._hs_phase > _HS_DONE:
            self._hs_phase = _HS_DONE
        if not repeated:
            self._halve(flight_size)
        self.cwnd = self.mss
        self._acked = 0

    def on_idle(self, idle: float, rto: float) -> None:
        # RFC 5681 §4.1: after no transmission for more than one RTO, cwnd = RW =
        # min(IW, cwnd). (Linux, tcp_cwnd_restart, halves cwnd per idle RTO down
        # to that restart window instead; net.ipv4.tcp_slow_start_after_idle=1.)
        if idle > rto:
            if self.cwnd > self.initial_window:
                self.cwnd = self.initial_window
            self._acked = 0

    def set_mss(self, mss: int) -> None:
        """New MSS: the negotiated one after the handshake, or a PMTU change.

        While the window is still the untouched initial one it becomes the new
        initial window; otherwise cwnd and a finite ssthresh keep their size in
        *segments* (Linux counts cwnd in packets, so an MSS change rescales it).
        """
        if mss <= 0:
            raise ValueError(f"mss must be > 0, got {mss}")
        old = self.mss
        if mss == old:
            return
        old_iw = self.initial_window
        self.mss = mss
        self._abc_bytes = mss if self._abc_limit == 1 else self._abc_limit * mss
        self.initial_window = initial_window(mss, self._segments)
        if self.cwnd == old_iw and self.ssthresh == INFINITE_SSTHRESH:
            self.cwnd = self.initial_window
        else:
            self.cwnd = max(mss, self.cwnd * mss // old)
            if self.ssthresh != INFINITE_SSTHRESH:
                self.ssthresh = max(2 * mss, self.ssthresh * mss // old)
        self._acked = 0


class Cubic(NewReno):
    """RFC 9438 CUBIC on NewReno's recovery (see the module contract)."""

    __slots__ = ("_epoch", "_k", "_origin", "_w_est", "_w_last_max", "_w_max")

    C = 0.4  # RFC 9438 §5.1
    BETA = 0.7  # β_cubic, RFC 9438 §4.6
    ALPHA = 3 * (1 - BETA) / (1 + BETA)  # α_cubic, RFC 9438 §4.3

    def __init__(self, mss: int, *, initial_window_segments: int = 10, abc_limit: int = 1,
                 hystart: bool = False) -> None:
        super().__init__(mss, initial_window_segments=initial_window_segments,
                         abc_limit=abc_limit, hystart=hystart)
        self._w_max = 0.0  # segments, before the last reduction
        self._w_last_max = 0.0
        self._k = 0.0
        self._epoch: float | None = None  # start of the current congestion-avoidance epoch
        self._origin = 0.0  # W_max of the epoch (cwnd when it began, if above W_max)
        self._w_est = 0.0

    def __repr__(self) -> str:
        return (f"<Cubic cwnd={self.cwnd} ssthresh={self.ssthresh} mss={self.mss} "
                f"w_max={self._w_max:.1f} k={self._k:.3f}>")

    def w_cubic(self, t: float) -> float:
        """RFC 9438 eq. 1, in segments, ``t`` seconds into the epoch."""
        return self.C * (t - self._k) ** 3 + self._origin

    def on_ack(self, acked: int, now: float, rtt: float = 0.0) -> None:
        if acked <= 0:
            return
        if self.cwnd < self.ssthresh:
            # Slow start: RFC 9438 §4.10 keeps Reno's, and with it RFC 9406's CSS
            # (NewReno.on_ack divides the growth). When CSS ends, ssthresh = cwnd and
            # the next ACK starts an epoch below like any entry into avoidance.
            super().on_ack(acked, now, rtt)
            return
        mss = self.mss
        cwnd = self.cwnd / mss
        if self._epoch is None:
            # §4.2: a new epoch begins with the first ACK in congestion avoidance.
            self._epoch = now
            if cwnd < self._w_max:
                self._k = ((self._w_max - cwnd) / self.C) ** (1 / 3)  # eq. 2
                self._origin = self._w_max
            else:
                self._k = 0.0
                self._origin = cwnd
            self._w_est = cwnd
        t = now - self._epoch
        segments = acked / mss
        # §4.3: the Reno-friendly estimate grows α per window of ACKed segments.
        self._w_est += self.ALPHA * segments / cwnd
        target = self.w_cubic(t + rtt)  # §4.4: the window one RTT from now
        if target < cwnd:
            target = cwnd
        elif target > 1.5 * cwnd:
            target = 1.5 * cwnd
        # §4.3: the Reno-friendly region, else §4.4 / §4.5 towards the target.
        new = self._w_est if self._w_est > target else cwnd + (target - cwnd) * segments / cwnd
        grown = int(new * mss)
        if grown > self.cwnd:
            self.cwnd = grown

    def _halve(self, flight_size: int) -> None:
        # RFC 9438 §4.6-4.7: W_max with fast convergence, ssthresh = cwnd·β (at least
        # two segments, RFC 5681 eq. 4), and a new epoch at the next ACK.
        mss = self.mss
        cwnd = self.cwnd / mss
        if cwnd < self._w_last_max:  # §4.7 fast convergence: release bandwidth
            self._w_last_max = cwnd
            self._w_max = cwnd * (1 + self.BETA) / 2
        else:
            self._w_last_max = cwnd
            self._w_max = cwnd
        ssthresh = int(self.cwnd * self.BETA)
        floor = 2 * mss
        self.ssthresh = ssthresh if ssthresh > floor else floor
        self._epoch = None
        self._acked = 0

    def on_rto(self, flight_size: int, repeated: bool = False) -> None:
        # §4.8: a timeout is a congestion event (unless the segment timed out before:
        # Reno's rule, with CUBIC's _halve) and restarts slow start from one segment, a
        # standard one (RFC 9406 §4.3); the next ACK in congestion avoidance starts a
        # new epoch.
        super().on_rto(flight_size, repeated)
        self._epoch = None

    def on_idle(self, idle: float, rto: float) -> None:
        super().on_idle(idle, rto)
        if idle > rto:
            self._epoch = None  # §5.8: the epoch does not count the idle time

    def set_mss(self, mss: int) -> None:
        super().set_mss(mss)
        self._epoch = None


#: ``TcpConfig.congestion_control`` names.
CONTROLLERS: dict[str, type[NewReno]] = {"cubic": Cubic, "newreno": NewReno}


class RecoveryState:
    """The connection's NewReno loss-recovery variables (RFC 5681 §3.2, RFC 6582 §3.2).

    ``recover`` here is SND.NXT at the moment recovery began (or at the last
    RTO) — one past the RFC's "highest sequence number transmitted", exactly
    Linux's ``high_seq`` — so every test is a plain ``seq_ge``:

    1. Duplicate ACK (RFC 5681 §2: no data, no SYN/FIN, ACK == SND.UNA, window
       unchanged, data outstanding): ``dupacks += 1``. Any ACK that advances
       SND.UNA sets ``dupacks = 0``.
    2. ``dupacks == dupack_threshold`` and not ``in_recovery``: enter fast
       retransmit only if :meth:`covers` (ACK) — the ACK covers the previous
       ``recover`` (RFC 6582 §3.2 step 2; otherwise these are dupacks caused by
       our own retransmissions). Then :meth:`enter` (SND.NXT), retransmit the
       segment at SND.UNA and call ``cc.enter_recovery(flight_size)``.
    3. In recovery, each further duplicate ACK: ``cc.on_dupack_in_recovery()``
       and send new data if the window allows (RFC 6582 §3.2 step 3-4).
    4. In recovery, an ACK that advances SND.UNA: if :meth:`covers` (ACK) it is
       a *full* ACK: :meth:`exit` and ``cc.exit_recovery(flight_size)`` (step 6);
       otherwise a *partial* ACK: retransmit the next unacknowledged segment,
       ``cc.on_partial_ack(acked)``, and re-arm the retransmission timer only
       for the first partial ACK (RFC 6582 §3.2 step 5; the "Impatient" variant
       of RFC 6582 §4).
    5. Retransmission timeout: :meth:`on_rto` (highest SND.NXT ever sent — pass
       SND.MAX if SND.NXT is rewound for go-back-N) leaves recovery and moves
       ``recover`` (RFC 6582 §3.2 "Retransmit timeouts": "record the highest
       sequence number transmitted in the variable recover, and exit the fast
       recovery procedure if applicable"); then ``cc.on_rto(...)``.

    Initialise ``recover`` to the ISS (RFC 6582 §3.2 step 1) via ``__init__``.
    """

    __slots__ = ("dupacks", "in_recovery", "recover")

    dupack_threshold = 3  # RFC 5681 §3.2 ("DupThresh"), Linux tcp_reordering

    def __init__(self, recover: int = 0) -> None:
        self.in_recovery = False
        self.recover = recover
        self.dupacks = 0

    def __repr__(self) -> str:
        return (f"<RecoveryState in_recovery={self.in_recovery} recover={self.recover} "
                f"dupacks={self.dupacks}>")

    def covers(self, ack: int) -> bool:
        """The cumulative ACK acknowledges everything sent before ``recover``."""
        return ((ack - self.recover) & 0xFFFFFFFF) < 0x80000000  # seq_ge, inline (per ACK)

    def enter(self, snd_nxt: int) -> None:
        """Start fast recovery, ``recover`` = SND.NXT now (``dupacks`` is kept)."""
        self.in_recovery = True
        self.recover = snd_nxt

    def exit(self) -> None:
        """Leave fast recovery (a full ACK); ``recover`` is kept for step 2."""
        self.in_recovery = False
        self.dupacks = 0

    def on_rto(self, snd_nxt: int) -> None:
        """A retransmission timeout: leave recovery, ``recover`` = SND.NXT now."""
        self.in_recovery = False
        self.recover = snd_nxt
        self.dupacks = 0
