"""Unit tests of the sans-IO neighbour cache (virtual clock: ``now`` is a float)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethox_asyncio.stack.neighbor import (
    Failure,
    NeighborCache,
    NeighborConfig,
    NeighborState,
    Solicitation,
)
from ethox_asyncio.stack.wire.ethernet import EthernetAddress

A = IPv4Address("198.18.0.1")
B = IPv4Address("198.18.0.2")
C = IPv4Address("198.18.0.3")
V6 = IPv6Address("fd00::1")
MAC1 = EthernetAddress("02:00:00:00:00:01")
MAC2 = EthernetAddress("02:00:00:00:00:02")

CFG = NeighborConfig()
S = NeighborState


def cache(**kw: float) -> NeighborCache[str]:
    return NeighborCache(NeighborConfig(**kw))  # type: ignore[arg-type]


def reachable(c: NeighborCache[str], ip: IPv4Address | IPv6Address, mac: EthernetAddress,
              now: float) -> None:
    c.resolve(ip, "x", now)
    assert c.update(ip, mac, now, solicited=True) == ["x"]
    assert c.state(ip) is S.REACHABLE


# -- resolution ------------------------------------------------------------------------


def test_resolution_happy_path() -> None:
    c = cache()
    assert c.poll_at() is None
    assert c.lookup(A, 0.0) is None
    assert c.resolve(A, "p1", 0.0)
    assert c.resolve(A, "p2", 0.1)
    assert c.state(A) is S.INCOMPLETE
    assert c.lookup(A, 0.1) is None  # still incomplete
    assert c.poll_at() == 0.0  # immediate solicitation
    r = c.poll(0.1)
    assert r.solicitations == [Solicitation(A, None)] and r.failures == []
    assert c.poll_at() == pytest.approx(1.1)
    assert not c.poll(0.5)
    assert c.update(A, MAC1, 0.5, solicited=True) == ["p1", "p2"]
    assert c.state(A) is S.REACHABLE
    assert c.lookup(A, 0.6) == MAC1
    assert c.pending_total == 0
    st_ = c.stats
    assert (st_.misses, st_.hits, st_.solicitations_sent, st_.resolved) == (2, 1, 1, 1)
    assert st_.entries == 1
    assert c.poll_at() == pytest.approx(30.5)  # REACHABLE → STALE timer


def test_ipv6_addresses_work_the_same() -> None:
    c: NeighborCache[bytes] = NeighborCache()
    c.resolve(V6, b"pkt", 0.0)
    assert c.poll(0.0).solicitations == [Solicitation(V6, None)]
    assert c.update(V6, MAC2, 0.2, solicited=True, override=False, is_router=True) == [b"pkt"]
    (info,) = c.entries()
    assert (info.ip, info.mac, info.state, info.is_router, info.pending) == (
        V6, MAC2, S.REACHABLE, True, 0)


def test_resolve_on_resolved_neighbor_is_an_error() -> None:
    c = cache()
    reachable(c, A, MAC1, 0.0)
    with pytest.raises(ValueError):
        c.resolve(A, "y", 0.0)


def test_retries_then_failure_returns_packets_for_icmp() -> None:
    c = cache()
    c.resolve(A, "p1", 0.0)
    c.resolve(A, "p2", 0.0)
    times = []
    now = 0.0
    while (at := c.poll_at()) is not None:
        now = at
        r = c.poll(now)
        if r.solicitations:
            assert r.solicitations == [Solicitation(A, None)]
            times.append(now)
        if r.failures:
            assert r.failures == [Failure(A, ["p1", "p2"])]
            break
    assert times == [0.0, 1.0, 2.0]  # max_multicast_solicit, retrans_time apart
    assert now == 3.0
    assert A not in c and c.poll_at() is None
    assert c.stats.failed == 1 and c.stats.entries == 0 and c.pending_total == 0
    # A new packet starts a fresh resolution.
    assert c.resolve(A, "p3", 4.0)
    assert c.poll(4.0).solicitations == [Solicitation(A, None)]


def test_late_poll_fires_each_step_once() -> None:
    c = cache()
    c.resolve(A, "p", 0.0)
    r = c.poll(10.0)  # one solicitation now, the next retrans_time after *now*
    assert r.solicitations == [Solicitation(A, None)] and not r.failures
    assert c.poll_at() == 11.0


# -- pending bounds --------------------------------------------------------------------


def test_per_neighbor_queue_drops_oldest() -> None:
    c = cache(max_pending_per_neighbor=3)
    for i in range(5):
        assert c.resolve(A, f"p{i}", 0.0)
    assert c.stats.pending_dropped == 2
    assert c.pending_total == 3
    assert c.update(A, MAC1, 0.1, solicited=True) == ["p2", "p3", "p4"]


def test_total_queue_bound() -> None:
    c = cache(max_pending_total=3, max_pending_per_neighbor=8)
    assert c.resolve(A, "a1", 0.0)
    assert c.resolve(A, "a2", 0.0)
    assert c.resolve(B, "b1", 0.0)
    # Full: a neighbour with queued packets loses its oldest ...
    assert c.resolve(B, "b2", 0.0)
    assert c.stats.pending_dropped == 1
    # ... one with none has its new packet refused (entry still solicits).
    assert not c.resolve(C, "c1", 0.0)
    assert c.stats.pending_dropped == 2
    assert c.state(C) is S.INCOMPLETE
    assert c.pending_total == 3
    assert c.update(B, MAC2, 0.0, solicited=True) == ["b2"]
    assert c.resolve(C, "c2", 0.0)
    assert c.update(A, MAC1, 0.0, solicited=False) == ["a1", "a2"]


# -- table bound -------------------------------------------------------------------------


def test_max_entries_evicts_least_recently_stale_else_refuses() -> None:
    c = cache(max_entries=2)
    c.learn(A, MAC1, 0.0)  # STALE
    c.learn(B, MAC2, 1.0)  # STALE
    assert c.resolve(C, "c", 2.0)  # evicts A, the older STALE entry
    assert A not in c and B in c and c.stats.evicted == 1
    c.confirm(B, 2.0)  # B no longer evictable
    assert not c.resolve(A, "a", 3.0)  # table full of busy entries: refused
    assert A not in c and c.stats.pending_dropped == 1
    c.learn(A, MAC1, 3.0)  # learn refuses too
    assert A not in c and len(c) == 2 and c.stats.entries == 2


# -- reachability state machine ------------------------------------------------------------


def test_reachable_becomes_stale_after_reachable_time() -> None:
    c = cache()
    reachable(c, A, MAC1, 0.0)
    assert c.poll_at() == 30.0
    assert not c.poll(29.9)
    assert c.state(A) is S.REACHABLE
    assert not c.poll(30.0)  # nothing to send, just ageing
    assert c.state(A) is S.STALE
    assert c.poll_at() == 630.0  # stale_timeout garbage collection


def test_stale_garbage_collected_when_unused() -> None:
    c = cache(stale_timeout=100.0)
    c.learn(A, MAC1, 0.0)
    assert c.poll_at() == 100.0
    c.poll(100.0)
    assert A not in c and c.stats.expired == 1 and c.poll_at() is None


def test_confirm_extends_reachable_lazily_but_poll_at_stays_exact() -> None:
    c = cache()
    reachable(c, A, MAC1, 0.0)
    heap_len = len(c._heap)
    for i in range(1, 1000):
        c.confirm(A, i * 0.01)
    assert len(c._heap) == heap_len  # no push per confirmation
    assert c.poll_at() == pytest.approx(30.0 + 9.99)
    assert not c.poll(35.0)
    assert c.state(A) is S.REACHABLE


def test_stale_delay_probe_then_confirmation() -> None:
    c = cache()
    reachable(c, A, MAC1, 0.0)
    c.poll(30.0)
    assert c.state(A) is S.STALE
    assert c.lookup(A, 40.0) == MAC1  # use of STALE → DELAY
    assert c.state(A) is S.DELAY
    assert c.poll_at() == 45.0
    assert c.lookup(A, 41.0) == MAC1  # further use keeps DELAY timer
    assert c.poll_at() == 45.0
    r = c.poll(45.0)  # DELAY → PROBE with a first unicast probe
    assert c.state(A) is S.PROBE
    assert r.solicitations == [Solicitation(A, MAC1)]
    assert c.lookup(A, 45.5) == MAC1  # still usable while probing
    r = c.poll(46.0)
    assert r.solicitations == [Solicitation(A, MAC1)]
    assert c.update(A, MAC1, 46.2, solicited=True) == []
    assert c.state(A) is S.REACHABLE
    assert c.poll_at() == pytest.approx(76.2)


def test_confirm_in_delay_skips_probing() -> None:
    c = cache()
    c.learn(A, MAC1, 0.0)
    c.lookup(A, 1.0)
    assert c.state(A) is S.DELAY
    c.confirm(A, 2.0)
    assert c.state(A) is S.REACHABLE
    assert not c.poll(10.0)


def test_probe_failure_deletes_entry_and_reports_it() -> None:
    c = cache()
    c.learn(A, MAC1, 0.0)
    c.lookup(A, 0.0)
    sent = []
    failures = []
    while (at := c.poll_at()) is not None:
        r = c.poll(at)
        sent += [(at, s) for s in r.solicitations]
        failures += r.failures
    assert sent == [(5.0, Solicitation(A, MAC1)), (6.0, Solicitation(A, MAC1)),
                    (7.0, Solicitation(A, MAC1))]
    assert failures == [Failure(A, [])]
    assert A not in c and c.stats.failed == 1


def test_zero_unicast_probes_deletes_at_end_of_delay() -> None:
    c = cache(max_unicast_solicit=0)
    c.learn(A, MAC1, 0.0)
    c.lookup(A, 0.0)
    r = c.poll(5.0)
    assert r.solicitations == [] and r.failures == [Failure(A, [])]


# -- RFC 4861 §7.2.5 rules ------------------------------------------------------------------

# (initial state, same mac?, solicited, override) → (state after, mac after)
RULES = [
    (S.REACHABLE, True, True, True, S.REACHABLE, MAC1),
    (S.REACHABLE, True, False, True, S.REACHABLE, MAC1),
    (S.REACHABLE, True, False, False, S.REACHABLE, MAC1),
    (S.REACHABLE, False, True, False, S.STALE, MAC1),  # no override: keep mac, suspect
    (S.REACHABLE, False, False, False, S.STALE, MAC1),
    (S.REACHABLE, False, True, True, S.REACHABLE, MAC2),
    (S.REACHABLE, False, False, True, S.STALE, MAC2),
    (S.STALE, False, False, False, S.STALE, MAC1),  # ignored
    (S.STALE, False, True, False, S.STALE, MAC1),  # ignored
    (S.STALE, True, False, False, S.STALE, MAC1),
    (S.STALE, True, True, False, S.REACHABLE, MAC1),
    (S.STALE, False, False, True, S.STALE, MAC2),
    (S.DELAY, False, False, False, S.DELAY, MAC1),
    (S.DELAY, True, False, True, S.DELAY, MAC1),  # unchanged
    (S.DELAY, False, False, True, S.STALE, MAC2),
    (S.DELAY, True, True, False, S.REACHABLE, MAC1),
    (S.PROBE, False, True, False, S.PROBE, MAC1),
    (S.PROBE, True, False, True, S.PROBE, MAC1),
    (S.PROBE, False, True, True, S.REACHABLE, MAC2),
]


def _entry_in(state: NeighborState) -> NeighborCache[str]:
    c = cache()
    c.learn(A, MAC1, 0.0)
    if state is S.REACHABLE:
        c.confirm(A, 0.0)
    elif state in (S.DELAY, S.PROBE):
        c.lookup(A, 0.0)
        if state is S.PROBE:
            c.poll(5.0)
    assert c.state(A) is state
    return c


@pytest.mark.parametrize(("start", "same", "solicited", "override", "end", "mac"), RULES)
def test_advertisement_rules(start: NeighborState, same: bool, solicited: bool,
                             override: bool, end: NeighborState,
                             mac: EthernetAddress) -> None:
    c = _entry_in(start)
    assert c.update(A, MAC1 if same else MAC2, 6.0, solicited=solicited,
                    override=override) == []
    assert c.state(A) is end
    assert c.lookup(A, 6.0) == mac


def test_advertisement_without_target_address() -> None:
    c = cache()
    c.resolve(A, "p", 0.0)
    assert c.update(A, None, 0.0, solicited=True) == []  # INCOMPLETE: nothing learnt
    assert c.state(A) is S.INCOMPLETE
    c = _entry_in(S.STALE)
    c.update(A, None, 1.0, solicited=True, is_router=True)
    assert c.state(A) is S.REACHABLE and c.entries()[0].is_router


def test_is_router_ignored_when_advertisement_ignored() -> None:
    c = _entry_in(S.STALE)
    c.update(A, MAC2, 1.0, solicited=True, override=False, is_router=True)
    assert not c.entries()[0].is_router


def test_update_of_unknown_neighbor_is_ignored() -> None:
    c = cache()
    assert c.update(A, MAC1, 0.0, solicited=True) == []
    assert A not in c


def test_unsolicited_update_of_incomplete_gives_stale_then_delay() -> None:
    c = cache()
    c.resolve(A, "p", 0.0)
    assert c.update(A, MAC1, 0.5, solicited=False) == ["p"]
    # The released packets are a use of the STALE entry: DELAY (RFC 4861 §7.3.3).
    assert c.state(A) is S.DELAY and c.poll_at() == 5.5


def test_learn_creates_stale_and_merges() -> None:
    c = cache()
    assert c.learn(A, MAC1, 0.0) == []
    assert c.state(A) is S.STALE and c.lookup(A, 1.0) == MAC1
    c = cache()
    reachable(c, A, MAC1, 0.0)
    c.learn(A, MAC1, 1.0)  # same address: unchanged
    assert c.state(A) is S.REACHABLE
    c.learn(A, MAC2, 2.0)  # new address: merged, STALE
    assert c.state(A) is S.STALE and c.lookup(A, 2.0) == MAC2
    c = cache()
    c.resolve(A, "p", 0.0)
    assert c.learn(A, MAC1, 0.1) == ["p"]  # an incomplete entry resolves
    assert c.stats.resolved == 1


def test_remove_and_flush() -> None:
    c = cache()
    c.resolve(A, "a", 0.0)
    c.resolve(B, "b", 0.0)
    c.learn(C, MAC1, 0.0)
    assert c.remove(A) == ["a"]
    assert c.remove(A) == []
    assert c.pending_total == 1
    c.flush()
    assert len(c) == 0 and c.poll_at() is None and c.pending_total == 0
    assert c.stats.pending_dropped == 1 and c.stats.entries == 0


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        NeighborConfig(retrans_time=0)
    with pytest.raises(ValueError):
        NeighborConfig(max_pending_per_neighbor=0)
    with pytest.raises(ValueError):
        NeighborConfig(max_unicast_solicit=-1)


def test_heap_stays_bounded_under_churn() -> None:
    c = cache(stale_timeout=1000.0)
    now = 0.0
    for _ in range(2000):
        now += 0.01
        c.learn(A, MAC1 if int(now * 100) % 2 else MAC2, now)
        c.lookup(A, now)  # STALE → DELAY: an earlier deadline, a push
        c.poll(now)
    assert len(c._heap) <= 2 * len(c) + 65


# -- property: timers ----------------------------------------------------------------------

IPS = [IPv4Address(f"198.18.0.{i}") for i in range(1, 5)]
MACS = [EthernetAddress(f"02:00:00:00:00:0{i}") for i in range(1, 4)]

ops = st.one_of(
    st.tuples(st.just("advance"), st.floats(0.0, 8.0, allow_nan=False)),
    st.tuples(st.just("poll"), st.floats(0.0, 1.0, allow_nan=False)),
    st.tuples(st.just("send"), st.sampled_from(IPS)),
    st.tuples(st.just("update"), st.sampled_from(IPS), st.sampled_from(MACS), st.booleans(),
              st.booleans()),
    st.tuples(st.just("learn"), st.sampled_from(IPS), st.sampled_from(MACS)),
    st.tuples(st.just("confirm"), st.sampled_from(IPS)),
    st.tuples(st.just("remove"), st.sampled_from(IPS)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=60))
def test_poll_at_is_the_earliest_due_action(sequence: list[tuple[object, ...]]) -> None:
    cfg = NeighborConfig(reachable_time=3.0, retrans_time=1.0, delay_first_probe_time=2.0,
                         stale_timeout=20.0, max_entries=3, max_pending_per_neighbor=2,
                         max_pending_total=4)
    c: NeighborCache[int] = NeighborCache(cfg)
    now = 0.0
    next_id = 0
    last_solicit: dict[IPv4Address | IPv6Address, float] = {}
    live: set[int] = set()  # packets the cache still holds
    out: set[int] = set()  # packets handed back (sent, failed, removed) or dropped

    refused = 0

    def handed_back(packets: list[int]) -> None:
        assert packets == sorted(packets)  # oldest first
        for p in packets:
            assert p in live
            live.discard(p)
            out.add(p)

    for op in sequence:
        kind = op[0]
        if kind == "advance":
            assert isinstance(op[1], float)
            target = now + op[1]
            # Nothing may happen strictly before poll_at().
            at = c.poll_at()
            if at is None or target < at:
                before = c.entries()
                assert not c.poll(target)
                assert c.entries() == before
            now = target
            continue
        if kind == "poll":
            assert isinstance(op[1], float)
            now += op[1]
            r = c.poll(now)
            for s in r.solicitations:
                assert s.ip in IPS
                if s.ip in last_solicit:
                    assert now >= last_solicit[s.ip] + cfg.retrans_time
                last_solicit[s.ip] = now
            for f in r.failures:
                last_solicit.pop(f.ip, None)
                handed_back(f.packets)
            at = c.poll_at()
            assert at is None or at > now  # everything due was done
        elif kind == "send":
            ip = op[1]
            assert isinstance(ip, IPv4Address)
            if c.lookup(ip, now) is None:
                dropped_before = c.stats.pending_dropped
                held_before = c.pending_total
                next_id += 1
                live.add(next_id)
                queued = c.resolve(ip, next_id, now)
                n_dropped = c.stats.pending_dropped - dropped_before
                if queued:
                    assert c.pending_total == held_before + 1 - n_dropped
                else:
                    assert n_dropped == 1 and c.pending_total == held_before
                    refused += 1
                    handed_back([next_id])
        elif kind == "update":
            ip, mac, solicited, override = op[1:]
            assert isinstance(ip, IPv4Address) and isinstance(mac, EthernetAddress)
            handed_back(c.update(ip, mac, now, solicited=bool(solicited),
                                 override=bool(override)))
        elif kind == "learn":
            ip, mac = op[1:]
            assert isinstance(ip, IPv4Address) and isinstance(mac, EthernetAddress)
            handed_back(c.learn(ip, mac, now))
        elif kind == "confirm":
            assert isinstance(op[1], IPv4Address)
            c.confirm(op[1], now)
        elif kind == "remove":
            assert isinstance(op[1], IPv4Address)
            last_solicit.pop(op[1], None)
            handed_back(c.remove(op[1]))
        for gone in [ip for ip in last_solicit if ip not in c]:
            del last_solicit[gone]  # a new entry starts a new solicitation series

        infos = c.entries()
        deadlines = [i.deadline for i in infos]
        assert c.poll_at() == (min(deadlines) if deadlines else None)
        assert len(infos) <= cfg.max_entries == 3
        assert sum(i.pending for i in infos) == c.pending_total <= cfg.max_pending_total
        assert all(i.pending <= cfg.max_pending_per_neighbor for i in infos)
        assert all((i.mac is None) == (i.state is S.INCOMPLETE) for i in infos)
        assert all(i.pending == 0 for i in infos if i.state is not S.INCOMPLETE)
        assert c.stats.entries == len(infos)
    # Conservation: every packet is held, handed back, or counted as dropped.
    oldest_dropped = c.stats.pending_dropped - refused
    assert next_id == len(out) + c.pending_total + oldest_dropped
    assert len(live) == c.pending_total + oldest_dropped
