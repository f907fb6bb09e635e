"""Two connections back to back through a seeded lossy / reordering / duplicating channel
on a virtual clock: every byte arrives once and in order, both sides close cleanly."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.tcp.config import TcpConfig
from ethox_asyncio.stack.tcp.state import TcpState

from .harness import config
from .pair import Channel, Pair

# Long TIME-WAIT and patient handshakes: with heavy loss a peer's last FIN can legitimately
# outlive a 60 s TIME-WAIT (it then gets a RST, ECONNRESET, as with Linux), and seven lost
# SYNs legitimately time out; the property is about the data and the close procedure.
_PATIENT = {"time_wait": 3000.0, "syn_retries": 12, "synack_retries": 12}


def transfer(cfg_a: TcpConfig, cfg_b: TcpConfig, *, size: int, seed: int, loss: float = 0.0,
             duplicate: float = 0.0, jitter: float = 0.0, mss_limit: int = 1460,
             chunk: int = 16384) -> Pair:
    rng = random.Random(seed)
    a_data, b_data = rng.randbytes(size), rng.randbytes(size // 2 + 7)
    channel = Channel(random.Random(seed + 1), loss=loss, duplicate=duplicate, jitter=jitter)
    pair = Pair(cfg_a, cfg_b, channel, a_data, b_data, mss_limit=mss_limit)
    pair.apps[id(pair.a)].chunk = chunk
    pair.run(until=100_000.0)  # heavy loss can back the RTO off to minutes, then TIME-WAIT
    assert pair.b is not None
    a, b = pair.app(pair.a), pair.app(pair.b)
    assert hashlib.sha256(b.received).digest() == hashlib.sha256(a_data).digest()
    assert hashlib.sha256(a.received).digest() == hashlib.sha256(b_data).digest()
    assert a.eof and b.eof
    assert a.closed and b.closed and a.error is None and b.error is None
    assert pair.a.state is TcpState.CLOSED and pair.b.state is TcpState.CLOSED
    assert pair.a.finished and pair.b.finished
    return pair


def test_one_megabyte_each_way_clean() -> None:
    pair = transfer(TcpConfig(), TcpConfig(), size=1 << 20, seed=1)
    assert pair.a.stats["tcp_retransmitted_segments"] == 0


@pytest.mark.parametrize("loss, duplicate, jitter", [
    (0.01, 0.0, 0.0), (0.05, 0.0, 0.0), (0.02, 0.05, 0.004), (0.1, 0.05, 0.02),
    (0.0, 0.2, 0.0), (0.0, 0.0, 0.05),
])
@pytest.mark.parametrize("seed", [3, 4])
def test_one_megabyte_through_faults(loss: float, duplicate: float, jitter: float,
                                     seed: int) -> None:
    transfer(TcpConfig(), TcpConfig(), size=1 << 20, seed=seed, loss=loss,
             duplicate=duplicate, jitter=jitter)


@pytest.mark.parametrize("cfg", [
    config(timestamps=False),
    config(sack=False, window_scaling=False),
    config(timestamps=False, sack=False, window_scaling=False, nagle=True),
    config(recv_buffer=8192, mss=536),
    config(recv_buffer=3000),
], ids=["no-ts", "no-sack-no-ws", "bare-nagle", "small-buffer", "tiny-buffer"])
def test_options_combinations_through_loss(cfg: TcpConfig) -> None:
    transfer(cfg, TcpConfig(), size=200_000, seed=7, loss=0.03, jitter=0.003)
    transfer(TcpConfig(), cfg, size=200_000, seed=8, loss=0.03, jitter=0.003)


def test_heavy_loss_small_mtu() -> None:
    transfer(config(**_PATIENT), config(**_PATIENT), size=100_000, seed=11, loss=0.25,
             jitter=0.01, mss_limit=536)


def test_single_byte_writes() -> None:
    transfer(TcpConfig(), TcpConfig(), size=3000, seed=12, loss=0.05, chunk=1)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(0, 40_000),
       loss=st.sampled_from([0.0, 0.02, 0.1, 0.2]), duplicate=st.sampled_from([0.0, 0.1]),
       jitter=st.sampled_from([0.0, 0.002, 0.03]), chunk=st.integers(1, 9000),
       mss_limit=st.sampled_from([536, 1220, 1460, 8960]),
       ts=st.booleans(), sack=st.booleans(), ws=st.booleans(), nagle=st.booleans(),
       recv_buffer=st.sampled_from([2000, 16384, 262144]))
def test_property_every_byte_once_in_order_and_clean_close(
        seed: int, size: int, loss: float, duplicate: float, jitter: float, chunk: int,
        mss_limit: int, ts: bool, sack: bool, ws: bool, nagle: bool, recv_buffer: int) -> None:
    cfg = config(timestamps=ts, sack=sack, window_scaling=ws, nagle=nagle,
                 recv_buffer=recv_buffer, **_PATIENT)
    transfer(cfg, config(**_PATIENT), size=size, seed=seed, loss=loss, duplicate=duplicate,
             jitter=jitter, mss_limit=mss_limit, chunk=chunk)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), pauses=st.lists(st.tuples(
    st.floats(0.0, 2.0), st.floats(0.01, 1.0)), max_size=4))
def test_property_reader_pauses_lose_nothing(seed: int,
                                             pauses: list[tuple[float, float]]) -> None:
    """The receiving application stops reading for a while: data is held, the window
    closes, the sender probes; nothing is lost or duplicated."""
    rng = random.Random(seed)
    data = rng.randbytes(60_000)
    channel = Channel(random.Random(seed + 1), loss=0.02, jitter=0.002)
    pair = Pair(TcpConfig(), config(recv_buffer=8000), channel, data, b"")
    schedule = sorted((10.0 + start, 10.0 + start + length) for start, length in pauses)
    for _ in range(200_000):
        if pair.b is not None and pair.b.state is not TcpState.SYN_RECEIVED \
                and pair.listener.accept_queue_len == 0:
            paused = any(a <= pair.now < b for a, b in schedule)
            pair.b.set_reading(not paused)
        if not pair.step():
            break
    pair.run()
    assert pair.b is not None
    assert bytes(pair.app(pair.b).received) == data
    assert pair.app(pair.a).closed and pair.app(pair.b).closed
    assert pair.app(pair.a).error is None and pair.app(pair.b).error is None


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), abort_at=st.floats(10.0, 12.0),
       who=st.sampled_from(["a", "b"]), action=st.sampled_from(["abort", "close"]),
       loss=st.sampled_from([0.0, 0.05]))
def test_property_abort_or_close_mid_transfer(seed: int, abort_at: float, who: str,
                                               action: str, loss: float) -> None:
    """A user call at a random moment: the data seen so far is a prefix of what was sent,
    EV_CLOSED comes exactly once per side, both connections end up finished."""
    rng = random.Random(seed)
    a_data, b_data = rng.randbytes(300_000), rng.randbytes(300_000)
    channel = Channel(random.Random(seed + 1), loss=loss, jitter=0.001)
    pair = Pair(config(**_PATIENT), config(**_PATIENT), channel, a_data, b_data)
    done = False
    for _ in range(500_000):
        conn = pair.a if who == "a" else pair.b
        if not done and pair.now >= abort_at and conn is not None:
            done = True
            if not conn.finished:
                if action == "abort":
                    conn.abort(pair.now)
                else:
                    conn.close(pair.now)
                pair.app(conn).shut = True
        if not pair.step():
            break
    pair.run(until=pair.now + 4000.0)
    for conn, sent in ((pair.a, b_data), (pair.b, a_data)):
        if conn is None:
            continue
        app = pair.app(conn)
        assert sent.startswith(bytes(app.received))  # never a lost, duplicated or moved byte
        if conn.state is TcpState.FIN_WAIT_2:
            # Half-closed and waiting for the rest of the peer's data, which an abort in
            # CLOSING/LAST-ACK with everything sent never brings: Linux waits forever too.
            continue
        # EV_CLOSED exactly once (Pair asserts "once") for every connection the application
        # knew: a passive one that died in SYN-RECEIVED was never announced.
        assert app.closed or (conn is pair.b and not app.established)
        assert conn.finished
        # A RST reaching SYN-SENT refuses the connection (RFC 9293 §3.10.7.3).
        assert app.error is None or isinstance(app.error, (
            ConnectionResetError, BrokenPipeError, ConnectionRefusedError))
