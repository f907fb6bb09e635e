"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Contract:
- :meth:`RttEstimator.sample` takes one RTT measurement R (seconds) and updates
  SRTT/RTTVAR per RFC 6298 §2.2-2.3, recomputes the RTO and clears any backoff
  (RFC 6298 §5 note: a new measurement "collapses" a backed-off RTO; Linux
  likewise zeroes ``icsk_backoff`` only on a valid RTT sample). Negative samples
  (a confused clock or a bogus echoed timestamp) are ignored, as Linux does.
- :attr:`RttEstimator.rto` is the timeout to arm now: the computed RTO times
  2**backoffs, never above ``rto_max``. :meth:`RttEstimator.backoff` doubles it
  after a retransmission timeout (RFC 6298 §5.5); :meth:`reset_backoff` undoes
  the doubling without a new sample.
- RTO = SRTT + max(G, 4·RTTVAR) clamped to ``[rto_min, rto_max]``. RFC 6298
  §2.4 says an RTO below 1 s SHOULD be rounded up to 1 s; like Linux (200 ms,
  ``TCP_RTO_MIN``) we use ``rto_min`` instead. With ``rto_min_on_variance=True``
  the floor applies to the variance term as Linux really does it
  (``rttvar_us = max(mdev_max_us, rto_min)`` in ``tcp_rtt_estimator``):
  RTO = SRTT + max(G, 4·RTTVAR, rto_min), then clamped.
- Karn's rule (RFC 6298 §3, Karn & Partridge 1987) is the caller's: never
  sample the RTT of a segment that was retransmitted, because its ACK is
  ambiguous — unless the RTT comes from the timestamp option's echo
  (RFC 7323 §4.1), which identifies the transmission. Keep the backed-off RTO
  until such a valid sample arrives.

State is plain floats/ints in ``__slots__``; a sample costs a few float
operations and no allocation.
"""

from __future__ import annotations

__all__ = ["RttEstimator"]

# RFC 6298 §2.3: alpha = 1/8, beta = 1/4, K = 4.
_ALPHA = 0.125
_BETA = 0.25
_K = 4.0
# RACK.min_RTT is the minimum of this many seconds of samples (Linux tcp_min_rtt_wlen).
MIN_RTT_WINDOW = 300.0
# RFC 6298 §5.7: after the SYN timed out with no RTT sample, restart at 3 s
# (Linux TCP_TIMEOUT_FALLBACK).
_FALLBACK_RTO = 3.0
_INF = float("inf")  # one object for every estimator (a float per connection otherwise)


class RttEstimator:
    """SRTT, RTTVAR and the (backed-off) RTO of one connection, in seconds."""

    __slots__ = (
        "_backoffs",
        "_base_rto",
        "_granularity",
        "_min_at",
        "_min_rtt",
        "_rto",
        "_rto_max",
        "_rto_min",
        "_rto_min_on_variance",
        "_rttvar",
        "_second_at",
        "_second_rtt",
        "_srtt",
        "_third_at",
        "_third_rtt",
    )

    def __init__(
        self,
        *,
        rto_initial: float = 1.0,
        rto_min: float = 0.2,
        rto_max: float = 120.0,
        clock_granularity: float = 0.001,
        rto_min_on_variance: bool = False,
    ) -> None:
        if not 0.0 < rto_min <= rto_max:
            raise ValueError(f"need 0 < rto_min <= rto_max, got {rto_min}, {rto_max}")
        if not rto_initial > 0.0:
            raise ValueError(f"rto_initial must be > 0, got {rto_initial}")
        if not clock_granularity >= 0.0:
            raise ValueError(f"clock_granularity must be >= 0, got {clock_granularity}")
        self._rto_min = rto_min
        self._rto_max = rto_max
        self._granularity = clock_granularity
        self._rto_min_on_variance = rto_min_on_variance
        self._srtt: float | None = None
        self._rttvar: float | None = None
        # The minimum over the last MIN_RTT_WINDOW seconds: the best, second and third
        # best samples of the window with their times (a running-minimum filter as
        # Linux's win_minmax: a newer, larger sample takes over when the best expires).
        self._min_rtt = self._second_rtt = self._third_rtt = _INF
        self._min_at = self._second_at = self._third_at = 0.0
        # RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been made
        # ... the sender SHOULD set RTO <- 1 second" (rto_initial).
        self._base_rto = self._clamp(rto_initial)
        self._rto = self._base_rto
        self._backoffs = 0

    def _clamp(self, rto: float) -> float:
        # RFC 6298 §2.4 (minimum, Linux's rto_min instead of 1 s) and §2.5
        # ("A maximum value MAY be placed on RTO provided it is at least 60 s").
        if rto < self._rto_min:
            return self._rto_min
        if rto > self._rto_max:
            return self._rto_max
        return rto

    @property
    def srtt(self) -> float | None:
        """Smoothed RTT, ``None`` before the first sample."""
        return self._srtt

    @property
    def min_rtt(self) -> float:
        """The smallest sample of the last :data:`MIN_RTT_WINDOW` seconds (RACK's
        min_RTT, RFC 8985 §6.2 step 1; Linux tcp_min_rtt_wlen = 300 s), ``inf`` before
        the first."""
        return self._min_rtt

    def _update_min(self, rtt: float, now: float) -> None:
        """Running minimum over a window with three samples (best, 2nd, 3rd best):
        a sample at or below the best, or a window with nothing left, restarts it;
        otherwise the sample may replace the 2nd/3rd best, and the best expires to them
        as the window moves on (quarter and half window rules keep them spread)."""
        window = MIN_RTT_WINDOW
        if rtt <= self._min_rtt or now - self._third_at > window:
            self._min_rtt = self._second_rtt = self._third_rtt = rtt
            self._min_at = self._second_at = self._third_at = now
            return
        if rtt <= self._second_rtt:
            self._second_rtt = self._third_rtt = rtt
            self._second_at = self._third_at = now
        elif rtt <= self._third_rtt:
            self._third_rtt = rtt
            self._third_at = now
        age = now - self._min_at
        if age > window:
            # The best expired: the others move up, this sample comes in last.
            self._min_rtt, self._min_at = self._second_rtt, self._second_at
            self._second_rtt, self._second_at = self._third_rtt, self._third_at
            self._third_rtt, self._third_at = rtt, now
            if now - self._min_at > window:
                self._min_rtt, self._min_at = self._second_rtt, self._second_at
                self._second_rtt, self._second_at = rtt, now
        elif self._second_at == self._min_at and age > window / 4:
            self._second_rtt = self._third_rtt = rtt
            self._second_at = self._third_at = now
        elif self._third_at == self._second_at and age > window / 2:
            self._third_rtt = rtt
            self._third_at = now

    @property
    def rttvar(self) -> float | None:
        """RTT variation, ``None`` before the first sample."""
        return self._rttvar

    @property
    def rto(self) -> float:
        """The retransmission timeout to arm now, backoff included, <= rto_max."""
        return self._rto

    @property
    def base_rto(self) -> float:
        """The RTO computed from the samples, without backoff."""
        return self._base_rto

    @property
    def backoffs(self) -> int:
        """How many times :meth:`backoff` ran since the last sample or reset."""
        return self._backoffs

    def sample(self, rtt: float, now: float = 0.0) -> None:
        """Feed one RTT measurement (seconds) taken at ``now``; see the module docstring
        for Karn's rule."""
        if rtt < 0.0:
            return
        if rtt <= self._min_rtt:
            self._min_rtt = self._second_rtt = self._third_rtt = rtt
            self._min_at = self._second_at = self._third_at = now
        else:
            self._update_min(rtt, now)
        srtt = self._srtt
        rttvar = self._rttvar
        if srtt is None or rttvar is None:
            # RFC 6298 §2.2: first measurement R: SRTT <- R, RTTVAR <- R/2.
            srtt = rtt
            rttvar = rtt * 0.5
        else:
            # RFC 6298 §2.3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
            # with the *old* SRTT, then SRTT <- (1 - alpha) * SRTT + alpha * R'.
            delta = srtt - rtt
            if delta < 0.0:
                delta = -delta
            rttvar = (1.0 - _BETA) * rttvar + _BETA * delta
            srtt = (1.0 - _ALPHA) * srtt + _ALPHA * rtt
        self._srtt = srtt
        self._rttvar = rttvar
        # RFC 6298 §2.2/2.3: RTO <- SRTT + max(G, K * RTTVAR).
        spread = _K * rttvar
        if spread < self._granularity:
            spread = self._granularity
        if self._rto_min_on_variance and spread < self._rto_min:
            spread = self._rto_min
        self._base_rto = self._rto = self._clamp(srtt + spread)
        self._backoffs = 0

    def backoff(self) -> None:
        """The retransmission timer expired: RTO <- RTO * 2, capped (RFC 6298 §5.5)."""
        self._backoffs += 1
        rto = self._rto * 2.0
        self._rto = rto if rto < self._rto_max else self._rto_max

    def reset_backoff(self) -> None:
        """Return to the computed RTO without a new sample."""
        self._backoffs = 0
        self._rto = self._base_rto

    def fallback(self, rto: float = _FALLBACK_RTO) -> None:
        """RFC 6298 §5.7: the SYN (or SYN-ACK) timed out and data transmission begins.

        "If the timer expires awaiting the ACK of a SYN segment and the TCP
        implementation is using an RTO less than 3 seconds, the RTO MUST be
        re-initialized to 3 seconds when data transmission begins". Applies only
        while there is no RTT sample (a timestamp echo on the SYN-ACK gives one,
        and then the estimate is better than any constant); clears the backoff.
        """
        if self._srtt is None:
            if self._base_rto < rto:
                self._base_rto = self._clamp(rto)
            self._backoffs = 0
            self._rto = self._base_rto
