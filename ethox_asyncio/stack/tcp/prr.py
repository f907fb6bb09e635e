"""Proportional Rate Reduction (RFC 6937) of the congestion window during recovery.

Contract: :meth:`Prr.start` on entering fast recovery, with the new ``ssthresh`` the
congestion controller chose and ``RecoverFS`` (the flight at that moment). Then on
every ACK in recovery, :meth:`Prr.on_ack` with the bytes it newly delivered
(cumulatively acknowledged and not SACKed before, plus newly SACKed: RFC 6937
DeliveredData) and RFC 6675's ``pipe`` after the ACK returns the congestion window
to use — ``pipe + sndcnt`` (RFC 6937 §3):

- while ``pipe > ssthresh`` (the proportional part) sndcnt spreads the reduction over
  the round: what has been delivered in recovery, scaled by ssthresh / RecoverFS,
  less what was sent in recovery;
- below it, Slow-Start Reduction Bound (the RFC's recommended bound): grow back
  towards ssthresh by at most what was delivered (and not yet answered) plus one MSS.

:meth:`Prr.on_sent` counts every byte (re)transmitted during recovery (prr_out).
Sizes are bytes; the connection sends a full segment while pipe < cwnd, so an sndcnt
of a few bytes lets one segment go (Linux counts packets and does the same).
"""

from __future__ import annotations

__all__ = ["Prr"]


class Prr:
    """RFC 6937 state of one recovery episode."""

    __slots__ = ("delivered", "out", "recover_fs", "ssthresh")

    def __init__(self) -> None:
        self.recover_fs = 1
        self.ssthresh = 0
        self.delivered = 0  # prr_delivered
        self.out = 0  # prr_out

    def __repr__(self) -> str:
        return (f"<Prr ssthresh={self.ssthresh} recover_fs={self.recover_fs} "
                f"delivered={self.delivered} out={self.out}>")

    def start(self, ssthresh: int, recover_fs: int) -> None:
        """RFC 6937 §3 "at the beginning of recovery"."""
        self.ssthresh = ssthresh
        self.recover_fs = recover_fs if recover_fs > 0 else 1
        self.delivered = 0
        self.out = 0

    def on_ack(self, delivered: int, pipe: int, mss: int) -> int:
        """RFC 6937 §3 "on every ACK during recovery": the new cwnd."""
        self.delivered += delivered
        ssthresh = self.ssthresh
        if pipe > ssthresh:
            # Proportional: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out.
            sndcnt = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:
            # Slow-Start Reduction Bound.
            limit = self.delivered - self.out
            if delivered > limit:
                limit = delivered
            limit += mss
            sndcnt = ssthresh - pipe
            if sndcnt > limit:
                sndcnt = limit
        return pipe + (sndcnt if sndcnt > 0 else 0)

    def on_sent(self, nbytes: int) -> None:
        self.out += nbytes
