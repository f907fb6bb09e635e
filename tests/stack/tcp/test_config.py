"""TcpConfig: Linux defaults, validation naming the field, window_shift()."""

from __future__ import annotations

import dataclasses

import pytest

from ethox_asyncio.stack.tcp.config import MAX_RECV_BUFFER, TcpConfig


def test_defaults() -> None:
    c = TcpConfig()
    assert c.mss is None
    assert (c.recv_buffer, c.send_buffer) == (4 << 20, 262144)
    assert (c.rto_initial, c.rto_min, c.rto_max) == (1.0, 0.2, 120.0)
    assert (c.retries2, c.syn_retries, c.synack_retries) == (15, 6, 5)
    assert (c.time_wait, c.fin_timeout) == (60.0, 60.0)
    assert (c.delayed_ack, c.delayed_ack_max) == (0.04, 0.2)
    assert c.nagle is False and c.keepalive is False
    assert (c.keepalive_idle, c.keepalive_interval, c.keepalive_probes) == (7200.0, 75.0, 9)
    assert c.sack and c.timestamps and c.window_scaling
    assert c.initial_window == 10 and c.challenge_ack_limit == 1000
    assert c.syn_backlog == 4096 and c.persist_max == 120.0


def test_frozen_and_slotted() -> None:
    c = TcpConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.mss = 1000  # type: ignore[misc]
    assert not hasattr(c, "__dict__")
    assert dataclasses.replace(c, mss=1400).mss == 1400


@pytest.mark.parametrize(
    ("recv_buffer", "shift"),
    [
        (1, 0),
        (65535, 0),
        (65536, 1),
        (131070, 1),
        (131072, 2),
        (262144, 3),
        (6291456, 7),  # Linux tcp_rmem[2]: the shift Linux usually announces
        (MAX_RECV_BUFFER, 14),
    ],
)
def test_window_shift(recv_buffer: int, shift: int) -> None:
    c = TcpConfig(recv_buffer=recv_buffer)
    assert c.window_shift() == shift
    assert recv_buffer >> shift <= 65535
    assert shift == 0 or recv_buffer >> (shift - 1) > 65535


BAD = [
    ("mss", 87),
    ("mss", 65496),
    ("mss", 1400.0),
    ("mss", True),
    ("recv_buffer", 0),
    ("recv_buffer", MAX_RECV_BUFFER + 1),
    ("send_buffer", 0),
    ("rto_min", 0.0),
    ("rto_min", -1.0),
    ("rto_max", 0.1),  # below rto_min
    ("rto_initial", 0.1),  # below rto_min
    ("rto_initial", 500.0),  # above rto_max
    ("rto_initial", float("nan")),
    ("rto_max", float("inf")),
    ("retries2", 0),
    ("retries2", "15"),
    ("syn_retries", 0),
    ("syn_retries", 128),
    ("synack_retries", -1),
    ("time_wait", -1.0),
    ("fin_timeout", -0.5),
    ("delayed_ack", 0.0),
    ("delayed_ack", 0.3),  # above delayed_ack_max
    ("delayed_ack_max", 0.6),  # RFC 5681 §4.2: within 500 ms
    ("nagle", 1),
    ("keepalive", "yes"),
    ("sack", None),
    ("timestamps", 0),
    ("window_scaling", 1),
    ("keepalive_idle", 0.0),
    ("keepalive_interval", 40000.0),
    ("keepalive_probes", 0),
    ("keepalive_probes", 128),
    ("initial_window", 0),
    ("challenge_ack_limit", 0),
    ("syn_backlog", 0),
    ("persist_max", 0.0),
    ("persist_max", True),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_validation_names_the_field(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"TcpConfig\.{name}\b"):
        TcpConfig(**{name: value})  # type: ignore[arg-type]


def test_valid_edges() -> None:
    TcpConfig(mss=88)
    TcpConfig(mss=65495)
    TcpConfig(delayed_ack=0.5, delayed_ack_max=0.5)
    TcpConfig(rto_min=1.0, rto_initial=1.0, rto_max=1.0)
    TcpConfig(rto_initial=3)  # ints are fine for seconds
    TcpConfig(time_wait=0.0, fin_timeout=0.0, synack_retries=0)


def test_replace_revalidates() -> None:
    with pytest.raises(ValueError, match=r"TcpConfig\.mss"):
        dataclasses.replace(TcpConfig(), mss=10)
