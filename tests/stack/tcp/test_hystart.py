"""HyStart++ (RFC 9406) in slow start, for NewReno and CUBIC: scripted ACK sequences
with explicit sequence numbers, RTT samples and window sizes.

The :class:`Script` sender sends a round's segments, then ACKs them one MSS at a
time with the given RTT samples, so that each :meth:`Script.round` is exactly one
HyStart++ round: its first ACK covers the first byte sent since the previous
round began (ending it), the others stay below the new windowEnd. ``spare``
segments sent with the round but not yet ACKed let a test add ACKs (``ack``)
that still belong to that round. Sequence numbers start just below 2**32 so
windowEnd wraps during the tests.
"""

from __future__ import annotations

import pytest

from ethox_asyncio.stack.tcp.congestion import (
    CSS_GROWTH_DIVISOR,
    CSS_ROUNDS,
    INFINITE_SSTHRESH,
    MAX_RTT_THRESH,
    MIN_RTT_DIVISOR,
    MIN_RTT_THRESH,
    N_RTT_SAMPLE,
    CongestionControl,
    Cubic,
    NewReno,
)
from ethox_asyncio.stack.tcp.seq import SEQ_MOD, seq_add
from tests.stack.tcp.harness import established, r, recv, seg, send

MSS = 1000
BASE = 0.125  # s; /8 = 15.625 ms, inside the [4 ms, 16 ms] clamp, and exact in binary
HIGH = 0.150  # BASE + 25 ms: enters CSS after BASE
CONTROLLERS = [NewReno, Cubic]


class Script:
    """A scripted sender driving ``observe_ack`` then ``on_ack`` as the connection does."""

    def __init__(self, cc: NewReno, seq: int = SEQ_MOD - 3 * MSS) -> None:
        self.cc = cc
        self.una = seq
        self.nxt = seq
        self.now = 0.0

    def send(self, n: int = MSS) -> None:
        self.nxt = seq_add(self.nxt, n)

    def ack(self, rtt: float | None, n: int = MSS) -> None:
        self.una = seq_add(self.una, n)
        self.now += 0.001
        self.cc.observe_ack(self.una, self.nxt, rtt, self.now)
        self.cc.on_ack(n, self.now, BASE)

    def round(self, rtts: list[float | None], spare: int = 0) -> None:
        for _ in range(len(rtts) + spare):
            self.send()
        for rtt in rtts:
            self.ack(rtt)


def into_css(cls: type[NewReno], **kw: int) -> tuple[NewReno, Script]:
    """Round 1 at BASE, round 2 at HIGH: CSS from round 2's eighth ACK."""
    cc = cls(MSS, hystart=True, **kw)
    s = Script(cc)
    s.round([BASE] * 8)
    s.round([HIGH] * 8)
    assert cc.hystart_phase == "css"
    return cc, s


def test_constants_are_rfc9406_s() -> None:
    # RFC 9406 §4.3's recommended values.
    assert (MIN_RTT_THRESH, MAX_RTT_THRESH, MIN_RTT_DIVISOR) == (0.004, 0.016, 8)
    assert (N_RTT_SAMPLE, CSS_GROWTH_DIVISOR, CSS_ROUNDS) == (8, 4, 5)


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_phases_at_start(cls: type[NewReno]) -> None:
    assert cls(MSS).hystart_phase == "off"
    cc = cls(MSS, hystart=True)
    assert cc.hystart_phase == "slow_start" and cc.hystart_rounds == 0
    assert cc.cwnd == 10 * MSS and cc.ssthresh == INFINITE_SSTHRESH


def test_satisfies_the_protocol() -> None:
    cc: CongestionControl = Cubic(MSS, hystart=True)
    cc.observe_ack(1000, 5000, 0.1, 0.0)
    cc.on_ack(MSS, 0.0)
    assert cc.cwnd == 11 * MSS


def test_a_round_ends_only_when_the_ack_passes_window_end() -> None:
    """§4.2: windowEnd = SND.NXT at the start of a round; the round ends when the
    byte at windowEnd is acknowledged, i.e. SEG.ACK > windowEnd (mod 2**32)."""
    cc = NewReno(MSS, hystart=True)
    una = SEQ_MOD - 1500
    cc.observe_ack(seq_add(una, 1000), 1500, 0.1, 0.0)  # first ACK: round 1, windowEnd 1500
    assert cc.hystart_rounds == 0
    cc.observe_ack(1000, 6500, 0.1, 0.0)  # wrapped, still below windowEnd
    cc.observe_ack(1500, 6500, None, 0.0)  # == windowEnd: not the round's own byte yet
    assert cc.hystart_rounds == 0
    cc.observe_ack(1501, 6500, None, 0.0)  # covers byte 1500: round 2, windowEnd 6500
    assert cc.hystart_rounds == 1
    cc.observe_ack(6500, 9000, 0.1, 0.0)
    assert cc.hystart_rounds == 1
    cc.observe_ack(9000, 9000, 0.1, 0.0)  # a stretch ACK past windowEnd: one round only
    assert cc.hystart_rounds == 2
    cc.observe_ack(9000 + MSS, 12000, 0.1, 0.0)  # windowEnd was 9000 (SND.NXT then)
    assert cc.hystart_rounds == 3


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_the_script_makes_one_round_per_call(cls: type[NewReno]) -> None:
    cc = cls(MSS, hystart=True)
    s = Script(cc)
    for n in range(4):
        s.round([BASE] * 3)
        assert cc.hystart_rounds == n  # the first call only starts round 1


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_no_css_before_eight_samples_in_the_round(cls: type[NewReno]) -> None:
    """§4.2: the delay check needs N_RTT_SAMPLE samples in the round; ACKs without a
    sample do not count."""
    cc = cls(MSS, hystart=True)
    s = Script(cc)
    s.round([BASE] * 8)
    s.round([HIGH, None, HIGH, HIGH, None, HIGH, HIGH, HIGH, None, HIGH], spare=1)
    assert cc.hystart_phase == "slow_start"  # 7 samples
    assert cc.cwnd == 10 * MSS + 18 * MSS  # every ACK grew a full MSS
    s.ack(HIGH)  # round 2's eighth sample
    assert cc.hystart_rounds == 1
    assert cc.hystart_phase == "css"


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_the_first_round_cannot_enter_css(cls: type[NewReno]) -> None:
    """§4.2: lastRoundMinRTT must be known; a round without samples leaves it unknown."""
    cc = cls(MSS, hystart=True)
    s = Script(cc)
    s.round([1.0] * 10)  # no last round
    s.round([None] * 8)  # no samples: the next round's lastRoundMinRTT is infinity
    s.round([5.0] * 10)
    assert cc.hystart_phase == "slow_start" and cc.hystart_rounds == 2
    s.round([10.0] * 8)  # compared with 5 s: a rise far above 16 ms
    assert cc.hystart_phase == "css"


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_the_round_minimum_decides(cls: type[NewReno]) -> None:
    """currentRoundMinRTT is the round's minimum, the eighth sample included."""
    cc = cls(MSS, hystart=True)
    s = Script(cc)
    s.round([BASE] * 8)
    s.round([0.3] * 7 + [0.13])  # min 130 ms < 125 + 15.625 ms
    assert cc.hystart_phase == "slow_start"
    s.round([0.13] + [0.3] * 9)  # min 130 ms vs 130 + 16 ms (clamped 16.25 ms)
    assert cc.hystart_phase == "slow_start"


@pytest.mark.parametrize("cls", CONTROLLERS)
@pytest.mark.parametrize(("last", "enters", "stays"), [
    (BASE, BASE / 8, BASE / 8 - 0.0001),  # RttThresh = 15.625 ms, unclamped
    (0.008, 0.004, 0.0039),  # 8 ms / 8 = 1 ms, clamped up to MIN_RTT_THRESH
    (0.5, 0.016, 0.0159),  # 500 ms / 8 = 62.5 ms, clamped down to MAX_RTT_THRESH
])
def test_css_entry_on_a_delay_increase_of_rtt_thresh(
        cls: type[NewReno], last: float, enters: float, stays: float) -> None:
    """§4.2: enter CSS when currentRoundMinRTT >= lastRoundMinRTT + RttThresh, with
    RttThresh = max(4 ms, min(lastRoundMinRTT / 8, 16 ms))."""
    for rise, phase in ((stays, "slow_start"), (enters, "css")):
        cc = cls(MSS, hystart=True)
        s = Script(cc)
        s.round([last] * 8)
        s.round([last + rise] * 8)
        assert cc.hystart_phase == phase, rise


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_css_grows_a_quarter_as_fast(cls: type[NewReno]) -> None:
    """§4.2: in CSS cwnd += min(N, L·SMSS) / CSS_GROWTH_DIVISOR; L is abc_limit."""
    cc, s = into_css(cls)
    # Round 1: 8 MSS; round 2: 7 MSS in slow start, the eighth ACK already in CSS.
    assert cc.cwnd == 10 * MSS + 8 * MSS + 7 * MSS + MSS // 4 == 25250
    s.send()
    s.ack(HIGH)
    assert cc.cwnd == 25500
    s.send(5000)
    s.ack(HIGH, n=5000)  # a stretch ACK: min(N, 1·SMSS) / 4
    assert cc.cwnd == 25750
    s.send(600)
    s.ack(HIGH, n=600)
    assert cc.cwnd == 25900
    assert cc.ssthresh == INFINITE_SSTHRESH and cc.hystart_phase == "css"

    cc2, s2 = into_css(cls, abc_limit=2)
    before = cc2.cwnd
    s2.send(5000)
    s2.ack(HIGH, n=5000)
    assert cc2.cwnd == before + 500  # min(5000, 2·SMSS) / 4


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_spurious_css_exit_resumes_slow_start(cls: type[NewReno]) -> None:
    """§4.2: in CSS, once the round has N_RTT_SAMPLE samples, a minimum below
    cssBaselineMinRtt (HIGH, the minimum at entry) means the exit was spurious."""
    cc, s = into_css(cls)
    s.round([HIGH - 0.001] * 7, spare=1)  # lower, but only 7 samples
    assert cc.hystart_phase == "css"
    cwnd = cc.cwnd
    s.ack(HIGH - 0.001)  # the round's eighth
    assert cc.hystart_phase == "slow_start" and cc.hystart_rounds == 2
    assert cc.cwnd == cwnd + MSS  # this ACK already grows at slow start's rate
    # HyStart++ still runs: a later rise enters CSS again.
    s.round([0.2] * 8)
    assert cc.hystart_phase == "css"


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_css_stays_while_the_rtt_is_not_below_the_baseline(cls: type[NewReno]) -> None:
    cc, s = into_css(cls)
    s.round([HIGH] * 8 + [HIGH + 0.05] * 4)  # equal to the baseline is not below it
    assert cc.hystart_phase == "css"


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_css_ends_in_congestion_avoidance_after_five_rounds(cls: type[NewReno]) -> None:
    """§4.2: at most CSS_ROUNDS rounds of CSS, the partial round it began in counted;
    then ssthresh = cwnd (congestion avoidance) and HyStart++ is done."""
    cc, s = into_css(cls)  # CSS from round 2's last ACK
    assert cc.cwnd == 25250
    for _ in range(4):  # rounds 3-6: the end of rounds 2, 3, 4, 5 counted
        s.round([HIGH] * 8)
        assert cc.hystart_phase == "css"
    assert cc.cwnd == 25250 + 4 * 8 * (MSS // 4) == 33250
    assert cc.ssthresh == INFINITE_SSTHRESH
    s.send()
    s.ack(HIGH)  # ends round 6, the fifth CSS round: before this ACK's on_ack
    assert cc.hystart_phase == "done"
    assert cc.ssthresh == 33250 and not cc.in_slow_start
    if cls is NewReno:
        assert cc.cwnd == 33250  # byte counting: 1000 of 33250 acknowledged
    else:
        # RFC 9438 §4.2: the epoch starts at this first ACK in avoidance, from
        # cwnd (no W_max yet): K = 0, and the Reno-friendly estimate leads.
        assert cc._epoch == pytest.approx(s.now) and cc._k == 0.0
        assert cc._origin == pytest.approx(33.25)
        alpha = 3 * (1 - 0.7) / (1 + 0.7)
        assert cc.cwnd == int((33.25 + alpha / 33.25) * MSS)
    # Done for good: rising RTTs and more rounds change nothing.
    ssthresh = cc.ssthresh
    s.round([5.0] * 20)
    assert cc.hystart_phase == "done" and cc.ssthresh == ssthresh
    assert cc.hystart_rounds == 6


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_css_rounds_count_again_after_a_spurious_exit(cls: type[NewReno]) -> None:
    cc, s = into_css(cls)
    s.round([HIGH] * 8)  # one CSS round ended (round 2), 2 at the end of this one
    s.round([HIGH - 0.01] * 8)  # spurious: back to slow start
    assert cc.hystart_phase == "slow_start"
    s.round([0.3] * 8)  # re-enter CSS mid-round
    assert cc.hystart_phase == "css"
    for _ in range(CSS_ROUNDS - 1):
        s.round([0.3] * 8)
    assert cc.hystart_phase == "css"  # 4 CSS rounds ended since re-entry, not 6
    cwnd = cc.cwnd
    s.send()
    s.ack(0.3)
    assert cc.hystart_phase == "done" and cc.ssthresh == cwnd


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_hystart_false_is_standard_slow_start(cls: type[NewReno]) -> None:
    """Without hystart observe_ack does nothing: the same as never calling it."""
    cc = cls(MSS)
    plain = cls(MSS)
    s = Script(cc)
    for rtts in ([BASE] * 8, [HIGH] * 8, [0.5] * 8, [1.0] * 8):
        s.round(rtts)
        for _ in rtts:
            plain.on_ack(MSS, s.now, BASE)
    assert cc.hystart_phase == "off" and cc.hystart_rounds == 0
    assert cc.cwnd == plain.cwnd == 10 * MSS + 32 * MSS
    assert cc.ssthresh == plain.ssthresh == INFINITE_SSTHRESH


@pytest.mark.parametrize("cls", CONTROLLERS)
@pytest.mark.parametrize("in_css", [False, True])
def test_fast_retransmit_ends_hystart(cls: type[NewReno], in_css: bool) -> None:
    """§4.2: a loss in slow start or CSS hands over to the usual response; §4.3: the
    initial slow start only, so HyStart++ never comes back."""
    if in_css:
        cc, s = into_css(cls)
    else:
        cc = cls(MSS, hystart=True)
        s = Script(cc)
        s.round([BASE] * 8)
    cc.enter_recovery(cc.cwnd)
    assert cc.hystart_phase == "done"
    ssthresh = cc.ssthresh
    cc.exit_recovery(4 * MSS)
    assert cc.cwnd == 5 * MSS and ssthresh >= 9 * MSS  # RFC 6582 option (1)
    s.round([BASE] * 3)
    assert cc.cwnd == 8 * MSS  # standard slow start up to ssthresh: a full MSS per ACK
    s.round([BASE] * 8)
    s.round([1.0] * 8)
    assert cc.hystart_phase == "done" and cc.ssthresh == ssthresh


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_rto_ends_hystart(cls: type[NewReno]) -> None:
    """§4.3: the slow start after a timeout is a standard one, up to the new ssthresh."""
    cc, s = into_css(cls)
    cc.on_rto(cc.cwnd)
    assert cc.hystart_phase == "done" and cc.cwnd == MSS
    ssthresh = cc.ssthresh
    assert ssthresh == (12625 if cls is NewReno else int(25250 * 0.7))
    s.round([BASE] * 3)
    assert cc.cwnd == 4 * MSS  # a full MSS per ACK, not a quarter
    s.round([BASE] * 8)
    s.round([1.0] * 8)
    assert cc.hystart_phase == "done" and cc.ssthresh == ssthresh


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_a_finite_ssthresh_ends_hystart(cls: type[NewReno]) -> None:
    """§4.3: only while ssthresh still has its initial, arbitrarily high value."""
    cc = cls(MSS, hystart=True)
    cc.ssthresh = 50 * MSS
    cc.observe_ack(1000, 2000, BASE, 0.0)
    assert cc.hystart_phase == "done" and cc.hystart_rounds == 0


@pytest.mark.parametrize("cls", CONTROLLERS)
def test_idle_restart_keeps_the_initial_slow_start_s_hystart(cls: type[NewReno]) -> None:
    """RFC 5681 §4.1 restart window; RFC 9406 §4.3 allows HyStart++ to grow it."""
    cc, s = into_css(cls)
    cc.on_idle(10.0, 1.0)
    assert cc.cwnd == 10 * MSS and cc.hystart_phase == "css"
    s.send()
    s.ack(HIGH)
    assert cc.cwnd == 10 * MSS + MSS // 4 and cc.hystart_rounds == 2


def test_a_connection_feeds_hystart_and_leaves_slow_start_when_its_rtt_rises() -> None:
    # The sender calls observe_ack on every ACK of new data (sender.py): a round of
    # ACKs at 50 ms, then a round at 80 ms (> 50 + 50/8 ms after 8 samples) moves the
    # connection's slow start to CSS.
    conn = established(sack=True, ts=True, rtt=0.05)
    assert conn.cc.hystart_phase == "slow_start"
    conn.send(bytes(200 * 1448))
    now = 1.0
    for rtt in (0.05, 0.08):
        out = [s for s in recv(conn, now) if len(s.payload)]
        assert len(out) >= 10
        now += rtt
        for s in out:
            end = (s.seq + len(s.payload)) & 0xFFFFFFFF
            send(conn, seg(r(1), end, ts=(2000, s.ts_val or 0)), now)
    assert conn.cc.hystart_rounds == 1  # the second round is still open
    assert conn.cc.hystart_phase == "css"
